import * as Schema from "effect/Schema"
import { InvalidSpec, JobNotFound, QueueFull, StoreError } from "../domain/Errors.js"
import { JobId } from "../domain/JobId.js"
import { TransportState } from "../domain/JobRecord.js"
import { JobSpec } from "../domain/JobSpec.js"

/** Store new jobs; replies with their ids once committed (existing ids for repeated ids or keys). */
export class Submit extends Schema.TaggedRequest<Submit>()("Submit", {
  failure: Schema.Union(InvalidSpec, QueueFull, StoreError),
  success: Schema.Array(JobId),
  payload: { specs: Schema.Array(JobSpec) }
}) {}

/**
 * Store jobs submitted one at a time by different callers, each judged on its own as if it came
 * alone: plain specs (no id, idempotency key or dependencies). Replies, in order, with each job's
 * id or the QueueFull that refused it, once committed.
 */
export class SubmitEach extends Schema.TaggedRequest<SubmitEach>()("SubmitEach", {
  failure: StoreError,
  success: Schema.Array(Schema.Union(JobId, QueueFull)),
  payload: { specs: Schema.Array(JobSpec) }
}) {}

/** A queue asks to begin attempts; replies with each job's attempt number, or 0 when it must not run. */
export class Start extends Schema.TaggedRequest<Start>()("Start", {
  failure: StoreError,
  success: Schema.Array(Schema.Int),
  payload: { ids: Schema.Array(JobId) }
}) {}

/** How one attempt ended, as its queue reports it. */
export const AttemptResult = Schema.Struct({
  id: JobId,
  state: Schema.Literal("completed", "failed", "timeout", "killed", "lost"),
  exitCode: Schema.NullOr(Schema.Int),
  reason: Schema.NullOr(Schema.String),
  result: Schema.optional(Schema.Unknown),
  outputs: Schema.Array(Schema.String)
})
/** How one attempt ended. */
export type AttemptResult = typeof AttemptResult.Type

/** A queue reports how attempts ended, many at once. */
export class Finish extends Schema.TaggedRequest<Finish>()("Finish", {
  failure: StoreError,
  success: Schema.Void,
  payload: { results: Schema.Array(AttemptResult) }
}) {}

/** How far the transport has got with attempts on remotes; recorded with the next commit, no reply needed. */
export class Progress extends Schema.TaggedRequest<Progress>()("Progress", {
  failure: StoreError,
  success: Schema.Void,
  payload: {
    updates: Schema.Array(Schema.Struct({ id: JobId, attempt: Schema.Int, transportState: TransportState }))
  }
}) {}

/** Kill jobs; replies with the ids that were still active. */
export class Kill extends Schema.TaggedRequest<Kill>()("Kill", {
  failure: Schema.Union(JobNotFound, StoreError),
  success: Schema.Array(JobId),
  payload: { ids: Schema.Array(JobId), reason: Schema.String }
}) {}

/** Run finished jobs again, as new attempts, optionally on another remote; replies with the ids requeued. */
export class Resend extends Schema.TaggedRequest<Resend>()("Resend", {
  failure: Schema.Union(JobNotFound, InvalidSpec, StoreError),
  success: Schema.Array(JobId),
  payload: { ids: Schema.Array(JobId), on: Schema.optional(Schema.String) }
}) {}

/** Replies once every message sent before it is committed. */
export class Flush extends Schema.TaggedRequest<Flush>()("Flush", {
  failure: StoreError,
  success: Schema.Void,
  payload: {}
}) {}

/** The job ledger's protocol. */
export const LedgerMessage = Schema.Union(Submit, SubmitEach, Start, Finish, Progress, Kill, Resend, Flush)
/** A message to the job ledger. */
export type LedgerMessage = typeof LedgerMessage.Type
