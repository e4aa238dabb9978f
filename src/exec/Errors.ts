import * as Schema from "effect/Schema"

/**
 * A remote command or file command failed on the exec server. It crosses the wire, so a client
 * can rethrow it (`raiseError`) or report it in a command's output; `reason` says what went wrong.
 */
export class ExecError extends Schema.TaggedError<ExecError>()("ExecError", {
  reason: Schema.Literal(
    /** No running or kept command has this id. */
    "not-found",
    /** The command could not be started (program missing, not executable, bad cwd). */
    "spawn-failed",
    /** A path leaves the server's root (`..`, an absolute path elsewhere, a symbolic link out). */
    "path-escape",
    /** A path names nothing. */
    "no-such-file",
    /** A directory was expected. */
    "not-a-directory",
    /** A file was expected. */
    "is-a-directory",
    /** The path exists already, or a directory is not empty. */
    "exists",
    /** A bad argument: an unknown signal, a negative offset, a write past the end of a partial file. */
    "invalid",
    /** Someone is already attached to this command's output. */
    "busy",
    /** The server does not allow this (closeServer without --allow-close). */
    "forbidden",
    /** A transferred file's checksum does not match the sender's. */
    "checksum",
    /** Any other file-system failure. */
    "io"
  ),
  message: Schema.String,
  /** The path the error is about, as the client gave it, when there is one. */
  path: Schema.optional(Schema.String)
}) {}

/**
 * A client-side failure of an exec connection: it is not connected, the server cannot be reached
 * or went away, a call took longer than its `timeout`, or the server was silent for longer than
 * `maxInterval` (the seed's ClientError).
 */
export class ClientError extends Schema.TaggedError<ClientError>()("ClientError", {
  reason: Schema.Literal(
    /** `connect` was not called, or the connection was closed. */
    "not-connected",
    /** Nothing accepted the connection within the connect timeout, or the secret was refused. */
    "unreachable",
    /** The connection broke during a call. */
    "connection-lost",
    /** The call's `timeout` passed first. */
    "timeout",
    /** The server was silent for longer than the listener's `maxInterval`. */
    "max-interval",
    /** A local file (of a transfer or download) could not be read or written. */
    "local-file"
  ),
  url: Schema.String,
  message: Schema.String,
  cause: Schema.optional(Schema.Defect)
}) {}
