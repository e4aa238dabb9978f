import * as Effect from "effect/Effect"
import * as ExecutionStrategy from "effect/ExecutionStrategy"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Runtime from "effect/Runtime"
import * as Schema from "effect/Schema"
import { ModuleEvent, ModuleInfo, type ModuleStatus, ReloadOutcome } from "./ModuleInfo.js"
import * as Scope from "effect/Scope"
import type * as Net from "node:net"
import type { RestartPolicy } from "../actors/Supervisor.js"
import { Supervisor } from "../actors/Supervisor.js"
import { isTypeScript, type ModuleEntry } from "./Config.js"
import { ModuleError } from "./Errors.js"
import type { FileWatch } from "./FileWatch.js"
import { type Baseline, snapshot } from "./FileWatch.js"
import type { ModuleLogs } from "./ModuleLog.js"
import { Dispatcher } from "./internal/Dispatcher.js"
import type { Standby } from "./internal/Standby.js"
import type { Call, CallResult, LoadFailure } from "./internal/WorkerProcess.js"
import type { WorkerProcess } from "./internal/WorkerProcess.js"
import type { ReadyInfo } from "./internal/Wire.js"

/**
 * One module: the supervised actor that owns its worker process. Calls queue in its dispatcher and
 * run in the active worker. A worker that dies fails its calls at once (worker-crashed) and is
 * restarted under the Supervisor, with backoff and a limited restart intensity. A reload starts the
 * new code in a new worker, waits until it is ready, sends the next calls to it, lets calls in flight
 * finish on the old one and then stops it; new code that fails to load leaves the old one serving.
 */

/** What every module of a server shares. */
export interface ModuleContext {
  readonly logs: ModuleLogs
  readonly watch: FileWatch
  readonly publish: (event: ModuleEvent) => void
  readonly policy: RestartPolicy
  /** How long a stopping worker may take (its calls, then `dispose`) before it is killed. */
  readonly stopGraceMs: number
  /** Spare worker processes, started ahead of need. */
  readonly standby: Standby
}

/** A running module. */
export interface ModuleWorker {
  readonly name: string
  /** The config entry in force. */
  readonly entry: () => ModuleEntry
  /** Runs `fn(...args)` (or the dispatch method) in the module; interruption drops a queued call. */
  readonly call: (fn: string | null, args: ReadonlyArray<unknown>, clientIp: string) => Effect.Effect<unknown, ModuleError>
  /** The same as `call` for callback code (the compat listener): `done` runs exactly once. */
  readonly submit: (call: Call) => void
  /** Hands a client's socket to the active worker (a direct route); otherwise says why not. */
  readonly adopt: (socket: Net.Socket, clientIp: string) => (CallResult & { ok: false }) | undefined
  /** The module's help text. */
  readonly help: Effect.Effect<string, ModuleError>
  /** Loads the module's code again (with `entry` when the config changed it); the old code serves until the new is ready. */
  readonly reload: (entry?: ModuleEntry) => Effect.Effect<ReloadOutcome, ModuleError>
  /** A snapshot for status displays. */
  readonly info: () => ModuleInfo
  /** Stops the module: queued calls fail with `reason`, running ones get `stopGraceMs` to finish. */
  readonly stop: (reason: "unloaded" | "shutting-down") => Effect.Effect<void>
  /** Tells the module that one of its files changed (from the file watch). */
  readonly changed: (file: string) => void
  /** Applies an entry that differs only in its limits (concurrency, queue): no reload. */
  readonly resize: (entry: ModuleEntry) => void
}

/**
 * Starts a module and waits for its first load (a failed load leaves it `failed`, waiting for a
 * change to its files or a reload). The module stops when the scope closes.
 */
export const make = (
  initial: ModuleEntry,
  context: ModuleContext
): Effect.Effect<ModuleWorker, never, Supervisor | Scope.Scope> =>
  Effect.gen(function*() {
    const supervisor = yield* Supervisor
    const scope = yield* Effect.scope
    const runtime = yield* Effect.runtime<never>()
    const module = new ModuleActor(initial, context, supervisor, scope, Runtime.runFork(runtime))
    yield* Effect.addFinalizer(() => module.stop("shutting-down"))
    yield* Effect.ignore(module.start())
    return module.handle()
  })

