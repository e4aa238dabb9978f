import { assert, describe, it } from "@effect/vitest"
import { NetQueueClient } from "../../src/netqueue/Client.js"
import { NetQueueServer } from "../../src/netqueue/Server.js"
import { captureLog, RawPeer } from "./support.js"

const frame = (type: number, data: Uint8Array | string = new Uint8Array(0)) => {
  const body = typeof data === "string" ? Buffer.from(data, "utf8") : Buffer.from(data)
  const header = Buffer.alloc(6)
  header.writeInt32BE(2 + body.length, 0)
  header.writeInt16BE(type, 4)
  return Buffer.concat([header, body])
}
const conn = frame(1)

// Each case: the bytes a bad peer sends, and the reason the server must log when it closes that connection.
const cases: ReadonlyArray<{ readonly name: string; readonly bytes: Buffer; readonly reason: string; readonly vanish?: boolean }> = [
  { name: "garbage bytes (HTTP)", bytes: Buffer.from("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), reason: "frame-error" },
  { name: "a negative length", bytes: Buffer.concat([conn, Buffer.from("ffffffff0006", "hex")]), reason: "frame-error" },
  { name: "an oversized length", bytes: Buffer.concat([conn, Buffer.from("7fffffff0006", "hex")]), reason: "frame-error" },
  { name: "a length too short for the type", bytes: Buffer.concat([conn, Buffer.from("00000001", "hex")]), reason: "frame-error" },
  { name: "an unknown type", bytes: Buffer.concat([conn, frame(99, "x")]), reason: "unknown-type" },
  { name: "invalid UTF-8 in STATUS", bytes: Buffer.concat([conn, frame(3, Buffer.from([0xc3, 0x28]))]), reason: "bad-utf8" },
  { name: "invalid UTF-8 in ENQUEUE", bytes: Buffer.concat([conn, frame(6, Buffer.from([0x61, 0x0a, 0xff]))]), reason: "bad-utf8" },
  { name: "a frame before CONN", bytes: frame(6, "a"), reason: "protocol" },
  { name: "an ACK from a plain peer", bytes: Buffer.concat([conn, frame(32, new Uint8Array(12))]), reason: "protocol" },
  {
    name: "a frame cut off by a dead peer",
    bytes: Buffer.concat([conn, Buffer.from("000000640006", "hex"), Buffer.from("abcdefghij")]),
    reason: "cut-off",
    vanish: true
  }
]

describe("Net Queue server under bad input", () => {
  it("closes only the bad connection, logs why, and keeps serving every other peer", async () => {
    const { log, waitFor } = captureLog()
    const server = new NetQueueServer({ log, maxFrameBytes: 1024 * 1024 })
    await server.bind("127.0.0.1", 0)
    const good = new NetQueueClient({})
    await good.connect("127.0.0.1", server.port)
    const producer = await RawPeer.connect(server.port)
    producer.write(conn)
    producer.send(3, "producer")
    await producer.waitFor(1)
    try {
      let n = 0
      for (const bad of cases) {
        const peer = await RawPeer.connect(server.port)
        peer.write(bad.bytes)
        if (bad.vanish) {
          await peer.waitFor(1)
          peer.destroy()
        } else {
          await peer.waitClosed()
        }
        await waitFor(new RegExp(`closed \\(${bad.reason}\\)`))
        // Everyone else is still served: a producer's item reaches the consumer.
        producer.send(6, `after ${bad.name}`)
        assert.strictEqual(await good.get(true, 2000), `after ${bad.name}`, bad.name)
        n++
      }
      assert.strictEqual(n, cases.length)
      assert.isTrue(good.connected)
      assert.isFalse(producer.closed)
    } finally {
      producer.destroy()
      await good.close()
      await server.close()
    }
  })

  it("a client closes a server connection that sends bad frames, with a reason, and its get raises Closed", async () => {
    const listener = await RawPeer.listen((peer) => {
      void peer.waitFor(1).then(() => {
        peer.write(conn)
        peer.write(Buffer.concat([frame(6, "ok"), frame(77)]))
      })
    })
    const address = listener.address()
    const port = typeof address === "object" && address !== null ? address.port : 0
    const { log, waitFor } = captureLog()
    const client = new NetQueueClient({ log, troupe: false })
    await client.connect("127.0.0.1", port)
    assert.strictEqual(await client.get(true, 2000), "ok")
    await waitFor(/closed \(unknown-type\): unknown frame type 77/)
    let error: unknown
    await client.get(true, 2000).catch((e) => (error = e))
    assert.strictEqual((error as { _tag: string })._tag, "Closed")
    listener.close()
  })
})
