import * as RpcClient from "@effect/rpc/RpcClient"
import type { RpcClientError } from "@effect/rpc/RpcClientError"
import type * as RpcGroup from "@effect/rpc/RpcGroup"
import * as Cause from "effect/Cause"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import type * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as path from "node:path"
import * as Endpoint from "../Endpoint.js"
import type { ConnectFailed, ListenFailed } from "../Errors.js"
import * as FolderMailbox from "../folder/FolderMailbox.js"
import type { Mailbox } from "../Mailbox.js"
import { MailboxError } from "../Mailbox.js"
import * as Transport from "../Transport.js"
import { MailboxRpc } from "./MailboxRpc.js"
import type { ShippedMessage } from "./MailboxRpc.js"
import * as Spool from "./Spool.js"

/** Where a mailbox keeps its messages, and how it reaches its peer. */
export interface MailboxOptions {
  /**
   * A local folder holding this end's `inbox/` and `outbox/`. Messages wait there until they are
   * shipped or taken, so a restart loses nothing. Not used by the folder transport, whose messages
   * live in the shared folder itself.
   */
  readonly spool: string
  /** The safety-net rescan of the folders; default 1000 ms. */
  readonly rescanMs?: number
  /** Keep consumed messages in `archive/` instead of deleting them. */
  readonly archive?: boolean
  /** Options for the transport underneath (secret, timeouts, frame size). */
  readonly transport?: Transport.ServerOptions & Transport.ClientOptions
  /**
   * Connecting end: start even when the listener is not there yet, and keep trying in the
   * background; messages sent meanwhile wait in the outbox. Default false: the first connection
   * must succeed.
   */
  readonly waitForPeer?: boolean
}

/**
 * The listening end of a mailbox on any endpoint. Over the folder transport it is a folder
 * mailbox in the shared folder (`to-listener/` in, `to-connector/` out). Over a network transport
 * it serves MailboxRpc: the connecting end delivers into our inbox and pulls from our outbox.
 */
export const listen = <A, I>(
  schema: Schema.Schema<A, I>,
  endpoint: Endpoint.Endpoint,
  options: MailboxOptions
): Effect.Effect<Mailbox<A>, MailboxError | ListenFailed, Scope.Scope> =>
  Effect.gen(function*() {
    if (endpoint._tag === "Folder") return yield* sharedFolder(schema, endpoint, "listener", options)
    const { inbox, outbox } = spoolFolders(options)
    const { mailbox, pending } = yield* spooled(schema, inbox, outbox, options)
    yield* Layer.build(
      Transport.layerServer(MailboxRpc, endpoint, options.transport).pipe(Layer.provide(handlers(inbox, outbox, pending)))
    )
    return mailbox
  })

/**
 * The connecting end of a mailbox. Over a network transport, a background fiber ships our outbox
 * to the listener and brings its outbox into our inbox, reconnecting with backoff when the
 * connection is lost. Fails with ConnectFailed only when the first connection cannot be made.
 */
export const connect = <A, I>(
  schema: Schema.Schema<A, I>,
  endpoint: Endpoint.Endpoint,
  options: MailboxOptions
): Effect.Effect<Mailbox<A>, MailboxError | ConnectFailed, Scope.Scope> =>
  Effect.gen(function*() {
    if (endpoint._tag === "Folder") return yield* sharedFolder(schema, endpoint, "connector", options)
    const { inbox, outbox } = spoolFolders(options)
    const { mailbox, pending } = yield* spooled(schema, inbox, outbox, options)
    const url = Endpoint.format(endpoint)
    let lastActivity = Date.now()
    const active = () => {
      lastActivity = Date.now()
    }
    // Fail fast when nothing answers, unless asked to wait; later losses are the link's to repair.
    if (options.waitForPeer !== true) {
      yield* Effect.scoped(Transport.makeClient(MailboxRpc, endpoint, options.transport))
    }
    const session = Effect.scoped(
      Effect.gen(function*() {
        const rpc = yield* Transport.makeClient(MailboxRpc, endpoint, options.transport)
        yield* Effect.all([pushLoop(rpc, outbox, pending, active), pullLoop(rpc, inbox, active)], {
          concurrency: 2,
          discard: true
        })
      })
    ).pipe(
      // A listener that shuts down interrupts our calls; for the link that is a lost connection, to be retried.
      Effect.catchAllCause((cause) =>
        Effect.failCause<LinkError>(
          Cause.isInterruptedOnly(cause) ? Cause.fail(new LinkLost({ message: `${url} ended our calls` })) : cause
        )
      )
    )
    yield* session.pipe(
      Effect.tapError((error) => Effect.logWarning(`mailbox link to ${url} broke (${error.message}); reconnecting`)),
      Effect.retry(reconnectSchedule),
      Effect.forkScoped
    )
    return { ...mailbox, lastActivity: () => lastActivity }
  })

