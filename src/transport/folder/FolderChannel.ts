import * as RpcSerialization from "@effect/rpc/RpcSerialization"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import * as fs from "node:fs"
import * as path from "node:path"
import { ChangeSignal } from "../../internal/ChangeSignal.js"
import { consume, isInFlight, quarantine, writeAtomic } from "./FolderFiles.js"

/**
 * A one-way channel of message files between a writer and a reader of one folder. The writer
 * batches everything pending into one file, `<sender>-<seq>.msg` (msgpack), written under a dot
 * name and renamed into place; the reader takes each sender's files in `seq` order, drops repeats,
 * holds back a file whose predecessor is still in transit, and quarantines what it cannot read.
 */

/** The version written into every message file; files of other versions are quarantined. */
export const formatVersion = 1

/** A sender's id: lower-case letters and digits, so that it is safe in file names and in rsync filters. */
export const SenderPattern = /^[a-z0-9]{1,64}$/

/** One message file: who sent it, its place in that sender's sequence, and the messages it carries. */
export interface Envelope {
  readonly from: string
  readonly seq: number
  readonly sentAt: number
  readonly messages: ReadonlyArray<unknown>
}

/** The file name of a sender's `seq`-th message file; zero-padded so that names sort in send order. */
export const fileName = (from: string, seq: number): string => `${from}-${String(seq).padStart(12, "0")}.msg`

/** Encodes an envelope as one msgpack value (bigints and byte arrays survive, unlike JSON). */
export const encodeEnvelope = (envelope: Envelope): Uint8Array =>
  packer.encode({ troupe: formatVersion, ...envelope }) as Uint8Array

/** Decodes a message file's bytes, or says why they are not a message file of this name. */
export const decodeEnvelope = (bytes: Uint8Array, name: string): Envelope | string => {
  const parsed = parseName(name)
  if (parsed === undefined) return "the file name is not <sender>-<12-digit seq>.msg"
  let values: ReadonlyArray<unknown>
  try {
    values = RpcSerialization.msgPack.unsafeMake().decode(bytes)
  } catch (error) {
    return `not msgpack (garbage): ${(error as Error).message}`
  }
  if (values.length !== 1) return values.length === 0 ? "an incomplete msgpack value (torn)" : "not one msgpack value (garbage)"
  const value = values[0]
  if (typeof value !== "object" || value === null || Array.isArray(value)) return "not a message object"
  const record = value as Record<string, unknown>
  if (record.troupe !== formatVersion) return `unknown format version ${JSON.stringify(record.troupe)}`
  if (record.from !== parsed.from || record.seq !== parsed.seq) return "the sender or sequence number does not match the file name"
  if (!Array.isArray(record.messages)) return "no message list"
  const sentAt = typeof record.sentAt === "number" ? record.sentAt : 0
  return { from: parsed.from, seq: parsed.seq, sentAt, messages: record.messages }
}

/** The writing end: messages queue up and leave in batches, one file per batch, in order. */
export interface Writer {
  /** Queues a message for the next file; never waits for the disk. */
  readonly push: (message: unknown) => void
  /** Waits until everything pushed so far is in the folder. */
  readonly flush: Effect.Effect<void>
  /** When the last file was written (ms since the epoch), or 0. */
  readonly lastWriteAt: () => number
}

/** Options for the writing end. */
export interface WriterOptions {
  /** Where partial files are written before their rename: a folder on the same file system, outside any synced folder. */
  readonly tmpDir: string
  /** The most messages one file carries; default 4096. */
  readonly maxBatch?: number
}

/**
 * The writing end of a channel into `dir`, as `from`. A write that fails (a network file system
 * that is away) is retried with backoff and logged; nothing pushed is dropped while the scope lives.
 */
