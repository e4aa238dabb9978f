import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as LogLevel from "effect/LogLevel"
import { JobsClient } from "../client/JobsClient.js"
import type * as LocalRole from "../roles/LocalRole.js"
import type * as RemoteRole from "../roles/RemoteRole.js"
import * as Secret from "../transport/Secret.js"
import * as Args from "./Args.js"
import * as ClientCommands from "./ClientCommands.js"
import * as ExecCommands from "./ExecCommands.js"
import * as QueueCommands from "./QueueCommands.js"
import * as Output from "./Output.js"
import * as Usage from "./Usage.js"

/**
 * Exit codes: 0 success; 1 a typed error (unknown job, invalid spec, ...) or a job that did not
 * succeed; 2 usage error or unreachable server; 3 `wait` timed out; 130 interrupted (Ctrl-C);
 * `submit --wait` and `run` exit with the job's own code (killed 137, timeout 124).
 */
export const exitCodes = { ok: 0, failed: 1, usage: 2, timeout: 3, internal: 70, interrupted: 130 } as const

/** Runs the process for the given arguments (without `node` and the script) and exits with the right code. */
export const main = (argv: ReadonlyArray<string>): void => {
  const role = isRole(argv)
  NodeRuntime.runMain(
    program(argv).pipe(Effect.provide(Output.layerLogger(role ? LogLevel.Info : LogLevel.Warning))),
    {
      disableErrorReporting: true,
      disablePrettyLogger: true,
      teardown: (exit, onExit) => {
        const code = Exit.isSuccess(exit) && typeof exit.value === "number"
          ? exit.value
          : Exit.isFailure(exit) && Cause.isInterruptedOnly(exit.cause)
          ? (role ? exitCodes.ok : exitCodes.interrupted)
          : exitCodes.internal
        process.exitCode = code
        onExit(code)
        // Leave through the event loop so output drains; force the exit if a handle lingers.
        setTimeout(() => process.exit(code), 2000).unref()
      }
    }
  )
}

/** The whole CLI as one effect: dispatch on the arguments, report errors, and return the exit code. */
export const program = (argv: ReadonlyArray<string>): Effect.Effect<number> =>
  dispatch(argv).pipe(
    Effect.catchAll(report),
    Effect.catchAllDefect((defect) =>
      Effect.as(Output.problem(`internal error: ${Output.pretty(Cause.die(defect))}`), exitCodes.internal)
    )
  )

// ---------------------------------------------------------------------------------------------
// private

const helpOption: Args.Options = { help: { type: "boolean", short: "h" } }

const roleOptions: Args.Options = {
  ...helpOption,
  role: { type: "string" },
  db: { type: "string" },
  "data-dir": { type: "string" },
  listen: { type: "string", multiple: true },
  cores: { type: "string" },
  grace: { type: "string" },
  "secret-file": { type: "string" },
  insecure: { type: "boolean" },
  remote: { type: "string", multiple: true },
  "remote-heartbeat": { type: "string" },
  "remote-timeout": { type: "string" },
  workdir: { type: "string" },
  keep: { type: "string" }
}

// The module server's commands, loaded only when one of them runs.
const moduleCommands: ReadonlyArray<string> = ["com", "modules", "reload", "module-help"]

const isRole = (argv: ReadonlyArray<string>): boolean =>
  argv[0] === "--role" || (argv[0]?.startsWith("--role=") ?? false)

const dispatch = Effect.fnUntraced(function*(argv: ReadonlyArray<string>) {
  const [first, ...rest] = argv
  if (first === undefined) return yield* new Args.UsageError({ command: undefined, message: "missing a command" })
  if (first === "-h" || first === "--help") return yield* usage(undefined)
  if (isRole(argv)) return yield* runRole(argv)
  if (first === "help") return yield* usage(rest[0])
  if (first === "run") {
    // The embedded runtime (SQLite and the rest) is loaded only by the commands that use it.
    const RunCommand = yield* Effect.promise(() => import("./RunCommand.js"))
    const parsed = yield* Args.parse("run", rest, { ...helpOption, ...RunCommand.options }, { positionals: true })
    return Args.flag(parsed, "help") && parsed.rest === undefined ? yield* usage("run") : yield* RunCommand.run(parsed)
  }
  if (Object.hasOwn(ExecCommands.commands, first)) return yield* ExecCommands.run(first, rest)
  if (Object.hasOwn(QueueCommands.commands, first)) return yield* QueueCommands.run(first, rest)
  if (moduleCommands.includes(first)) {
    const ModuleCommands = yield* Effect.promise(() => import("./ModuleCommands.js"))
    return yield* ModuleCommands.run(first, rest)
  }
  const command = ClientCommands.commands[first]
  if (command === undefined) {
    return yield* new Args.UsageError({ command: undefined, message: `unknown command "${first}"` })
  }
  const parsed = yield* Args.parse(first, rest, { ...helpOption, ...command.options }, {
    positionals: command.positionals
  })
  if (Args.flag(parsed, "help")) return yield* usage(first)
  const secret = yield* Secret.resolve(Args.string(parsed, "secret-file"))
  const connect = JobsClient.make(Args.server(parsed), ClientCommands.compact({ secret }))
  return yield* Effect.scoped(command.run(parsed, connect))
})

