import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import * as fs from "node:fs"
import * as path from "node:path"
import { ChangeSignal } from "../internal/ChangeSignal.js"

/** How to read a captured output file. */
export interface FollowOptions {
  /** Keep tailing new bytes until the job is done; otherwise read what is there and stop. */
  readonly follow: boolean
  /** Reports whether the writer has finished for good (the attempt ended and its files are flushed). */
  readonly isDone: Effect.Effect<boolean>
  /** The safety-net poll between file-change notifications; default 150 ms. */
  readonly pollIntervalMs?: number
  /** The most bytes read (and emitted) at once; default 64 KiB. */
  readonly chunkBytes?: number
}

/**
 * Streams a file from its start in bounded chunks. With `follow`, it waits for the file to appear
 * and tails new bytes (fs.watch as a hint, a short poll as a safety net) until `isDone` is true and
 * the file is read to its end. A missing file is an empty stream; I/O errors other than a missing
 * file are defects.
 */
export const follow = (file: string, options: FollowOptions): Stream.Stream<Uint8Array> =>
  Stream.unwrapScoped(Effect.gen(function*() {
    const changes = yield* Effect.acquireRelease(
      Effect.sync(() => new ChangeSignal(path.dirname(file), options.pollIntervalMs ?? defaultPollIntervalMs)),
      (signal) => Effect.sync(() => signal.close())
    )
    // Waiting for the file to appear stays interruptible; only the final open is an acquisition.
    yield* awaitFile(file, options, changes)
    const fd = yield* Effect.acquireRelease(
      Effect.sync(() => tryOpen(file)),
      (fd) => fd === undefined ? Effect.void : Effect.sync(() => closeQuietly(fd))
    )
    if (fd === undefined) return Stream.empty
    const reader = new ChunkReader(fd, options.chunkBytes ?? defaultChunkBytes)
    return Stream.repeatEffectOption(pull(reader, options, changes))
  }))

// ---------------------------------------------------------------------------------------------
// Private

const defaultPollIntervalMs = 150
const defaultChunkBytes = 64 * 1024

// When following, waits until the file exists or the job has finished, whichever comes first.
const awaitFile = (file: string, options: FollowOptions, changes: ChangeSignal): Effect.Effect<void> =>
  Effect.suspend(function loop(): Effect.Effect<void> {
    if (!options.follow || fs.existsSync(file)) return Effect.void
    return Effect.flatMap(options.isDone, (done) => done ? Effect.void : Effect.zipRight(changes.wait, Effect.suspend(loop)))
  })

// One pull: the next chunk, or end of stream (None) when not following or when the job is done.
const pull = (
  reader: ChunkReader,
  options: FollowOptions,
  changes: ChangeSignal
): Effect.Effect<Uint8Array, Option.Option<never>> =>
  Effect.suspend(function loop(): Effect.Effect<Uint8Array, Option.Option<never>> {
    const chunk = reader.read()
    if (chunk !== undefined) return Effect.succeed(chunk)
    if (!options.follow) return Effect.fail(Option.none())
    // isDone is checked before the last read so that bytes written just before the end are seen.
    return Effect.flatMap(options.isDone, (done) => {
      const last = reader.read()
      if (last !== undefined) return Effect.succeed(last)
      if (done) return Effect.fail(Option.none())
      return Effect.zipRight(changes.wait, Effect.suspend(loop))
    })
  })

class ChunkReader {
  private position = 0
  private readonly buffer: Buffer

  constructor(private readonly fd: number, chunkBytes: number) {
    this.buffer = Buffer.allocUnsafe(chunkBytes)
  }

  /** The next bytes of the file, copied out of the shared buffer, or undefined at its current end. */
  read(): Uint8Array | undefined {
    const bytes = fs.readSync(this.fd, this.buffer, 0, this.buffer.length, this.position)
    if (bytes === 0) return undefined
    this.position += bytes
    return new Uint8Array(this.buffer.subarray(0, bytes))
  }
}

const tryOpen = (file: string): number | undefined => {
  try {
    return fs.openSync(file, "r")
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    if (code === "ENOENT" || code === "ENOTDIR") return undefined
    throw error
  }
}

const closeQuietly = (fd: number): void => {
  try {
    fs.closeSync(fd)
  } catch {
    // already closed
  }
}
