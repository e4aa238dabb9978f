import * as Data from "effect/Data"
import * as Either from "effect/Either"
import type * as Net from "node:net"
import { encode, FrameDecoder, type FrameError } from "../../protocol/Frame.js"
import { CloseCode, encodeClose, FramedType } from "./FramedWire.js"

/** Why a framed connection ended. */
export class ConnectionClosed extends Data.TaggedError("ConnectionClosed")<{
  readonly reason:
    /** The peer closed the socket, or it failed. */
    | "lost"
    /** Nothing arrived from the peer within the keepalive timeout. */
    | "keepalive-timeout"
    /** The peer sent bytes that are not valid frames; `frameError` says how. */
    | "frame-error"
    /** This side closed it. */
    | "closed"
  readonly message: string
  readonly frameError?: FrameError | undefined
}> {}

/** How a connection frames, batches and watches its socket. */
export interface ConnectionOptions {
  /** The largest frame accepted from the peer. */
  readonly maxFrameBytes: number
  /** Send a PING after this many milliseconds without hearing from the peer. */
  readonly keepaliveIntervalMs: number
  /** Declare the peer dead after this many milliseconds without hearing from it. */
  readonly keepaliveTimeoutMs: number
}

/** What a connection reports to its owner. */
export interface ConnectionHandler {
  /** A frame other than PING/PONG arrived (those are answered here). */
  readonly onFrame: (type: number, data: Uint8Array) => void
  /** A write is about to happen: the last chance to add frames to it. */
  readonly onFlush: () => void
  /** The connection ended; called once. */
  readonly onClose: (closed: ConnectionClosed) => void
}

/**
 * One framed socket after the handshake: reassembles frames from reads, coalesces every frame
 * pushed during one turn of the event loop into a single socket write, answers PINGs and sends
 * its own when the peer is quiet, and closes the socket when the peer stays silent past the
 * keepalive timeout or sends a bad frame.
 */
export class FramedConnection {
  private handler: ConnectionHandler = idleHandler
  private readonly decoder: FrameDecoder
  private queue: Array<Uint8Array> = []
  private queuedBytes = 0
  private flushScheduled = false
  private flushing = false
  private lastReceived = Date.now()
  private timer: NodeJS.Timeout | undefined
  private ended: ConnectionClosed | undefined

  constructor(
    readonly socket: Net.Socket,
    private readonly options: ConnectionOptions
  ) {
    this.decoder = new FrameDecoder(options.maxFrameBytes)
  }

  /** Starts reading: feeds the bytes left over from the handshake first, then resumes the socket. */
  start(handler: ConnectionHandler, leftover: Uint8Array = empty): void {
    this.handler = handler
    this.socket.setNoDelay(true)
    this.socket.on("data", this.onData)
    this.socket.on("close", this.onSocketClose)
    this.socket.on("error", this.onSocketError)
    // Checked often enough that a silent peer is dropped between the timeout and 1.25 times it.
    const tick = Math.max(1, Math.min(this.options.keepaliveIntervalMs, this.options.keepaliveTimeoutMs / 4))
    this.timer = setInterval(this.checkAlive, tick)
    this.timer.unref()
    if (leftover.length > 0) this.onData(leftover)
    if (this.ended === undefined) this.socket.resume()
  }

  /** Replaces the handler, for a connection handed from the opening phase to a session. */
  setHandler(handler: ConnectionHandler): void {
    this.handler = handler
  }

  /** True once the connection has ended. */
  get isClosed(): boolean {
    return this.ended !== undefined
  }

  /** Queues a frame for the next write. */
  push(frame: Uint8Array): void {
    if (this.ended !== undefined) return
    this.queue.push(frame)
    this.queuedBytes += frame.length
    this.requestFlush()
  }

  /** Asks for a write at the end of this turn of the event loop, even with nothing queued (onFlush may add). */
  requestFlush(): void {
    if (this.flushScheduled || this.flushing || this.ended !== undefined) return
    this.flushScheduled = true
    // After this turn's microtasks (where Effect runs fibers): everything they queue goes in one write.
    setImmediate(this.flush)
  }

