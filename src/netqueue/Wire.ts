import { encode, FrameType, headerBytes } from "../protocol/Frame.js"

/**
 * The Net Queue frames: the original types 1–6 (Frame.ts), plus two Troupe types that are sent
 * only to a peer that announced `troupe=1` in its STATUS, so original peers never see them.
 * The byte layout is documented in docs/PROTOCOL.md ("Net Queue").
 */
export const NetQueueType = {
  ...FrameType,
  /** either way: the sender is done with these items (ranges of item numbers); at-least-once between Troupe peers. */
  Ack: 32,
  /** client → server with no data: a request for the node's report; server → client: the report as UTF-8 JSON. */
  Report: 33
} as const

/** The Troupe protocol version announced in STATUS as `troupe=<version>`. */
export const troupeVersion = 1

/** Bytes of one range in an ACK frame: first item number (u64) and count (u32). */
export const ackRangeBytes = 12

/** The frames with no data, encoded once. */
export const conn = encode(FrameType.Conn)
export const disconn = encode(FrameType.Disconn)
export const ping = encode(FrameType.Ping)
export const pong = encode(FrameType.Pong)
export const reportRequest = encode(NetQueueType.Report)

/** Encodes a STATUS frame. */
export const encodeStatus = (text: string): Uint8Array => encode(FrameType.Status, Buffer.from(text, "utf8"))

/** Encodes a REPORT frame carrying JSON. */
export const encodeReport = (json: string): Uint8Array => encode(NetQueueType.Report, Buffer.from(json, "utf8"))

/** Encodes an ENQUEUE frame for items (each free of `\n`), straight into one buffer. */
export const encodeEnqueue = (items: ReadonlyArray<string>): Buffer => {
  const text = items.length === 1 ? items[0]! : items.join("\n")
  const size = Buffer.byteLength(text, "utf8")
  const frame = Buffer.allocUnsafe(headerBytes + size)
  frame.writeInt32BE(2 + size, 0)
  frame.writeInt16BE(FrameType.Enqueue, 4)
  frame.write(text, headerBytes, "utf8")
  return frame
}

/** Encodes an ACK frame of `[first, count]` ranges of item numbers. */
export const encodeAck = (ranges: ReadonlyArray<readonly [number, number]>): Buffer => {
  const frame = Buffer.allocUnsafe(headerBytes + ranges.length * ackRangeBytes)
  frame.writeInt32BE(2 + ranges.length * ackRangeBytes, 0)
  frame.writeInt16BE(NetQueueType.Ack, 4)
  let offset = headerBytes
  for (const [first, count] of ranges) {
    frame.writeUInt32BE(Math.floor(first / 0x1_0000_0000), offset)
    frame.writeUInt32BE(first >>> 0, offset + 4)
    frame.writeUInt32BE(count, offset + 8)
    offset += ackRangeBytes
  }
  return frame
}

/** Decodes an ACK frame's data into ranges; undefined when its length is not a whole number of ranges. */
export const decodeAck = (data: Uint8Array): ReadonlyArray<readonly [number, number]> | undefined => {
  if (data.length === 0 || data.length % ackRangeBytes !== 0) return undefined
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength)
  const ranges: Array<readonly [number, number]> = []
  for (let offset = 0; offset < data.length; offset += ackRangeBytes) {
    const first = view.getUint32(offset) * 0x1_0000_0000 + view.getUint32(offset + 4)
    ranges.push([first, view.getUint32(offset + 8)])
  }
  return ranges
}

/** The frame types a Net Queue peer accepts; anything else closes the connection. */
export const isKnownType = (type: number): boolean => (type >= 1 && type <= 6) || type === 32 || type === 33
