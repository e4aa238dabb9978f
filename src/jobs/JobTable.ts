import type { JobId } from "../domain/JobId.js"
import { QueueSummary } from "../domain/JobRecord.js"
import type { JobSpec } from "../domain/JobSpec.js"
import { defaultRetryDelayMs } from "../domain/JobSpec.js"
import type { JobState } from "../domain/JobState.js"
import { isTerminal } from "../domain/JobState.js"
import type { TransitionRow } from "../store/JobStore.js"
import type { Completions } from "./Completions.js"
import type { Batch } from "./LedgerBatch.js"
import { recordOf } from "./LedgerBatch.js"

type Mutable<T> = { -readonly [K in keyof T]: T[K] }

interface Counts {
  held: number
  queued: number
  running: number
}

/** The states an unfinished job can be in. */
export type LiveState = "held" | "queued" | "running"

/** An unfinished job as the ledger tracks it in memory. */
export interface LiveJob {
  readonly id: JobId
  readonly queue: string
  state: LiveState
  readonly priority: number
  readonly spec: JobSpec
  attempts: number
  readonly maxAttempts: number
  readonly submittedAt: number
  startedAt: number | null
  waitingOn: Set<JobId> | null
}

/**
 * The ledger's in-memory table of unfinished jobs: their states, who waits on whom, and counts
 * per queue. Every change is also written into the current Batch, which the ledger commits.
 */
export class JobTable {
  readonly live = new Map<JobId, LiveJob>()
  private readonly dependents = new Map<JobId, Set<JobId>>()
  private readonly counts = new Map<string, Counts>()

  constructor(private readonly completions: Completions) {}

  /** Forget everything (before a rebuild from the store). */
  clear(): void {
    this.live.clear()
    this.dependents.clear()
    this.counts.clear()
    this.lastQueue = undefined
    this.lastCounts = undefined
  }

  /** Counts per queue of held, queued and running jobs. */
  summary(concurrency: (queue: string) => number, capacity: (queue: string) => number): ReadonlyArray<QueueSummary> {
    // Where jobs run is counted on demand: a status query, not a hot path.
    const where = new Map<string, Map<string | null, { queued: number; running: number }>>()
    for (const job of this.live.values()) {
      if (job.state !== "queued" && job.state !== "running") continue
      const byLocation = where.get(job.queue) ?? new Map()
      where.set(job.queue, byLocation)
      const location = job.spec.on ?? null
      const counts = byLocation.get(location) ?? { queued: 0, running: 0 }
      byLocation.set(location, counts)
      counts[job.state] += 1
    }
    return Array.from(this.counts.entries()).map(([queue, c]) =>
      new QueueSummary({
        queue,
        concurrency: concurrency(queue),
        capacity: capacity(queue),
        held: c.held,
        queued: c.queued,
        running: c.running,
        where: Array.from(where.get(queue) ?? [], ([location, counts]) => ({ location, ...counts }))
      })
    )
  }

  /** Held plus queued jobs of a queue: what its capacity bounds. */
  waiting(queue: string): number {
    const c = this.countsOf(queue)
    return c.held + c.queued
  }

  /** Add a job that is held or queued (not yet committed: the caller records its insert). */
  add(job: LiveJob): void {
    this.live.set(job.id, job)
    this.track(job, 1)
  }

  /** Stop tracking dependencies of a job that was rejected before it was added. */
  unhold(job: LiveJob): void {
    for (const dep of job.waitingOn ?? []) this.dependents.get(dep)?.delete(job.id)
  }

