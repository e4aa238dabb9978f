import * as Data from "effect/Data"
import * as Either from "effect/Either"
import type * as Net from "node:net"
import { decodeItems, decodeText, FrameDecoder, FrameType } from "../protocol/Frame.js"
import { InFlight, type Origin } from "./ItemQueue.js"
import * as Wire from "./Wire.js"

/** Why a Net Queue connection ended. */
export class PeerClosed extends Data.TaggedError("PeerClosed")<{
  readonly reason:
    /** The peer sent DISCONN. */
    | "disconn"
    /** The socket closed or failed between frames. */
    | "lost"
    /** The socket closed in the middle of a frame. */
    | "cut-off"
    /** A negative, too short or oversized length (garbage bytes read as a length). */
    | "frame-error"
    /** A frame type this protocol does not have. */
    | "unknown-type"
    /** STATUS or ENQUEUE data that is not UTF-8. */
    | "bad-utf8"
    /** Frames out of order: no CONN first, an ACK before negotiation or of items never sent. */
    | "protocol"
    /** No PONG within the ping timeout. */
    | "ping-timeout"
    /** This side closed it. */
    | "closed"
  readonly message: string
}> {}

/** Items given back by a closed connection: unsent ones, and (with a Troupe peer) unacknowledged ones. */
export interface Leftover {
  readonly items: Array<string>
  readonly origins: Array<Origin | undefined>
  readonly seqs: Array<number>
}

/** How a connection frames and watches its socket. */
export interface PeerOptions {
  readonly maxFrameBytes: number
  /** Send a PING this often. */
  readonly pingIntervalMs: number
  /** Close the connection when no PONG came for this long. */
  readonly pingTimeoutMs: number
}

/** What a connection reports to its owner (a server or a client). */
export interface PeerHandler {
  /** CONN arrived (the first frame, always). */
  readonly onConn: (peer: Peer) => void
  /** STATUS arrived, as text. */
  readonly onStatus: (peer: Peer, text: string) => void
  /** ENQUEUE arrived: its items, the first numbered `firstSeq` on this connection. */
  readonly onItems: (peer: Peer, items: ReadonlyArray<string>, firstSeq: number) => void
  /** REPORT arrived (only from a Troupe peer). */
  readonly onReport: (peer: Peer, data: Uint8Array) => void
  /** A PONG arrived. */
  readonly onPong?: (peer: Peer) => void
  /** The peer may take more items: acknowledgements came, or the socket drained. */
  readonly onWindow: (peer: Peer) => void
  /** The connection ended; called once, with the items it gives back. */
  readonly onClose: (peer: Peer, closed: PeerClosed, leftover: Leftover) => void
}

/**
 * One Net Queue connection, either end: reassembles frames, answers PING, checks PONGs, numbers the
 * items each way, and coalesces everything queued during one turn of the event loop (control
 * frames, one ENQUEUE of every pending item, one ACK) into a single socket write. With a Troupe peer
 * (`troupe`), items sent stay in flight until acknowledged and items received are acknowledged as
 * their owner finishes them (`itemDone`). Nothing here runs an Effect: it is the per-item path.
 */
export class Peer implements Origin {
  /** The peer announced `troupe=1`: it acknowledges items and takes ACK and REPORT frames. */
  troupe = false
  /** CONN has arrived. */
  connected = false
  /** Items sent so far on this connection (the last item's number). */
  sent = 0
  /** Items received so far on this connection. */
  received = 0
  /** The owner's object for this connection (a ClientConn on a server). */
  owner: unknown = undefined

  private readonly decoder: FrameDecoder
  private frames: Array<Uint8Array> = []
  private pendingItems: Array<string> = []
  private pendingOrigins: Array<Origin | undefined> = []
  private pendingSeqs: Array<number> = []
  private readonly inFlight = new InFlight()
  private ackRanges: Array<readonly [number, number]> = []
  private ackFirst = 0
  private ackCount = 0
  private flushScheduled = false
  private paused = false
  private lastPong = Date.now()
  private lastPing = 0
  private timer: NodeJS.Timeout | undefined
  private ended: PeerClosed | undefined

  constructor(
    readonly socket: Net.Socket,
    readonly address: string,
    private readonly options: PeerOptions,
    private readonly handler: PeerHandler
  ) {
    this.decoder = new FrameDecoder(options.maxFrameBytes)
  }

