import * as NodeContext from "@effect/platform-node/NodeContext"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import * as os from "node:os"
import * as path from "node:path"
import * as Supervisor from "./actors/Supervisor.js"
import type { IncompatibleDatabase, StoreError } from "./domain/Errors.js"
import type { JobId } from "./domain/JobId.js"
import type { CleanFilter, JobAttempt, JobEvent, JobFilter, JobRecord, QueueSummary } from "./domain/JobRecord.js"
import * as Functions from "./executor/Functions.js"
import * as LocalExecutor from "./executor/LocalExecutor.js"
import * as RemoteExecutor from "./remote/RemoteExecutor.js"
import * as Subscription from "./internal/Subscription.js"
import { Jobs } from "./jobs/Jobs.js"
import type { JobSpecInput, JobSubscription } from "./jobs/Jobs.js"
import * as JobsLive from "./jobs/JobsLive.js"
import type { OutputChannel } from "./protocol/JobsRpc.js"
import * as SqliteStore from "./store/SqliteStore.js"

/** How an embedded Troupe runtime is set up; every field has a default. */
export interface TroupeOptions {
  /** The SQLite file; default `.troupe/troupe.db` under the working directory. */
  readonly database?: string
  /** Where per-job output lives; default the database's folder. */
  readonly dataDir?: string
  /** Default concurrency of every queue; default the number of CPU cores. */
  readonly cores?: number
  readonly queues?: Readonly<Record<string, JobsLive.QueueOptions>>
  /** Functions that jobs may call by name. */
  readonly functions?: Readonly<Record<string, Functions.FunctionDefinition>>
  /** On shutdown, how long running jobs may finish before they are killed; default 10 s. */
  readonly shutdownGraceMs?: number
  /** Per-stream cap on captured stdout and stderr; default 64 MiB. */
  readonly outputCapBytes?: number
  /** Remote machines jobs can be sent to (`on: name`): name → endpoint URL of a `--role=remote`. */
  readonly remotes?: Readonly<Record<string, string>>
  /** How remotes are watched and reached: heartbeat, dead-after, the shared secret. */
  readonly remoteOptions?: Omit<RemoteExecutor.RemotesOptions, "remotes" | "dataDir">
}

/** The default database path, relative to the working directory. */
export const defaultDatabase = path.join(".troupe", "troupe.db")

/** What the embedded runtime provides. */
export type TroupeLayerOut = Jobs | Functions.Functions | Supervisor.Supervisor

/** The embedded runtime: Jobs and the function registry over a local SQLite file. */
export const layer = (
  options: TroupeOptions = {}
): Layer.Layer<TroupeLayerOut, IncompatibleDatabase | StoreError> => {
  const database = path.resolve(options.database ?? defaultDatabase)
  const dataDir = path.resolve(options.dataDir ?? path.dirname(database))
  const runtime = JobsLive.layer({
    dataDir,
    cores: options.cores ?? os.availableParallelism(),
    ...(options.queues === undefined ? {} : { queues: options.queues }),
    ...(options.shutdownGraceMs === undefined ? {} : { shutdownGraceMs: options.shutdownGraceMs })
  })
  const local = LocalExecutor.layer(options.outputCapBytes === undefined ? {} : { outputCapBytes: options.outputCapBytes })
  const remotes = options.remotes ?? {}
  const executor = Object.keys(remotes).length === 0
    ? local
    : RemoteExecutor.layer({ ...options.remoteOptions, remotes, dataDir }).pipe(Layer.provide(local))
  return runtime.pipe(
    Layer.provideMerge(Layer.mergeAll(executor.pipe(Layer.provideMerge(Functions.layer(options.functions))), Supervisor.layer)),
    Layer.provide(SqliteStore.layer({ filename: database })),
    Layer.provide(NodeContext.layer)
  )
}

