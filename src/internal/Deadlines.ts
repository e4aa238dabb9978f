/**
 * Timeouts for many waiters on one timer. A deadline is rounded up to the next tick, so a timeout
 * fires at most one tick late and never early; the timer runs only while a deadline is pending.
 * Cheaper than a Node timer per waiter when thousands wait at once.
 */
export class Deadlines {
  private readonly buckets = new Map<number, Set<() => void>>()
  private timer: ReturnType<typeof setTimeout> | undefined
  private armedFor = Infinity

  constructor(private readonly tickMs = 20) {}

  /** Calls `onTimeout` once, no sooner than `ms` from now, unless cancelled; returns the cancel function. */
  add(ms: number, onTimeout: () => void): () => void {
    const due = Math.ceil((Date.now() + Math.max(0, ms)) / this.tickMs) * this.tickMs
    let bucket = this.buckets.get(due)
    if (bucket === undefined) {
      bucket = new Set()
      this.buckets.set(due, bucket)
    }
    bucket.add(onTimeout)
    if (due < this.armedFor) this.arm(due)
    const owner = bucket
    return () => {
      if (owner.delete(onTimeout) && owner.size === 0 && this.buckets.get(due) === owner) this.buckets.delete(due)
    }
  }

  /** Deadlines still pending. */
  get size(): number {
    let n = 0
    for (const bucket of this.buckets.values()) n += bucket.size
    return n
  }

  private arm(due: number): void {
    if (this.timer !== undefined) clearTimeout(this.timer)
    this.armedFor = due
    this.timer = setTimeout(this.fire, Math.max(0, due - Date.now()))
  }

  private readonly fire = (): void => {
    this.timer = undefined
    this.armedFor = Infinity
    const now = Date.now()
    let earliest = Infinity
    const due: Array<Set<() => void>> = []
    for (const [at, bucket] of this.buckets) {
      if (at <= now) {
        this.buckets.delete(at)
        due.push(bucket)
      } else if (at < earliest) earliest = at
    }
    if (earliest < Infinity) this.arm(earliest)
    for (const bucket of due) for (const onTimeout of bucket) onTimeout()
  }
}
