import type { JobId } from "../domain/JobId.js"
import type { JobSpec } from "../domain/JobSpec.js"

/** A job that may run now (or after `runAfter`), as the ledger hands it to its queue. */
export interface ReadyJob {
  readonly id: JobId
  readonly queue: string
  readonly priority: number
  readonly spec: JobSpec
  readonly runAfter: number | null
}

/** What the ledger needs from the queues: hand over ready jobs, and cancel jobs being killed. */
export interface Dispatch {
  /** Queue ready jobs; a job already queued or running is ignored. */
  readonly enqueue: (jobs: ReadonlyArray<ReadyJob>) => void
  /** Drop queued jobs and interrupt running ones; interrupted runners report `killed`, with the reason, themselves. */
  readonly cancel: (jobs: ReadonlyArray<readonly [id: JobId, reason: string]>) => void
  /** Ids whose runners are alive in this process now. */
  readonly running: () => ReadonlySet<JobId>
  /**
   * Give runners back to attempts that are still running elsewhere (on a remote) after this
   * process restarted: the runner picks the attempt up where it is, without starting it again.
   */
  readonly adopt: (attempts: ReadonlyArray<{ readonly job: ReadyJob; readonly attempt: number }>) => void
  /**
   * Reserve a free slot for a new job on its queue, when nothing else waits there; true when
   * reserved. The ledger then commits the job as running and `launch`es it, or `release`s it.
   */
  readonly claim: (job: ReadyJob) => boolean
  /** Start the runners of claimed jobs, once their start is committed. */
  readonly launch: (jobs: ReadonlyArray<ReadyJob>) => void
  /** Give back the slots of claimed jobs whose start was not committed. */
  readonly release: (jobs: ReadonlyArray<ReadyJob>) => void
}
