import * as Schema from "effect/Schema"

/** One or more job ids are not known to the store. */
export class JobNotFound extends Schema.TaggedError<JobNotFound>()("JobNotFound", {
  ids: Schema.Array(Schema.String),
  message: Schema.String
}) {
  /** Builds the error with a message that lists the ids. */
  static of(ids: ReadonlyArray<string>): JobNotFound {
    return new JobNotFound({ ids, message: `unknown job id${ids.length > 1 ? "s" : ""}: ${ids.join(", ")}` })
  }
}

/** The spec was rejected before anything was stored. */
export class InvalidSpec extends Schema.TaggedError<InvalidSpec>()("InvalidSpec", {
  reason: Schema.Literal(
    "malformed",
    "missing-dependency",
    "dependency-cycle",
    "command-not-found",
    "cwd-not-found",
    "unknown-function"
  ),
  message: Schema.String
}) {}

/** The queue holds as many jobs as its capacity allows. */
export class QueueFull extends Schema.TaggedError<QueueFull>()("QueueFull", {
  queue: Schema.String,
  capacity: Schema.Int,
  message: Schema.String
}) {}

/** `wait` ran out of time before every job finished. */
export class WaitTimeout extends Schema.TaggedError<WaitTimeout>()("WaitTimeout", {
  pending: Schema.Array(Schema.String),
  message: Schema.String
}) {}

/** The database could not be read or written. */
export class StoreError extends Schema.TaggedError<StoreError>()("StoreError", {
  message: Schema.String,
  cause: Schema.optional(Schema.Defect)
}) {}

/** The database file is not one Troupe can use. */
export class IncompatibleDatabase extends Schema.TaggedError<IncompatibleDatabase>()("IncompatibleDatabase", {
  reason: Schema.Literal("not-sqlite", "not-troupe", "newer-version"),
  path: Schema.String,
  message: Schema.String
}) {}

/** The runtime is shutting down and takes no new work. */
export class ShuttingDown extends Schema.TaggedError<ShuttingDown>()("ShuttingDown", {
  message: Schema.String
}) {}

/** Every error a Jobs operation can report to a caller. */
export const JobsError = Schema.Union(JobNotFound, InvalidSpec, QueueFull, WaitTimeout, StoreError, ShuttingDown)
/** Every error a Jobs operation can report to a caller. */
export type JobsError = typeof JobsError.Type
