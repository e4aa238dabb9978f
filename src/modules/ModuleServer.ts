import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as ExecutionStrategy from "effect/ExecutionStrategy"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as PubSub from "effect/PubSub"
import * as Runtime from "effect/Runtime"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type * as Net from "node:net"
import * as Path from "node:path"
import type { RestartPolicy } from "../actors/Supervisor.js"
import * as Supervisor from "../actors/Supervisor.js"
import * as Config from "./Config.js"
import { type ConfigError, ModuleError, type ModuleFailure } from "./Errors.js"
import { FileWatch } from "./FileWatch.js"
import { ConfigReport, type ModuleEvent, type ModuleInfo, type ReloadOutcome } from "./ModuleInfo.js"
import * as ModuleLog from "./ModuleLog.js"
import * as ModuleWorker from "./ModuleWorker.js"
import { Standby } from "./internal/Standby.js"
import type { Call } from "./internal/WorkerProcess.js"

/** How a module server runs. */
export interface ModuleServerOptions {
  /** The JSON config file of modules. */
  readonly configFile: string
  /** Where per-module logs go; default `logs/` beside the config file. */
  readonly logDir?: string | undefined
  /** Rotate a module's log past this many bytes; default 10 MiB. */
  readonly logMaxBytes?: number | undefined
  /** Rotated log files kept per module; default 5. */
  readonly logFiles?: number | undefined
  /** Watch the config file and apply its changes; default true. */
  readonly watchConfig?: boolean | undefined
  /** Restart backoff and intensity for crashed workers; default the Supervisor's (3 in 5 s, 10 ms to 1 s). */
  readonly policy?: RestartPolicy | undefined
  /** How long a stopping module's calls and `dispose` may take before its worker is killed; default 5 s. */
  readonly stopGraceMs?: number | undefined
  /** How often watched files are rescanned, as a safety net for lost file events; default 1 s. */
  readonly rescanMs?: number | undefined
  /** Keep a spare worker process started ahead of need, so reloads and restarts skip Node's start-up; default true. */
  readonly spareWorkers?: boolean | undefined
}

/** Why a module cannot take a direct route now. */
export interface ModuleRefusal {
  readonly reason: ModuleFailure
  readonly message: string
}

/** The module server: user modules in supervised worker processes, configured by a watched JSON file. */
export class ModuleServer extends Context.Tag("troupe/ModuleServer")<ModuleServer, {
  /** The config file. */
  readonly configFile: string
  /** The folder of per-module logs. */
  readonly logDir: string
  /** Calls `fn(...args)` in a module; `clientIp` is what a dispatch method receives. */
  readonly com: (
    module: string,
    fn: string | null,
    args: ReadonlyArray<unknown>,
    clientIp?: string
  ) => Effect.Effect<unknown, ModuleError>
  /** The same for callback code: `call.done` runs exactly once. */
  readonly submit: (module: string, call: Call) => void
  /**
   * Hands a client's connection (authenticated, paused, nothing unread) to the worker of `module`,
   * as a direct route (internal/DirectWire.ts); otherwise answers why not, and the socket is the caller's.
   */
  readonly route: (module: string, socket: Net.Socket, clientIp: string) => ModuleRefusal | undefined
  /** A module's help, or without a name the server's: its modules and protocol. */
  readonly help: (module?: string) => Effect.Effect<string, ModuleError>
  /** The names of the loaded modules starting with `prefix`, in config order. */
  readonly getModules: (prefix?: string) => ReadonlyArray<string>
  /** What the server knows about each module starting with `prefix`. */
  readonly status: (prefix?: string) => ReadonlyArray<ModuleInfo>
  /** Loads a module's code again: the old code serves until the new is ready, and keeps serving if it fails. */
  readonly reload: (module: string) => Effect.Effect<ReloadOutcome, ModuleError>
  /** Reads the config file now and applies it. */
  readonly reloadConfig: Effect.Effect<ConfigReport, ConfigError>
  /** Module events from now on: loads, reloads, crashes, restarts, escalations. */
  readonly events: Stream.Stream<ModuleEvent>
}>() {}

