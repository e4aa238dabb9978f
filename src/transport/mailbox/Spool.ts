import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import * as fs from "node:fs"
import * as path from "node:path"
import { ChangeSignal } from "../../internal/ChangeSignal.js"
import { writeAtomic } from "../folder/FolderFiles.js"
import { isConfined } from "../folder/FolderMailbox.js"
import { MailboxError, MessageId } from "../Mailbox.js"
import { AttachedFile, inlineFileBytes, ShippedMessage } from "./MailboxRpc.js"

/**
 * The files of a folder mailbox seen from outside, for shipping them to another machine:
 * `<id>.msg` (its JSON envelope) and `<id>.files/…` (its attachments), as docs/PROTOCOL.md
 * describes. Reading an outbox and writing into an inbox keep that format, so the folder
 * mailbox on each end cannot tell a network from a shared directory.
 */

/** The messages waiting in an outbox, in send order; files that are not messages are left alone. */
export const listOutbox = (outbox: string): Effect.Effect<ReadonlyArray<ShippedMessage>, MailboxError> =>
  io(`list the outbox ${outbox}`, async () => {
    const names = (await fs.promises.readdir(outbox)).filter((name) => name.endsWith(messageSuffix) && !name.startsWith("."))
    const found: Array<{ readonly order: readonly [number, number]; readonly message: ShippedMessage }> = []
    for (const name of names) {
      const envelope = await fs.promises.readFile(path.join(outbox, name), "utf8").catch(() => undefined)
      if (envelope === undefined) continue
      const parsed = parseHead(envelope)
      const id = name.slice(0, -messageSuffix.length)
      if (parsed === undefined || parsed.id !== id || !Schema.is(MessageId)(id)) continue
      found.push({ order: [parsed.sentAt, parsed.seq], message: await describe(outbox, id, envelope, parsed.files) })
    }
    found.sort((a, b) => a.order[0] - b.order[0] || a.order[1] - b.order[1])
    return found.map((entry) => entry.message)
  })

/**
 * A message just written into an outbox, as it will be shipped: its envelope as written, and its
 * attached files (small ones read into the message). Lets a sender ship from memory what it has
 * just made durable, without reading the folder back.
 */
export const describeMessage = (
  outbox: string,
  id: string,
  envelope: string,
  files: ReadonlyArray<string>
): Effect.Effect<ShippedMessage, MailboxError> =>
  io(`describe message ${id}`, () => describe(outbox, id, envelope, files))

const describe = async (
  outbox: string,
  id: string,
  envelope: string,
  names: ReadonlyArray<string>
): Promise<ShippedMessage> => {
  const files: Array<AttachedFile> = []
  let inlineBudget = inlineMessageBytes
  for (const file of names) {
    const local = path.join(outbox, `${id}${filesSuffix}`, file)
    const stat = await fs.promises.stat(local).catch(() => undefined)
    const size = stat?.size ?? 0
    // Small files ride along in the message: no extra round trip per file.
    const data = stat !== undefined && size <= inlineFileBytes && size <= inlineBudget
      ? await fs.promises.readFile(local).catch(() => undefined)
      : undefined
    if (data !== undefined) inlineBudget -= data.length
    files.push(new AttachedFile({ path: file, size, ...(data !== undefined && data.length === size ? { data } : {}) }, true))
  }
  return new ShippedMessage({ id, envelope, files }, true)
}

/** The first messages that fit one call: at most `count`, and their inline bytes at most `bytes` (one always goes). */
export const firstBatch = (
  messages: ReadonlyArray<ShippedMessage>,
  count: number,
  bytes: number = batchInlineBytes
): ReadonlyArray<ShippedMessage> => {
  let total = 0
  let n = 0
  while (n < messages.length && n < count) {
    const size = inlineSize(messages[n]!) + messages[n]!.envelope.length
    if (n > 0 && total + size > bytes) break
    total += size
    n++
  }
  return messages.slice(0, n)
}

const inlineSize = (message: ShippedMessage): number =>
  message.files.reduce((sum, file) => sum + (file.data?.length ?? 0), 0)

// A message carries at most 1 MiB of small files; a call carries at most 4 MiB of them.
const inlineMessageBytes = 1024 * 1024
const batchInlineBytes = 4 * 1024 * 1024

/** Removes a shipped message and its files (unless it is known to have none) from an outbox. */
export const removeFromOutbox = (outbox: string, id: string, hasFiles = true): Effect.Effect<void, MailboxError> =>
  io(`remove message ${id} from the outbox`, async () => {
    await fs.promises.rm(path.join(outbox, `${id}${messageSuffix}`), { force: true })
    if (hasFiles) await fs.promises.rm(path.join(outbox, `${id}${filesSuffix}`), { recursive: true, force: true })
  })