/** The Promise facade: the Jobs operations for code that does not use Effect. */
export interface TroupeHandle {
  readonly submit: (spec: JobSpecInput) => Promise<JobId>
  readonly submitMany: (specs: ReadonlyArray<JobSpecInput>) => Promise<ReadonlyArray<JobId>>
  readonly get: (id: JobId | string) => Promise<JobRecord>
  readonly wait: (ids: JobId | string | ReadonlyArray<JobId | string>, options?: { readonly timeoutMs?: number }) => Promise<ReadonlyArray<JobRecord>>
  readonly kill: (ids: ReadonlyArray<JobId | string>) => Promise<ReadonlyArray<JobId>>
  /** Run finished jobs again as new attempts, on the remote `on` if given. */
  readonly resend: (ids: ReadonlyArray<JobId | string>, options?: { readonly on?: string }) => Promise<ReadonlyArray<JobId>>
  readonly list: (filter?: Partial<JobFilter>) => Promise<ReadonlyArray<JobRecord>>
  readonly attempts: (id: JobId | string) => Promise<ReadonlyArray<JobAttempt>>
  /** State transitions as they are committed, from when the iteration starts until it stops. */
  readonly events: () => AsyncIterable<JobEvent>
  /**
   * Subscribes before it resolves: a job submitted afterwards is seen from its first transition.
   * Iterate the result; the subscription ends with the iteration or with `close`.
   */
  readonly subscribe: () => Promise<JobSubscription>
  readonly output: (id: JobId | string, channel: OutputChannel, options?: { readonly follow?: boolean }) => AsyncIterable<Uint8Array>
  readonly clean: (filter: Partial<CleanFilter> & { readonly olderThanMs: number }) => Promise<number>
  readonly queues: () => Promise<ReadonlyArray<QueueSummary>>
  /** Register a function that jobs may call by name. */
  readonly register: (name: string, definition: Functions.FunctionDefinition) => Promise<void>
  /** Stop: running jobs get the grace period, then are killed; their final state is recorded. */
  readonly close: () => Promise<void>
}

/** Opens an embedded runtime and returns the Promise facade; errors reject with the typed error. */
export const open = async (options: TroupeOptions = {}): Promise<TroupeHandle> => {
  const managed = ManagedRuntime.make(layer(options))
  const run = <A, E>(effect: Effect.Effect<A, E, Jobs | Functions.Functions>): Promise<A> =>
    managed.runPromiseExit(effect).then((exit) => {
      if (Exit.isSuccess(exit)) return exit.value
      throw toError(exit.cause)
    })
  const runtime = await managed.runtimeEffect.pipe(Effect.exit, Effect.runPromise).then((exit) => {
    if (Exit.isSuccess(exit)) return exit.value
    throw toError(exit.cause)
  })
  const iterate = <A, E>(stream: Stream.Stream<A, E, Jobs>): AsyncIterable<A> => Stream.toAsyncIterableRuntime(stream, runtime)
  const ids = (input: JobId | string | ReadonlyArray<JobId | string>) => (typeof input === "string" ? [input] : input) as ReadonlyArray<JobId>
  return {
    submit: (spec) => run(Effect.flatMap(Jobs, (jobs) => jobs.submit(spec))),
    submitMany: (specs) => run(Effect.flatMap(Jobs, (jobs) => jobs.submitMany(specs))),
    get: (id) => run(Effect.flatMap(Jobs, (jobs) => jobs.get(id as JobId))),
    wait: (input, waitOptions) =>
      run(Effect.flatMap(Jobs, (jobs) =>
        jobs.wait(ids(input), waitOptions?.timeoutMs === undefined ? {} : { timeout: waitOptions.timeoutMs }))),
    kill: (input) => run(Effect.flatMap(Jobs, (jobs) => jobs.kill(ids(input)))),
    resend: (input, resendOptions) => run(Effect.flatMap(Jobs, (jobs) => jobs.resend(ids(input), resendOptions))),
    list: (filter) => run(Effect.flatMap(Jobs, (jobs) => jobs.list(filter))),
    attempts: (id) => run(Effect.flatMap(Jobs, (jobs) => jobs.attempts(id as JobId))),
    events: () => iterate(Stream.unwrap(Effect.map(Jobs, (jobs) => jobs.events))),
    subscribe: () => Subscription.open(Effect.flatMap(Jobs, (jobs) => jobs.subscribe), run, iterate),
    output: (id, channel, outputOptions) =>
      iterate(Stream.unwrap(Effect.map(Jobs, (jobs) => jobs.output(id as JobId, channel, outputOptions)))),
    clean: (filter) => run(Effect.flatMap(Jobs, (jobs) => jobs.clean(filter as CleanFilter))),
    queues: () => run(Effect.flatMap(Jobs, (jobs) => jobs.queues)),
    register: (name, definition) => run(Effect.flatMap(Functions.Functions, (functions) => functions.register(name, definition))),
    close: () => managed.dispose()
  }
}

/** Re-exported so embedders can define functions without another import. */
export const defineFunction = Functions.define

// Errors reach Promise callers as the typed error itself, defects as they were thrown.
const toError = (cause: Cause.Cause<unknown>): unknown =>
  Option.getOrElse(Cause.failureOption(cause), () => Cause.squash(cause))