  /** Starts reading and pinging. */
  start(): void {
    this.socket.setNoDelay(true)
    this.socket.on("data", this.onData)
    this.socket.on("close", this.onSocketClose)
    this.socket.on("error", this.onSocketError)
    this.socket.on("drain", this.onDrain)
    const tick = Math.max(1, Math.min(this.options.pingIntervalMs, this.options.pingTimeoutMs / 4))
    this.timer = setInterval(this.checkAlive, tick)
    this.timer.unref()
  }

  /** True once the connection has ended. */
  get isClosed(): boolean {
    return this.ended !== undefined
  }

  /** Items queued or sent and not yet finished by the peer: pending ones, plus unacknowledged ones. */
  get outstanding(): number {
    return this.pendingItems.length + this.inFlight.count
  }

  /** Bytes waiting in the socket's buffer. */
  get buffered(): number {
    return this.socket.writableLength
  }

  /** Queues a control frame (CONN, STATUS, ...) for the next write. */
  send(frame: Uint8Array): void {
    if (this.ended !== undefined) return
    this.frames.push(frame)
    this.schedule()
  }

  /** Queues an item for the next ENQUEUE; `origin.itemDone(originSeq)` runs once the peer has it (acknowledged or written). */
  sendItem(item: string, origin: Origin | undefined, originSeq: number): void {
    if (this.ended !== undefined) return
    this.pendingItems.push(item)
    this.pendingOrigins.push(origin)
    this.pendingSeqs.push(originSeq)
    this.schedule()
  }

  /** The received item numbered `seq` is finished: acknowledge it with the next write (Troupe peers only). */
  itemDone(seq: number): void {
    if (this.ended !== undefined || !this.troupe) return
    if (this.ackCount > 0 && seq === this.ackFirst + this.ackCount) {
      this.ackCount++
    } else {
      if (this.ackCount > 0) this.ackRanges.push([this.ackFirst, this.ackCount])
      this.ackFirst = seq
      this.ackCount = 1
    }
    this.schedule()
  }

  /** Stops reading from the socket (backpressure on a producer); PONGs are not expected meanwhile. */
  pause(): void {
    if (this.paused || this.ended !== undefined) return
    this.paused = true
    this.socket.pause()
  }

  /** Reads again after `pause`. */
  resume(): void {
    if (!this.paused || this.ended !== undefined) return
    this.paused = false
    this.lastPong = Date.now()
    this.socket.resume()
  }

  /** True while reading is paused. */
  get isPaused(): boolean {
    return this.paused
  }

  /** Writes now whatever is queued. */
  readonly flush = (): void => {
    this.flushScheduled = false
    if (this.ended !== undefined) return
    const parts = this.frames
    this.frames = []
    if (this.pendingItems.length > 0) this.flushItems(parts)
    if (this.ackCount > 0) {
      this.ackRanges.push([this.ackFirst, this.ackCount])
      this.ackCount = 0
    }
    if (this.ackRanges.length > 0) {
      parts.push(Wire.encodeAck(this.ackRanges))
      this.ackRanges = []
    }
    if (parts.length === 0) return
    this.socket.write(parts.length === 1 ? parts[0]! : Buffer.concat(parts))
  }

  /**
   * Ends the connection. With `disconn`, whatever is queued is written, then DISCONN, then the
   * socket is ended; otherwise it is dropped at once. The owner's onClose gets the reason.
   */
  close(reason: PeerClosed["reason"], message: string, disconn: boolean): void {
    if (this.ended !== undefined) return
    if (disconn) {
      this.flush()
      this.socket.end(Wire.disconn)
      setTimeout(() => this.socket.destroy(), 1000).unref()
    } else {
      this.socket.destroy()
    }
    this.finish(new PeerClosed({ reason, message }))
  }

  // ----- private

  private schedule(): void {
    if (this.flushScheduled) return
    this.flushScheduled = true
    setImmediate(this.flush)
  }

  // One ENQUEUE per frame-size slice of the pending items; with a Troupe peer they stay in flight.
  private flushItems(parts: Array<Uint8Array>): void {
    const items = this.pendingItems
    const origins = this.pendingOrigins
    const seqs = this.pendingSeqs
    this.pendingItems = []
    this.pendingOrigins = []
    this.pendingSeqs = []
    this.encodeSlices(items, 0, items.length, parts)
    for (let i = 0; i < items.length; i++) {
      const seq = ++this.sent
      if (this.troupe) this.inFlight.add(seq, items[i]!, origins[i], seqs[i]!)
      else if (origins[i] !== undefined) origins[i]!.itemDone(seqs[i]!)
    }
  }

