import * as Schema from "effect/Schema"

/** An endpoint URL that is malformed or uses a scheme no transport supports. */
export class InvalidEndpoint extends Schema.TaggedError<InvalidEndpoint>()("InvalidEndpoint", {
  url: Schema.String,
  message: Schema.String
}) {}

/** A server could not bind its endpoint. */
export class ListenFailed extends Schema.TaggedError<ListenFailed>()("ListenFailed", {
  url: Schema.String,
  reason: Schema.Literal(
    "address-in-use",
    "in-use-by-live-server",
    "not-a-socket",
    "permission-denied",
    "secret-required",
    "other"
  ),
  message: Schema.String,
  cause: Schema.optional(Schema.Defect)
}) {}

/** A client could not open a connection to an endpoint. */
export class ConnectFailed extends Schema.TaggedError<ConnectFailed>()("ConnectFailed", {
  url: Schema.String,
  reason: Schema.Literal(
    "refused",
    "timeout",
    "not-found",
    "permission-denied",
    /** The server wants a shared secret and we have none, or ours is wrong. */
    "auth-failed",
    /** Something answered, but not with Troupe's protocol. */
    "protocol",
    "other"
  ),
  /** A short phrase for the reason, such as "connection refused". */
  detail: Schema.String,
  message: Schema.String
}) {}
