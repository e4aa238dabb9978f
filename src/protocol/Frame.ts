import * as Data from "effect/Data"
import * as Either from "effect/Either"

/**
 * The framed wire format shared by the Net Queue protocol and Troupe's framed transport:
 * a 4-byte big-endian signed length counting the type and data bytes, a 2-byte big-endian
 * signed type, then the data. Types 1–6 are Net Queue's; Troupe's own types start at 16.
 */
export const FrameType = {
  Conn: 1,
  Disconn: 2,
  Status: 3,
  Ping: 4,
  Pong: 5,
  Enqueue: 6
} as const

/** The first frame type Troupe may use for its own messages. */
export const firstTroupeType = 16

/** The default largest frame accepted: 16 MiB of type and data. */
export const defaultMaxFrameBytes = 16 * 1024 * 1024

/** Bytes before the data: the length (4) and the type (2). */
export const headerBytes = 6

/** One decoded frame. */
export interface Frame {
  readonly type: number
  readonly data: Uint8Array
}

/** A byte stream that is not a valid sequence of frames; the connection should be closed. */
export class FrameError extends Data.TaggedError("FrameError")<{
  readonly reason: "negative-length" | "too-short" | "oversized"
  readonly length: number
  readonly message: string
}> {}

/** Encodes one frame. */
export const encode = (type: number, data: Uint8Array = empty): Uint8Array => {
  const frame = new Uint8Array(headerBytes + data.length)
  const view = new DataView(frame.buffer)
  view.setInt32(0, 2 + data.length)
  view.setInt16(4, type)
  frame.set(data, headerBytes)
  return frame
}

/** Encodes several frames into one buffer, for a single socket write. */
export const encodeAll = (frames: ReadonlyArray<Frame>): Uint8Array => {
  let size = 0
  for (const frame of frames) size += headerBytes + frame.data.length
  const out = new Uint8Array(size)
  const view = new DataView(out.buffer)
  let offset = 0
  for (const frame of frames) {
    view.setInt32(offset, 2 + frame.data.length)
    view.setInt16(offset + 4, frame.type)
    out.set(frame.data, offset + headerBytes)
    offset += headerBytes + frame.data.length
  }
  return out
}

/**
 * Reassembles frames from chunks as they arrive from a socket, split anywhere. It never throws,
 * copies each byte at most once (a frame within one chunk is a view of it; a large frame arriving
 * in small chunks is copied once, not re-concatenated), and reports a bad length before keeping
 * any of that frame's data. A frame's data may share memory with the chunk it came in: callers
 * that keep it must not modify the chunks they push.
 */
export class FrameDecoder {
  private chunks: Array<Uint8Array> = []
  private head = 0
  private size = 0
  private failed: FrameError | undefined

  constructor(private readonly maxFrameBytes: number = defaultMaxFrameBytes) {}

  /** Feeds a chunk; returns the frames it completed, or the error that ends this stream. */
  push(chunk: Uint8Array): Either.Either<ReadonlyArray<Frame>, FrameError> {
    if (this.failed !== undefined) return Either.left(this.failed)
    if (chunk.length > 0) {
      this.chunks.push(chunk)
      this.size += chunk.length
    }
    const frames: Array<Frame> = []
    while (this.size >= 4) {
      const length = this.peekInt32()
      const error = this.check(length)
      if (error !== undefined) {
        this.failed = error
        this.chunks = []
        this.size = 0
        return Either.left(error)
      }
      if (this.size < 4 + length) break
      const bytes = this.take(4 + length)
      const type = (bytes[4]! << 24 >> 16) | bytes[5]!
      frames.push({ type, data: bytes.subarray(headerBytes) })
    }
    return Either.right(frames)
  }

  /** Bytes of an incomplete frame held back, waiting for the rest. */
  get pending(): number {
    return this.size
  }

  private peekInt32(): number {
    let value = 0
    let chunk = 0
    let offset = this.head
    for (let i = 0; i < 4; i++) {
      while (offset >= this.chunks[chunk]!.length) {
        chunk++
        offset = 0
      }
      value = (value << 8) | this.chunks[chunk]![offset++]!
    }
    return value | 0
  }

  // The next n bytes: a view into the first chunk when they lie in it, else copied into one buffer.
  private take(n: number): Uint8Array {
    const first = this.chunks[0]!
    if (first.length - this.head >= n) {
      const view = first.subarray(this.head, this.head + n)
      this.head += n
      if (this.head === first.length) {
        this.chunks.shift()
        this.head = 0
      }
      this.size -= n
      return view
    }
    const out = new Uint8Array(n)
    let filled = 0
    while (filled < n) {
      const chunk = this.chunks[0]!
      const available = chunk.length - this.head
      const count = Math.min(available, n - filled)
      out.set(chunk.subarray(this.head, this.head + count), filled)
      filled += count
      this.head += count
      if (this.head === chunk.length) {
        this.chunks.shift()
        this.head = 0
      }
    }
    this.size -= n
    return out
  }

  private check(length: number): FrameError | undefined {
    if (length < 0) {
      return new FrameError({ reason: "negative-length", length, message: `frame length ${length} is negative` })
    }
    if (length < 2) {
      return new FrameError({ reason: "too-short", length, message: `frame length ${length} leaves no room for the type` })
    }
    if (length > this.maxFrameBytes) {
      return new FrameError({
        reason: "oversized",
        length,
        message: `frame of ${length} bytes is over the limit of ${this.maxFrameBytes}`
      })
    }
    return undefined
  }
}

/** Net Queue's ENQUEUE payload: UTF-8 items joined by newlines. */
export const encodeItems = (items: ReadonlyArray<string>): Uint8Array => encoder.encode(items.join("\n"))

/** Splits an ENQUEUE payload into its items; invalid UTF-8 is an error, not a replacement character. */
export const decodeItems = (data: Uint8Array): Either.Either<ReadonlyArray<string>, Error> =>
  Either.map(decodeText(data), (text) => text.split("\n"))

/** Decodes UTF-8 strictly (STATUS and ENQUEUE payloads). */
export const decodeText = (data: Uint8Array): Either.Either<string, Error> =>
  Either.try({ try: () => strictDecoder.decode(data), catch: () => new Error("invalid UTF-8") })

const empty = new Uint8Array(0)
const encoder = new TextEncoder()
const strictDecoder = new TextDecoder("utf-8", { fatal: true })