/** The local path of an attached file of a message in a mailbox folder, confined to that message's files folder. */
export const attachmentPath = (
  folder: string,
  id: string,
  relative: string
): Effect.Effect<string, MailboxError> =>
  Effect.suspend(() => {
    if (!Schema.is(MessageId)(id)) {
      return Effect.fail(new MailboxError({ reason: "invalid-id", message: `message id ${JSON.stringify(id)} is invalid` }))
    }
    if (!isConfined(relative)) {
      return Effect.fail(
        new MailboxError({
          reason: "path-escapes-root",
          message: `file path ${JSON.stringify(relative)} leaves the message's folder`
        })
      )
    }
    return Effect.succeed(path.join(folder, `${id}${filesSuffix}`, relative))
  })

/**
 * Writes one chunk of an attached file into an inbox at its offset. Writing at an offset (rather
 * than appending) makes a repeated chunk harmless. Folders on the way and the file itself must not
 * be symbolic links, so a sender cannot make us write outside the inbox.
 */
export const writeChunk = (
  inbox: string,
  id: string,
  relative: string,
  offset: number,
  data: Uint8Array
): Effect.Effect<void, MailboxError> =>
  Effect.flatMap(attachmentPath(inbox, id, relative), (target) =>
    io(`write file ${relative} of message ${id}`, async () => {
      const root = path.join(inbox, `${id}${filesSuffix}`)
      await fs.promises.mkdir(path.dirname(target), { recursive: true })
      const [realRoot, realParent] = await Promise.all([
        fs.promises.realpath(root),
        fs.promises.realpath(path.dirname(target))
      ])
      if (realParent !== realRoot && !realParent.startsWith(realRoot + path.sep)) {
        throw Object.assign(new Error(`file path ${relative} leaves the message's folder through a link`), {
          code: "ESCAPE"
        })
      }
      const flags = (offset === 0 ? fs.constants.O_CREAT | fs.constants.O_TRUNC : 0) | fs.constants.O_WRONLY |
        fs.constants.O_NOFOLLOW
      const handle = await fs.promises.open(target, flags, 0o644)
      try {
        const { size } = await handle.stat()
        if (size < offset) throw new Error(`a chunk at ${offset} arrived before bytes ${size}..${offset}`)
        await handle.write(data, 0, data.length, offset)
      } finally {
        await handle.close()
      }
    }))

/**
 * Puts a shipped message into an inbox: checks that every attached file arrived whole, then writes
 * the envelope under a temporary name and renames it into place, so the reader sees all or nothing.
 */
export const deliverToInbox = (inbox: string, message: ShippedMessage): Effect.Effect<void, MailboxError> =>
  Effect.gen(function*() {
    for (const file of message.files) {
      if (file.data !== undefined) yield* writeChunk(inbox, message.id, file.path, 0, file.data)
    }
    for (const file of message.files) {
      const local = yield* attachmentPath(inbox, message.id, file.path)
      const size = yield* Effect.promise(() => fs.promises.stat(local).then((s) => s.size, () => -1))
      if (size !== file.size) {
        return yield* new MailboxError({
          reason: "file-missing",
          message: `file ${file.path} of message ${message.id} has ${Math.max(size, 0)} of ${file.size} bytes`
        })
      }
    }
    yield* io(`deliver message ${message.id}`, async () => {
      // The temporary folder is made only when it is missing, not once per message.
      await writeAtomic(path.join(inbox, tmpDir), path.join(inbox, `${message.id}${messageSuffix}`), message.envelope)
      ChangeSignal.touch(inbox)
    })
  })

/** Reads an attached file in chunks, starting at the beginning. */
export const readChunks = (file: string): AsyncIterable<Uint8Array> =>
  fs.createReadStream(file, { highWaterMark: 1024 * 1024 })

// ---------------------------------------------------------------------------------------------
// private

const messageSuffix = ".msg"
const filesSuffix = ".files"
const tmpDir = ".tmp"

// The parts of an envelope needed to ship it; the receiving mailbox checks the rest.
const parseHead = (
  text: string
): { readonly id: string; readonly sentAt: number; readonly seq: number; readonly files: ReadonlyArray<string> } | undefined => {
  try {
    const value = JSON.parse(text) as Record<string, unknown>
    if (typeof value.id !== "string" || !Array.isArray(value.files)) return undefined
    const files = value.files.filter((f): f is string => typeof f === "string" && isConfined(f))
    if (files.length !== value.files.length) return undefined
    return {
      id: value.id,
      sentAt: typeof value.sentAt === "number" ? value.sentAt : 0,
      seq: typeof value.seq === "number" ? value.seq : 0,
      files
    }
  } catch {
    return undefined
  }
}

const io = <A>(what: string, f: () => Promise<A>): Effect.Effect<A, MailboxError> =>
  Effect.tryPromise({
    try: f,
    catch: (cause) => {
      const code = (cause as NodeJS.ErrnoException).code
      return new MailboxError({
        reason: code === "ESCAPE" || code === "ELOOP" ? "path-escapes-root" : code === "ENOENT" ? "file-missing" : "io",
        message: `cannot ${what}: ${(cause as Error).message}`,
        cause
      })
    }
  })
