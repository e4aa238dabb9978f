import { assert, describe, it } from "@effect/vitest"
import * as Either from "effect/Either"
import { decodeItems, FrameDecoder } from "../../src/protocol/Frame.js"
import * as Config from "../../src/netqueue/Config.js"
import * as Status from "../../src/netqueue/Status.js"
import * as Wire from "../../src/netqueue/Wire.js"

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString("hex")

describe("Net Queue wire", () => {
  it("encodes the original examples byte for byte", () => {
    assert.strictEqual(hex(Wire.conn), "000000020001")
    assert.strictEqual(hex(Wire.disconn), "000000020002")
    assert.strictEqual(hex(Wire.ping), "000000020004")
    assert.strictEqual(hex(Wire.pong), "000000020005")
    assert.strictEqual(hex(Wire.encodeEnqueue(["a", "bc"])), "00000006000661" + "0a6263")
    assert.strictEqual(hex(Wire.encodeStatus("ok")), "000000040003" + "6f6b")
  })

  it("counts bytes, not characters, and decodes what it encodes", () => {
    const frame = Wire.encodeEnqueue(["héllo", "✓"])
    assert.strictEqual(frame.readInt32BE(0), 2 + 6 + 1 + 3)
    const [decoded] = Either.getOrThrow(new FrameDecoder().push(frame))
    assert.deepStrictEqual(Either.getOrThrow(decodeItems(decoded!.data)), ["héllo", "✓"])
  })

  it("encodes ACK ranges as u64 first and u32 count, and rejects partial ranges", () => {
    const frame = Wire.encodeAck([[1, 3], [2 ** 40, 7]])
    assert.strictEqual(hex(frame.subarray(0, 6)), "0000001a0020")
    assert.strictEqual(hex(frame.subarray(6, 18)), "0000000000000001" + "00000003")
    assert.deepStrictEqual(Wire.decodeAck(frame.subarray(6)), [[1, 3], [2 ** 40, 7]])
    assert.isUndefined(Wire.decodeAck(new Uint8Array(11)))
    assert.isUndefined(Wire.decodeAck(new Uint8Array(0)))
    assert.isTrue(Wire.isKnownType(6) && Wire.isKnownType(32) && !Wire.isKnownType(7) && !Wire.isKnownType(24))
  })
})

describe("STATUS text", () => {
  it("reads key=value words, key:value, bare flags, a bare number as load, and JSON", () => {
    assert.deepStrictEqual(Status.parse("troupe=1 producer load=12"), { troupe: "1", producer: "1", load: "12" })
    assert.deepStrictEqual(Status.parse("full:1, weight:3; x=y"), { full: "1", weight: "3", x: "y" })
    assert.deepStrictEqual(Status.parse(" 7 "), { load: "7" })
    assert.deepStrictEqual(Status.parse("{\"producer\": true, \"load\": 4}"), { producer: "true", load: "4" })
    assert.isTrue(Status.flag(Status.parse("producer=yes"), "producer"))
    assert.isFalse(Status.flag(Status.parse("full=0"), "full"))
    assert.strictEqual(Status.format({ troupe: 1, full: false, load: 3, skip: undefined }), "troupe=1 full=0 load=3")
  })
})

describe("config files", () => {
  it("reads key = value lines with comments, and JSON", () => {
    const lines = Config.parse("c", "# comment\nhost = 127.0.0.1\nPort: 7979\nping-interval = 2s\nname = \"a b\"\n")
    assert.deepStrictEqual(Either.getOrThrow(lines), { host: "127.0.0.1", port: "7979", ping_interval: "2s", name: "a b" })
    const json = Either.getOrThrow(Config.parse("c", "{\"port\": 7979, \"policy\": \"random\"}"))
    assert.deepStrictEqual(json, { port: "7979", policy: "random" })
    assert.strictEqual(Config.duration({ t: "2" }, "t"), 2000)
    assert.strictEqual(Config.duration({ t: "250ms" }, "t"), 250)
    assert.isTrue(Either.isLeft(Config.parse("c", "just words")))
    assert.isTrue(Either.isLeft(Config.load("/nonexistent/troupe-conf")))
    assert.deepStrictEqual(Either.getOrThrow(Config.load("/nonexistent/troupe-conf", true)), {})
  })
})