/** Starts a module server: reads the config (an unusable file fails with ConfigError), loads every module, and watches. */
export const make = (options: ModuleServerOptions): Effect.Effect<ModuleServer["Type"], ConfigError, Scope.Scope> =>
  Effect.gen(function*() {
    const configFile = Path.resolve(options.configFile)
    const text = yield* Config.readText(configFile)
    const first = yield* Either.match(Config.parse(text, configFile), { onLeft: Effect.fail, onRight: Effect.succeed })
    const registry = yield* makeRegistry(configFile, options)
    yield* registry.apply(first)
    if (options.watchConfig !== false) {
      yield* Effect.forkScoped(Config.watch(configFile, text, (next) =>
        Either.match(Config.parse(next, configFile), {
          onLeft: (error) => Effect.logError(`config not applied: ${error.message}; the modules keep running as they are`),
          onRight: (snapshot) => Effect.asVoid(registry.apply(snapshot))
        })))
    }
    return ModuleServer.of({
      configFile,
      logDir: registry.logs.dir,
      com: (module, fn, args, clientIp = "127.0.0.1") =>
        Effect.suspend(() => {
          const worker = registry.modules.get(module)
          return worker === undefined ? Effect.fail(notFound(module)) : worker.call(fn, args, clientIp)
        }),
      route: (module, socket, clientIp) => {
        const worker = registry.modules.get(module)
        if (worker === undefined) return { reason: "not-found", message: notFound(module).message }
        const refusal = worker.adopt(socket, clientIp)
        return refusal === undefined ? undefined : { reason: refusal.reason, message: refusal.message }
      },
      submit: (module, call) => {
        const worker = registry.modules.get(module)
        if (worker === undefined) return call.done({ ok: false, reason: "not-found", message: notFound(module).message, traceback: "" })
        worker.submit(call)
      },
      help: (module) =>
        Effect.suspend(() => {
          if (module === undefined || module === "") return Effect.succeed(serverHelp(Array.from(registry.modules.keys())))
          const worker = registry.modules.get(module)
          return worker === undefined ? Effect.fail(notFound(module)) : worker.help
        }),
      getModules: (prefix = "") => Array.from(registry.modules.keys()).filter((name) => name.startsWith(prefix)),
      status: (prefix = "") =>
        Array.from(registry.modules.values()).filter((w) => w.name.startsWith(prefix)).map((w) => w.info()),
      reload: (module) =>
        Effect.suspend(() => {
          const worker = registry.modules.get(module)
          return worker === undefined ? Effect.fail(notFound(module)) : worker.reload()
        }),
      reloadConfig: Effect.flatMap(Config.readText(configFile), (next) =>
        Either.match(Config.parse(next, configFile), { onLeft: Effect.fail, onRight: registry.apply })),
      events: Stream.fromPubSub(registry.hub)
    })
  })

/** Provides a ModuleServer for the layer's lifetime; closing it stops every module. */
export const layer = (options: ModuleServerOptions): Layer.Layer<ModuleServer, ConfigError> =>
  Layer.scoped(ModuleServer, make(options))

/** The server's help text: its modules and the protocols it speaks. */
export const serverHelp = (modules: ReadonlyArray<string>): string =>
  `Available modules: ${modules.length > 0 ? modules.join(", ") : "(none)"}

Typed clients (troupe/client, ModulesClient) call com(module, fn, ...args), help(module?),
getModules(prefix), reload(module), reloadConfig() and ping() over any Troupe transport.

The original line protocol (the compat listener): every message, both ways, is
quote_plus(json.dumps(obj)) + "\\n". Send a hello {"name": X}: null or "_ping" answers
[your ip, your port]; "_help" this text; "_get_modules.<prefix>" the module names with that
prefix; "_reload_<name>" reloads a module ("_reload_" alone reloads the config); a module
name answers "ack" and takes calls {"function": name, "args": [...], "keep_alive": bool}
("function": null leaves; "_help" gives the module's help). Every reply is
{"response": value, "error": bool, "traceback": text}. A client has 1 s to finish sending
a message; the connection closes after an error, or after a reply when keep_alive is false.`

// ---------------------------------------------------------------------------------------------
// private

interface Registry {
  readonly modules: Map<string, ModuleWorker.ModuleWorker>
  readonly logs: ModuleLog.ModuleLogs
  readonly hub: PubSub.PubSub<ModuleEvent>
  readonly apply: (snapshot: Config.Snapshot) => Effect.Effect<ConfigReport>
}