  /** Record a transition in the batch and apply it to the table; terminal states leave the table. */
  move(
    job: LiveJob,
    to: JobState,
    tx: Batch,
    details: Partial<Pick<TransitionRow, "exitCode" | "reason" | "result" | "outputs" | "runAfter" | "spec">> = {}
  ): void {
    const now = Date.now()
    const from = job.state
    if (tx.events) tx.queueOf.set(job.id, job.queue)
    const row: Mutable<TransitionRow> = {
      id: job.id,
      from,
      to,
      at: now,
      attempt: job.attempts,
      exitCode: details.exitCode ?? null,
      reason: details.reason ?? null
    }
    if (details.result !== undefined) row.result = details.result
    if (details.outputs !== undefined) row.outputs = details.outputs
    if (details.runAfter !== undefined) row.runAfter = details.runAfter
    if (to === "running") row.location = job.spec.on ?? null
    if (details.spec !== undefined) row.spec = details.spec
    tx.transitions.push(row)
    if (isTerminal(to)) {
      this.track(job, -1)
      this.live.delete(job.id)
      if (this.completions.has(job.id)) {
        tx.finished.push(recordOf(job, to, now, details))
      }
      this.settleDependents(job.id, to, tx)
      return
    }
    this.track(job, -1)
    job.state = to as LiveState
    this.track(job, 1)
    if (to === "running") job.startedAt = now
    if (to === "queued") {
      tx.ready.push({ id: job.id, queue: job.queue, priority: job.priority, spec: job.spec, runAfter: details.runAfter ?? null })
    }
  }

  // A finished job releases or fails the jobs held on it.
  private settleDependents(id: JobId, state: JobState, tx: Batch): void {
    const waiting = this.dependents.get(id)
    if (waiting === undefined) return
    this.dependents.delete(id)
    for (const dependentId of waiting) {
      const dependent = this.live.get(dependentId)
      if (dependent === undefined || dependent.state !== "held") continue
      if (state === "completed") {
        dependent.waitingOn?.delete(id)
        if (dependent.waitingOn === null || dependent.waitingOn.size === 0) this.move(dependent, "queued", tx)
      } else {
        this.move(dependent, "failed", tx, { reason: `dependency ${id} ended ${state}` })
      }
    }
  }

  /** Make `job` wait for `on` to complete. */
  hold(job: LiveJob, on: JobId): void {
    ;(job.waitingOn ??= new Set()).add(on)
    let set = this.dependents.get(on)
    if (set === undefined) {
      set = new Set()
      this.dependents.set(on, set)
    }
    set.add(job.id)
  }

  // A failed attempt with retries left: record the failure, then queue it again after a backoff.
  retry(
    job: LiveJob,
    state: "failed" | "timeout" | "lost",
    tx: Batch,
    details: Partial<Pick<TransitionRow, "exitCode" | "reason">>
  ): void {
    const now = Date.now()
    tx.queueOf.set(job.id, job.queue)
    tx.transitions.push({
      id: job.id,
      from: "running",
      to: state,
      at: now,
      attempt: job.attempts,
      exitCode: details.exitCode ?? null,
      reason: details.reason ?? null
    })
    const delay = (job.spec.retryDelayMs ?? defaultRetryDelayMs) * 2 ** (job.attempts - 1)
    this.track(job, -1)
    job.state = "queued"
    this.track(job, 1)
    tx.transitions.push({
      id: job.id,
      from: state,
      to: "queued",
      at: now,
      attempt: job.attempts,
      exitCode: null,
      reason: `retry ${job.attempts + 1} of ${job.maxAttempts} after ${delay} ms`,
      runAfter: now + delay
    })
    tx.ready.push({ id: job.id, queue: job.queue, priority: job.priority, spec: job.spec, runAfter: now + delay })
  }

  // Most jobs share a queue: the last one's counts are kept at hand.
  private lastQueue: string | undefined
  private lastCounts: Counts | undefined

  private countsOf(queue: string): Counts {
    if (queue === this.lastQueue) return this.lastCounts!
    let c = this.counts.get(queue)
    if (c === undefined) {
      c = { held: 0, queued: 0, running: 0 }
      this.counts.set(queue, c)
    }
    this.lastQueue = queue
    this.lastCounts = c
    return c
  }

  // Called several times per job: a switch keeps the property stores monomorphic.
  private track(job: LiveJob, delta: 1 | -1): void {
    const c = this.countsOf(job.queue)
    switch (job.state) {
      case "held":
        c.held += delta
        break
      case "queued":
        c.queued += delta
        break
      case "running":
        c.running += delta
        break
    }
  }
}
