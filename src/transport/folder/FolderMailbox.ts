import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as fs from "node:fs"
import * as path from "node:path"
import type { FileSet } from "../../domain/JobSpec.js"
import { ChangeSignal } from "../../internal/ChangeSignal.js"
import type { Delivery, Mailbox } from "../Mailbox.js"
import { MailboxError, MessageId } from "../Mailbox.js"
import { consume, isConfined, isInFlight, quarantine, quarantineDir, writeAtomic } from "./FolderFiles.js"

export { isConfined } from "./FolderFiles.js"

/** Where a folder mailbox reads and writes. */
export interface FolderMailboxOptions {
  /** Messages for us arrive here (the peer's outbox, or a folder an rsync daemon fills). */
  readonly inbox: string
  /** Messages we send go here (the peer's inbox, or a folder an rsync daemon ships). */
  readonly outbox: string
  /** Keep consumed messages under `<inbox>/archive/` instead of deleting them. */
  readonly archive?: boolean
  /** The safety-net rescan of the inbox, in case a file-system event is missed; default 1000 ms. */
  readonly rescanMs?: number
  /** How many delivered ids are remembered for deduplication; default 100,000. */
  readonly rememberIds?: number
  /**
   * A file where delivered ids are also written, and read back at start, so a repeat that
   * arrives after a restart is still dropped. Without it they are remembered in memory only.
   */
  readonly deliveredLog?: string
  /**
   * How long a message waits for its attached files (rsync may copy `<id>.msg` before `<id>.files/`)
   * before it is quarantined; default 60,000 ms.
   */
  readonly filesWaitMs?: number
  /**
   * Called once a sent message is durable in the outbox, with the envelope as written and its
   * attached files' names, so a carrier can ship it at once from memory.
   */
  readonly onSent?: (id: string, envelope: string, files: ReadonlyArray<string>) => Effect.Effect<void>
}

/** The version written into every message file; files of other versions are quarantined. */
export const formatVersion = 1

/**
 * A mailbox over folders, made for a directory shared through sshfs or synced by an rsync
 * daemon. A message is `<id>.msg` (JSON), written under a temporary name and renamed into place
 * after its files (`<id>.files/…`), so a reader never sees half of it. A file that cannot be read
 * as a message is moved to `<inbox>/quarantine/` with a `.reason` beside it; the reader carries on.
 */