export const makeWriter = (dir: string, from: string, options: WriterOptions): Effect.Effect<Writer, never, Scope.Scope> =>
  Effect.gen(function*() {
    const maxBatch = options.maxBatch ?? 4096
    let pending: Array<unknown> = []
    // Messages pushed and written so far, and the flushes waiting for a count to be written.
    let pushed = 0
    let written = 0
    let waiters: Array<readonly [number, Deferred.Deferred<void>]> = []
    let seq = 0
    let lastWriteAt = 0
    const wake = yield* Effect.makeLatch(false)

    const writeBatch = (messages: ReadonlyArray<unknown>) => {
      const envelope: Envelope = { from, seq, sentAt: Date.now(), messages }
      return Effect.tryPromise(() => writeAtomic(options.tmpDir, path.join(dir, fileName(from, seq)), encodeEnvelope(envelope))).pipe(
        Effect.tapError((error) => Effect.logWarning(`cannot write a message file in ${dir}, retrying: ${error.cause}`)),
        Effect.retry(Schedule.exponential("20 millis").pipe(Schedule.union(Schedule.spaced("1 second")))),
        Effect.orDie,
        Effect.tap(() => {
          seq++
          lastWriteAt = Date.now()
        })
      )
    }

    const loop = Effect.gen(function*() {
      while (true) {
        yield* wake.await
        yield* wake.close
        while (pending.length > 0) {
          const batch = pending.length <= maxBatch ? pending : pending.slice(0, maxBatch)
          pending = pending.length <= maxBatch ? [] : pending.slice(maxBatch)
          yield* writeBatch(batch)
          written += batch.length
          const ready = waiters.filter(([count]) => count <= written)
          waiters = waiters.filter(([count]) => count > written)
          for (const [, deferred] of ready) Deferred.unsafeDone(deferred, Effect.void)
        }
      }
    })
    const fiber = yield* Effect.forkScoped(loop)

    const flush = Effect.suspend(() => {
      if (written >= pushed) return Effect.void
      const deferred = Deferred.unsafeMake<void>(fiber.id())
      waiters.push([pushed, deferred])
      return Deferred.await(deferred)
    })

    return {
      push: (message) => {
        pending.push(message)
        pushed++
        wake.unsafeOpen()
      },
      flush,
      lastWriteAt: () => lastWriteAt
    } satisfies Writer
  })

/** Options for the reading end. */
export interface ReaderOptions {
  /** The safety-net rescan, in case a file-system event is missed (or never comes, as over sshfs); default 250 ms. */
  readonly rescanMs?: number
  /** Keep consumed files under `<dir>/archive/` instead of deleting them. */
  readonly archive?: boolean
  /** How long a sender's file waits for a missing predecessor (still in transit) before it is taken anyway; default 10,000 ms. */
  readonly gapWaitMs?: number
  /** Checks a decoded envelope's messages; a reason rejects (quarantines) the whole file. */
  readonly validate?: (envelope: Envelope) => string | undefined
}

/** The reading end: forget a sender's sequence when it is gone. */
export interface Reader {
  /** Forgets what was delivered from a sender (its files are then accepted from any sequence number). */
  readonly forget: (from: string) => void
}

/**
 * The reading end of a channel in `dir`: hands each file's envelope to `handle`, per sender in
 * sequence order, once. Runs until the scope closes; bad files are quarantined, never fatal.
 */
