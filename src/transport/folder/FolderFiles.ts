import * as Effect from "effect/Effect"
import * as fs from "node:fs"
import * as path from "node:path"

/**
 * File operations shared by the folder mailbox and folder RPC: atomic writes, quarantine and
 * consumption of message files, and the path confinement rule.
 */

/** The folder, beside a reader's messages, where files that are not messages are moved. */
export const quarantineDir = "quarantine"

/** The folder, beside a reader's messages, where consumed messages go when archiving is on. */
export const archiveDir = "archive"

/** True for a relative path that stays below its root: no `..` step, not absolute, not empty. */
export const isConfined = (relative: string): boolean => {
  if (relative.length === 0 || path.isAbsolute(relative) || relative.includes("\0")) return false
  const normal = path.normalize(relative)
  return normal !== ".." && !normal.startsWith(`..${path.sep}`) && normal !== "."
}

/** True for names a reader must skip: dot files are in flight (ours, and rsync's `.name.XXXXXX`). */
export const isInFlight = (name: string): boolean => name.startsWith(".")

let tmpCounter = 0

/**
 * Writes `data` to `target` so that no reader ever sees part of it: the bytes go to a dot file in
 * `tmpDir` (on the same file system), which is then renamed into place.
 */
export const writeAtomic = async (tmpDir: string, target: string, data: string | Uint8Array): Promise<void> => {
  const tmp = path.join(tmpDir, `.${path.basename(target)}.${process.pid}.${tmpCounter++}.tmp`)
  try {
    await fs.promises.writeFile(tmp, data)
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).code !== "ENOENT") throw cause
    await fs.promises.mkdir(tmpDir, { recursive: true })
    await fs.promises.writeFile(tmp, data)
  }
  try {
    await fs.promises.rename(tmp, target)
  } catch (cause) {
    // The target folder was removed under us (a peer's cleanup): make it again, once.
    if ((cause as NodeJS.ErrnoException).code !== "ENOENT") throw cause
    await fs.promises.mkdir(path.dirname(target), { recursive: true })
    await fs.promises.rename(tmp, target)
  }
}

/** Moves `<dir>/<name>` to `<dir>/quarantine/` with a `.reason` file beside it, and logs why. */
export const quarantine = (dir: string, name: string, reason: string): Effect.Effect<void> =>
  Effect.gen(function*() {
    const target = path.join(dir, quarantineDir, `${Date.now()}-${name}`)
    yield* Effect.promise(async () => {
      await fs.promises.mkdir(path.join(dir, quarantineDir), { recursive: true }).catch(() => undefined)
      await fs.promises.rename(path.join(dir, name), target).catch(() => undefined)
      await fs.promises.writeFile(`${target}.reason`, `${reason}\n`).catch(() => undefined)
    })
    yield* Effect.logWarning(`quarantined ${name}: ${reason}`).pipe(Effect.annotateLogs("folder", dir))
  })

/** Removes a consumed message file, or moves it to `<dir>/archive/` when archiving is on. */
export const consume = (dir: string, name: string, archive: boolean): Effect.Effect<void> =>
  Effect.promise(async () => {
    const file = path.join(dir, name)
    if (!archive) return fs.promises.rm(file, { force: true })
    await fs.promises.mkdir(path.join(dir, archiveDir), { recursive: true })
    return fs.promises.rename(file, path.join(dir, archiveDir, name)).catch(() => undefined)
  })
