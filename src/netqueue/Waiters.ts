/**
 * Calls waiting on a queue (a blocked get, put, poll or accept), each with an optional timeout.
 * On every change the owner calls `run`, which retries waiters in arrival order.
 */
export class Waiters {
  private list: Array<Entry> = []

  /** Waiters still waiting. */
  get size(): number {
    return this.list.length
  }

  /**
   * Waits until `attempt` returns true, or `timeoutMs` passes (`expire` runs then). Tries once at
   * once. Returns a function that cancels the wait.
   */
  add(attempt: () => boolean, expire: () => void, timeoutMs: number | undefined, close: () => void = expire): () => void {
    if (attempt()) return noop
    const entry: Entry = { attempt, expire, close, timer: undefined }
    if (timeoutMs !== undefined) {
      entry.timer = setTimeout(() => {
        this.remove(entry)
        expire()
      }, Math.max(0, timeoutMs))
    }
    this.list.push(entry)
    return () => this.remove(entry)
  }

  /** Retries every waiter in order; the ones that complete are removed. */
  run(): void {
    if (this.list.length === 0) return
    for (const entry of this.list.slice()) {
      if (entry.attempt()) this.remove(entry)
    }
  }

  /** Ends every wait with its `close` (the owner closed). */
  closeAll(): void {
    const list = this.list
    this.list = []
    for (const entry of list) {
      if (entry.timer !== undefined) clearTimeout(entry.timer)
      entry.close()
    }
  }

  private remove(entry: Entry): void {
    const index = this.list.indexOf(entry)
    if (index === -1) return
    this.list.splice(index, 1)
    if (entry.timer !== undefined) clearTimeout(entry.timer)
  }
}

/**
 * Counts messages as they arrive, for `poll`: a poll answers true when something arrived that no
 * earlier poll saw, waiting for it (up to the timeout) only when asked to block.
 */
export class MessagePoll {
  private arrived = 0
  private seen = 0

  /** A message arrived. */
  note(): void {
    this.arrived++
  }

  /** Calls back with true once a message no earlier poll saw is there, or false (at once, or at the timeout). */
  poll(waiters: Waiters, block: boolean, timeoutMs: number | undefined, callback: (arrived: boolean) => void): () => void {
    const fresh = () => {
      if (this.arrived === this.seen) return false
      this.seen = this.arrived
      callback(true)
      return true
    }
    if (!block) {
      if (!fresh()) callback(false)
      return noop
    }
    return waiters.add(fresh, () => callback(false), timeoutMs)
  }
}

interface Entry {
  readonly attempt: () => boolean
  readonly expire: () => void
  readonly close: () => void
  timer: NodeJS.Timeout | undefined
}

const noop = (): void => {}
