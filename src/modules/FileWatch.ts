import { createHash } from "node:crypto"
import * as Fs from "node:fs"
import * as Path from "node:path"

/**
 * Watches the local files of each module and says which module's code changed. Directories are
 * watched rather than files (an editor's save often replaces the file), a rescan every `pollMs`
 * covers lost events, and a file counts as changed only when its content differs from the version
 * the module loaded (saving without a change, or `touch`, reloads nothing).
 */
export class FileWatch {
  private readonly byKey = new Map<string, Map<string, Fingerprint | undefined>>()
  private readonly dirs = new Map<string, { readonly watcher: Fs.FSWatcher | undefined; readonly keys: Set<string> }>()
  private readonly timers = new Map<string, NodeJS.Timeout>()
  private readonly poller: NodeJS.Timeout
  private closed = false

  constructor(
    private readonly onChange: (key: string, file: string) => void,
    pollMs = 1000,
    private readonly debounceMs = 25
  ) {
    this.poller = setInterval(() => this.rescan(), pollMs)
    this.poller.unref()
  }

  /**
   * Watches `files` for `key`, replacing what was watched for it. `baseline` holds the versions
   * taken before the module started loading (see `snapshot`): a file that differs from its baseline
   * changed during the load, and is reported at once. Files without a baseline are taken as they are now.
   */
  set(key: string, files: ReadonlyArray<string>, baseline: Baseline): void {
    if (this.closed) return
    const current = new Map<string, Fingerprint | undefined>()
    for (const file of files) current.set(file, baseline.has(file) ? baseline.get(file) : fingerprint(file))
    this.byKey.set(key, current)
    this.rewatch()
    this.schedule(key, undefined)
  }

  /** Adds files to what is watched for `key` (files the module loaded late). */
  add(key: string, files: ReadonlyArray<string>): void {
    const current = this.byKey.get(key)
    if (current === undefined || this.closed) return
    for (const file of files) if (!current.has(file)) current.set(file, fingerprint(file))
    this.rewatch()
  }

  /** Stops watching for `key`. */
  remove(key: string): void {
    this.byKey.delete(key)
    const timer = this.timers.get(key)
    if (timer !== undefined) clearTimeout(timer)
    this.timers.delete(key)
    this.rewatch()
  }

  /** The files watched for `key`. */
  files(key: string): ReadonlyArray<string> {
    return Array.from(this.byKey.get(key)?.keys() ?? [])
  }

  /** Stops every watcher. */
  close(): void {
    this.closed = true
    clearInterval(this.poller)
    for (const timer of this.timers.values()) clearTimeout(timer)
    for (const { watcher } of this.dirs.values()) watcher?.close()
    this.dirs.clear()
    this.byKey.clear()
  }

  // One fs.watch per directory holding a watched file.
  private rewatch(): void {
    const wanted = new Map<string, Set<string>>()
    for (const [key, files] of this.byKey) {
      for (const file of files.keys()) {
        const dir = Path.dirname(file)
        let keys = wanted.get(dir)
        if (keys === undefined) wanted.set(dir, keys = new Set())
        keys.add(key)
      }
    }
    for (const [dir, entry] of this.dirs) {
      if (!wanted.has(dir)) {
        entry.watcher?.close()
        this.dirs.delete(dir)
      }
    }
    for (const [dir, keys] of wanted) {
      const existing = this.dirs.get(dir)
      if (existing !== undefined) {
        existing.keys.clear()
        for (const key of keys) existing.keys.add(key)
        continue
      }
      this.dirs.set(dir, { watcher: this.watchDir(dir), keys })
    }
  }

  private watchDir(dir: string): Fs.FSWatcher | undefined {
    try {
      const watcher = Fs.watch(dir, { persistent: false }, (_event, name) => {
        const keys = this.dirs.get(dir)?.keys
        if (keys === undefined) return
        const file = name === null ? undefined : Path.join(dir, name.toString())
        for (const key of keys) {
          if (file === undefined || this.byKey.get(key)?.has(file)) this.schedule(key, file)
        }
      })
      watcher.on("error", () => watcher.close())
      return watcher
    } catch {
      // A directory that cannot be watched is covered by the rescan.
      return undefined
    }
  }

  private schedule(key: string, file: string | undefined): void {
    if (this.timers.has(key)) return
    this.timers.set(key, setTimeout(() => {
      this.timers.delete(key)
      this.check(key, file)
    }, this.debounceMs))
  }

  private rescan(): void {
    for (const key of this.byKey.keys()) this.check(key, undefined)
  }

  // Compares each file (or the one named) with the version the module loaded. A file written in the
  // last `debounceMs` may be half written (a save that truncates, then writes): it is checked again
  // once it has been still for that long.
  private check(key: string, hint: string | undefined): void {
    const files = this.byKey.get(key)
    if (files === undefined) return
    for (const file of hint !== undefined && files.has(hint) ? [hint, ...files.keys()] : files.keys()) {
      const before = files.get(file)
      const stat = statOf(file)
      if (before !== undefined && stat !== undefined && stat.mtimeMs === before.mtimeMs && stat.size === before.size) continue
      if (before === undefined && stat === undefined) continue
      const age = stat === undefined ? Infinity : Date.now() - stat.mtimeMs
      if (age >= 0 && age < this.debounceMs) return this.schedule(key, file)
      const now = fingerprint(file)
      if (now?.hash === before?.hash) {
        if (now !== undefined) files.set(file, now)
        continue
      }
      files.set(file, now)
      return this.onChange(key, file)
    }
  }
}

/** The versions of some files at one moment, to compare with later. */
export type Baseline = ReadonlyMap<string, Fingerprint | undefined>

/** Takes the current versions of `files`. */
export const snapshot = (files: ReadonlyArray<string>): Baseline => new Map(files.map((file) => [file, fingerprint(file)]))

/** A file's version: its size and modification time, and the hash of its content. */
export interface Fingerprint {
  readonly mtimeMs: number
  readonly size: number
  readonly hash: string
}

const statOf = (file: string): Fs.Stats | undefined => {
  try {
    return Fs.statSync(file)
  } catch {
    return undefined
  }
}

const fingerprint = (file: string): Fingerprint | undefined => {
  try {
    const stat = Fs.statSync(file)
    const hash = createHash("sha1").update(Fs.readFileSync(file)).digest("hex")
    return { mtimeMs: stat.mtimeMs, size: stat.size, hash }
  } catch {
    return undefined
  }
}
