import * as Rpc from "@effect/rpc/Rpc"
import * as RpcGroup from "@effect/rpc/RpcGroup"
import * as Schema from "effect/Schema"
import { MailboxError, MessageId } from "../Mailbox.js"

/** A file that travels with a message: its path relative to the message's files folder, and its size. */
export class AttachedFile extends Schema.Class<AttachedFile>("AttachedFile")({
  path: Schema.String,
  size: Schema.NonNegativeInt,
  /** A small file's bytes, carried in the message itself instead of by Upload or Download. */
  data: Schema.optional(Schema.Uint8ArrayFromSelf)
}) {}

/** Files up to this size travel inside their message. */
export const inlineFileBytes = 64 * 1024

/** One message file as it sits in a folder mailbox (its JSON text, unparsed), with its attached files. */
export class ShippedMessage extends Schema.Class<ShippedMessage>("ShippedMessage")({
  id: MessageId,
  envelope: Schema.String,
  files: Schema.Array(AttachedFile)
}) {}

/** The largest piece of a file one Upload or Download chunk carries. */
export const chunkBytes = 1024 * 1024

/**
 * How a folder mailbox is carried over a network transport. The connecting side pushes its outbox
 * (Upload every file in chunks, then Deliver a batch of messages) and pulls the listener's outbox
 * (Pull, a long poll for the oldest messages; Download each file; then Ack). Pull is a plain call,
 * not a stream, so the connector never holds a pushed stream while it makes the other calls. Every call is idempotent, so a call repeated after a lost
 * connection does no harm: delivery is at least once, and the receiving mailbox drops repeated ids.
 */
export class MailboxRpc extends RpcGroup.make(
  Rpc.make("Upload", {
    payload: { id: MessageId, path: Schema.String, offset: Schema.NonNegativeInt, data: Schema.Uint8ArrayFromSelf },
    error: MailboxError
  }),
  Rpc.make("Deliver", { payload: { messages: Schema.Array(ShippedMessage) }, error: MailboxError }),
  Rpc.make("Pull", {
    payload: { max: Schema.Int.pipe(Schema.between(1, 1000)), waitMs: Schema.Int.pipe(Schema.between(0, 60_000)) },
    success: Schema.Array(ShippedMessage),
    error: MailboxError
  }),
  Rpc.make("Download", {
    payload: { id: MessageId, path: Schema.String },
    success: Schema.Uint8ArrayFromSelf,
    error: MailboxError,
    stream: true
  }),
  Rpc.make("Ack", { payload: { ids: Schema.Array(MessageId) }, error: MailboxError })
) {}
