import * as Effect from "effect/Effect"
import { createHash } from "node:crypto"
import * as Fs from "node:fs/promises"
import * as Os from "node:os"
import * as Path from "node:path"
import { FileInfo, FileSlice, OsInfo } from "../protocol/ExecRpc.js"
import * as Confine from "./Confine.js"
import { ExecError } from "./Errors.js"

/** The largest slice one ReadFile call returns. */
export const maxReadBytes = 4 * 1024 * 1024

/** How long a transfer chunk that arrived before the chunks in front of it waits for them. */
const gapWaitMs = 10_000

/** How long a transfer's partial file stays open after its last chunk. */
const partialIdleMs = 30_000

/** The suffix of a transfer's partial file, renamed into place once its checksum matches. */
export const partialSuffix = ".troupe-partial"

/**
 * The file commands of the exec server, over one root. Every path is taken relative to the calling
 * connection's cwd and confined to the root (Confine.resolve) before anything touches the disk.
 */
export interface Files {
  readonly root: string
  /** The new cwd after changing to `path`, which must be a directory. */
  readonly cd: (cwd: string, path: string) => Effect.Effect<string, ExecError>
  /** A directory's entries sorted by name, or the one entry of a file. */
  readonly ls: (cwd: string, path: string) => Effect.Effect<ReadonlyArray<FileInfo>, ExecError>
  /** One entry, without following a final symbolic link. */
  readonly stat: (cwd: string, path: string) => Effect.Effect<FileInfo, ExecError>
  /** Makes a directory; with `parents`, its missing parents too, and an existing one is fine. */
  readonly mkdir: (cwd: string, path: string, parents: boolean) => Effect.Effect<void, ExecError>
  /** Removes a file or an empty directory; with `recursive`, a whole tree. Never the root. */
  readonly rm: (cwd: string, path: string, recursive: boolean) => Effect.Effect<void, ExecError>
  /** Creates an empty file, or sets an existing one's times to now. */
  readonly touch: (cwd: string, path: string) => Effect.Effect<void, ExecError>
  /** Up to `length` bytes from `offset`, and the file's size. */
  readonly read: (cwd: string, path: string, offset: number, length: number) => Effect.Effect<FileSlice, ExecError>
  /** Writes at `offset` (or appends), optionally truncating first; answers the file's new size. */
  readonly write: (
    cwd: string,
    path: string,
    data: Uint8Array,
    offset: number | undefined,
    truncate: boolean
  ) => Effect.Effect<number, ExecError>
  /** How many bytes of a transfer to `path` have arrived (the partial file's size). */
  readonly transferStatus: (cwd: string, path: string) => Effect.Effect<number, ExecError>
  /** Writes a transfer chunk at `offset`: a chunk already there is a no-op, one past the end is refused. */
  readonly transferWrite: (cwd: string, path: string, offset: number, data: Uint8Array) => Effect.Effect<number, ExecError>
  /** Checks the partial file's size and SHA-256, then renames it into place; a mismatch removes it. */
  readonly transferFinish: (cwd: string, path: string, size: number, sha256: string) => Effect.Effect<void, ExecError>
  /** The server machine. */
  readonly osInfo: Effect.Effect<OsInfo>
}