// ---------------------------------------------------------------------------------------------
// private

type Fork = <A, E>(effect: Effect.Effect<A, E>) => Fiber.RuntimeFiber<A, E>

type Spawned =
  | { readonly _tag: "Ready"; readonly worker: WorkerProcess; readonly info: ReadyInfo }
  | { readonly _tag: "Failed"; readonly failure: LoadFailure }

// How long a reload waits for the replaced worker to say it takes no more direct calls (it answers
// at once unless its event loop is blocked; past this the reload completes anyway).
const retireReportMs = 2000

const within = (promise: Promise<void>, ms: number): Promise<void> =>
  new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms)
    void promise.then(() => {
      clearTimeout(timer)
      resolve()
    })
  })

class WorkerCrashed extends Schema.TaggedError<WorkerCrashed>()("WorkerCrashed", { message: Schema.String }) {}

class ModuleActor {
  readonly name: string
  private entry: ModuleEntry
  private status: ModuleStatus = "starting"
  private readonly dispatcher: Dispatcher
  private ready: ReadyInfo | undefined
  private generation = 0
  private restarts = 0
  private loadedAt: number | undefined
  private lastError: string | undefined
  private supervision: Scope.CloseableScope | undefined
  private onCrash: ((error: WorkerCrashed) => void) | undefined
  private reloadWanted = false
  private readonly lock = Effect.unsafeMakeSemaphore(1)

  constructor(
    entry: ModuleEntry,
    private readonly context: ModuleContext,
    private readonly supervisor: Supervisor["Type"],
    private readonly scope: Scope.Scope,
    private readonly fork: Fork
  ) {
    this.name = entry.name
    this.entry = entry
    this.dispatcher = new Dispatcher(entry.concurrency, entry.maxQueue, (worker) => this.retire(worker))
  }

  handle(): ModuleWorker {
    return {
      name: this.name,
      entry: () => this.entry,
      call: (fn, args, clientIp) => this.call(fn, args, clientIp),
      submit: (call) => this.dispatcher.submit(call),
      adopt: (socket, clientIp) => this.adopt(socket, clientIp),
      help: Effect.suspend(() =>
        this.ready !== undefined && this.status === "ready"
          ? Effect.succeed(this.ready.help)
          : Effect.map(this.call("_help", [], "127.0.0.1"), String)
      ),
      reload: (entry) => this.reload(entry),
      info: () => this.info(),
      stop: (reason) => this.stop(reason),
      changed: (file) => this.changed(file),
      resize: (entry) => {
        this.entry = entry
        this.dispatcher.resize(entry.concurrency, entry.maxQueue)
      }
    }
  }

  call(fn: string | null, args: ReadonlyArray<unknown>, clientIp: string): Effect.Effect<unknown, ModuleError> {
    return Effect.async<unknown, ModuleError>((resume) => {
      const call: Call = {
        fn,
        args,
        clientIp,
        done: (result) => resume(result.ok ? Exit.succeed(result.value) : Exit.fail(this.error(result)))
      }
      this.dispatcher.submit(call)
      return Effect.sync(() => this.dispatcher.cancel(call))
    })
  }

  /** The first load, or a fresh one after the module failed. */
  start(): Effect.Effect<ReloadOutcome, ModuleError> {
    return this.lock.withPermits(1)(Effect.suspend(() => this.startLocked(this.entry, "loaded", "load-failed")))
  }

  reload(entry: ModuleEntry | undefined): Effect.Effect<ReloadOutcome, ModuleError> {
    return this.lock.withPermits(1)(Effect.suspend(() => {
      this.reloadWanted = false
      const next = entry ?? this.entry
      if (this.status === "stopped") return Effect.fail(this.refusalError("unloaded"))
      if (this.status === "failed" || this.status === "starting") return this.startLocked(next, "loaded", "load-failed")
      return this.startLocked(next, "reloaded", "reload-failed")
    }))
  }