const usage = (command: string | undefined): Effect.Effect<number> =>
  Effect.as(Output.out(Usage.of(command)), exitCodes.ok)

const runRole = Effect.fnUntraced(function*(argv: ReadonlyArray<string>) {
  if (ExecCommands.isExecRole(argv)) return yield* ExecCommands.runRole(argv)
  if (QueueCommands.isQueueRole(argv)) return yield* QueueCommands.runRole(argv)
  if (argv[0] === "--role=module" || (argv[0] === "--role" && argv[1] === "module")) {
    const ModuleCommands = yield* Effect.promise(() => import("./ModuleCommands.js"))
    return yield* ModuleCommands.runRole(argv)
  }
  const parsed = yield* Args.parse("local", argv, roleOptions)
  const role = Args.string(parsed, "role")
  if (Args.flag(parsed, "help")) return yield* usage(role === "local" || role === "remote" ? role : undefined)
  if (role === "remote") return yield* runRemote(parsed)
  if (role !== "local") {
    return yield* new Args.UsageError({
      command: undefined,
      message: role === undefined ? "--role needs a value" : `role "${role}" is not available in this build`
    })
  }
  const listen = yield* Effect.forEach(Args.strings(parsed, "listen"), (url) => Args.endpoint("local", url))
  const options: LocalRole.LocalRoleOptions = ClientCommands.compact<LocalRole.LocalRoleOptions>({
    database: Args.string(parsed, "db"),
    dataDir: Args.string(parsed, "data-dir"),
    listen,
    cores: yield* Args.integer("local", parsed, "cores", 1),
    shutdownGraceMs: yield* Args.duration("local", parsed, "grace"),
    secret: yield* Secret.resolve(Args.string(parsed, "secret-file")),
    insecure: Args.flag(parsed, "insecure") || undefined,
    remotes: yield* remotesOf(parsed),
    remoteHeartbeatMs: yield* Args.duration("local", parsed, "remote-heartbeat"),
    remoteDeadAfterMs: yield* Args.duration("local", parsed, "remote-timeout")
  })
  const { layer } = yield* Effect.promise(() => import("../roles/LocalRole.js"))
  return yield* Layer.launch(layer(options)).pipe(
    Effect.ensuring(Effect.logInfo("troupe local role stopped"))
  )
})

// `--remote NAME=URL`, repeatable: the remotes the local role may send jobs to.
const remotesOf = (parsed: Args.Parsed) =>
  Effect.gen(function*() {
    const remotes: Record<string, string> = {}
    for (const value of Args.strings(parsed, "remote")) {
      const split = value.indexOf("=")
      const name = value.slice(0, split)
      if (split <= 0 || !/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/.test(name)) {
        return yield* new Args.UsageError({ command: "local", message: `--remote ${value}: expected NAME=URL` })
      }
      yield* Args.endpoint("local", value.slice(split + 1))
      remotes[name] = value.slice(split + 1)
    }
    return Object.keys(remotes).length === 0 ? undefined : remotes
  })

const runRemote = Effect.fnUntraced(function*(parsed: Args.Parsed) {
  const listen = yield* Effect.forEach(Args.strings(parsed, "listen"), (url) => Args.endpoint("remote", url))
  if (listen.length !== 1) {
    return yield* new Args.UsageError({ command: "remote", message: "--role=remote needs exactly one --listen URL" })
  }
  const options: RemoteRole.RemoteRoleOptions = ClientCommands.compact<RemoteRole.RemoteRoleOptions>({
    listen: listen[0]!,
    workdir: Args.string(parsed, "workdir"),
    cores: yield* Args.integer("remote", parsed, "cores", 1),
    keepEndedMs: Args.string(parsed, "keep") === "forever" ? "forever" : yield* Args.duration("remote", parsed, "keep"),
    secret: yield* Secret.resolve(Args.string(parsed, "secret-file")),
    insecure: Args.flag(parsed, "insecure") || undefined
  })
  const { layer } = yield* Effect.promise(() => import("../roles/RemoteRole.js"))
  return yield* Layer.launch(layer(options)).pipe(
    Effect.ensuring(Effect.logInfo("troupe remote role stopped"))
  )
})

type Reported = Effect.Effect.Error<ReturnType<typeof dispatch>>

const report = (error: Reported): Effect.Effect<number> => {
  switch (error._tag) {
    case "UsageError":
      return Effect.as(
        Output.err(`troupe: ${error.message}\n\n${Usage.of(error.command)}`),
        exitCodes.usage
      )
    case "ServerUnreachable":
    case "InvalidEndpoint":
    case "SecretError":
      return Effect.as(Output.problem(error.message), exitCodes.usage)
    case "WaitTimeout":
      return Effect.as(Output.problem(error.message), exitCodes.timeout)
    default:
      return Effect.as(Output.problem(error.message), exitCodes.failed)
  }
}