// ---------------------------------------------------------------------------------------------
// private

class LinkLost extends Data.TaggedError("LinkLost")<{ readonly message: string }> {}

type LinkError = LinkLost | ConnectFailed | RpcClientError | MailboxError

type MailboxRpcClient = RpcClient.RpcClient<RpcGroup.Rpcs<typeof MailboxRpc>, RpcClientError>

const reconnectSchedule = Schedule.exponential("100 millis").pipe(
  Schedule.either(Schedule.spaced("5 seconds")),
  Schedule.jittered
)

// How many messages one Deliver or Pull carries, and how long a Pull waits for something to arrive.
const batchSize = 64
const pullWaitMs = 10_000

const spoolFolders = (options: MailboxOptions) => ({
  inbox: path.resolve(options.spool, "inbox"),
  outbox: path.resolve(options.spool, "outbox")
})

const folderOptions = (inbox: string, outbox: string, options: MailboxOptions): FolderMailbox.FolderMailboxOptions => ({
  inbox,
  outbox,
  ...(options.rescanMs !== undefined ? { rescanMs: options.rescanMs } : {}),
  ...(options.archive !== undefined ? { archive: options.archive } : {})
})

// A folder mailbox over the local spool whose sent messages are also kept in memory, in send
// order, until the peer has them: the carrier ships them from there instead of reading the
// outbox back. What a previous process left in the outbox is loaded once, first. Only envelopes
// and file names are kept; small files are read when their message is shipped, so a long
// backlog (a local server that is down) costs little memory.
const spooled = <A, I>(schema: Schema.Schema<A, I>, inbox: string, outbox: string, options: MailboxOptions) =>
  Effect.gen(function*() {
    const pending = new PendingOutbox(outbox)
    const mailbox = yield* FolderMailbox.make(schema, {
      ...folderOptions(inbox, outbox, options),
      deliveredLog: path.resolve(options.spool, "delivered.ids"),
      onSent: (id, envelope, files) => Effect.sync(() => pending.add({ id, envelope, files }))
    })
    const left = yield* Spool.listOutbox(outbox)
    pending.addOlder(left.map((message) => ({
      id: message.id,
      envelope: message.envelope,
      files: message.files.map((file) => file.path)
    })))
    return { mailbox, pending }
  })

interface Waiting {
  readonly id: string
  readonly envelope: string
  readonly files: ReadonlyArray<string>
}

/** The messages of an outbox not yet taken by the peer, oldest first. */
class PendingOutbox {
  private messages = new Map<string, Waiting>()
  private waiters = new Set<() => void>()
  constructor(private readonly outbox: string) {}

  add(message: Waiting): void {
    this.messages.set(message.id, message)
    for (const wake of this.waiters) wake()
    this.waiters.clear()
  }

  // Messages found in the spool at start come before anything sent since.
  addOlder(messages: ReadonlyArray<Waiting>): void {
    if (messages.length === 0) return
    const merged = new Map(messages.map((message) => [message.id, message] as const))
    for (const [id, message] of this.messages) if (!merged.has(id)) merged.set(id, message)
    this.messages = merged
    this.add(messages[messages.length - 1]!)
  }

  // The peer has the message: it leaves the spool (its folder too, if it has files) and memory.
  settle(id: string): Effect.Effect<void, MailboxError> {
    return Effect.suspend(() => {
      const hasFiles = (this.messages.get(id)?.files.length ?? 1) > 0
      return Effect.zipRight(Spool.removeFromOutbox(this.outbox, id, hasFiles), Effect.sync(() => this.messages.delete(id)))
    })
  }

  // The oldest messages that fit one call, with their small files read in.
  first(max: number): Effect.Effect<ReadonlyArray<ShippedMessage>, MailboxError> {
    return Effect.suspend(() => {
      const out: Array<Waiting> = []
      for (const message of this.messages.values()) {
        if (out.length >= max) break
        out.push(message)
      }
      return Effect.map(
        Effect.forEach(out, (m) => Spool.describeMessage(this.outbox, m.id, m.envelope, m.files)),
        (described) => Spool.firstBatch(described, max)
      )
    })
  }