export const make = <A, I>(
  schema: Schema.Schema<A, I>,
  options: FolderMailboxOptions
): Effect.Effect<Mailbox<A>, MailboxError, Scope.Scope> =>
  Effect.gen(function*() {
    const inbox = path.resolve(options.inbox)
    const outbox = path.resolve(options.outbox)
    yield* io("create the mailbox folders", () => {
      for (const dir of [inbox, outbox, path.join(outbox, tmpDir), path.join(inbox, quarantineDir)]) {
        fs.mkdirSync(dir, { recursive: true })
      }
    })
    const encode = Schema.encode(schema)
    const decode = Schema.decodeUnknown(schema)
    const seen = yield* io("read the delivered ids", () => new RecentIds(options.rememberIds ?? 100_000, options.deliveredLog))
    // Orders this sender's messages when several share a millisecond.
    let seq = 0

    const send = (message: A, id: string, files?: FileSet) =>
      Effect.gen(function*() {
        yield* checkId(id)
        const pairs = yield* filePairs(files)
        const body = yield* encode(message).pipe(
          Effect.mapError((error) => new MailboxError({ reason: "io", message: `cannot encode message ${id}: ${error.message}` }))
        )
        const filesDir = path.join(outbox, `${id}${filesSuffix}`)
        yield* io(`copy the files of message ${id}`, async () => {
          for (const [local, remote] of pairs) {
            const target = path.join(filesDir, remote)
            await fs.promises.mkdir(path.dirname(target), { recursive: true })
            await fs.promises.copyFile(local, target)
          }
        })
        const text = JSON.stringify({ troupe: formatVersion, id, sentAt: Date.now(), seq: seq++, files: pairs.map(([, r]) => r), body })
        yield* io(`write message ${id}`, () => writeAtomic(path.join(outbox, tmpDir), path.join(outbox, `${id}${messageSuffix}`), text))
        if (options.onSent !== undefined) yield* options.onSent(id, text, pairs.map(([, r]) => r))
        ChangeSignal.touch(outbox)
      })

    // Reads one message file; a file that is not a message is quarantined and yields nothing.
    const read = (name: string): Effect.Effect<Option.Option<Envelope>> =>
      Effect.gen(function*() {
        const text = yield* Effect.promise(() => fs.promises.readFile(path.join(inbox, name), "utf8").catch(() => undefined))
        if (text === undefined) return Option.none()
        const parsed = parseEnvelope(text, name)
        if (typeof parsed === "string") {
          yield* quarantine(inbox, name, parsed)
          return Option.none()
        }
        return Option.some(parsed)
      })

    // Decodes and takes a message that was read; a body of the wrong shape is quarantined.
    const take = (name: string, envelope: Envelope): Effect.Effect<Option.Option<Delivery<A>>> =>
      Effect.gen(function*() {
        const message = yield* Effect.either(decode(envelope.body))
        if (message._tag === "Left") {
          yield* quarantine(inbox, name, `body does not match the message schema: ${ParseResult.TreeFormatter.formatErrorSync(message.left)}`)
          return Option.none()
        }
        const filesDir = path.join(inbox, `${envelope.id}${filesSuffix}`)
        const files = new Map(envelope.files.map((remote) => [remote, path.join(filesDir, remote)] as const))
        yield* consume(inbox, name, options.archive === true)
        if (!seen.add(envelope.id)) {
          yield* Effect.logDebug(`dropped a repeated delivery of message ${envelope.id}`)
          return Option.none()
        }
        return Option.some({ id: envelope.id, message: message.right, files })
      })

    // Ids of messages whose attached files have not all arrived, with the time we first saw that.
    const waitingSince = new Map<string, number>()
    const filesWaitMs = options.filesWaitMs ?? 60_000

    // The first attached file that is not there yet (rsync copies a message's folder after the
    // message itself), or one that a symbolic link leads out of the message's folder.
    const filesArrived = (envelope: Envelope) =>
      Effect.promise(async (): Promise<{ readonly missing?: string; readonly escapes?: string }> => {
        const dir = path.join(inbox, `${envelope.id}${filesSuffix}`)
        for (const remote of envelope.files) {
          const real = await fs.promises.realpath(path.join(dir, remote)).catch(() => undefined)
          if (real === undefined) return { missing: remote }
          const realDir = await fs.promises.realpath(dir)
          if (!real.startsWith(`${realDir}${path.sep}`)) return { escapes: remote }
        }
        return {}
      })

    // "take" when the files are complete, "wait" to keep it (and what follows) for a later scan,
    // "skip" when it was quarantined because its files never came or lead out of its folder.
    const checkFiles = (name: string, envelope: Envelope) =>
      Effect.gen(function*() {
        const { escapes, missing } = yield* filesArrived(envelope)
        if (escapes !== undefined) {
          waitingSince.delete(envelope.id)
          yield* quarantine(inbox, name, `attached file ${escapes} is a symbolic link out of the message's folder`)
          return "skip" as const
        }
        if (missing === undefined) {
          waitingSince.delete(envelope.id)
          return "take" as const
        }
        const since = waitingSince.get(envelope.id) ?? Date.now()
        waitingSince.set(envelope.id, since)
        if (Date.now() - since < filesWaitMs) return "wait" as const
        waitingSince.delete(envelope.id)
        yield* quarantine(inbox, name, `attached file ${missing} did not arrive within ${filesWaitMs} ms`)
        return "skip" as const
      })

    const receive = Effect.gen(function*() {
      const entries = yield* io("list the inbox", () => fs.promises.readdir(inbox, { withFileTypes: true }))
      // Dot files are in flight (ours under .tmp, rsync's `.name.XXXXXX`); folders are ours.
      const files = entries.filter((e) => e.isFile() && !isInFlight(e.name))
      for (const stray of files.filter((e) => !e.name.endsWith(messageSuffix))) {
        yield* quarantine(inbox, stray.name, "not a message file (no .msg suffix)")
      }
      const names = files.map((e) => e.name).filter((n) => n.endsWith(messageSuffix))
      const pending: Array<readonly [string, Envelope]> = []
      for (const name of names) {
        const envelope = yield* read(name)
        if (Option.isSome(envelope)) pending.push([name, envelope.value])
      }
      // Send order: by send time, then by each sender's sequence number.
      pending.sort(([, a], [, b]) => a.sentAt - b.sentAt || a.seq - b.seq)
      const out: Array<Delivery<A>> = []
      for (const [name, envelope] of pending) {
        const files = yield* checkFiles(name, envelope)
        // A message still waiting for its files holds back the later ones, to keep the send order.
        if (files === "wait") break
        if (files === "skip") continue
        const delivery = yield* take(name, envelope)
        if (Option.isSome(delivery)) out.push(delivery.value)
      }
      return out as ReadonlyArray<Delivery<A>>
    })

    const get = (id: string) =>
      Effect.flatMap(checkId(id), () => {
        const name = `${id}${messageSuffix}`
        return Effect.flatMap(read(name), (envelope) =>
          Option.isNone(envelope)
            ? Effect.succeed(Option.none<Delivery<A>>())
            : Effect.flatMap(checkFiles(name, envelope.value), (files) =>
              files === "take" ? take(name, envelope.value) : Effect.succeed(Option.none<Delivery<A>>())))
      })

    const messages = Stream.unwrapScoped(Effect.gen(function*() {
      const signal = yield* Effect.acquireRelease(
        Effect.sync(() => new ChangeSignal(inbox, options.rescanMs ?? 1000)),
        (s) => Effect.sync(() => s.close())
      )
      return Stream.repeatEffect(receive.pipe(Effect.zipLeft(signal.wait))).pipe(Stream.flattenIterables)
    }))

    return { send, get, receive, messages }
  })

