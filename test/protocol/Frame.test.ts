import { assert, describe, it } from "@effect/vitest"
import * as Either from "effect/Either"
import { decodeItems, encode, encodeAll, encodeItems, FrameDecoder, FrameType } from "../../src/protocol/Frame.js"
import { fuzz } from "../fuzz/FrameFuzz.js"

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString("hex")
const frames = (decoder: FrameDecoder, chunk: Uint8Array) => Either.getOrThrow(decoder.push(chunk))

describe("Frame", () => {
  it("encodes the Net Queue examples byte for byte", () => {
    assert.strictEqual(hex(encode(FrameType.Conn)), "000000020001")
    assert.strictEqual(hex(encode(FrameType.Enqueue, encodeItems(["a", "bc"]))), "00000006000661" + "0a6263")
  })

  it("counts bytes, not characters, in the length", () => {
    const frame = encode(FrameType.Status, new TextEncoder().encode("héllo ✓"))
    assert.strictEqual(new DataView(frame.buffer).getInt32(0), 2 + 10)
    const [decoded] = frames(new FrameDecoder(), frame)
    assert.deepStrictEqual(Either.getOrThrow(decodeItems(decoded!.data)), ["héllo ✓"])
  })

  it("reassembles frames split anywhere, and splits several frames out of one chunk", () => {
    const stream = encodeAll([
      { type: FrameType.Ping, data: new Uint8Array() },
      { type: 16, data: new Uint8Array([1, 2, 3]) },
      { type: -2, data: new Uint8Array(300).fill(7) }
    ])
    for (let split = 1; split <= stream.length; split++) {
      const decoder = new FrameDecoder()
      const got = []
      for (let i = 0; i < stream.length; i += split) got.push(...frames(decoder, stream.subarray(i, i + split)))
      assert.deepStrictEqual(got.map((f) => [f.type, f.data.length]), [[4, 0], [16, 3], [-2, 300]])
      assert.strictEqual(decoder.pending, 0)
    }
  })

  it("rejects negative, too short and oversized lengths before keeping their data", () => {
    const reason = (bytes: Array<number>, max = 1024) => {
      const result = new FrameDecoder(max).push(new Uint8Array(bytes))
      return Either.isLeft(result) ? result.left.reason : "accepted"
    }
    assert.strictEqual(reason([0xff, 0xff, 0xff, 0xfe, 0, 1]), "negative-length")
    assert.strictEqual(reason([0, 0, 0, 1, 0]), "too-short")
    assert.strictEqual(reason([0, 0, 0x04, 0x01]), "oversized")
    // The error sticks: a stream that went bad stays bad.
    const decoder = new FrameDecoder(1024)
    assert.isTrue(Either.isLeft(decoder.push(new Uint8Array([0x80, 0, 0, 0]))))
    assert.isTrue(Either.isLeft(decoder.push(encode(FrameType.Ping))))
  })

  it("refuses invalid UTF-8 in items instead of replacing it", () => {
    assert.isTrue(Either.isLeft(decodeItems(new Uint8Array([0x61, 0xff, 0x62]))))
  })

  it("survives random and mutated streams (a slice of the fuzz run)", () => {
    const report = fuzz(20_000, 42)
    assert.isTrue(report.validStreams > 0)
    assert.isTrue(report.rejectedStreams > 0)
  })
})
