import * as fs from "node:fs"
import * as path from "node:path"
import type { Readable } from "node:stream"

// Past this many queued chunks the source is paused until the file catches up.
const highWaterChunks = 16

/**
 * Copies a readable stream into a file, keeping at most `cap` bytes. Past the cap, bytes are
 * dropped and one truncation marker line is appended. The file (and its directory) is created
 * on the first byte, so a silent stream costs no file system work. `onDone` runs once, after
 * the source has closed and every byte has reached the file and the descriptor is closed.
 */
export class CappedFile {
  private written = 0
  private truncated = false
  private queue: Array<Buffer> = []
  private writing = false
  private sourceClosed = false
  private failed = false
  private done = false
  private source: Readable | undefined
  private fd = -1

  constructor(
    private readonly path: string,
    private readonly cap: number,
    private readonly onDone: () => void
  ) {}

  /** Starts copying from a stream. */
  attach(source: Readable): void {
    this.source = source
    source.on("data", (chunk: Buffer) => this.push(chunk))
    source.on("error", () => {})
    source.on("close", () => {
      this.sourceClosed = true
      this.settle()
    })
  }

  /** Finishes without a source (the stream was never opened). */
  closeEmpty(): void {
    this.sourceClosed = true
    this.settle()
  }

  private push(chunk: Buffer): void {
    if (this.truncated || this.failed) return
    if (this.fd === -1 && !this.open()) return
    const room = this.cap - this.written
    if (chunk.length > room) {
      if (room > 0) this.queue.push(chunk.subarray(0, room))
      this.written = this.cap
      this.truncated = true
      this.queue.push(Buffer.from(`\n[troupe: output truncated at ${this.cap} bytes]\n`))
    } else {
      this.written += chunk.length
      this.queue.push(chunk)
    }
    if (!this.writing) this.flush()
    else if (this.queue.length > highWaterChunks) this.source?.pause()
  }

  private open(): boolean {
    try {
      this.fd = fs.openSync(this.path, "w")
    } catch {
      try {
        fs.mkdirSync(path.dirname(this.path), { recursive: true })
        this.fd = fs.openSync(this.path, "w")
      } catch {
        this.failed = true
        return false
      }
    }
    return true
  }

  private flush(): void {
    const buffer = this.queue.length === 1 ? this.queue[0]! : Buffer.concat(this.queue)
    this.queue = []
    this.writing = true
    this.writeAll(buffer, 0)
  }

  private writeAll(buffer: Buffer, offset: number): void {
    fs.write(this.fd, buffer, offset, buffer.length - offset, null, (error, bytes) => {
      if (error) {
        // The disk refused (full, gone): keep draining the pipe so the job is not blocked.
        this.failed = true
        this.queue = []
      } else if (offset + bytes < buffer.length) {
        return this.writeAll(buffer, offset + bytes)
      }
      this.writing = false
      if (this.queue.length > 0) return this.flush()
      this.source?.resume()
      this.settle()
    })
  }

  private settle(): void {
    if (this.done || !this.sourceClosed || this.writing || this.queue.length > 0) return
    this.done = true
    if (this.fd !== -1) {
      try {
        fs.closeSync(this.fd)
      } catch {
        // already closed
      }
    }
    this.onDone()
  }
}