  /** Writes now what is queued (and what onFlush adds), without waiting for the end of the turn. */
  flushNow(): void {
    if (!this.flushing) this.flush()
  }

  /** Sends a CLOSE frame after whatever is queued, then ends the socket. */
  close(code: number, reason: string): void {
    if (this.ended !== undefined) return
    this.flush(encodeClose(code, reason))
    this.finish(new ConnectionClosed({ reason: "closed", message: reason }))
    this.socket.end()
    setTimeout(() => this.socket.destroy(), 1000).unref()
  }

  /** Drops the socket at once, without a goodbye; for connections that are dead or being replaced. */
  destroy(message: string): void {
    if (this.ended !== undefined) return
    this.finish(new ConnectionClosed({ reason: "closed", message }))
    this.socket.destroy()
  }

  // ----- private

  // Writes what is queued and what onFlush adds, then `last` (a CLOSE), in one socket write.
  private readonly flush = (last?: Uint8Array): void => {
    this.flushScheduled = false
    if (this.ended !== undefined) return
    this.flushing = true
    try {
      this.handler.onFlush()
    } finally {
      this.flushing = false
    }
    if (last instanceof Uint8Array) {
      this.queue.push(last)
      this.queuedBytes += last.length
    }
    if (this.queue.length === 0) return
    const out = this.queue.length === 1 ? this.queue[0]! : Buffer.concat(this.queue, this.queuedBytes)
    this.queue = []
    this.queuedBytes = 0
    this.socket.write(out)
  }

  private readonly onData = (chunk: Uint8Array): void => {
    this.lastReceived = Date.now()
    const result = this.decoder.push(chunk)
    if (Either.isLeft(result)) return this.failFraming(result.left)
    const frames = result.right
    for (let i = 0; i < frames.length && this.ended === undefined; i++) {
      const frame = frames[i]!
      if (frame.type === FramedType.Ping) this.push(pong)
      else if (frame.type !== FramedType.Pong) this.handler.onFrame(frame.type, frame.data)
    }
  }

  private failFraming(error: FrameError): void {
    this.socket.off("data", this.onData)
    this.queue = []
    this.queuedBytes = 0
    this.socket.end(encodeClose(CloseCode.Protocol, error.message))
    setTimeout(() => this.socket.destroy(), 1000).unref()
    this.finish(new ConnectionClosed({ reason: "frame-error", message: error.message, frameError: error }))
  }

  private readonly checkAlive = (): void => {
    const silent = Date.now() - this.lastReceived
    if (silent >= this.options.keepaliveTimeoutMs) {
      this.socket.destroy()
      this.finish(
        new ConnectionClosed({
          reason: "keepalive-timeout",
          message: `no frame from the peer for ${silent} ms (keepalive timeout ${this.options.keepaliveTimeoutMs} ms)`
        })
      )
    } else if (silent >= this.options.keepaliveIntervalMs) {
      this.push(ping)
    }
  }

  private readonly onSocketClose = (): void => {
    this.finish(new ConnectionClosed({ reason: "lost", message: "the connection closed" }))
  }

  private readonly onSocketError = (cause: Error): void => {
    this.finish(new ConnectionClosed({ reason: "lost", message: `the connection failed (${cause.message})` }))
  }

  private finish(closed: ConnectionClosed): void {
    if (this.ended !== undefined) return
    this.ended = closed
    if (this.timer !== undefined) clearInterval(this.timer)
    this.queue = []
    this.queuedBytes = 0
    this.handler.onClose(closed)
  }
}

const empty = new Uint8Array(0)
const ping = encode(FramedType.Ping)
const pong = encode(FramedType.Pong)
const idleHandler: ConnectionHandler = { onFrame: () => {}, onFlush: () => {}, onClose: () => {} }
