import * as Schema from "effect/Schema"

/** The server at `url` could not be reached, or the connection to it was lost mid-call. */
export class ServerUnreachable extends Schema.TaggedError<ServerUnreachable>()("ServerUnreachable", {
  url: Schema.String,
  reason: Schema.Literal(
    "refused",
    "timeout",
    "not-found",
    "permission-denied",
    "auth-failed",
    "protocol",
    "connection-lost",
    "other"
  ),
  message: Schema.String,
  cause: Schema.optional(Schema.Defect)
}) {}
