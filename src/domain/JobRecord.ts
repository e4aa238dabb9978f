import * as Schema from "effect/Schema"
import { JobId } from "./JobId.js"
import { JobSpec } from "./JobSpec.js"
import { JobState } from "./JobState.js"

/** Epoch milliseconds; kept numeric on the wire and in SQL so records stay cheap to move. */
export const Millis = Schema.Number.pipe(Schema.annotations({ identifier: "Millis" }))

/** How far a job sent to a remote has got, as the transport sees it. */
export const TransportState = Schema.Literal("sent", "acknowledged", "running")
/** How far a job sent to a remote has got. */
export type TransportState = typeof TransportState.Type

/** A job as the store knows it: its spec, where it is, and how it ended. */
export class JobRecord extends Schema.Class<JobRecord>("JobRecord")({
  id: JobId,
  name: Schema.NullOr(Schema.String),
  queue: Schema.String,
  state: JobState,
  priority: Schema.Int,
  spec: JobSpec,
  attempts: Schema.Int,
  exitCode: Schema.NullOr(Schema.Int),
  /** The encoded return value of a function job. */
  result: Schema.optional(Schema.Unknown),
  /** Why the job ended badly, in words. */
  reason: Schema.NullOr(Schema.String),
  /** Output files collected after the job, as absolute local paths. */
  outputs: Schema.Array(Schema.String),
  submittedAt: Millis,
  startedAt: Schema.NullOr(Millis),
  finishedAt: Schema.NullOr(Millis),
  /** Where the current or last attempt runs: a remote's name, or null for this machine. */
  location: Schema.optionalWith(Schema.NullOr(Schema.String), { default: () => null }),
  /** For a job running on a remote: sent, acknowledged by the remote, or running there. */
  transportState: Schema.optionalWith(Schema.NullOr(TransportState), { default: () => null })
}) {}

/** One attempt at running a job; a retried job has several. */
export class JobAttempt extends Schema.Class<JobAttempt>("JobAttempt")({
  jobId: JobId,
  attempt: Schema.Int,
  state: JobState,
  exitCode: Schema.NullOr(Schema.Int),
  reason: Schema.NullOr(Schema.String),
  startedAt: Millis,
  finishedAt: Millis,
  /** Where the attempt ran: a remote's name, or null for this machine. */
  location: Schema.optionalWith(Schema.NullOr(Schema.String), { default: () => null })
}) {}

/** A persisted state change, as the `events` stream reports it. */
export class JobEvent extends Schema.Class<JobEvent>("JobEvent")({
  id: JobId,
  queue: Schema.String,
  from: Schema.NullOr(JobState),
  to: JobState,
  at: Millis,
  attempt: Schema.Int,
  exitCode: Schema.NullOr(Schema.Int),
  reason: Schema.NullOr(Schema.String),
  /**
   * Counts the events the runtime has published. Within one subscription the numbers follow each
   * other; a jump means the subscriber fell so far behind that the oldest events were dropped.
   * Absent from servers before it existed.
   */
  seq: Schema.optional(Schema.Number)
}) {}

/** Which jobs `list` returns; every field narrows the result. */
export class JobFilter extends Schema.Class<JobFilter>("JobFilter")({
  ids: Schema.optional(Schema.Array(JobId)),
  states: Schema.optional(Schema.Array(JobState)),
  queue: Schema.optional(Schema.String),
  name: Schema.optional(Schema.String),
  tag: Schema.optional(Schema.String),
  since: Schema.optional(Millis),
  limit: Schema.optional(Schema.Int.pipe(Schema.between(1, 100_000))),
  /** Return jobs submitted before this one (newest first), for paging. */
  before: Schema.optional(JobId)
}) {}

/** What `clean` removes: finished jobs older than a cut-off, optionally only some states. */
export class CleanFilter extends Schema.Class<CleanFilter>("CleanFilter")({
  olderThanMs: Schema.Number.pipe(Schema.nonNegative()),
  states: Schema.optional(Schema.Array(JobState))
}) {}

/** Counts per queue, for `queue` and dashboards. */
export class QueueSummary extends Schema.Class<QueueSummary>("QueueSummary")({
  queue: Schema.String,
  concurrency: Schema.Int,
  capacity: Schema.Int,
  held: Schema.Int,
  queued: Schema.Int,
  running: Schema.Int,
  /** Where the queue's unfinished jobs run: this machine (`location` null) or a remote, with counts. */
  where: Schema.optionalWith(
    Schema.Array(Schema.Struct({ location: Schema.NullOr(Schema.String), queued: Schema.Int, running: Schema.Int })),
    { default: () => [] }
  )
}) {}
