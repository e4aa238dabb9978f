import * as Schema from "effect/Schema"
import { ConnectFailure } from "../transport/Errors.js"

/** The server at `url` could not be reached, or the connection to it was lost mid-call. */
export class ServerUnreachable extends Schema.TaggedError<ServerUnreachable>()("ServerUnreachable", {
  url: Schema.String,
  /** Why the first connection failed (as ConnectFailed says), or `connection-lost` mid-call. */
  reason: Schema.Literal(...ConnectFailure.literals, "connection-lost"),
  message: Schema.String,
  cause: Schema.optional(Schema.Defect)
}) {}
