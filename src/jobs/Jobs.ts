import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type * as Stream from "effect/Stream"
import type { InvalidSpec, JobNotFound, QueueFull, ShuttingDown, StoreError, WaitTimeout } from "../domain/Errors.js"
import type { JobId } from "../domain/JobId.js"
import type { CleanFilter, JobAttempt, JobEvent, JobFilter, JobRecord, QueueSummary } from "../domain/JobRecord.js"
import type { JobSpec } from "../domain/JobSpec.js"
import type { PromiseSubscription } from "../internal/Subscription.js"
import type { OutputChannel } from "../protocol/JobsRpc.js"

/** The plain-object form of a JobSpec that callers write; it is validated on submit. */
export type JobSpecInput = ConstructorParameters<typeof JobSpec>[0]

/** A live subscription to job events in the Promise facades (`subscribe()`). */
export type JobSubscription = PromiseSubscription<JobEvent>

/** Errors a submit can report. */
export type SubmitError = InvalidSpec | QueueFull | StoreError | ShuttingDown

/** The job runtime as callers see it, embedded or over RPC. */
export class Jobs extends Context.Tag("troupe/Jobs")<Jobs, {
  /** Validate and store a job; succeeds only after the job is committed to the database. */
  readonly submit: (spec: JobSpecInput) => Effect.Effect<JobId, SubmitError>
  /** Submit several jobs in one commit; jobs in the batch may depend on each other by `id`. */
  readonly submitMany: (specs: ReadonlyArray<JobSpecInput>) => Effect.Effect<ReadonlyArray<JobId>, SubmitError>
  /** The current record of one job. */
  readonly get: (id: JobId) => Effect.Effect<JobRecord, JobNotFound | StoreError>
  /** Wait until every job has reached a terminal state; returns their records in the order asked. */
  readonly wait: (
    ids: ReadonlyArray<JobId>,
    options?: { readonly timeout?: Duration.DurationInput }
  ) => Effect.Effect<ReadonlyArray<JobRecord>, JobNotFound | WaitTimeout | StoreError>
  /** Kill jobs that have not finished; returns the ids that were still active and are now killed. */
  readonly kill: (ids: ReadonlyArray<JobId>) => Effect.Effect<ReadonlyArray<JobId>, JobNotFound | StoreError>
  /**
   * Run finished jobs again as new attempts (with a fresh retry budget), on the remote `on` if
   * given, else where they ran; returns the ids requeued. Each attempt's history says where it ran.
   */
  readonly resend: (
    ids: ReadonlyArray<JobId>,
    options?: { readonly on?: string | undefined }
  ) => Effect.Effect<ReadonlyArray<JobId>, JobNotFound | InvalidSpec | StoreError>
  /** Jobs matching a filter, newest first. */
  readonly list: (filter?: Partial<JobFilter>) => Effect.Effect<ReadonlyArray<JobRecord>, StoreError>
  /** Every attempt at running a job, oldest first. */
  readonly attempts: (id: JobId) => Effect.Effect<ReadonlyArray<JobAttempt>, JobNotFound | StoreError>
  /** Every persisted state transition from the moment the stream starts running. */
  readonly events: Stream.Stream<JobEvent>
  /**
   * Subscribes at once and gives the transitions committed from then on, for as long as the scope
   * lasts: a job submitted after this returns is seen from its first transition to its last.
   */
  readonly subscribe: Effect.Effect<Stream.Stream<JobEvent>, never, Scope.Scope>
  /** A shell job's captured output; with `follow`, the stream continues until the job ends. */
  readonly output: (
    id: JobId,
    channel: OutputChannel,
    options?: { readonly follow?: boolean }
  ) => Stream.Stream<Uint8Array, JobNotFound | StoreError>
  /** Delete finished jobs older than the cut-off, with their output; returns how many were removed. */
  readonly clean: (filter: CleanFilter) => Effect.Effect<number, StoreError>
  /** Counts and limits for every known queue. */
  readonly queues: Effect.Effect<ReadonlyArray<QueueSummary>, StoreError>
}>() {}
