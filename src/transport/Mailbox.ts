import type * as Effect from "effect/Effect"
import type * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type * as Stream from "effect/Stream"
import type { FileSet } from "../domain/JobSpec.js"

/**
 * The seed's connection contract, typed: `send(message, id, files?)`, a non-blocking `get(id)`,
 * `receive()` for everything pending, and a `messages` stream for push-style consumers.
 * Delivery is at least once; receivers drop a message whose id they have already delivered.
 */
export interface Mailbox<A> {
  /** Transmit a message and its files; succeeds once the peer can see all of it. */
  readonly send: (message: A, id: string, files?: FileSet) => Effect.Effect<void, MailboxError>
  /** The message with this id if it has arrived (and not been taken yet); never waits. */
  readonly get: (id: string) => Effect.Effect<Option.Option<Delivery<A>>, MailboxError>
  /** Every message that has arrived and not been taken, oldest first. */
  readonly receive: Effect.Effect<ReadonlyArray<Delivery<A>>, MailboxError>
  /** Messages as they arrive, for consumers that would rather be pushed to. */
  readonly messages: Stream.Stream<Delivery<A>, MailboxError>
  /**
   * When the peer last answered anything (a network link's calls, a chunk of a large file):
   * a sign of life while a big message is still on its way. Absent where there is no link.
   */
  readonly lastActivity?: () => number
}

/** A received message with its id and the local paths of the files that came with it. */
export interface Delivery<A> {
  readonly id: string
  readonly message: A
  /** Absolute paths of the attached files, by the relative path the sender gave them. */
  readonly files: ReadonlyMap<string, string>
}

/** A message id as the transports accept it: safe as a file name on every platform. */
export const MessageId = Schema.String.pipe(Schema.pattern(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/))

/** A mailbox operation failed; `reason` says why. */
export class MailboxError extends Schema.TaggedError<MailboxError>()("MailboxError", {
  reason: Schema.Literal("invalid-id", "path-escapes-root", "file-missing", "io"),
  message: Schema.String,
  cause: Schema.optional(Schema.Defect)
}) {}
