import * as Rpc from "@effect/rpc/Rpc"
import * as RpcGroup from "@effect/rpc/RpcGroup"
import { assert, describe, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Crypto from "node:crypto"
import * as Fs from "node:fs"
import * as Path from "node:path"
import type * as Endpoint from "../../../src/transport/Endpoint.js"
import * as NetworkMailbox from "../../../src/transport/mailbox/NetworkMailbox.js"
import * as Transport from "../../../src/transport/Transport.js"
import { tempDir } from "../../integration/harness.js"

/** What the suite needs to know about one transport. */
export interface TransportCase {
  readonly name: string
  /** A fresh endpoint nobody listens on yet. */
  readonly endpoint: () => Promise<Endpoint.Endpoint>
  /** Feeds the listening server bytes (or files) that are not its protocol, then goes away. */
  readonly garbage: (endpoint: Endpoint.Endpoint) => Promise<void>
  /** Starts a well-formed message to the server and vanishes halfway through it. */
  readonly dieMidMessage: (endpoint: Endpoint.Endpoint) => Promise<void>
  readonly server?: Transport.ServerOptions
  readonly client?: Transport.ClientOptions
  /** How long the 10,000-message and big-payload tests may take on this transport. */
  readonly slowMs?: number
}

/** The RPCs the suite drives: an echo, an ordered log per client, a stream, and raw bytes. */
export class ConformanceRpc extends RpcGroup.make(
  Rpc.make("Echo", { payload: { text: Schema.String }, success: Schema.String }),
  Rpc.make("Record", { payload: { sender: Schema.String, n: Schema.Int }, success: Schema.Int }),
  Rpc.make("Recorded", { payload: { sender: Schema.String }, success: Schema.Array(Schema.Int) }),
  Rpc.make("Count", { payload: { n: Schema.Int }, success: Schema.Int, stream: true }),
  Rpc.make("Digest", { payload: { data: Schema.Uint8ArrayFromSelf }, success: Schema.String })
) {}

const handlers = Layer.suspend(() => {
  const logs = new Map<string, Array<number>>()
  return ConformanceRpc.toLayer({
    Echo: ({ text }) => Effect.succeed(text.toUpperCase()),
    Record: ({ n, sender }) =>
      Effect.sync(() => {
        const log = logs.get(sender) ?? []
        logs.set(sender, log)
        log.push(n)
        return log.length
      }),
    Recorded: ({ sender }) => Effect.sync(() => logs.get(sender) ?? []),
    Count: ({ n }) => Stream.range(1, n),
    Digest: ({ data }) => Effect.sync(() => sha256(data))
  })
})

const Message = Schema.Struct({ sender: Schema.String, n: Schema.Int, text: Schema.String })

/** Runs the transport conformance suite against one transport. */
export const conformance = (transport: TransportCase): void => {
  describe(`transport conformance: ${transport.name}`, () => {
    const slow = transport.slowMs ?? 60_000

    const serve = (endpoint: Endpoint.Endpoint) =>
      Layer.build(Transport.layerServer(ConformanceRpc, endpoint, transport.server).pipe(Layer.provide(handlers)))

    const connect = (endpoint: Endpoint.Endpoint) => Transport.makeClient(ConformanceRpc, endpoint, transport.client)

    it.scopedLive("answers calls and streams, and keeps each sender's order", () =>
      Effect.gen(function*() {
        const endpoint = yield* Effect.promise(transport.endpoint)
        yield* serve(endpoint)
        const client = yield* connect(endpoint)
        assert.strictEqual(yield* client.Echo({ text: "hi" }), "HI")
        const counted = yield* Stream.runCollect(client.Count({ n: 50 }))
        assert.deepStrictEqual(Chunk.toArray(counted), Array.from({ length: 50 }, (_, i) => i + 1))
        // Fired without waiting for answers: the server must see them in the order they were sent.
        yield* Effect.forEach(range(500), (n) => client.Record({ sender: "a", n }), { concurrency: "unbounded" })
        assert.deepStrictEqual(yield* client.Recorded({ sender: "a" }), range(500))
      }), slow)

    it.scopedLive("carries one 16 MiB message intact", () =>
      Effect.gen(function*() {
        const endpoint = yield* Effect.promise(transport.endpoint)
        yield* serve(endpoint)
        const client = yield* connect(endpoint)
        const data = Crypto.randomBytes(16 * 1024 * 1024 - 1024)
        assert.strictEqual(yield* client.Digest({ data }), sha256(data))
      }), slow)

    it.scopedLive("answers 10,000 small messages, 100 in flight", () =>
      Effect.gen(function*() {
        const endpoint = yield* Effect.promise(transport.endpoint)
        yield* serve(endpoint)
        const client = yield* connect(endpoint)
        const answers = yield* Effect.forEach(range(10_000), (n) => client.Echo({ text: `m${n}` }), {
          concurrency: 100
        })
        assert.strictEqual(answers.length, 10_000)
        assert.isTrue(answers.every((answer, n) => answer === `M${n}`))
      }), slow)

    it.scopedLive("serves two clients at once, each in its own order", () =>
      Effect.gen(function*() {
        const endpoint = yield* Effect.promise(transport.endpoint)
        yield* serve(endpoint)
        const [one, two] = yield* Effect.all([connect(endpoint), connect(endpoint)])
        yield* Effect.all([
          Effect.forEach(range(300), (n) => one!.Record({ sender: "one", n }), { concurrency: "unbounded" }),
          Effect.forEach(range(300), (n) => two!.Record({ sender: "two", n }), { concurrency: "unbounded" })
        ], { concurrency: 2 })
        assert.deepStrictEqual(yield* one!.Recorded({ sender: "one" }), range(300))
        assert.deepStrictEqual(yield* two!.Recorded({ sender: "two" }), range(300))
      }), slow)

    it.scopedLive("keeps serving after garbage input and a peer that dies mid-message", () =>
      Effect.gen(function*() {
        const endpoint = yield* Effect.promise(transport.endpoint)
        yield* serve(endpoint)
        const before = yield* connect(endpoint)
        assert.strictEqual(yield* before.Echo({ text: "before" }), "BEFORE")
        yield* Effect.promise(() => transport.garbage(endpoint))
        yield* Effect.promise(() => transport.dieMidMessage(endpoint))
        assert.strictEqual(yield* before.Echo({ text: "still" }), "STILL")
        const after = yield* connect(endpoint)
        assert.strictEqual(yield* after.Echo({ text: "after" }), "AFTER")
      }), slow)

    it.scopedLive("mailbox: messages and files both ways, in order, each delivered once", () =>
      Effect.gen(function*() {
        const endpoint = yield* Effect.promise(transport.endpoint)
        const work = tempDir("troupe-conf-")
        const listener = yield* NetworkMailbox.listen(Message, endpoint, mailboxOptions(transport, work, "listener"))
        const connector = yield* NetworkMailbox.connect(Message, endpoint, mailboxOptions(transport, work, "connector"))
        const input = Path.join(work, "input.txt")
        Fs.writeFileSync(input, "attached")
        yield* connector.send({ sender: "c", n: -1, text: "with file" }, "with-file", { [input]: "in/data.txt" })
        for (const n of range(200)) yield* connector.send({ sender: "c", n, text: "x" }, `c-${n}`)
        for (const n of range(200)) yield* listener.send({ sender: "l", n, text: "y" }, `l-${n}`)
        const atListener = yield* listener.messages.pipe(Stream.take(201), Stream.runCollect, Effect.map(Chunk.toArray))
        const atConnector = yield* connector.messages.pipe(Stream.take(200), Stream.runCollect, Effect.map(Chunk.toArray))
        assert.strictEqual(atListener[0]!.id, "with-file")
        assert.strictEqual(Fs.readFileSync(atListener[0]!.files.get("in/data.txt")!, "utf8"), "attached")
        assert.deepStrictEqual(atListener.slice(1).map((d) => d.message.n), range(200))
        assert.deepStrictEqual(atConnector.map((d) => d.message.n), range(200))
        // Sending an id again does not deliver it twice.
        yield* connector.send({ sender: "c", n: 0, text: "again" }, "c-0")
        yield* connector.send({ sender: "c", n: 1000, text: "marker" }, "marker")
        const next = yield* listener.messages.pipe(Stream.take(1), Stream.runCollect, Effect.map(Chunk.toArray))
        assert.strictEqual(next[0]!.id, "marker")
      }), slow)

    it.scopedLive("mailbox: a 256 MB file travels with bounded memory", () =>
      Effect.gen(function*() {
        const endpoint = yield* Effect.promise(transport.endpoint)
        const work = tempDir("troupe-conf-big-")
        const big = Path.join(work, "big.bin")
        const expected = yield* Effect.promise(() => writeBigFile(big, 256))
        const listener = yield* NetworkMailbox.listen(Message, endpoint, mailboxOptions(transport, work, "listener"))
        const connector = yield* NetworkMailbox.connect(Message, endpoint, mailboxOptions(transport, work, "connector"))
        let peakRss = process.memoryUsage().rss
        const baseline = peakRss
        const sampler = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 20)
        yield* Effect.addFinalizer(() => Effect.sync(() => clearInterval(sampler)))
        yield* connector.send({ sender: "c", n: 0, text: "big" }, "big", { [big]: "big.bin" })
        const [delivery] = yield* listener.messages.pipe(Stream.take(1), Stream.runCollect, Effect.map(Chunk.toArray))
        const received = delivery!.files.get("big.bin")!
        assert.strictEqual(Fs.statSync(received).size, 256 * 1024 * 1024)
        assert.strictEqual(yield* Effect.promise(() => sha256File(received)), expected)
        const grewMb = (peakRss - baseline) / 1024 / 1024
        assert.isBelow(grewMb, 150, `resident memory grew by ${grewMb.toFixed(0)} MB while moving a 256 MB file`)
      }), 120_000)

    it.scopedLive("mailbox: the connector reconnects when the listener restarts, and nothing is lost", () =>
      Effect.gen(function*() {
        const endpoint = yield* Effect.promise(transport.endpoint)
        const work = tempDir("troupe-conf-re-")
        const listenerScope = yield* Scope.make()
        const firstListener = yield* NetworkMailbox.listen(Message, endpoint, mailboxOptions(transport, work, "listener")).pipe(
          Scope.extend(listenerScope)
        )
        const connector = yield* NetworkMailbox.connect(Message, endpoint, mailboxOptions(transport, work, "connector"))
        yield* connector.send({ sender: "c", n: 0, text: "before" }, "before")
        const first = yield* firstListener.messages.pipe(Stream.take(1), Stream.runCollect, Effect.map(Chunk.toArray))
        assert.strictEqual(first[0]!.id, "before")
        yield* Scope.close(listenerScope, Exit.void)
        // Sent while nobody listens: it waits in the connector's outbox.
        for (const n of range(20)) yield* connector.send({ sender: "c", n, text: "during" }, `during-${n}`)
        const listener = yield* NetworkMailbox.listen(Message, endpoint, mailboxOptions(transport, work, "listener"))
        const later = yield* listener.messages.pipe(Stream.take(20), Stream.runCollect, Effect.map(Chunk.toArray))
        assert.deepStrictEqual(later.map((d) => d.id), range(20).map((n) => `during-${n}`))
      }), slow)
  })
}

// ---------------------------------------------------------------------------------------------
// private

const range = (n: number): Array<number> => Array.from({ length: n }, (_, i) => i)

const sha256 = (data: Uint8Array): string => Crypto.createHash("sha256").update(data).digest("hex")

const mailboxOptions = (
  transport: TransportCase,
  work: string,
  side: string
): NetworkMailbox.MailboxOptions => ({
  spool: Path.join(work, side),
  rescanMs: 50,
  transport: { ...transport.server, ...transport.client }
})

// Writes `mb` MiB of pseudo-random data one MiB at a time; returns its sha256.
const writeBigFile = async (file: string, mb: number): Promise<string> => {
  const hash = Crypto.createHash("sha256")
  const handle = await Fs.promises.open(file, "w")
  try {
    const block = Crypto.randomBytes(1024 * 1024)
    for (let i = 0; i < mb; i++) {
      block[0] = i & 0xff
      hash.update(block)
      await handle.write(block)
    }
  } finally {
    await handle.close()
  }
  return hash.digest("hex")
}

const sha256File = async (file: string): Promise<string> => {
  const hash = Crypto.createHash("sha256")
  for await (const chunk of Fs.createReadStream(file)) hash.update(chunk as Buffer)
  return hash.digest("hex")
}
