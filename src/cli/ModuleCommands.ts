import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import { ModulesClient } from "../client/ModulesClient.js"
import type { ModulesClientError } from "../client/ModulesClient.js"
import type { ConfigError } from "../modules/Errors.js"
import type { ModuleInfo } from "../modules/ModuleInfo.js"
import type * as ModuleRole from "../roles/ModuleRole.js"
import * as Secret from "../transport/Secret.js"
import * as Args from "./Args.js"
import { compact } from "./ClientCommands.js"
import * as Output from "./Output.js"
import * as Usage from "./Usage.js"

/** Where module commands connect and the module role listens when nothing says otherwise. */
export const defaultServer = "tcp://127.0.0.1:7881"

/** The module server's client commands by name: `com`, `modules`, `reload`, `module-help`. */
export const commands: Readonly<Record<string, ModuleCommand>> = {
  com: { options: { json: { type: "boolean" } }, run: (parsed, client) => com(parsed, client) },
  modules: { options: { json: { type: "boolean" } }, run: (parsed, client) => modules(parsed, client) },
  reload: { options: {}, run: (parsed, client) => reload(parsed, client) },
  "module-help": { options: {}, run: (parsed, client) => help(parsed, client) }
}

/** True when the arguments start the module role (`--role=module` or `--role module`). */
export const isModuleRole = (argv: ReadonlyArray<string>): boolean =>
  argv[0] === "--role=module" || (argv[0] === "--role" && argv[1] === "module")

/** Runs a client command of the module server and answers its exit code. */
export const run = Effect.fnUntraced(function*(name: string, argv: ReadonlyArray<string>) {
  const command = commands[name]!
  const parsed = yield* Args.parse(name, argv, { ...helpOption, ...Args.serverOption, ...command.options }, {
    positionals: true
  })
  if (Args.flag(parsed, "help")) return yield* Effect.as(Output.out(Usage.of(name)), 0)
  const url = Args.string(parsed, "server") ?? (process.env["TROUPE_MODULE_SERVER"] || defaultServer)
  const secret = yield* Secret.resolve(Args.string(parsed, "secret-file"))
  return yield* Effect.scoped(
    Effect.flatMap(ModulesClient.make(url, compact({ secret })), (client) => command.run(parsed, client))
  ).pipe(
    Effect.catchTags({
      ModuleError: (error) => Effect.as(Output.problem(error.message + (error.traceback !== undefined ? `\n${error.traceback}` : "")), 1),
      ConfigError: (error) => Effect.as(Output.problem(error.message), 1)
    })
  )
})

/** Runs `--role=module` until interrupted. */
export const runRole = Effect.fnUntraced(function*(argv: ReadonlyArray<string>) {
  const parsed = yield* Args.parse("module-role", argv, roleOptions)
  if (Args.flag(parsed, "help")) return yield* Effect.as(Output.out(Usage.of("module-role")), 0)
  const configFile = Args.string(parsed, "config")
  if (configFile === undefined) {
    return yield* new Args.UsageError({ command: "module-role", message: "--role=module needs --config FILE" })
  }
  const listen = yield* Effect.forEach(Args.strings(parsed, "listen"), (url) => Args.endpoint("module-role", url))
  const compat = yield* compatOf(Args.string(parsed, "compat"))
  const directPort = yield* directPortOf(Args.string(parsed, "direct-port"))
  const options = compact<ModuleRole.ModuleRoleOptions>({
    configFile,
    listen: listen.length > 0 ? listen : undefined,
    compat,
    directPort,
    logDir: Args.string(parsed, "log-dir"),
    logMaxBytes: yield* sizeOf(Args.string(parsed, "log-max-size")),
    logFiles: yield* Args.integer("module-role", parsed, "log-files", 1),
    secret: yield* Secret.resolve(Args.string(parsed, "secret-file")),
    insecure: Args.flag(parsed, "insecure") || undefined
  })
  const ModuleRoleModule = yield* Effect.promise(() => import("../roles/ModuleRole.js"))
  return yield* Layer.launch(ModuleRoleModule.layer(options)).pipe(
    Effect.as(0),
    Effect.catchAll((error) => Effect.as(Output.problem(error.message), error._tag === "ListenFailed" ? 2 : 1)),
    Effect.ensuring(Effect.logInfo("troupe module role stopped"))
  )
})

/** A client command of the module server. */
export interface ModuleCommand {
  readonly options: Args.Options
  readonly run: (
    parsed: Args.Parsed,
    client: ModulesClient["Type"]
  ) => Effect.Effect<number, Args.UsageError | ModulesClientError | ConfigError, Scope.Scope>
}

// ---------------------------------------------------------------------------------------------
// private

const helpOption: Args.Options = { help: { type: "boolean", short: "h" } }

const roleOptions: Args.Options = {
  ...helpOption,
  role: { type: "string" },
  config: { type: "string" },
  listen: { type: "string", multiple: true },
  compat: { type: "string" },
  "direct-port": { type: "string" },
  "log-dir": { type: "string" },
  "log-max-size": { type: "string" },
  "log-files": { type: "string" },
  "secret-file": { type: "string" },
  insecure: { type: "boolean" }
}

