import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Os from "node:os"
import * as Path from "node:path"
import { ExecConnection } from "../client/ExecClient.js"
import type { ExecResult } from "../client/ExecListener.js"
import type { ClientError, ExecError } from "../exec/Errors.js"
import type { Output as Chunk } from "../protocol/ExecRpc.js"
import type * as ExecRole from "../roles/ExecRole.js"
import * as Endpoint from "../transport/Endpoint.js"
import * as Secret from "../transport/Secret.js"
import * as Args from "./Args.js"
import { compact } from "./ClientCommands.js"
import * as Output from "./Output.js"
import * as Usage from "./Usage.js"

/** Where exec clients connect and the exec role listens when nothing says otherwise. */
export const defaultServer = "tcp://127.0.0.1:7880"

/** The exec client commands by name: `exec`, `put`, `get`. */
export const commands: Readonly<Record<string, ExecCommand>> = {
  exec: {
    options: {
      stream: { type: "boolean" },
      cwd: { type: "string" },
      env: { type: "string", multiple: true },
      timeout: { type: "string" }
    },
    run: (parsed, connection) => execCommand(parsed, connection)
  },
  put: { options: {}, run: (parsed, connection) => move("put", parsed, connection) },
  get: { options: {}, run: (parsed, connection) => move("get", parsed, connection) }
}

/** True when the arguments start the exec role (`--role=exec` or `--role exec`). */
export const isExecRole = (argv: ReadonlyArray<string>): boolean =>
  argv[0] === "--role=exec" || (argv[0] === "--role" && argv[1] === "exec")

/** Runs a client command of the exec server: parses, connects, runs, and answers the exit code. */
export const run = Effect.fnUntraced(function*(name: string, argv: ReadonlyArray<string>) {
  const command = commands[name]!
  const parsed = yield* Args.parse(name, argv, { ...helpOption, ...serverOption, ...command.options }, {
    positionals: true
  })
  if (Args.flag(parsed, "help")) return yield* Effect.as(Output.out(Usage.of(name)), 0)
  const url = Args.string(parsed, "server") ?? (process.env["TROUPE_EXEC_SERVER"] || defaultServer)
  const endpoint = yield* Args.endpoint(name, url)
  const secret = yield* Secret.resolve(Args.string(parsed, "secret-file"))
  const connection = new ExecConnection(Endpoint.format(endpoint), endpoint, compact({ secret }))
  return yield* Effect.acquireUseRelease(
    Effect.succeed(connection),
    (connection) =>
      Effect.zipRight(connection.connect({ retryRefused: false }), command.run(parsed, connection)).pipe(
        Effect.catchTags({ ClientError: reportClient, ExecError: reportExec })
      ),
    (connection) => connection.close
  )
})

/** Runs `--role=exec` until interrupted or closed by a client. */
export const runRole = Effect.fnUntraced(function*(argv: ReadonlyArray<string>) {
  const parsed = yield* Args.parse("exec-role", argv, roleOptions)
  if (Args.flag(parsed, "help")) return yield* Effect.as(Output.out(Usage.of("exec-role")), 0)
  const listen = yield* Effect.forEach(Args.strings(parsed, "listen"), (url) => Args.endpoint("exec-role", url))
  const options = compact<ExecRole.ExecRoleOptions>({
    listen: listen.length > 0 ? listen : [yield* Args.endpoint("exec-role", defaultServer)],
    root: Args.string(parsed, "root"),
    allowClose: Args.flag(parsed, "allow-close") || undefined,
    secret: yield* Secret.resolve(Args.string(parsed, "secret-file")),
    insecure: Args.flag(parsed, "insecure") || undefined
  })
  const ExecRoleModule = yield* Effect.promise(() => import("../roles/ExecRole.js"))
  yield* ExecRoleModule.run(options).pipe(Effect.ensuring(Effect.logInfo("troupe exec role stopped")))
  return 0
})

/** A client command of the exec server. */
export interface ExecCommand {
  readonly options: Args.Options
  readonly run: (parsed: Args.Parsed, connection: ExecConnection) => Effect.Effect<number, ClientError | ExecError | Args.UsageError>
}

// ---------------------------------------------------------------------------------------------
// private

const helpOption: Args.Options = { help: { type: "boolean", short: "h" } }

const serverOption: Args.Options = { server: { type: "string" }, "secret-file": { type: "string" } }

const roleOptions: Args.Options = {
  ...helpOption,
  role: { type: "string" },
  listen: { type: "string", multiple: true },
  root: { type: "string" },
  "allow-close": { type: "boolean" },
  "secret-file": { type: "string" },
  insecure: { type: "boolean" }
}

const execCommand = Effect.fnUntraced(function*(parsed: Args.Parsed, connection: ExecConnection) {
  const words = parsed.rest ?? parsed.positionals
  if (words.length === 0) {
    return yield* new Args.UsageError({ command: "exec", message: "missing the command to run (after --)" })
  }
  const env: Record<string, string> = {}
  for (const pair of Args.strings(parsed, "env")) {
    const at = pair.indexOf("=")
    if (at <= 0) return yield* new Args.UsageError({ command: "exec", message: `--env: expected NAME=VALUE, got "${pair}"` })
    env[pair.slice(0, at)] = pair.slice(at + 1)
  }
  const timeoutMs = yield* Args.duration("exec", parsed, "timeout")
  const stream = Args.flag(parsed, "stream")
  const command = words.length === 1 ? words[0]! : words
  const result: ExecResult = yield* connection.exec(command, compact({
    cwd: Args.string(parsed, "cwd"),
    env: Object.keys(env).length > 0 ? env : undefined,
    timeout: timeoutMs === undefined ? undefined : Duration.millis(timeoutMs),
    echoResponse: stream ? (chunk: Chunk) => (chunk.channel === "stdout" ? process.stdout : process.stderr).write(chunk.data) : undefined
  }))
  if (!stream) {
    for (const chunk of result.output) yield* chunk.channel === "stdout" ? Output.out(chunk.data) : Output.err(chunk.data)
  }
  return exitCodeOf(result)
})

const move = Effect.fnUntraced(function*(name: "put" | "get", parsed: Args.Parsed, connection: ExecConnection) {
  const [from, to, ...extra] = parsed.positionals
  if (from === undefined || to === undefined || extra.length > 0) {
    return yield* new Args.UsageError({
      command: name,
      message: name === "put" ? "expected LOCAL and REMOTE paths" : "expected REMOTE and LOCAL paths"
    })
  }
  if (name === "put") {
    const sent = yield* connection.transfer(from, to)
    yield* Output.line(`${sent.bytes} bytes sha256 ${sent.sha256}`)
  } else {
    const target = to.endsWith("/") ? Path.join(to, Path.basename(from)) : to
    const bytes = yield* connection.download(from, target)
    yield* Output.line(`${bytes} bytes`)
  }
  return 0
})

// The remote exit code; a signal as a shell reports it (128 + its number).
const exitCodeOf = (result: ExecResult): number => {
  if (result.exitCode !== null) return result.exitCode
  const number = result.signal === null ? undefined : Os.constants.signals[result.signal as NodeJS.Signals]
  return number === undefined ? 1 : 128 + number
}

const reportClient = (error: ClientError): Effect.Effect<number> =>
  Effect.as(Output.problem(error.message), error.reason === "unreachable" || error.reason === "not-connected" ? 2 : 1)

const reportExec = (error: ExecError): Effect.Effect<number> => Effect.as(Output.problem(error.message), 1)
