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

/**
 * Why a connection could not be opened. `auth-failed`: the server wants a shared secret and we
 * have none, or ours is wrong. `protocol`: something answered, but not with Troupe's protocol.
 */
export const ConnectFailure = Schema.Literal(
  "refused",
  "timeout",
  "not-found",
  "permission-denied",
  "auth-failed",
  "protocol",
  "other"
)

/** A client could not open a connection to an endpoint. */
export class ConnectFailed extends Schema.TaggedError<ConnectFailed>()("ConnectFailed", {
  url: Schema.String,
  reason: ConnectFailure,
  /** A short phrase for the reason, such as "connection refused". */
  detail: Schema.String,
  message: Schema.String
}) {}
