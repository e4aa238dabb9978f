import * as Schema from "effect/Schema"

/** `get` found no item: none was there (block=false) or none came before the timeout. */
export class Empty extends Schema.TaggedError<Empty>()("Empty", {
  message: Schema.String
}) {}

/**
 * `put` could not place every item before its timeout (block=false: at once): no child was ready
 * and the node's queue was at capacity. The first `accepted` items were taken; the rest were not.
 */
export class Full extends Schema.TaggedError<Full>()("Full", {
  accepted: Schema.Int,
  message: Schema.String
}) {}

/** The client or server is closed, or the connection to the server ended. */
export class Closed extends Schema.TaggedError<Closed>()("Closed", {
  message: Schema.String
}) {}

/** An item that cannot travel in an ENQUEUE frame: it contains a newline (the item separator). */
export class InvalidItem extends Schema.TaggedError<InvalidItem>()("InvalidItem", {
  message: Schema.String
}) {}

/** A config file that cannot be read or has a bad value. */
export class ConfigError extends Schema.TaggedError<ConfigError>()("ConfigError", {
  path: Schema.String,
  message: Schema.String
}) {}