  // Starts a worker with `entry` and, once it is ready, makes it the active one. Runs under the lock.
  private startLocked(
    entry: ModuleEntry,
    success: "loaded" | "reloaded",
    failure: "load-failed" | "reload-failed"
  ): Effect.Effect<ReloadOutcome, ModuleError> {
    const started = Date.now()
    const previousFiles = this.context.watch.files(this.name)
    const baseline = snapshot(Array.from(new Set([entry.file, ...previousFiles])))
    const first = this.status === "starting" || this.status === "failed"
    return Effect.flatMap(this.spawn(entry), (spawned) => {
      if (this.status === "stopped") {
        if (spawned._tag === "Ready") spawned.worker.kill()
        return Effect.fail(this.refusalError("unloaded"))
      }
      if (spawned._tag === "Failed") return Effect.fail(this.loadFailed(entry, spawned.failure, failure, first, baseline))
      const { info, worker } = spawned
      const retired = this.install(entry, worker, info, baseline)
      // Once the old worker has stopped taking direct calls, every next call is served by the new code.
      return Effect.map(Effect.promise(() => within(retired, retireReportMs)), () => {
        this.log("info", `${success} in ${Date.now() - started} ms (pid ${worker.pid}, ${info.files.length} local files)`)
        this.publish(success, `${this.name} ${success} (generation ${this.generation}, pid ${worker.pid})`, worker.pid)
        if (this.supervision === undefined) this.superviseFrom()
        return new ReloadOutcome({
          module: this.name,
          generation: this.generation,
          pid: worker.pid ?? null,
          tookMs: Date.now() - started
        })
      })
    })
  }

  // A load that failed: reported; on a first load nothing serves, so the module is `failed` (and its
  // files watched: a fix tries again); on a reload the old worker goes on serving.
  private loadFailed(
    entry: ModuleEntry,
    failed: LoadFailure,
    event: "load-failed" | "reload-failed",
    first: boolean,
    baseline: Baseline
  ): ModuleError {
    this.lastError = failed.message
    const stack = failed.traceback !== "" ? `\n${failed.traceback}` : ""
    this.log("error", `${event === "load-failed" ? "load" : "reload"} failed: ${failed.message}${stack}`)
    this.publish(event, failed.message, undefined)
    if (first) {
      this.status = "failed"
      this.entry = entry
      const message = `${this.name} failed to load: ${failed.message}`
      this.dispatcher.refusal = { ok: false, reason: "failed", message, traceback: failed.traceback }
      this.dispatcher.failQueued({ ok: false, reason: failed.reason, message: failed.message, traceback: failed.traceback })
      if (entry.watch) this.context.watch.set(this.name, Array.from(new Set([...baseline.keys(), ...failed.files])), baseline)
    }
    return new ModuleError({
      module: this.name,
      reason: failed.reason,
      message: `${this.name}: ${failed.message}`,
      traceback: failed.traceback
    })
  }

  // Spawns a worker and loads the entry in it; a failed load has killed the worker.
  private spawn(entry: ModuleEntry): Effect.Effect<Spawned> {
    return Effect.async<Spawned>((resume) => {
      const generation = this.generation + 1
      const typescript = isTypeScript(entry.file)
      const worker: WorkerProcess = this.context.standby.take(typescript, {
        onLog: (level, msg) => this.context.logs.write(this.name, { level, msg, source: "module", pid: worker.pid, generation }),
        onFiles: (files) => {
          if (this.dispatcher.current === worker && this.entry.watch) this.context.watch.add(this.name, files)
        },
        onExit: (code, signal) => this.exited(worker, code, signal),
        onSlots: () => this.dispatcher.slotsChanged(worker)
      })
      const { dispatch, exportName, file, name } = entry
      const spec = { name, file, exportName, dispatch, typescript }
      worker.load(spec, entry.importTimeoutMs).then(
        (info) => {
          this.context.standby.refill(typescript)
          resume(Effect.succeed({ _tag: "Ready", worker, info }))
        },
        (failure: LoadFailure) => {
          worker.kill()
          this.context.standby.refill(typescript)
          resume(Effect.succeed({ _tag: "Failed", failure }))
        }
      )
      return Effect.sync(() => worker.kill())
    })
  }

