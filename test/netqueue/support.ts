// Helpers for Net Queue tests: a raw socket peer that speaks frames byte by byte, and log capture.
import * as Either from "effect/Either"
import * as Net from "node:net"
import { decodeItems, encode, type Frame, FrameDecoder } from "../../src/protocol/Frame.js"
import type { LogFunction } from "../../src/netqueue/Server.js"

/** A raw TCP peer: writes bytes, decodes the frames it receives, and notices when the other side closes. */
export class RawPeer {
  readonly frames: Array<Frame> = []
  /** Every byte received, in order. */
  bytes: Buffer = Buffer.alloc(0)
  closed = false
  private readonly decoder = new FrameDecoder()
  private wakers: Array<() => void> = []

  private constructor(readonly socket: Net.Socket) {
    socket.on("data", (chunk) => {
      this.bytes = Buffer.concat([this.bytes, chunk])
      const result = this.decoder.push(chunk)
      if (Either.isRight(result)) this.frames.push(...result.right)
      this.wake()
    })
    socket.on("close", () => {
      this.closed = true
      this.wake()
    })
    socket.on("error", () => {})
  }

  static connect(port: number): Promise<RawPeer> {
    return new Promise((resolve, reject) => {
      const socket = Net.connect({ host: "127.0.0.1", port, noDelay: true })
      socket.once("connect", () => resolve(new RawPeer(socket)))
      socket.once("error", reject)
    })
  }

  /** Listens on a free port; each connection becomes a RawPeer passed to `onPeer`. */
  static listen(onPeer: (peer: RawPeer) => void): Promise<Net.Server> {
    return new Promise((resolve) => {
      const server = Net.createServer({ noDelay: true }, (socket) => onPeer(new RawPeer(socket)))
      server.listen(0, "127.0.0.1", () => resolve(server))
    })
  }

  write(bytes: Uint8Array): void {
    this.socket.write(bytes)
  }

  send(type: number, data: string | Uint8Array = new Uint8Array(0)): void {
    this.write(encode(type, typeof data === "string" ? Buffer.from(data, "utf8") : data))
  }

  /** Waits for the first received frame of `type` at or after index `from`; returns its index. */
  async waitFor(type: number, from = 0, timeoutMs = 5000): Promise<number> {
    return this.until(() => {
      const index = this.frames.findIndex((frame, i) => i >= from && frame.type === type)
      return index === -1 ? undefined : index
    }, timeoutMs, `frame type ${type}`)
  }

  /** Waits until the other side has closed the connection. */
  waitClosed(timeoutMs = 5000): Promise<true> {
    return this.until(() => (this.closed ? true : undefined), timeoutMs, "the connection to close")
  }

  /** Every item received in ENQUEUE frames so far. */
  items(): Array<string> {
    return this.frames.filter((f) => f.type === 6).flatMap((f) => [...Either.getOrThrow(decodeItems(f.data))])
  }

  /** Waits until at least n items have arrived. */
  waitItems(n: number, timeoutMs = 5000): Promise<Array<string>> {
    return this.until(() => (this.items().length >= n ? this.items() : undefined), timeoutMs, `${n} items`)
  }

  destroy(): void {
    this.socket.destroy()
  }

  private until<A>(check: () => A | undefined, timeoutMs: number, what: string): Promise<A> {
    return new Promise((resolve, reject) => {
      const attempt = () => {
        const value = check()
        if (value === undefined) return false
        clearTimeout(timer)
        resolve(value)
        return true
      }
      const timer = setTimeout(() => {
        this.wakers = this.wakers.filter((w) => w !== waker)
        reject(new Error(`timed out waiting for ${what}; got types ${this.frames.map((f) => f.type).join(",")}`))
      }, timeoutMs)
      const waker = () => {
        if (attempt()) this.wakers = this.wakers.filter((w) => w !== waker)
      }
      if (!attempt()) this.wakers.push(waker)
    })
  }

  private wake(): void {
    for (const waker of this.wakers.slice()) waker()
  }
}

/** A log function that keeps every line, and a way to wait for a line matching a pattern. */
export const captureLog = () => {
  const lines: Array<string> = []
  const log: LogFunction = (level, message) => {
    lines.push(`${level} ${message}`)
  }
  const waitFor = async (pattern: RegExp, timeoutMs = 5000): Promise<string> => {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const line = lines.find((l) => pattern.test(l))
      if (line !== undefined) return line
      if (Date.now() > deadline) throw new Error(`no log line matching ${pattern}; lines:\n${lines.join("\n")}`)
      await new Promise((resolve) => setTimeout(resolve, 10))
    }
  }
  return { lines, log, waitFor }
}

/** Awaits a promise that must reject (with an instance of `type`, when given); returns the error. */
export const rejects = async (promise: Promise<unknown>, type?: abstract new(...args: Array<any>) => unknown): Promise<unknown> => {
  let error: unknown
  try {
    await promise
  } catch (caught) {
    error = caught
  }
  if (error === undefined) throw new Error("expected a rejection")
  if (type !== undefined && !(error instanceof type)) throw new Error(`expected ${type.name}, got ${String(error)}`)
  return error
}