  private encodeSlices(items: ReadonlyArray<string>, from: number, to: number, parts: Array<Uint8Array>): void {
    const frame = Wire.encodeEnqueue(from === 0 && to === items.length ? items : items.slice(from, to))
    if (frame.length - 4 <= this.options.maxFrameBytes || to - from === 1) {
      parts.push(frame)
      return
    }
    const middle = from + Math.floor((to - from) / 2)
    this.encodeSlices(items, from, middle, parts)
    this.encodeSlices(items, middle, to, parts)
  }

  private readonly onData = (chunk: Buffer): void => {
    const result = this.decoder.push(chunk)
    if (Either.isLeft(result)) return this.close("frame-error", result.left.message, false)
    const frames = result.right
    for (let i = 0; i < frames.length && this.ended === undefined; i++) {
      this.onFrame(frames[i]!.type, frames[i]!.data)
    }
  }

  private onFrame(type: number, data: Uint8Array): void {
    if (!Wire.isKnownType(type)) return this.close("unknown-type", `unknown frame type ${type}`, false)
    if (!this.connected) {
      if (type !== FrameType.Conn) return this.close("protocol", `expected CONN first, got frame type ${type}`, false)
      this.connected = true
      return this.handler.onConn(this)
    }
    switch (type) {
      case FrameType.Ping:
        return this.send(Wire.pong)
      case FrameType.Pong:
        this.lastPong = Date.now()
        return this.handler.onPong?.(this)
      case FrameType.Disconn:
        return this.close("disconn", "the peer sent DISCONN", false)
      case FrameType.Status:
        return Either.match(decodeText(data), {
          onLeft: () => this.close("bad-utf8", "STATUS data is not valid UTF-8", false),
          onRight: (text) => this.handler.onStatus(this, text)
        })
      case FrameType.Enqueue:
        return Either.match(decodeItems(data), {
          onLeft: () => this.close("bad-utf8", "ENQUEUE data is not valid UTF-8", false),
          onRight: (items) => {
            const first = this.received + 1
            this.received += items.length
            this.handler.onItems(this, items, first)
          }
        })
      case Wire.NetQueueType.Ack:
        return this.onAck(data)
      case Wire.NetQueueType.Report:
        if (!this.troupe) return this.close("protocol", "REPORT from a peer that did not announce troupe=1", false)
        return this.handler.onReport(this, data)
      default:
        return // a second CONN: harmless
    }
  }

  private onAck(data: Uint8Array): void {
    if (!this.troupe) return this.close("protocol", "ACK from a peer that did not announce troupe=1", false)
    const ranges = Wire.decodeAck(data)
    if (ranges === undefined) return this.close("protocol", `ACK of ${data.length} bytes is not whole ranges`, false)
    for (const [first, count] of ranges) {
      if (first < 1 || count < 1 || first + count - 1 > this.sent) {
        return this.close("protocol", `ACK of items ${first}..${first + count - 1}, but ${this.sent} were sent`, false)
      }
      this.inFlight.ack(first, count)
    }
    this.handler.onWindow(this)
  }

  private readonly onDrain = (): void => {
    if (this.ended === undefined) this.handler.onWindow(this)
  }

  private readonly checkAlive = (): void => {
    const now = Date.now()
    if (!this.paused && now - this.lastPong >= this.options.pingTimeoutMs) {
      return this.close("ping-timeout", `no PONG for ${now - this.lastPong} ms (timeout ${this.options.pingTimeoutMs} ms)`, false)
    }
    if (now - this.lastPing >= this.options.pingIntervalMs) {
      this.lastPing = now
      this.send(Wire.ping)
    }
  }

  private readonly onSocketClose = (): void => this.lost("the connection closed")

  private readonly onSocketError = (cause: Error): void => this.lost(`the connection failed (${cause.message})`)

  private lost(message: string): void {
    const pending = this.decoder.pending
    this.finish(
      pending > 0
        ? new PeerClosed({ reason: "cut-off", message: `${message} in the middle of a frame (${pending} bytes of it arrived)` })
        : new PeerClosed({ reason: "lost", message })
    )
  }

  private finish(closed: PeerClosed): void {
    if (this.ended !== undefined) return
    this.ended = closed
    if (this.timer !== undefined) clearInterval(this.timer)
    this.frames = []
    this.ackRanges = []
    this.ackCount = 0
    const sent = this.troupe ? this.inFlight.drain() : { items: [], origins: [], seqs: [] }
    const leftover: Leftover = {
      items: sent.items.concat(this.pendingItems),
      origins: sent.origins.concat(this.pendingOrigins),
      seqs: sent.seqs.concat(this.pendingSeqs)
    }
    this.pendingItems = []
    this.pendingOrigins = []
    this.pendingSeqs = []
    this.handler.onClose(this, closed, leftover)
  }
}