  // Resolves once the worker it replaces (if any) has stopped taking direct calls.
  private install(entry: ModuleEntry, worker: WorkerProcess, info: ReadyInfo, baseline: Baseline): Promise<void> {
    this.generation++
    this.entry = entry
    this.ready = info
    this.loadedAt = Date.now()
    this.status = "ready"
    this.dispatcher.resize(entry.concurrency, entry.maxQueue)
    const retired = this.dispatcher.install(worker)
    if (entry.watch) this.context.watch.set(this.name, info.files, baseline)
    else this.context.watch.remove(this.name)
    return retired
  }

  /**
   * Hands a client's socket to the active worker as a direct route; without one (the module is
   * starting, restarting, failed or stopped) answers why, and the client calls through the server.
   */
  adopt(socket: Net.Socket, clientIp: string): CallResult & { ok: false } | undefined {
    const worker = this.dispatcher.current
    if (this.status === "ready" && worker !== undefined && worker.adopt(socket, clientIp)) return undefined
    return this.dispatcher.refusal ?? {
      ok: false,
      reason: this.status === "stopped" ? "unloaded" : "restarting",
      message: `${this.name} cannot take a direct route now (${this.status})`,
      traceback: ""
    }
  }

  // Supervision: the child waits for the active worker to crash; a restart runs it again, and it
  // starts a new worker first. Past the restart intensity the module is left `failed`.
  private superviseFrom(): void {
    const child: Effect.Effect<never, WorkerCrashed | ModuleError> = Effect.zipRight(
      this.lock.withPermits(1)(Effect.suspend(() => this.ensureActive())),
      Effect.async<never, WorkerCrashed>((resume) => {
        if (this.dispatcher.current === undefined) {
          return resume(Effect.fail(new WorkerCrashed({ message: this.lastError ?? "the worker is gone" })))
        }
        this.onCrash = (error) => resume(Effect.fail(error))
        return Effect.sync(() => (this.onCrash = undefined))
      })
    )
    const supervise = Effect.gen(this, function*() {
      const inner = yield* Scope.fork(this.scope, ExecutionStrategy.sequential)
      this.supervision = inner
      const fiber = yield* Scope.extend(this.supervisor.supervise(this.name, child, this.context.policy), inner)
      const exit = yield* Fiber.await(fiber)
      if (this.supervision === inner) this.supervision = undefined
      if (Exit.isFailure(exit) && !Exit.isInterrupted(exit) && this.status !== "stopped") this.escalated()
    })
    this.fork(supervise)
  }

  // After a crash: a new worker with the current entry (a reload may have installed one already).
  private ensureActive(): Effect.Effect<void, ModuleError> {
    if (this.dispatcher.current !== undefined || this.status === "stopped") return Effect.void
    return Effect.flatMap(this.spawn(this.entry), (spawned) => {
      if (spawned._tag === "Failed") {
        const failed = spawned.failure
        this.lastError = failed.message
        this.log("error", `restart failed: ${failed.message}`)
        return Effect.fail(new ModuleError({ module: this.name, reason: failed.reason, message: failed.message, traceback: failed.traceback }))
      }
      const { info, worker } = spawned
      if (this.status === "stopped") {
        worker.kill()
        return Effect.void
      }
      this.restarts++
      void this.install(this.entry, worker, info, snapshot([]))
      this.publish("restarted", `${this.name} restarted (generation ${this.generation}, pid ${worker.pid}, restart ${this.restarts})`, worker.pid)
      return Effect.void
    })
  }

  private escalated(): void {
    this.status = "failed"
    const message = `${this.name} crashed too often (more than ${this.context.policy.maxRestarts} restarts within the restart window); ` +
      `it stays down until its files change or it is reloaded`
    this.lastError = message
    this.dispatcher.refusal = { ok: false, reason: "failed", message, traceback: "" }
    this.dispatcher.failQueued(this.dispatcher.refusal)
    this.log("error", message)
    this.publish("escalated", message, undefined)
  }

