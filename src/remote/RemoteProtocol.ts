import * as Schema from "effect/Schema"
import { JobId } from "../domain/JobId.js"

/**
 * The seed's messages between a local server and a remote, as one Schema tagged union. Each
 * travels through a mailbox (`src/transport/Mailbox.ts`) under its own uuid, which receivers use
 * to drop repeats. Files travel beside the message: a submit's input files, a final state's output
 * files and captured stdout and stderr.
 */

/** A file that travels with a job (an input with its submit, an output with its end), with its checksum. */
export class ShippedFile extends Schema.Class<ShippedFile>("ShippedFile")({
  /** Relative to the job's folder on the remote; also its name among the message's attached files. */
  path: Schema.String,
  size: Schema.NonNegativeInt,
  sha256: Schema.String
}) {}

/** What a remote needs to run one attempt of a job: the command and its limits, not the queueing. */
export class RemoteJob extends Schema.Class<RemoteJob>("RemoteJob")({
  id: JobId,
  attempt: Schema.Int.pipe(Schema.positive()),
  command: Schema.Union(Schema.String.pipe(Schema.minLength(1)), Schema.NonEmptyArray(Schema.String)),
  /** Relative to the job's folder on the remote; the folder itself when absent. */
  cwd: Schema.optional(Schema.String),
  env: Schema.optional(Schema.Record({ key: Schema.String, value: Schema.String })),
  stdin: Schema.optional(Schema.String),
  timeLimitMs: Schema.optional(Schema.Int.pipe(Schema.positive())),
  cores: Schema.optional(Schema.Int.pipe(Schema.positive())),
  /** Globs, relative to the job's folder, of files to ship back when the job ends. */
  outputs: Schema.optional(Schema.Array(Schema.String)),
  name: Schema.optional(Schema.String),
  /** The input files attached to the submit, with their checksums. */
  inputs: Schema.optional(Schema.Array(ShippedFile))
}) {}

/** `('submit', Job)`: run this attempt. A repeated submit of the same job and attempt runs nothing. */
export class SubmitSignal extends Schema.TaggedClass<SubmitSignal>()("submit", { job: RemoteJob }) {}

/** Where an attempt is on the remote, or how it ended. */
export const RemoteJobState = Schema.Literal(
  "acknowledged",
  "running",
  "completed",
  "failed",
  "timeout",
  "killed",
  /** The remote could not take the job (its input files were damaged or missing). */
  "rejected",
  /** The remote restarted while the attempt ran. */
  "lost"
)
/** Where an attempt is on the remote, or how it ended. */
export type RemoteJobState = typeof RemoteJobState.Type

/** `('state', Job.get())`: an attempt was acknowledged, started, or ended (with its outputs attached). */
export class StateSignal extends Schema.TaggedClass<StateSignal>()("state", {
  id: JobId,
  attempt: Schema.Int,
  state: RemoteJobState,
  exitCode: Schema.NullOr(Schema.Int),
  reason: Schema.NullOr(Schema.String),
  at: Schema.Number,
  /** Output files, attached to this message under their paths. */
  outputs: Schema.Array(ShippedFile),
  /** Whether stdout and stderr are attached (as `@troupe/stdout` and `@troupe/stderr`). */
  logs: Schema.Boolean,
  /** While running: the next piece of stdout or stderr, at its offset, so it can be followed. */
  output: Schema.optional(Schema.Struct({
    channel: Schema.Literal("stdout", "stderr"),
    offset: Schema.NonNegativeInt,
    data: Schema.Uint8ArrayFromBase64
  }))
}) {}

/** `('isalive', None)`: are you there? */
export class IsAliveSignal extends Schema.TaggedClass<IsAliveSignal>()("isalive", {
  /** Echoed in the answer, so the asker can match it. */
  nonce: Schema.String
}) {}

/** `('alive', None)`: the answer to isalive, with the attempts still running. */
export class AliveSignal extends Schema.TaggedClass<AliveSignal>()("alive", {
  nonce: Schema.String,
  running: Schema.Array(Schema.Struct({ id: JobId, attempt: Schema.Int }))
}) {}

/** One attempt in a remote's queue, as `queue` and `fullqueue` report it. */
export class RemoteQueueEntry extends Schema.Class<RemoteQueueEntry>("RemoteQueueEntry")({
  id: JobId,
  attempt: Schema.Int,
  name: Schema.NullOr(Schema.String),
  state: RemoteJobState,
  exitCode: Schema.NullOr(Schema.Int),
  startedAt: Schema.NullOr(Schema.Number),
  finishedAt: Schema.NullOr(Schema.Number)
}) {}

/** `('queue', kwargs)`: a request for the remote's job list, filtered; the answer carries `jobs`. */
export class QueueSignal extends Schema.TaggedClass<QueueSignal>()("queue", {
  /** The request's uuid, repeated in the answer. */
  request: Schema.String,
  states: Schema.optional(Schema.Array(RemoteJobState)),
  /** Present in the answer only. */
  jobs: Schema.optional(Schema.Array(RemoteQueueEntry))
}) {}

/** `('fullqueue', Queue)`: the remote's whole queue object, on request. */
export class FullQueueSignal extends Schema.TaggedClass<FullQueueSignal>()("fullqueue", {
  request: Schema.String,
  /** Present in the answer only. */
  queue: Schema.optional(Schema.Struct({
    cores: Schema.Int,
    running: Schema.Int,
    jobs: Schema.Array(RemoteQueueEntry)
  }))
}) {}

/** `('terminate', [job ids])`: kill these jobs now. */
export class TerminateSignal extends Schema.TaggedClass<TerminateSignal>()("terminate", {
  ids: Schema.Array(JobId)
}) {}

/**
 * Many submits (local → remote) or many states (remote → local) in one message, in order, so a
 * burst of jobs costs one spool file and one delivery instead of one per job. Each attempt's files
 * travel under `<id>-<attempt>/<path>` (see `batchFilePrefix`).
 */
export class BatchSignal extends Schema.TaggedClass<BatchSignal>()("batch", {
  submits: Schema.Array(SubmitSignal),
  states: Schema.Array(StateSignal)
}) {}

/** Every message between a local server and a remote. */
export const RemoteMessage = Schema.Union(
  SubmitSignal,
  StateSignal,
  IsAliveSignal,
  AliveSignal,
  QueueSignal,
  FullQueueSignal,
  TerminateSignal,
  BatchSignal
)
/** A message between a local server and a remote. */
export type RemoteMessage = typeof RemoteMessage.Type

/** The names attached stdout and stderr travel under with a final state. */
export const logFiles = { stdout: "@troupe/stdout", stderr: "@troupe/stderr" } as const

/** Where an attempt's files go among a batch's attached files: under `<id>-<attempt>/`. */
export const batchFilePrefix = (id: string, attempt: number): string => `${id}-${attempt}/`

/** The files of one attempt of a batch, by their own paths (the prefix taken off). */
export const batchFilesOf = (
  files: ReadonlyMap<string, string>,
  id: string,
  attempt: number
): ReadonlyMap<string, string> => {
  const prefix = batchFilePrefix(id, attempt)
  const own = new Map<string, string>()
  for (const [name, local] of files) if (name.startsWith(prefix)) own.set(name.slice(prefix.length), local)
  return own
}
