import * as Effect from "effect/Effect"
import * as fs from "node:fs"
import * as path from "node:path"

// The signals open in this process, by folder, for `touch`.
const live = new Map<string, Set<ChangeSignal>>()

/**
 * Wakes a waiting reader when something in a directory changes (`fs.watch`, a hint that can be
 * lost or reordered), or after a fallback interval, whichever comes first. A directory that does
 * not exist yet is watched once it does; until then the interval covers it.
 */
export class ChangeSignal {
  private watcher: fs.FSWatcher | undefined
  private dirty = false
  private wake: (() => void) | undefined
  private closed = false

  constructor(private readonly dir: string, private readonly intervalMs: number) {
    this.ensureWatcher()
    const key = path.resolve(dir)
    let set = live.get(key)
    if (set === undefined) live.set(key, set = new Set())
    set.add(this)
  }

  /**
   * Wakes every signal on `dir` in this process at once. Writers in the same process call it
   * after they change the folder, so a reader need not wait for the file-system event.
   */
  static touch(dir: string): void {
    const set = live.get(path.resolve(dir))
    if (set !== undefined) for (const signal of set) signal.notify()
  }

  /** Waits for the next change notification, or the interval, whichever comes first. */
  readonly wait: Effect.Effect<void> = Effect.async<void>((resume) => {
    this.ensureWatcher()
    if (this.dirty) {
      this.dirty = false
      return resume(Effect.void)
    }
    const timer = setTimeout(() => this.notify(), this.intervalMs)
    this.wake = () => {
      clearTimeout(timer)
      this.wake = undefined
      this.dirty = false
      resume(Effect.void)
    }
    return Effect.sync(() => {
      clearTimeout(timer)
      this.wake = undefined
    })
  })

  /** Stops watching. */
  close(): void {
    this.closed = true
    const key = path.resolve(this.dir)
    live.get(key)?.delete(this)
    if (live.get(key)?.size === 0) live.delete(key)
    this.watcher?.close()
    this.watcher = undefined
  }

  private notify(): void {
    this.dirty = true
    this.wake?.()
  }

  private ensureWatcher(): void {
    if (this.watcher !== undefined || this.closed) return
    try {
      // A watched folder that is deleted (and perhaps recreated) silences its watcher without an
      // error; drop it so the next wait watches the folder anew.
      const watcher = fs.watch(this.dir, { persistent: false }, () => {
        if (!fs.existsSync(this.dir)) {
          watcher.close()
          if (this.watcher === watcher) this.watcher = undefined
        }
        this.notify()
      })
      watcher.on("error", () => {
        watcher.close()
        if (this.watcher === watcher) this.watcher = undefined
      })
      this.watcher = watcher
    } catch {
      // The directory does not exist yet: the interval covers it until it does.
    }
  }
}
