import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Net from "node:net"
import * as Frame from "../../../src/protocol/Frame.js"
import * as Endpoint from "../../../src/transport/Endpoint.js"
import * as FramedWire from "../../../src/transport/framed/FramedWire.js"
import * as Handshake from "../../../src/transport/Handshake.js"
import { collectLogs, connect, dataFrame, dataMessages, echoRequest, rawPeer, serve, waitUntil } from "./fixtures.js"

const MiB = 1024 * 1024

/** A header announcing a frame of `length` bytes (the rest never comes). */
const header = (length: number) => {
  const bytes = Buffer.alloc(6)
  bytes.writeInt32BE(length, 0)
  bytes.writeInt16BE(FramedWire.FramedType.Data, 4)
  return bytes
}

describe("Framed transport robustness", () => {
  for (const [name, length] of [["an oversized frame", 2 * MiB], ["a negative length", -5]] as const) {
    it.scopedLive(`${name} closes only that connection, with a CLOSE frame and a log line`, () =>
      Effect.gen(function*() {
        const logs = collectLogs()
        const { endpoint } = yield* serve({ maxFrameBytes: MiB }).pipe(Effect.provide(logs.layer))
        const { rpc } = yield* connect(endpoint)
        assert.strictEqual(yield* rpc.Echo({ text: "before" }), "BEFORE")
        const bad = yield* rawPeer(endpoint)
        bad.socket.write(header(length))
        yield* Effect.promise(() => bad.closed)
        const close = bad.frames.find((frame) => frame.type === FramedWire.FramedType.Close)
        assert.isDefined(close)
        const { code, reason } = FramedWire.decodeClose(close!.data)
        assert.strictEqual(code, FramedWire.CloseCode.Protocol)
        assert.match(reason, length < 0 ? /negative/ : /over the limit of 1048576/)
        yield* waitUntil(() => logs.lines.some((line) => line.includes("bad frame")), 2000, "the log line")
        // The well-behaved client never noticed.
        const answers = yield* Effect.forEach(["a", "b", "c"], (text) => rpc.Echo({ text }), { concurrency: 3 })
        assert.deepStrictEqual(answers, ["A", "B", "C"])
      }))
  }

  it.scopedLive("frames written in pieces split at random points reassemble, and several frames in one write split", () =>
    Effect.gen(function*() {
      const { endpoint } = yield* serve()
      const peer = yield* rawPeer(endpoint)
      const frames = Buffer.concat(
        Array.from({ length: 50 }, (_, i) => dataFrame(i + 1, [echoRequest(i, `text ${i} ${"x".repeat(i * 37)}`)]))
      )
      let offset = 0
      while (offset < frames.length) {
        const size = 1 + Math.floor(Math.random() * 97)
        peer.socket.write(frames.subarray(offset, offset + size))
        offset += size
        if (Math.random() < 0.3) yield* Effect.sleep("1 millis")
      }
      const replies = () => peer.frames.filter((f) => f.type === FramedWire.FramedType.Data).flatMap(dataMessages)
      yield* waitUntil(() => replies().length >= 50, 5000, "50 replies")
      const exits = replies()
      // Each reply is a compact success: [0, request id, value].
      assert.deepStrictEqual(exits, Array.from({ length: 50 }, (_, i) => [0, i, `TEXT ${i} ${"X".repeat(i * 37)}`]))
    }))

  it.scopedLive("the server drops a connection whose peer stops answering PINGs, within the keepalive timeout", () =>
    Effect.gen(function*() {
      const { endpoint } = yield* serve({ keepaliveInterval: "50 millis", keepaliveTimeout: "300 millis" })
      const peer = yield* rawPeer(endpoint)
      const start = Date.now()
      // The raw peer never answers: it only collects the PINGs.
      yield* Effect.promise(() => peer.closed)
      const silentFor = Date.now() - start
      assert.isTrue(peer.frames.some((frame) => frame.type === Frame.FrameType.Ping), "the server pinged")
      assert.isAtMost(silentFor, 1000)
      assert.isAtLeast(silentFor, 250)
    }))

  it.scopedLive("the client drops a server that goes silent, within the keepalive timeout", () =>
    Effect.gen(function*() {
      // A fake server: handshake, ACCEPT, then silence.
      const closedAfter = deferred<number>()
      const server = yield* Effect.acquireRelease(
        Effect.async<Net.Server>((resume) => {
          const server = Net.createServer((socket) => {
            socket.on("error", () => {})
            Effect.runPromise(Handshake.serverHandshake(socket)).then((leftover) => {
              const decoder = new Frame.FrameDecoder()
              let acceptedAt = 0
              const onChunk = (chunk: Uint8Array) => {
                const result = decoder.push(chunk)
                if (result._tag === "Left" || acceptedAt > 0) return
                if (result.right.some((frame) => frame.type === FramedWire.FramedType.Open)) {
                  acceptedAt = Date.now()
                  socket.write(FramedWire.encodeAccept({ resumed: false, received: 0, maxFrameBytes: MiB }))
                }
              }
              onChunk(leftover)
              socket.on("data", onChunk)
              socket.once("close", () => closedAfter.resolve(Date.now() - acceptedAt))
              socket.resume()
            }, () => {}) // the client's later reconnects may be cut off when the test ends
          })
          server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
        }),
        (server) => Effect.sync(() => server.close())
      )
      const port = (server.address() as Net.AddressInfo).port
      const { client } = yield* connect(
        new Endpoint.FramedEndpoint({ host: "127.0.0.1", port }),
        { keepaliveInterval: "50 millis", keepaliveTimeout: "300 millis", reconnectWindow: "5 seconds" }
      )
      const silentFor = yield* Effect.promise(() => closedAfter.promise)
      assert.isAtMost(silentFor, 1000)
      assert.isAtLeast(silentFor, 250)
      assert.isUndefined(client.failure())
    }))
})

const deferred = <A>() => {
  let resolve!: (value: A) => void
  const promise = new Promise<A>((r) => {
    resolve = r
  })
  return { promise, resolve }
}