// ---------------------------------------------------------------------------------------------
// private

const messageSuffix = ".msg"
const filesSuffix = ".files"
const tmpDir = ".tmp"

const io = <A>(what: string, f: () => A | Promise<A>) =>
  Effect.tryPromise({
    try: async () => f(),
    catch: (cause) =>
      new MailboxError({
        reason: (cause as NodeJS.ErrnoException).code === "ENOENT" ? "file-missing" : "io",
        message: `cannot ${what}: ${(cause as Error).message}`,
        cause
      })
  })

const checkId = (id: string) =>
  Schema.is(MessageId)(id)
    ? Effect.void
    : Effect.fail(new MailboxError({ reason: "invalid-id", message: `message id ${JSON.stringify(id)} is not 1-128 chars of [A-Za-z0-9_.-]` }))

// Local → remote pairs; the remote side must stay inside the message's files folder.
const filePairs = (files: FileSet | undefined) =>
  Effect.suspend(() => {
    const pairs: Array<readonly [string, string]> = files === undefined
      ? []
      : Array.isArray(files)
      ? (files as ReadonlyArray<string>).map((f) => [path.resolve(f), f] as const)
      : Object.entries(files as Readonly<Record<string, string>>).map(([l, r]) => [path.resolve(l), r] as const)
    for (const [, remote] of pairs) {
      if (!isConfined(remote)) {
        return Effect.fail(
          new MailboxError({ reason: "path-escapes-root", message: `file path ${JSON.stringify(remote)} leaves the message's folder` })
        )
      }
    }
    return Effect.succeed(pairs)
  })

interface Envelope {
  readonly id: string
  readonly sentAt: number
  readonly seq: number
  readonly files: ReadonlyArray<string>
  readonly body: unknown
}

// The envelope of a message file, or why it is not one.
const parseEnvelope = (text: string, name: string): Envelope | string => {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    return "not JSON (torn or garbage)"
  }
  if (typeof value !== "object" || value === null) return "not a message object"
  const record = value as Record<string, unknown>
  if (record.troupe !== formatVersion) return `unknown format version ${JSON.stringify(record.troupe)}`
  if (typeof record.id !== "string" || !Schema.is(MessageId)(record.id)) return "missing or invalid id"
  if (`${record.id}${messageSuffix}` !== name) return `id ${record.id} does not match the file name`
  if (!Array.isArray(record.files) || !record.files.every((f) => typeof f === "string" && isConfined(f))) {
    return "invalid file list (a path leaves the message's folder)"
  }
  const sentAt = typeof record.sentAt === "number" ? record.sentAt : 0
  const seq = typeof record.seq === "number" ? record.seq : 0
  return { id: record.id, sentAt, seq, files: record.files as ReadonlyArray<string>, body: record.body }
}

// Remembers the last `capacity` delivered ids, in memory and, with a log file, across restarts:
// each id is appended as it is delivered, and the file is rewritten with the ids still
// remembered when it has grown to twice as many lines.
class RecentIds {
  private readonly ids = new Set<string>()
  private logged = 0
  constructor(private readonly capacity: number, private readonly log: string | undefined) {
    if (log === undefined) return
    const text = (() => {
      try {
        return fs.readFileSync(log, "utf8")
      } catch {
        return ""
      }
    })()
    for (const id of text.split("\n")) if (Schema.is(MessageId)(id)) this.remember(id)
    this.logged = this.ids.size
    this.rewrite()
  }
  /** False when the id was delivered before. */
  add(id: string): boolean {
    if (this.ids.has(id)) return false
    this.remember(id)
    if (this.log !== undefined) {
      try {
        fs.appendFileSync(this.log, `${id}\n`)
        if (++this.logged > 2 * this.capacity) this.rewrite()
      } catch {
        // Still remembered in memory; only a restart could let a repeat through.
      }
    }
    return true
  }
  private remember(id: string): void {
    this.ids.add(id)
    if (this.ids.size > this.capacity) this.ids.delete(this.ids.values().next().value!)
  }
  private rewrite(): void {
    if (this.log === undefined) return
    const tmp = `${this.log}.tmp`
    fs.mkdirSync(path.dirname(this.log), { recursive: true })
    fs.writeFileSync(tmp, Array.from(this.ids, (id) => `${id}\n`).join(""))
    fs.renameSync(tmp, this.log)
    this.logged = this.ids.size
  }
}
