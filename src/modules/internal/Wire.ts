/**
 * The channel between the module server and a worker process: a dedicated pipe (the child's fd 3,
 * a Unix socket pair) carrying length-prefixed msgpack messages. Writes made in one turn of the
 * event loop's job leave in one socket write. Both ends use this module; it imports nothing from Effect,
 * so that a worker starts fast and pays no runtime per call.
 *
 * Messages are small arrays whose first element is the kind. Server to worker:
 *   [Call, id, fn, args, clientIp]   [Load, spec]   [Stop]   [Limit, n]   [Retire]
 * Worker to server:
 *   [Ok, id, value]   [Err, id, reason, message, traceback]   [Ready, info]
 *   [LoadFailed, message, traceback]   [Files, paths]   [Hello]   [Retired, running]   [Freed]
 *
 * The worker runs at most `Limit` calls at once, counting the server's calls and those of the
 * clients it serves directly (DirectWire.ts); the server sets the limit so that a module never runs
 * more than its concurrency across worker generations. A worker told to `Retire` takes no new
 * direct calls, answers with the number of calls it is running, then `Freed` each time one ends.
 */
import { Packr, Unpackr } from "msgpackr"
import type * as Net from "node:net"
import type { ModuleFailure } from "../Errors.js"

/** Message kinds from the server to a worker. */
export const ToWorker = { Call: 0, Load: 1, Stop: 2, Limit: 3, Retire: 4 } as const

/** Message kinds from a worker to the server. */
export const FromWorker = { Ok: 0, Err: 1, Ready: 2, LoadFailed: 3, Files: 4, Hello: 5, Retired: 6, Freed: 7 } as const

/** What a worker is told to load. */
export interface LoadSpec {
  /** The module's name in the config (for help text and logs). */
  readonly name: string
  /** The module file, absolute. */
  readonly file: string
  /** The export to use: a name, `default`, or `*` for the whole module namespace. */
  readonly exportName: string
  /** The dispatch method, or null to call functions by name. */
  readonly dispatch: string | null
  /** Register the TypeScript loader before importing. */
  readonly typescript: boolean
}

/** What a worker reports once its module is imported and initialised. */
export interface ReadyInfo {
  /** What the export turned out to be. */
  readonly kind: "class" | "function" | "object"
  /** The functions a call may name (empty with a dispatch method, which takes any name). */
  readonly functions: ReadonlyArray<string>
  /** The module's help text: its own, or generated from its functions. */
  readonly help: string
  /** The local files the module loaded (itself first), absolute paths. */
  readonly files: ReadonlyArray<string>
}

/** A message from the server to a worker. */
export type ToWorkerMessage =
  | readonly [kind: typeof ToWorker.Call, id: number, fn: string | null, args: ReadonlyArray<unknown>, clientIp: string]
  | readonly [kind: typeof ToWorker.Load, spec: LoadSpec]
  | readonly [kind: typeof ToWorker.Stop]
  | readonly [kind: typeof ToWorker.Limit, calls: number]
  | readonly [kind: typeof ToWorker.Retire]

/** A message from a worker to the server. */
export type FromWorkerMessage =
  | readonly [kind: typeof FromWorker.Ok, id: number, value: unknown]
  | readonly [kind: typeof FromWorker.Err, id: number, reason: ModuleFailure, message: string, traceback?: string]
  | readonly [kind: typeof FromWorker.Ready, info: ReadyInfo]
  | readonly [kind: typeof FromWorker.LoadFailed, message: string, traceback?: string, files?: ReadonlyArray<string>]
  | readonly [kind: typeof FromWorker.Files, paths: ReadonlyArray<string>]
  | readonly [kind: typeof FromWorker.Hello]
  | readonly [kind: typeof FromWorker.Retired, running: number]
  | readonly [kind: typeof FromWorker.Freed]

/** The largest message either end accepts: 256 MiB. */
export const maxMessageBytes = 256 * 1024 * 1024

/**
 * Reads length-prefixed msgpack messages from a byte stream, whatever the chunking. The peer is
 * this server's own worker (or the server), so a message is taken as the type the channel carries.
 */
export class FrameReader<M> {
  private buffer: Buffer = Buffer.alloc(0)
  private readonly unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true })

  constructor(
    private readonly onMessage: (message: M) => void,
    private readonly onError: (error: Error) => void,
    private readonly maxBytes: number = maxMessageBytes
  ) {}

  /** Feeds a chunk; calls `onMessage` for every complete message in order. */
  push(chunk: Buffer): void {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk])
    let at = 0
    const buffer = this.buffer
    while (buffer.length - at >= 4) {
      const size = buffer.readUInt32BE(at)
      if (size > this.maxBytes) {
        this.buffer = Buffer.alloc(0)
        return this.onError(new Error(`a message of ${size} bytes is over the limit`))
      }
      if (buffer.length - at - 4 < size) break
      let message: M
      try {
        message = this.unpackr.unpack(buffer.subarray(at + 4, at + 4 + size)) as M
      } catch (error) {
        this.buffer = Buffer.alloc(0)
        return this.onError(error instanceof Error ? error : new Error(String(error)))
      }
      at += 4 + size
      this.onMessage(message)
    }
    this.buffer = at === buffer.length ? Buffer.alloc(0) : buffer.subarray(at)
  }
}

/**
 * Writes length-prefixed msgpack messages. Everything written in one job (a callback and the
 * promise jobs it starts, where Effect's fibers run) leaves in one write, flushed by
 * `process.nextTick`: measured against `setImmediate` it batches as well and adds no loop turn
 * (`scratchpad/modules-hop.ts`).
 */
export class FrameWriter<M extends ReadonlyArray<unknown>> {
  private readonly packr = new Packr({ useRecords: false })
  private pending: Array<Buffer> = []
  private scheduled = false

  constructor(private readonly socket: Net.Socket) {}

  /** Encodes and queues a message; throws when the value cannot be encoded (nothing is queued then). */
  write(message: M): void {
    const body = this.packr.pack(message)
    if (body.length > maxMessageBytes) throw new Error(`a message of ${body.length} bytes is over the limit`)
    const head = Buffer.allocUnsafe(4)
    head.writeUInt32BE(body.length)
    // Packr reuses its buffer: copy the bytes out before the next pack.
    this.pending.push(head, Buffer.from(body))
    if (!this.scheduled) {
      this.scheduled = true
      process.nextTick(this.flush)
    }
  }

  /** Writes what is queued now, without waiting for the end of the turn. */
  readonly flush = (): void => {
    this.scheduled = false
    if (this.pending.length === 0 || this.socket.destroyed) {
      this.pending = []
      return
    }
    const data = this.pending.length === 2 ? Buffer.concat(this.pending, this.pending[0]!.length + this.pending[1]!.length) : Buffer.concat(this.pending)
    this.pending = []
    this.socket.write(data)
  }
}
