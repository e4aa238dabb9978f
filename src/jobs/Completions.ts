import type { JobId } from "../domain/JobId.js"
import type { JobRecord } from "../domain/JobRecord.js"

/**
 * Callers waiting for jobs to finish. The ledger resolves them after it commits a terminal
 * state, so a waiter that registers first and then reads the store can never miss the end.
 */
export class Completions {
  private readonly waiters = new Map<JobId, Array<(record: JobRecord) => void>>()

  /** Call `resume` once when the job's terminal record is committed; returns an unregister function. */
  register(id: JobId, resume: (record: JobRecord) => void): () => void {
    let list = this.waiters.get(id)
    if (list === undefined) {
      list = []
      this.waiters.set(id, list)
    }
    list.push(resume)
    return () => {
      const current = this.waiters.get(id)
      if (current === undefined) return
      const index = current.indexOf(resume)
      if (index >= 0) current.splice(index, 1)
      if (current.length === 0) this.waiters.delete(id)
    }
  }

  /** True when somebody waits for this job; lets the ledger skip building records nobody reads. */
  has(id: JobId): boolean {
    return this.waiters.has(id)
  }

  /** Resume and forget every waiter of the job. */
  complete(record: JobRecord): void {
    const list = this.waiters.get(record.id)
    if (list === undefined) return
    this.waiters.delete(record.id)
    for (const resume of list) resume(record)
  }
}