/** File commands confined to `root`, a real absolute path (see Confine.realRoot). */
export const make = (root: string): Files => {
  const locks = new Map<string, Promise<unknown>>()
  // Chunks of one transfer may be handled concurrently; writes to one file take turns.
  const serialized = <A>(key: string, task: () => Promise<A>): Promise<A> => {
    const previous = locks.get(key) ?? Promise.resolve()
    const next = previous.then(task, task)
    const tail = next.catch(() => undefined)
    locks.set(key, tail)
    void tail.then(() => {
      if (locks.get(key) === tail) locks.delete(key)
    })
    return next
  }
  // Resolved after every chunk written to a partial file, for chunks that arrived early.
  const progress = new Map<string, { readonly promise: Promise<void>; readonly resolve: () => void }>()
  const progressOf = (file: string): Promise<void> => {
    let entry = progress.get(file)
    if (entry === undefined) {
      let resolve!: () => void
      const promise = new Promise<void>((r) => (resolve = r))
      entry = { promise, resolve }
      progress.set(file, entry)
    }
    return entry.promise
  }
  // A transfer's partial file stays open between its chunks (closed when idle, finished or removed),
  // and its size is known without a stat per chunk. Writes to one file are serialized.
  const open = new Map<string, { handle: Fs.FileHandle; size: number; idle: ReturnType<typeof setTimeout> | undefined }>()
  const release = async (file: string): Promise<void> => {
    const entry = open.get(file)
    if (entry === undefined) return
    open.delete(file)
    clearTimeout(entry.idle)
    await entry.handle.close().catch(() => undefined)
  }
  const opened = async (file: string) => {
    let entry = open.get(file)
    if (entry === undefined) {
      const handle = await openForWrite(file, false)
      entry = { handle, size: (await handle.stat()).size, idle: undefined }
      open.set(file, entry)
    }
    clearTimeout(entry.idle)
    entry.idle = setTimeout(() => void serialized(file, () => release(file)), partialIdleMs)
    entry.idle.unref()
    return entry
  }
  // Writes a chunk at its offset: the new size, the old size for a chunk already there, or
  // -(size + 1) for one past the end.
  const writeChunk = async (file: string, offset: number, data: Uint8Array): Promise<number> => {
    const entry = await opened(file)
    if (offset > entry.size) return -entry.size - 1
    if (offset + data.length <= entry.size) return entry.size
    await entry.handle.write(data, 0, data.length, offset)
    entry.size = Math.max(entry.size, offset + data.length)
    const waiting = progress.get(file)
    progress.delete(file)
    waiting?.resolve()
    return entry.size
  }
  const at = (cwd: string, path: string) => Confine.resolve(root, cwd, path)
  const io = <A>(path: string, task: () => Promise<A>) =>
    Effect.tryPromise({ try: task, catch: (cause) => fsError(path, cause) })
  const partial = (cwd: string, path: string) =>
    Effect.flatMap(at(cwd, path), (target) =>
      target === root
        ? Effect.fail(new ExecError({ reason: "is-a-directory", path, message: `${path} is the root directory` }))
        : Effect.succeed(target + partialSuffix))

  return {
    root,
    cd: (cwd, path) =>
      Effect.flatMap(at(cwd, path), (target) =>
        io(path, async () => {
          if (!(await Fs.stat(target)).isDirectory()) throw errno("ENOTDIR")
          return target
        })),
    ls: (cwd, path) =>
      Effect.flatMap(at(cwd, path), (target) =>
        io(path, async () => {
          const stat = await Fs.lstat(target)
          if (!stat.isDirectory()) return [infoOf(Path.basename(target), stat)]
          const names = (await Fs.readdir(target)).sort()
          const infos = await Promise.all(names.map(async (name) => {
            const entry = await Fs.lstat(Path.join(target, name)).catch(() => undefined)
            return entry === undefined ? undefined : infoOf(name, entry)
          }))
          return infos.filter((info): info is FileInfo => info !== undefined)
        })),
    stat: (cwd, path) =>
      Effect.flatMap(at(cwd, path), (target) => io(path, async () => infoOf(Path.basename(target), await Fs.lstat(target)))),
    mkdir: (cwd, path, parents) =>
      Effect.flatMap(at(cwd, path), (target) =>
        io(path, async () => {
          await Fs.mkdir(target, { recursive: parents })
        })),
    rm: (cwd, path, recursive) =>
      Effect.flatMap(at(cwd, path), (target) =>
        target === root
          ? Effect.fail(new ExecError({ reason: "invalid", path, message: "refusing to remove the root directory" }))
          : io(path, async () => {
            if (open.has(target)) await serialized(target, () => release(target))
            const stat = await Fs.lstat(target)
            if (stat.isDirectory() && !recursive) await Fs.rmdir(target)
            else await Fs.rm(target, { recursive })
          })),
    touch: (cwd, path) =>
      Effect.flatMap(at(cwd, path), (target) =>
        io(path, async () => {
          const handle = await Fs.open(target, "a")
          await handle.close()
          const now = new Date()
          await Fs.utimes(target, now, now)
        })),
    read: (cwd, path, offset, length) =>
      Effect.flatMap(at(cwd, path), (target) =>
        io(path, async () => {
          const handle = await Fs.open(target, "r")
          try {
            const size = (await handle.stat()).size
            const buffer = Buffer.allocUnsafe(Math.max(0, Math.min(length, maxReadBytes, size - offset)))
            const { bytesRead } = buffer.length === 0 ? { bytesRead: 0 } : await handle.read(buffer, 0, buffer.length, offset)
            return new FileSlice({ data: buffer.subarray(0, bytesRead), size })
          } finally {
            await handle.close()
          }
        })),
    write: (cwd, path, data, offset, truncate) =>
      Effect.flatMap(at(cwd, path), (target) =>
        io(path, () =>
          serialized(target, async () => {
            const handle = await openForWrite(target, offset === undefined && !truncate)
            try {
              if (truncate) await handle.truncate(0)
              if (offset === undefined && !truncate) await handle.write(data)
              else await handle.write(data, 0, data.length, offset ?? 0)
              return (await handle.stat()).size
            } finally {
              await handle.close()
            }
          }))),
    transferStatus: (cwd, path) =>
      Effect.flatMap(partial(cwd, path), (file) =>
        io(path, async () => {
          const parent = await Fs.stat(Path.dirname(file))
          if (!parent.isDirectory()) throw errno("ENOTDIR")
          return serialized(file, async () => open.get(file)?.size ?? (await Fs.stat(file).catch(() => undefined))?.size ?? 0)
        })),
    transferWrite: (cwd, path, offset, data) =>
      Effect.flatMap(partial(cwd, path), (file) =>
        Effect.flatMap(
          io(path, async () => {
            // Pipelined chunks may arrive out of order: one past the end waits a moment for the
            // chunks before it, and only then is a gap.
            const deadline = Date.now() + gapWaitMs
            for (;;) {
              const written = progressOf(file)
              const size = await serialized(file, () => writeChunk(file, offset, data))
              if (size >= 0 || Date.now() >= deadline) return size
              await Promise.race([written, new Promise((resolve) => setTimeout(resolve, 100).unref())])
            }
          }),
          (size) =>
            size < 0
              ? Effect.fail(
                new ExecError({
                  reason: "invalid",
                  path,
                  message: `transfer chunk at ${offset} leaves a gap: ${-size - 1} bytes have arrived`
                })
              )
              : Effect.succeed(size)
        )),
    transferFinish: (cwd, path, size, sha256) =>
      Effect.flatMap(partial(cwd, path), (file) =>
        Effect.flatMap(
          io(path, () =>
            serialized(file, async () => {
              await release(file)
              const actual = await hashFile(file)
              if (actual.size !== size || actual.sha256 !== sha256) {
                await Fs.rm(file, { force: true })
                return `received ${actual.size} bytes with SHA-256 ${actual.sha256}, expected ${size} bytes with ${sha256}`
              }
              await Fs.rename(file, file.slice(0, -partialSuffix.length))
              return undefined
            })),
          (mismatch) =>
            mismatch === undefined
              ? Effect.void
              : Effect.fail(new ExecError({ reason: "checksum", path, message: `transfer of ${path}: ${mismatch}` }))
        )),
    osInfo: Effect.sync(() =>
      new OsInfo({
        hostname: Os.hostname(),
        platform: Os.platform(),
        release: Os.release(),
        arch: Os.arch(),
        cpus: Os.availableParallelism(),
        totalMemory: Os.totalmem(),
        freeMemory: Os.freemem(),
        uptime: Os.uptime(),
        node: process.version,
        pid: process.pid,
        root
      })
    )
  }
}