  // Returns at once when something waits, else when something is added or after `ms`.
  waitForAny(ms: number): Effect.Effect<void> {
    return Effect.async<void>((resume) => {
      if (this.messages.size > 0) return resume(Effect.void)
      const wake = () => {
        clearTimeout(timer)
        resume(Effect.void)
      }
      const timer = setTimeout(() => {
        this.waiters.delete(wake)
        resume(Effect.void)
      }, ms)
      this.waiters.add(wake)
      return Effect.sync(() => {
        clearTimeout(timer)
        this.waiters.delete(wake)
      })
    })
  }
}

// Both ends see one folder (sshfs, or two processes on one host): each end's outbox is the other's inbox.
const sharedFolder = <A, I>(
  schema: Schema.Schema<A, I>,
  endpoint: Endpoint.FolderEndpoint,
  side: "listener" | "connector",
  options: MailboxOptions
) => {
  const toListener = path.join(endpoint.path, "to-listener")
  const toConnector = path.join(endpoint.path, "to-connector")
  return side === "listener"
    ? FolderMailbox.make(schema, folderOptions(toListener, toConnector, options))
    : FolderMailbox.make(schema, folderOptions(toConnector, toListener, options))
}

const handlers = (inbox: string, outbox: string, pending: PendingOutbox) =>
  MailboxRpc.toLayer(Effect.succeed({
    Upload: ({ data, id, offset, path: file }) => Spool.writeChunk(inbox, id, file, offset, data),
    Deliver: ({ messages }) => Effect.forEach(messages, (message) => Spool.deliverToInbox(inbox, message), { discard: true }),
    Pull: ({ max, waitMs }) => Effect.zipRight(pending.waitForAny(waitMs), pending.first(max)),
    Download: ({ id, path: file }) =>
      Stream.unwrap(Effect.map(Spool.attachmentPath(outbox, id, file), (local) =>
        Stream.fromAsyncIterable(Spool.readChunks(local), (cause) =>
          new MailboxError({ reason: "io", message: `cannot read file ${file} of message ${id}: ${String(cause)}` })))),
    Ack: ({ ids }) => Effect.forEach(ids, (id) => pending.settle(id), { discard: true })
  }))

// Ships our outbox to the listener as messages appear in it, oldest first, files before their message.
const pushLoop = (rpc: MailboxRpcClient, outbox: string, pending: PendingOutbox, active: () => void) =>
  Effect.gen(function*() {
    while (true) {
      yield* pending.waitForAny(pullWaitMs)
      const batch = yield* pending.first(batchSize)
      if (batch.length === 0) continue
      for (const message of batch) yield* uploadFiles(rpc, outbox, message, active)
      yield* rpc.Deliver({ messages: batch })
      active()
      yield* Effect.forEach(batch, (message) => pending.settle(message.id), { discard: true })
    }
  })

const uploadFiles = (rpc: MailboxRpcClient, outbox: string, message: ShippedMessage, active: () => void) =>
  Effect.forEach(message.files.filter((file) => file.data === undefined), (file) =>
    Effect.gen(function*() {
      const local = yield* Spool.attachmentPath(outbox, message.id, file.path)
      let offset = 0
      yield* Stream.fromAsyncIterable(Spool.readChunks(local), (cause) =>
        new MailboxError({ reason: "io", message: `cannot read ${local}: ${String(cause)}` })).pipe(
          Stream.runForEach((data) =>
            Effect.suspend(() => {
              const at = offset
              offset += data.length
              return Effect.tap(rpc.Upload({ id: message.id, path: file.path, offset: at, data }), active)
            })
          )
        )
      // An empty file has no chunks; send one empty chunk so it exists on the other side.
      if (offset === 0) yield* rpc.Upload({ id: message.id, path: file.path, offset: 0, data: new Uint8Array(0) })
    }), { discard: true })

// Brings the listener's outbox into our inbox: files first, then the message, then the ack.
const pullLoop = (rpc: MailboxRpcClient, inbox: string, active: () => void) =>
  Effect.gen(function*() {
    while (true) {
      const arrived = yield* rpc.Pull({ max: batchSize, waitMs: pullWaitMs })
      active()
      for (const message of arrived) {
        for (const file of message.files.filter((file) => file.data === undefined)) {
          let offset = 0
          yield* rpc.Download({ id: message.id, path: file.path }).pipe(
            Stream.runForEach((data) =>
              Effect.suspend(() => {
                const at = offset
                offset += data.length
                active()
                return Spool.writeChunk(inbox, message.id, file.path, at, data)
              })
            )
          )
          if (offset === 0) yield* Spool.writeChunk(inbox, message.id, file.path, 0, new Uint8Array(0))
        }
        yield* Spool.deliverToInbox(inbox, message)
      }
      if (arrived.length > 0) yield* rpc.Ack({ ids: arrived.map((message) => message.id) })
    }
  })
