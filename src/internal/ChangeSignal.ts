import * as Effect from "effect/Effect"
import * as fs from "node:fs"

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