/** The SHA-256 (hex) and size of a file, read in a stream. */
export const hashFile = async (file: string): Promise<{ readonly size: number; readonly sha256: string }> => {
  const hash = createHash("sha256")
  let size = 0
  const handle = await Fs.open(file, "r")
  try {
    for await (const chunk of handle.createReadStream({ highWaterMark: 1 << 20 })) {
      hash.update(chunk as Buffer)
      size += (chunk as Buffer).length
    }
  } finally {
    await handle.close().catch(() => undefined)
  }
  return { size, sha256: hash.digest("hex") }
}

// ---------------------------------------------------------------------------------------------
// private

const infoOf = (name: string, stat: import("node:fs").Stats): FileInfo =>
  new FileInfo({
    name,
    type: stat.isFile() ? "file" : stat.isDirectory() ? "directory" : stat.isSymbolicLink() ? "symlink" : "other",
    size: stat.size,
    mtimeMs: stat.mtimeMs
  })

// Positional writes need a file opened without O_APPEND; create it when it is missing.
const openForWrite = async (file: string, append: boolean): Promise<Fs.FileHandle> => {
  if (append) return Fs.open(file, "a")
  try {
    return await Fs.open(file, "r+")
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error
    return Fs.open(file, "w+")
  }
}

const errno = (code: string): NodeJS.ErrnoException => Object.assign(new Error(code), { code })

const reasons: Record<string, ExecError["reason"]> = {
  ENOENT: "no-such-file",
  ENOTDIR: "not-a-directory",
  EISDIR: "is-a-directory",
  EEXIST: "exists",
  ENOTEMPTY: "exists",
  ELOOP: "path-escape"
}

const phrases: Record<string, string> = {
  "no-such-file": "no such file or directory",
  "not-a-directory": "not a directory",
  "is-a-directory": "is a directory",
  exists: "already exists (or is a directory that is not empty)",
  "path-escape": "has too many levels of symbolic links"
}

const fsError = (path: string, cause: unknown): ExecError => {
  const code = (cause as NodeJS.ErrnoException | undefined)?.code ?? ""
  const reason = reasons[code] ?? "io"
  const detail = phrases[reason] ?? (cause instanceof Error ? cause.message : String(cause))
  return new ExecError({ reason, path, message: `${path}: ${detail}` })
}