const compatOf = (text: string | undefined) =>
  Effect.gen(function*() {
    if (text === undefined) return undefined
    if (text === "off") return "off" as const
    const { parseAddress } = yield* Effect.promise(() => import("../modules/CompatServer.js"))
    const address = parseAddress(text)
    if (address === undefined) {
      return yield* new Args.UsageError({ command: "module-role", message: `--compat ${text}: expected HOST:PORT or off` })
    }
    return address
  })

// A port for the direct-route listener (1–65535), or off.
const directPortOf = (text: string | undefined): Effect.Effect<number | "off" | undefined, Args.UsageError> => {
  if (text === undefined) return Effect.succeed(undefined)
  if (text === "off") return Effect.succeed("off")
  const port = /^\d+$/.test(text) ? Number(text) : Number.NaN
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    return Effect.fail(new Args.UsageError({ command: "module-role", message: `--direct-port ${text}: expected a port (1-65535) or off` }))
  }
  return Effect.succeed(port)
}

// A size with an optional unit: 10485760, 512K, 10M, 1G.
const sizeOf = (text: string | undefined): Effect.Effect<number | undefined, Args.UsageError> => {
  if (text === undefined) return Effect.succeed(undefined)
  const match = /^(\d+)([KMG]?)$/i.exec(text.trim())
  if (match === null || Number(match[1]) === 0) {
    return Effect.fail(new Args.UsageError({ command: "module-role", message: `--log-max-size ${text}: expected a size such as 512K, 10M or 1G` }))
  }
  const unit = { "": 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 }[match[2]!.toUpperCase() as "" | "K" | "M" | "G"]
  return Effect.succeed(Number(match[1]) * unit)
}

// An argument on the command line is JSON when it parses as JSON, else a string: 3 → 3, '"3"' → "3", abc → "abc".
const argument = (text: string): unknown => {
  try {
    return JSON.parse(text)
  } catch {
    return text
  }
}

const com = Effect.fnUntraced(function*(parsed: Args.Parsed, client: ModulesClient["Type"]) {
  const [module, fn, ...rest] = parsed.rest !== undefined ? [...parsed.positionals, ...parsed.rest] : parsed.positionals
  if (module === undefined || fn === undefined) {
    return yield* new Args.UsageError({ command: "com", message: "expected MODULE FN [ARGS...]" })
  }
  const result = yield* client.com(module, fn, ...rest.map(argument))
  yield* Output.line(typeof result === "string" && !Args.flag(parsed, "json") ? result : JSON.stringify(result ?? null, null, 2))
  return 0
})

const modules = Effect.fnUntraced(function*(parsed: Args.Parsed, client: ModulesClient["Type"]) {
  const infos = yield* client.status(parsed.positionals[0])
  if (Args.flag(parsed, "json")) return yield* Effect.as(Output.line(JSON.stringify(infos, null, 2)), 0)
  yield* Output.out(formatModules(infos))
  return 0
})

const reload = Effect.fnUntraced(function*(parsed: Args.Parsed, client: ModulesClient["Type"]) {
  const module = parsed.positionals[0]
  if (module === undefined) {
    const report = yield* client.reloadConfig
    const parts = [
      `Reloaded config: ${report.loaded.length} loaded, ${report.reloaded.length} reloaded, ${report.unloaded.length} unloaded, ` +
      `${report.failed.length} failed, ${report.unchanged.length} unchanged`,
      ...report.failed.map((name) => `  failed to load: ${name} (see its log)`),
      ...report.problems.map((problem) => `  skipped: ${problem}`)
    ]
    yield* Output.line(parts.join("\n"))
    return report.failed.length > 0 ? 1 : 0
  }
  const outcome = yield* client.reload(module)
  yield* Output.line(`Reloaded "${module}" (generation ${outcome.generation}, pid ${outcome.pid}, ${outcome.tookMs} ms)`)
  return 0
})

const help = Effect.fnUntraced(function*(parsed: Args.Parsed, client: ModulesClient["Type"]) {
  yield* Output.line(yield* client.help(parsed.positionals[0]))
  return 0
})

const formatModules = (infos: ReadonlyArray<ModuleInfo>): string => {
  const header = ["NAME", "STATUS", "PID", "GEN", "RESTARTS", "CONC", "RUNNING", "QUEUED", "FILE"]
  const rows = infos.map((m) => [
    m.name,
    m.status,
    m.pid === null ? "-" : String(m.pid),
    String(m.generation),
    String(m.restarts),
    String(m.concurrency),
    String(m.running),
    String(m.queued),
    m.file
  ])
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)))
  const line = (cells: ReadonlyArray<string>) => cells.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd()
  const errors = infos.filter((m) => m.lastError !== null && m.status !== "ready").map((m) => `${m.name}: ${m.lastError}`)
  return [line(header), ...rows.map(line), ...(errors.length > 0 ? ["", ...errors] : [])].join("\n") + "\n"
}
