/**
 * Timeouts for many waiters on one timer. A deadline is rounded up to the next tick, so a timeout
 * fires at most one tick late and never early; the timer runs only while a deadline is pending.
 * Cheaper than a Node timer per waiter when thousands wait at once.
 */
export class Deadlines {
  private readonly buckets = new Map<number, Set<() => void>>()
  private timer: ReturnType<typeof setTimeout> | undefined
  private armedFor = Infinity
  private pending = 0

  constructor(private readonly tickMs = 20) {}

  /** Calls `onTimeout` once, no sooner than `ms` from now, unless cancelled; returns the cancel function. */
  add(ms: number, onTimeout: () => void): () => void {
    const due = Math.ceil((Date.now() + Math.max(0, ms)) / this.tickMs) * this.tickMs
    let bucket = this.buckets.get(due)
    if (bucket === undefined) {
      bucket = new Set()
      this.buckets.set(due, bucket)
    }
    if (!bucket.has(onTimeout)) this.pending++
    bucket.add(onTimeout)
    if (due < this.armedFor) this.arm(due)
    const owner = bucket
    return () => {
      if (!owner.delete(onTimeout)) return
      if (owner.size === 0 && this.buckets.get(due) === owner) this.buckets.delete(due)
      // With nothing left to time out, no timer keeps the process alive.
      if (--this.pending === 0) this.disarm()
    }
  }

  /** Deadlines still pending. */
  get size(): number {
    return this.pending
  }

  /** Whether a timer is set (only while deadlines are pending). */
  get armed(): boolean {
    return this.timer !== undefined
  }

  private disarm(): void {
    if (this.timer !== undefined) clearTimeout(this.timer)
    this.timer = undefined
    this.armedFor = Infinity
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
    const due: Array<() => void> = []
    for (const [at, bucket] of this.buckets) {
      if (at <= now) {
        this.buckets.delete(at)
        this.pending -= bucket.size
        // Emptied, so that a late cancel of a deadline that fired is a no-op.
        for (const onTimeout of bucket) due.push(onTimeout)
        bucket.clear()
      } else if (at < earliest) earliest = at
    }
    if (earliest < Infinity) this.arm(earliest)
    for (const onTimeout of due) onTimeout()
  }
}