  private exited(worker: WorkerProcess, code: number | null, signal: NodeJS.Signals | null): void {
    const active = this.dispatcher.current === worker
    this.dispatcher.lose(worker)
    if (!active || this.status === "stopped") return
    const message = `worker ${worker.pid} exited (${signal !== null ? `signal ${signal}` : `exit code ${code}`})`
    this.lastError = message
    this.ready = undefined
    this.status = "restarting"
    const refusal: CallResult & { ok: false } = {
      ok: false,
      reason: "restarting",
      message: `${this.name} is restarting: its ${message}`,
      traceback: ""
    }
    this.dispatcher.refusal = refusal
    this.dispatcher.failQueued(refusal)
    this.log("error", message)
    this.publish("crashed", `${this.name}: ${message}`, worker.pid)
    this.onCrash?.(new WorkerCrashed({ message }))
  }

  private retire(worker: WorkerProcess): void {
    void worker.stop(this.context.stopGraceMs)
  }

  changed(file: string): void {
    if (this.status === "stopped" || !this.entry.watch || this.reloadWanted) return
    this.reloadWanted = true
    this.log("info", `${file} changed; reloading`)
    this.fork(Effect.ignore(this.reload(undefined)))
  }

  stop(reason: "unloaded" | "shutting-down"): Effect.Effect<void> {
    return Effect.suspend(() => {
      if (this.status === "stopped") return Effect.void
      this.status = "stopped"
      const refusal: CallResult & { ok: false } = this.refusalResult(reason)
      this.dispatcher.refusal = refusal
      this.dispatcher.failQueued(refusal)
      this.context.watch.remove(this.name)
      const supervision = this.supervision
      this.supervision = undefined
      const workers = [this.dispatcher.current, ...this.dispatcher.retiringWorkers].filter((w) => w !== undefined)
      const grace = this.context.stopGraceMs
      return Effect.zipRight(
        supervision === undefined ? Effect.void : Scope.close(supervision, Exit.void),
        Effect.promise(async () => {
          await Promise.race([this.dispatcher.idle(), new Promise((resolve) => setTimeout(resolve, grace).unref())])
          await Promise.all(workers.map((w) => w.stop(grace)))
          this.context.logs.write(this.name, { level: "info", msg: `${this.name} stopped (${reason})`, source: "server" })
          await this.context.logs.close(this.name)
        })
      ).pipe(Effect.tap(() => this.publish("unloaded", `${this.name} stopped (${reason})`, undefined)))
    })
  }

  info(): ModuleInfo {
    const worker = this.dispatcher.current
    return new ModuleInfo({
      name: this.name,
      status: this.status,
      file: this.entry.file,
      exportName: this.entry.exportName,
      dispatch: this.entry.dispatch,
      kind: this.ready?.kind ?? null,
      functions: this.ready?.functions ?? [],
      concurrency: this.dispatcher.concurrency,
      pid: worker?.pid ?? null,
      generation: this.generation,
      restarts: this.restarts,
      running: this.dispatcher.running,
      queued: this.dispatcher.queued,
      loadedAt: this.loadedAt ?? null,
      lastError: this.lastError ?? null,
      files: this.context.watch.files(this.name)
    })
  }

  private error(result: CallResult & { ok: false }): ModuleError {
    return new ModuleError({
      module: this.name,
      reason: result.reason,
      message: result.message,
      ...(result.traceback !== "" ? { traceback: result.traceback } : {})
    })
  }

  private refusalResult(reason: "unloaded" | "shutting-down"): CallResult & { ok: false } {
    return {
      ok: false,
      reason,
      message: reason === "unloaded" ? `${this.name} was removed from the config` : "the module server is shutting down",
      traceback: ""
    }
  }

  private refusalError(reason: "unloaded" | "shutting-down"): ModuleError {
    return this.error(this.refusalResult(reason))
  }

  private log(level: string, msg: string): void {
    this.context.logs.write(this.name, { level, msg, source: "server", pid: this.dispatcher.current?.pid, generation: this.generation })
  }

  private publish(kind: ModuleEvent["kind"], message: string, pid: number | undefined): void {
    this.context.publish(new ModuleEvent({ module: this.name, kind, message, generation: this.generation, pid: pid ?? null, at: Date.now() }))
  }
}