export const makeReader = (
  dir: string,
  options: ReaderOptions,
  handle: (envelope: Envelope) => Effect.Effect<void>
): Effect.Effect<Reader, never, Scope.Scope> =>
  Effect.gen(function*() {
    const archive = options.archive === true
    const gapWaitMs = options.gapWaitMs ?? 10_000
    // The next sequence number expected from each sender.
    const next = new Map<string, number>()
    // When a sender's gap was first seen.
    const gapSince = new Map<string, number>()

    const take = (name: string, seq: number, from: string) =>
      Effect.gen(function*() {
        const bytes = yield* Effect.promise(() => fs.promises.readFile(path.join(dir, name)).catch(() => undefined))
        next.set(from, seq + 1)
        // Gone already (another reader took it): nothing to deliver, and nothing to wait for.
        if (bytes === undefined) return
        const envelope = decodeEnvelope(bytes, name)
        const reason = typeof envelope === "string" ? envelope : options.validate?.(envelope)
        if (reason !== undefined || typeof envelope === "string") return yield* quarantine(dir, name, reason!)
        yield* consume(dir, name, archive)
        yield* handle(envelope)
      })

    // Takes one sender's files in sequence order; returns early while a predecessor is in transit.
    const takeSender = (from: string, files: ReadonlyArray<readonly [number, string]>) =>
      Effect.gen(function*() {
        for (const [seq, name] of files) {
          const expected = next.get(from)
          if (expected !== undefined && seq < expected) {
            yield* consume(dir, name, false)
            yield* Effect.logDebug(`dropped a repeated delivery of ${name}`)
            continue
          }
          if (expected !== undefined && seq > expected) {
            const since = gapSince.get(from) ?? Date.now()
            gapSince.set(from, since)
            if (Date.now() - since < gapWaitMs) return
            yield* Effect.logWarning(`files ${expected}..${seq - 1} from ${from} never arrived; going on without them`)
              .pipe(Effect.annotateLogs("folder", dir))
          }
          gapSince.delete(from)
          yield* take(name, seq, from)
        }
      })

    const scan = Effect.gen(function*() {
      const entries = yield* Effect.promise(() => fs.promises.readdir(dir, { withFileTypes: true }).catch(() => []))
      const bySender = new Map<string, Array<readonly [number, string]>>()
      for (const entry of entries) {
        // Dot files are in flight; folders are ours (quarantine, archive).
        if (!entry.isFile() || isInFlight(entry.name)) continue
        const parsed = parseName(entry.name)
        if (parsed === undefined) {
          yield* quarantine(dir, entry.name, "not a message file (the name is not <sender>-<12-digit seq>.msg)")
          continue
        }
        const list = bySender.get(parsed.from) ?? []
        list.push([parsed.seq, entry.name])
        bySender.set(parsed.from, list)
      }
      for (const [from, files] of bySender) {
        files.sort(([a], [b]) => a - b)
        yield* takeSender(from, files)
      }
      // A sender held back by a gap is looked at again at the next rescan at the latest.
    })

    // A watch on a folder that was removed and made again stays silent: watch the new one instead.
    let signal = new ChangeSignal(dir, options.rescanMs ?? 250)
    let watchedInode = yield* folderInode(dir)
    yield* Effect.addFinalizer(() => Effect.sync(() => signal.close()))
    const rewatchIfReplaced = Effect.flatMap(folderInode(dir), (inode) =>
      Effect.sync(() => {
        if (inode === watchedInode) return
        watchedInode = inode
        signal.close()
        signal = new ChangeSignal(dir, options.rescanMs ?? 250)
      }))
    yield* Effect.forkScoped(
      Effect.forever(scan.pipe(Effect.zipRight(rewatchIfReplaced), Effect.zipRight(Effect.suspend(() => signal.wait)))).pipe(
        Effect.catchAllCause((cause) => Effect.logError("the folder reader stopped", cause))
      )
    )

    return {
      forget: (from) => {
        next.delete(from)
        gapSince.delete(from)
      }
    }
  })

// ---------------------------------------------------------------------------------------------
// private

// One encoder for every file: msgpackr's output is self-contained (a fresh decoder reads any file).
const packer = RpcSerialization.msgPack.unsafeMake()

const folderInode = (dir: string): Effect.Effect<number | undefined> =>
  Effect.promise(() => fs.promises.stat(dir).then((s) => s.ino, () => undefined))

const namePattern = /^([a-z0-9]{1,64})-(\d{12})\.msg$/

const parseName = (name: string): { readonly from: string; readonly seq: number } | undefined => {
  const match = namePattern.exec(name)
  return match === null ? undefined : { from: match[1]!, seq: Number(match[2]) }
}
