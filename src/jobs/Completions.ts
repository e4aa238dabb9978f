import type { JobId } from "../domain/JobId.js"
import type { JobRecord } from "../domain/JobRecord.js"

type Waiter = (record: JobRecord) => void

/**
 * Callers waiting for jobs to finish. The ledger resolves them after it commits a terminal
 * state, so a waiter that registers first and then reads the store can never miss the end.
 */
export class Completions {
  // Nearly every job has one waiter at most: it is kept alone, and an array only for several.
  private readonly waiters = new Map<JobId, Waiter | Array<Waiter>>()

  /** Call `resume` once when the job's terminal record is committed; `unregister` forgets it. */
  register(id: JobId, resume: Waiter): void {
    const current = this.waiters.get(id)
    if (current === undefined) this.waiters.set(id, resume)
    else if (typeof current === "function") this.waiters.set(id, [current, resume])
    else current.push(resume)
  }

  /** Forget one waiter of a job (a no-op when it was resumed or forgotten already). */
  unregister(id: JobId, resume: Waiter): void {
    const current = this.waiters.get(id)
    if (current === undefined) return
    if (typeof current === "function") {
      if (current === resume) this.waiters.delete(id)
      return
    }
    const index = current.indexOf(resume)
    if (index >= 0) current.splice(index, 1)
    if (current.length === 0) this.waiters.delete(id)
  }

  /** True when somebody waits for this job; lets the ledger skip building records nobody reads. */
  has(id: JobId): boolean {
    return this.waiters.has(id)
  }

  /** Resume and forget every waiter of the job. */
  complete(record: JobRecord): void {
    const current = this.waiters.get(record.id)
    if (current === undefined) return
    this.waiters.delete(record.id)
    if (typeof current === "function") current(record)
    else for (const resume of current) resume(record)
  }
}
