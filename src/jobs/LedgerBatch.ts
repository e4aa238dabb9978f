import type { JobId } from "../domain/JobId.js"
import * as Instance from "../internal/Instance.js"
import { JobRecord } from "../domain/JobRecord.js"
import type { JobState } from "../domain/JobState.js"
import type { NewJobRow, ProgressRow, TransitionRow } from "../store/JobStore.js"
import type { ReadyJob } from "./Dispatch.js"
import type { LiveJob } from "./JobTable.js"

/** Everything one batch of ledger messages changes, applied together after one commit. */
export class Batch {
  /** Whether anybody listens to events: transitions that only events need are skipped otherwise. */
  events = true
  readonly inserts: Array<NewJobRow> = []
  readonly transitions: Array<TransitionRow> = []
  readonly progress: Array<ProgressRow> = []
  readonly ready: Array<ReadyJob> = []
  readonly adopt: Array<{ readonly job: ReadyJob; readonly attempt: number }> = []
  /** New jobs claimed a free slot: inserted as running, launched after the commit. */
  readonly launch: Array<ReadyJob> = []
  readonly cancel: Array<readonly [JobId, string]> = []
  readonly finished: Array<JobRecord> = []
  readonly replies: Array<() => void> = []
  readonly newIds = new Set<JobId>()
  readonly keys = new Map<string, JobId>()
  readonly queueOf = new Map<JobId, string>()
  readonly finishedStates = new Map<JobId, JobState>()
  readonly depStates = new Map<JobId, JobState>()
}

/** The terminal record of a job, built from memory for the callers waiting on it. */
export const recordOf = (
  job: LiveJob,
  state: JobState,
  now: number,
  details: Partial<Pick<TransitionRow, "exitCode" | "reason" | "result" | "outputs">>
) => {
  const record = Instance.trusted(JobRecord, {
    id: job.id,
    name: job.spec.name ?? null,
    queue: job.queue,
    state,
    priority: job.priority,
    spec: job.spec,
    attempts: job.attempts,
    exitCode: details.exitCode ?? null,
    reason: details.reason ?? null,
    outputs: details.outputs ?? [],
    submittedAt: job.submittedAt,
    startedAt: job.startedAt,
    finishedAt: now,
    location: job.spec.on ?? null,
    transportState: null
  })
  // Set only when there is one, without a spread: a record per finished job.
  if (details.result !== undefined) (record as { result?: unknown }).result = details.result
  return record
}

