import { encode, FrameType } from "../../protocol/Frame.js"
import { HandshakeType } from "../Handshake.js"

/**
 * The frames of Troupe's framed transport after the handshake (types 16–19, Handshake.ts).
 * Keepalive reuses Net Queue's PING (4) and PONG (5), with no data. Integers are big-endian;
 * a "u64" is an unsigned 64-bit count, of which this code uses the low 53 bits.
 * The byte layout is documented in docs/PROTOCOL.md ("Framed transport").
 */
export const FramedType = {
  ...HandshakeType,
  Ping: FrameType.Ping,
  Pong: FrameType.Pong,
  /** client → server: open a new session or resume one. */
  Open: 20,
  /** server → client: the session is open (or resumed). */
  Accept: 21,
  /** server → client: the session to resume is unknown (expired, or the server restarted). */
  Expired: 22,
  /** either way: acknowledgement, first sequence number, then msgpack-encoded messages. */
  Data: 24,
  /** either way: a bare cumulative acknowledgement. */
  Ack: 25,
  /** either way: the sender ends the session (code, then a UTF-8 reason) and closes. */
  Close: 26
} as const

/** Why a CLOSE frame ends a session. */
export const CloseCode = {
  /** The peer is done: its scope closed. */
  Normal: 0,
  /** The peer sent bytes that are not valid frames (bad length, unknown type, undecodable data). */
  Protocol: 1,
  /** The server is shutting down. */
  Shutdown: 2
} as const

/** Bytes of a session id. */
export const sessionIdBytes = 16

/** Bytes before the messages in a DATA frame: the acknowledgement and the first sequence number. */
export const dataHeaderBytes = 16

/** A parsed OPEN frame. */
export interface Open {
  readonly resume: boolean
  readonly sessionId: string
  /** How many of the server's messages the client has received. */
  readonly received: number
  /** The largest frame the client accepts. */
  readonly maxFrameBytes: number
}

/** A parsed ACCEPT frame. */
export interface Accept {
  readonly resumed: boolean
  /** How many of the client's messages the server has received. */
  readonly received: number
  /** The largest frame the server accepts. */
  readonly maxFrameBytes: number
}

/** Encodes an OPEN frame. */
export const encodeOpen = (open: Open): Uint8Array => {
  const data = Buffer.alloc(1 + sessionIdBytes + 8 + 4)
  data[0] = open.resume ? 1 : 0
  data.write(open.sessionId, 1, sessionIdBytes, "hex")
  writeU64(data, 1 + sessionIdBytes, open.received)
  data.writeUInt32BE(open.maxFrameBytes, 1 + sessionIdBytes + 8)
  return encode(FramedType.Open, data)
}

/** Decodes an OPEN frame's data; undefined when it is malformed. */
export const decodeOpen = (data: Uint8Array): Open | undefined => {
  if (data.length !== 1 + sessionIdBytes + 8 + 4) return undefined
  const buffer = asBuffer(data)
  return {
    resume: (buffer[0]! & 1) === 1,
    sessionId: buffer.toString("hex", 1, 1 + sessionIdBytes),
    received: readU64(buffer, 1 + sessionIdBytes),
    maxFrameBytes: buffer.readUInt32BE(1 + sessionIdBytes + 8)
  }
}

/** Encodes an ACCEPT frame. */
export const encodeAccept = (accept: Accept): Uint8Array => {
  const data = Buffer.alloc(1 + 8 + 4)
  data[0] = accept.resumed ? 1 : 0
  writeU64(data, 1, accept.received)
  data.writeUInt32BE(accept.maxFrameBytes, 9)
  return encode(FramedType.Accept, data)
}

/** Decodes an ACCEPT frame's data; undefined when it is malformed. */
export const decodeAccept = (data: Uint8Array): Accept | undefined => {
  if (data.length !== 1 + 8 + 4) return undefined
  const buffer = asBuffer(data)
  return { resumed: (buffer[0]! & 1) === 1, received: readU64(buffer, 1), maxFrameBytes: buffer.readUInt32BE(9) }
}

/** Encodes a CLOSE frame. */
export const encodeClose = (code: number, reason: string): Uint8Array =>
  encode(FramedType.Close, Buffer.concat([Buffer.from([code]), Buffer.from(reason, "utf8")]))

/** Decodes a CLOSE frame's data. */
export const decodeClose = (data: Uint8Array): { readonly code: number; readonly reason: string } => ({
  code: data[0] ?? CloseCode.Protocol,
  reason: asBuffer(data).toString("utf8", 1)
})

/** Encodes an ACK frame. */
export const encodeAck = (received: number): Uint8Array => {
  const frame = Buffer.alloc(6 + 8)
  frame.writeInt32BE(2 + 8, 0)
  frame.writeInt16BE(FramedType.Ack, 4)
  writeU64(frame, 6, received)
  return frame
}

/** Writes an unsigned integer below 2^53 as 8 big-endian bytes. */
export const writeU64 = (buffer: Buffer, offset: number, value: number): void => {
  buffer.writeUInt32BE(Math.floor(value / 0x1_0000_0000), offset)
  buffer.writeUInt32BE(value >>> 0, offset + 4)
}

/** Reads 8 big-endian bytes as an unsigned integer (exact below 2^53). */
export const readU64 = (buffer: Buffer, offset: number): number =>
  buffer.readUInt32BE(offset) * 0x1_0000_0000 + buffer.readUInt32BE(offset + 4)

/** A Buffer view of the same bytes, without copying. */
export const asBuffer = (data: Uint8Array): Buffer =>
  Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength)