const makeRegistry = Effect.fnUntraced(function*(configFile: string, options: ModuleServerOptions) {
  const scope = yield* Effect.scope
  const runtime = yield* Effect.runtime<never>()
  const fork = Runtime.runFork(runtime)
  const supervisor = yield* Supervisor.make
  const hub = yield* PubSub.sliding<ModuleEvent>(1024)
  const logs = ModuleLog.make({
    dir: options.logDir ?? Path.join(Path.dirname(configFile), "logs"),
    maxBytes: options.logMaxBytes,
    files: options.logFiles,
    onError: (module, error) => fork(Effect.logWarning(`cannot write the log of ${module}: ${error.message}`))
  })
  yield* Effect.addFinalizer(() => Effect.promise(() => logs.closeAll()))
  const modules = new Map<string, ModuleWorker.ModuleWorker>()
  const scopes = new Map<string, Scope.CloseableScope>()
  const watch = new FileWatch((name, file) => modules.get(name)?.changed(file), options.rescanMs ?? 1000)
  yield* Effect.addFinalizer(() => Effect.sync(() => watch.close()))
  const standby = new Standby(options.spareWorkers !== false)
  yield* Effect.addFinalizer(() => Effect.sync(() => standby.close()))
  const context: ModuleWorker.ModuleContext = {
    logs,
    watch,
    policy: options.policy ?? Supervisor.defaultPolicy,
    stopGraceMs: options.stopGraceMs ?? 5000,
    standby,
    publish: (event) => {
      fork(Effect.zipRight(PubSub.publish(hub, event), logEvent(event)))
    }
  }
  const lock = yield* Effect.makeSemaphore(1)

  const load = (entry: Config.ModuleEntry) =>
    Effect.gen(function*() {
      const inner = yield* Scope.fork(scope, ExecutionStrategy.sequential)
      const worker = yield* ModuleWorker.make(entry, context).pipe(
        Scope.extend(inner),
        Effect.provideService(Supervisor.Supervisor, supervisor)
      )
      modules.set(entry.name, worker)
      scopes.set(entry.name, inner)
      return worker.info().status === "ready"
    })

  const unload = (name: string) =>
    Effect.gen(function*() {
      const worker = modules.get(name)
      const inner = scopes.get(name)
      modules.delete(name)
      scopes.delete(name)
      if (worker !== undefined) yield* worker.stop("unloaded")
      if (inner !== undefined) yield* Scope.close(inner, Exit.void)
    })

  const apply = (snapshot: Config.Snapshot): Effect.Effect<ConfigReport> =>
    lock.withPermits(1)(Effect.gen(function*() {
      const report = { loaded: [] as Array<string>, failed: [] as Array<string>, reloaded: [] as Array<string>, unloaded: [] as Array<string>, unchanged: [] as Array<string> }
      for (const problem of snapshot.problems) yield* Effect.logWarning(`config ${configFile}: ${problem}`)
      const gone = Array.from(modules.keys()).filter((name) => !snapshot.entries.has(name))
      yield* Effect.forEach(gone, (name) => Effect.as(unload(name), report.unloaded.push(name)), { concurrency: "unbounded", discard: true })
      yield* Effect.forEach(snapshot.entries.values(), (entry) => {
        const worker = modules.get(entry.name)
        if (worker === undefined) {
          return Effect.map(load(entry), (ok) => (ok ? report.loaded : report.failed).push(entry.name))
        }
        if (worker.entry().same(entry)) return Effect.sync(() => report.unchanged.push(entry.name))
        if (worker.entry().sameCode(entry)) return Effect.sync(() => (worker.resize(entry), report.reloaded.push(entry.name)))
        return worker.reload(entry).pipe(
          Effect.match({ onFailure: () => report.failed.push(entry.name), onSuccess: () => report.reloaded.push(entry.name) })
        )
      }, { concurrency: "unbounded", discard: true })
      // Keep the config's order for getModules.
      const ordered = Array.from(snapshot.entries.keys()).filter((name) => modules.has(name))
      const entries = ordered.map((name) => [name, modules.get(name)!] as const)
      modules.clear()
      for (const [name, worker] of entries) modules.set(name, worker)
      const summary = new ConfigReport({ ...report, problems: snapshot.problems })
      yield* Effect.logInfo(
        `config applied: ${summary.loaded.length} loaded, ${summary.reloaded.length} reloaded, ${summary.unloaded.length} unloaded, ` +
          `${summary.failed.length} failed, ${summary.unchanged.length} unchanged, ${summary.problems.length} invalid entries skipped`
      )
      return summary
    }))

  return { modules, logs, hub, apply } satisfies Registry
})

const notFound = (module: string): ModuleError =>
  new ModuleError({ module, reason: "not-found", message: `no module "${module}" is loaded (names are case-sensitive)` })

const logEvent = (event: ModuleEvent): Effect.Effect<void> => {
  const log = event.kind === "crashed" || event.kind === "reload-failed" || event.kind === "load-failed"
    ? Effect.logWarning(event.message)
    : event.kind === "escalated"
    ? Effect.logError(event.message)
    : Effect.logInfo(event.message)
  return log.pipe(Effect.annotateLogs({ module: event.module, event: event.kind }))
}
