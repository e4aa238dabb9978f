import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import type { StoreError } from "../domain/Errors.js"
import type { JobId } from "../domain/JobId.js"
import type { CleanFilter, JobAttempt, JobFilter, JobRecord, TransportState } from "../domain/JobRecord.js"
import type { JobSpec } from "../domain/JobSpec.js"
import type { JobState } from "../domain/JobState.js"

/** A job to insert, already classified as held, queued, running (its first attempt starts at once) or failed. */
export interface NewJobRow {
  readonly id: JobId
  readonly name: string | null
  readonly queue: string
  readonly state: JobState
  readonly priority: number
  readonly spec: JobSpec
  readonly key: string | null
  readonly reason: string | null
  readonly submittedAt: number
  /** 1 for a job inserted as running; 0 otherwise. */
  readonly attempts?: number
}

/** One state change to persist: it updates the job row and appends to the transition log. */
export interface TransitionRow {
  readonly id: JobId
  readonly from: JobState | null
  readonly to: JobState
  readonly at: number
  /** The attempt the job is on after this transition (0 before its first run). */
  readonly attempt: number
  readonly exitCode: number | null
  readonly reason: string | null
  readonly result?: unknown
  readonly outputs?: ReadonlyArray<string>
  /** Not before this time may a re-queued job start (retry backoff). */
  readonly runAfter?: number | null
  /** For a transition to running: the remote the attempt goes to, or null for this machine. */
  readonly location?: string | null
  /** A new spec for the job (a resend to another remote). */
  readonly spec?: JobSpec
  /** Already written by the job's insert (a job inserted as running); only published as an event. */
  readonly byInsert?: boolean
}

/** How far the transport has got with a job's attempt on a remote. */
export interface ProgressRow {
  readonly id: JobId
  readonly attempt: number
  readonly transportState: TransportState
}

/** A job that has not finished, as recovery and the scheduler need it. */
export interface ActiveJobRow {
  readonly id: JobId
  readonly queue: string
  readonly state: JobState
  readonly priority: number
  readonly spec: JobSpec
  readonly attempts: number
  readonly submittedAt: number
  readonly startedAt: number | null
  readonly runAfter: number | null
}

/** Persistence of job metadata. One writer (the job ledger) calls `commit`; readers may call the rest. */
export class JobStore extends Context.Tag("troupe/JobStore")<JobStore, {
  /** Insert new jobs, apply transitions, then record transport progress, in one transaction (group commit). */
  readonly commit: (
    inserts: ReadonlyArray<NewJobRow>,
    transitions: ReadonlyArray<TransitionRow>,
    progress?: ReadonlyArray<ProgressRow>
  ) => Effect.Effect<void, StoreError>
  /** The states of the given jobs that exist. */
  readonly states: (ids: ReadonlyArray<JobId>) => Effect.Effect<ReadonlyMap<JobId, JobState>, StoreError>
  /** The ids of jobs already submitted under the given idempotency keys. */
  readonly idsByKey: (keys: ReadonlyArray<string>) => Effect.Effect<ReadonlyMap<string, JobId>, StoreError>
  /** Full records for the given ids, in no particular order; unknown ids are absent. */
  readonly get: (ids: ReadonlyArray<JobId>) => Effect.Effect<ReadonlyArray<JobRecord>, StoreError>
  /** Records matching a filter, newest first. */
  readonly list: (filter: JobFilter) => Effect.Effect<ReadonlyArray<JobRecord>, StoreError>
  /** The attempt history of one job, oldest first. */
  readonly attempts: (id: JobId) => Effect.Effect<ReadonlyArray<JobAttempt>, StoreError>
  /** Every job that has not reached a terminal state, in submit order. */
  readonly active: Effect.Effect<ReadonlyArray<ActiveJobRow>, StoreError>
  /** Delete finished jobs matching the filter; returns the deleted ids. */
  readonly clean: (filter: CleanFilter, now: number) => Effect.Effect<ReadonlyArray<JobId>, StoreError>
}>() {}
