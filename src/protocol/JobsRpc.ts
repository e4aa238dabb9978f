import * as Rpc from "@effect/rpc/Rpc"
import * as RpcGroup from "@effect/rpc/RpcGroup"
import * as Schema from "effect/Schema"
import { JobsError } from "../domain/Errors.js"
import { JobId } from "../domain/JobId.js"
import { CleanFilter, JobAttempt, JobEvent, JobFilter, JobRecord, QueueSummary } from "../domain/JobRecord.js"
import { JobSpec } from "../domain/JobSpec.js"

/** Which captured stream of a shell job to read. */
export const OutputChannel = Schema.Literal("stdout", "stderr")
/** Which captured stream of a shell job to read. */
export type OutputChannel = typeof OutputChannel.Type

/** The first element of a `Subscribe` stream: the server has subscribed, and every later transition follows. */
export class Subscribed extends Schema.TaggedClass<Subscribed>()("Subscribed", {}) {}

/** The Jobs service as a typed RpcGroup: the `local` role serves it, `troupe/client` calls it. */
export class JobsRpc extends RpcGroup.make(
  Rpc.make("Submit", { payload: { spec: JobSpec }, success: JobId, error: JobsError }),
  Rpc.make("SubmitMany", { payload: { specs: Schema.Array(JobSpec) }, success: Schema.Array(JobId), error: JobsError }),
  Rpc.make("Get", { payload: { id: JobId }, success: JobRecord, error: JobsError }),
  Rpc.make("Wait", {
    payload: { ids: Schema.Array(JobId), timeoutMs: Schema.optional(Schema.Number) },
    success: Schema.Array(JobRecord),
    error: JobsError
  }),
  Rpc.make("Kill", { payload: { ids: Schema.Array(JobId) }, success: Schema.Array(JobId), error: JobsError }),
  Rpc.make("Resend", {
    payload: { ids: Schema.Array(JobId), on: Schema.optional(Schema.String) },
    success: Schema.Array(JobId),
    error: JobsError
  }),
  Rpc.make("List", { payload: { filter: JobFilter }, success: Schema.Array(JobRecord), error: JobsError }),
  Rpc.make("Attempts", { payload: { id: JobId }, success: Schema.Array(JobAttempt), error: JobsError }),
  Rpc.make("Events", { success: JobEvent, error: JobsError, stream: true }),
  Rpc.make("Subscribe", { success: Schema.Union(Subscribed, JobEvent), error: JobsError, stream: true }),
  Rpc.make("Output", {
    payload: { id: JobId, channel: OutputChannel, follow: Schema.Boolean },
    success: Schema.Uint8ArrayFromSelf,
    error: JobsError,
    stream: true
  }),
  Rpc.make("Clean", { payload: { filter: CleanFilter }, success: Schema.Number, error: JobsError }),
  Rpc.make("Queues", { success: Schema.Array(QueueSummary), error: JobsError })
) {}
