import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import { StoreError } from "../domain/Errors.js"
import type { JobId } from "../domain/JobId.js"
import { JobAttempt, JobRecord } from "../domain/JobRecord.js"
import type { JobFilter, TransportState } from "../domain/JobRecord.js"
import { JobSpec } from "../domain/JobSpec.js"
import type { JobState } from "../domain/JobState.js"
import { isTerminal, terminalStates } from "../domain/JobState.js"
import type { ActiveJobRow, NewJobRow, ProgressRow, TransitionRow } from "./JobStore.js"
import { JobStore } from "./JobStore.js"

/** Builds a JobStore over a SQLite SqlClient whose schema comes from `Migrations` (triggers included). */
export const make: Effect.Effect<JobStore["Type"], never, SqlClient.SqlClient> = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const run = (text: string, params: ReadonlyArray<unknown>) => sql.unsafe(text, params).raw

  // Inserting a job writes its first transition too (trigger `jobs_inserted`). Parameters go into
  // arrays of their final size: a batch binds thousands of them.
  const insertJobs = (rows: ReadonlyArray<NewJobRow>) =>
    inRanges(rows, (start, size) => {
      const params: Array<unknown> = new Array(size * 13)
      let k = 0
      for (let i = start; i < start + size; i++) {
        const row = rows[i]!
        params[k++] = row.id
        params[k++] = row.name
        params[k++] = row.queue
        params[k++] = row.state
        params[k++] = row.priority
        params[k++] = JSON.stringify(row.spec)
        params[k++] = row.key
        params[k++] = row.reason
        params[k++] = row.submittedAt
        params[k++] = row.state === "running" ? row.submittedAt : null
        params[k++] = isTerminal(row.state) ? row.submittedAt : null
        params[k++] = row.submittedAt
        params[k++] = row.attempts ?? 0
      }
      return run(insertText(size), params)
    })

  const insertTags = (rows: ReadonlyArray<NewJobRow>) => {
    const pairs: Array<readonly [string, string]> = []
    for (const row of rows) {
      const tags = row.spec.tags
      if (tags === undefined || tags.length === 0) continue
      for (const tag of new Set(tags)) pairs.push([tag, row.id])
    }
    return chunked(pairs, (chunk) => run(`INSERT OR IGNORE INTO job_tags (tag, job_id) VALUES ${tuples(chunk.length, 2)}`, chunk.flat()))
  }

  // Updating a job's state logs the transition and, when an attempt ends, the attempt (triggers).
  const updateJobs = (round: ReadonlyArray<TransitionRow>) =>
    inRanges(round, (start, size) => {
      const params: Array<unknown> = new Array(size * 14)
      let k = 0
      for (let i = start; i < start + size; i++) {
        const t = round[i]!
        params[k++] = t.id
        params[k++] = t.to
        params[k++] = t.attempt
        params[k++] = t.to === "running" ? t.at : null
        params[k++] = isTerminal(t.to) ? t.at : null
        params[k++] = t.exitCode
        params[k++] = t.result === undefined ? null : JSON.stringify(t.result)
        params[k++] = t.reason
        params[k++] = t.outputs === undefined ? null : JSON.stringify(t.outputs)
        params[k++] = t.runAfter ?? null
        params[k++] = t.at
        params[k++] = t.to === "running" ? 1 : 0
        params[k++] = t.location ?? null
        params[k++] = t.spec === undefined ? null : JSON.stringify(t.spec)
      }
      return run(updateText(size), params)
    })

  // Progress only moves a running attempt forward; an attempt that has ended is left alone.
  const updateProgress = (rows: ReadonlyArray<ProgressRow>) =>
    chunked(rows, (chunk) =>
      run(
        `WITH v (id, attempts, transport_state) AS (VALUES ${tuples(chunk.length, 3)})
        UPDATE jobs SET transport_state = v.transport_state FROM v
        WHERE jobs.id = v.id AND jobs.attempts = v.attempts AND jobs.state = 'running'`,
        chunk.flatMap((p) => [p.id, p.attempt, p.transportState])
      ))

  const commit = (
    inserts: ReadonlyArray<NewJobRow>,
    transitions: ReadonlyArray<TransitionRow>,
    progress: ReadonlyArray<ProgressRow> = []
  ) =>
    Effect.suspend(() => {
      const statements: Array<Effect.Effect<unknown, SqlError>> = []
      if (inserts.length > 0) {
        statements.push(...insertJobs(inserts))
        statements.push(...insertTags(inserts))
      }
      for (const round of rounds(transitions)) statements.push(...updateJobs(round))
      if (progress.length > 0) statements.push(...updateProgress(progress))
      if (statements.length === 0) return Effect.void
      // One statement is atomic on its own; more share a transaction.
      const all = Effect.forEach(statements, (statement) => statement, { discard: true })
      return statements.length === 1 ? all : sql.withTransaction(all)
    }).pipe(storeError("commit"))

  const states = (ids: ReadonlyArray<JobId>) =>
    ids.length === 0
      ? Effect.succeed(new Map<JobId, JobState>())
      : sql<{ id: JobId; state: JobState }>`SELECT id, state FROM jobs WHERE ${sql.in("id", ids)}`.pipe(
        Effect.map((rows) => new Map(rows.map((r) => [r.id, r.state] as const))),
        storeError("read job states")
      )

  const idsByKey = (keys: ReadonlyArray<string>) =>
    keys.length === 0
      ? Effect.succeed(new Map<string, JobId>())
      : sql<{ id: JobId; idem_key: string }>`SELECT id, idem_key FROM jobs WHERE ${sql.in("idem_key", keys)}`.pipe(
        Effect.map((rows) => new Map(rows.map((r) => [r.idem_key, r.id] as const))),
        storeError("read idempotency keys")
      )

  const get = (ids: ReadonlyArray<JobId>) =>
    ids.length === 0
      ? Effect.succeed([])
      : sql<JobRow>`SELECT * FROM jobs WHERE ${sql.in("id", ids)}`.pipe(
        Effect.flatMap(decodeRows),
        storeError("read jobs")
      )

  const list = (filter: JobFilter) => {
    const clauses = []
    if (filter.ids !== undefined) clauses.push(sql.in("id", filter.ids))
    if (filter.states !== undefined) {
      clauses.push(sql.in("state", filter.states))
      // Spelled out so that SQLite may use the partial index, which leaves completed jobs out.
      if (!filter.states.includes("completed")) clauses.push(sql`state <> 'completed'`)
    }
    if (filter.queue !== undefined) clauses.push(sql`queue = ${filter.queue}`)
    if (filter.name !== undefined) clauses.push(sql`name = ${filter.name}`)
    if (filter.tag !== undefined) clauses.push(sql`id IN (SELECT job_id FROM job_tags WHERE tag = ${filter.tag})`)
    if (filter.since !== undefined) clauses.push(sql`submitted_at >= ${filter.since}`)
    if (filter.before !== undefined) clauses.push(sql`seq < (SELECT seq FROM jobs WHERE id = ${filter.before})`)
    const where = clauses.length > 0 ? sql`WHERE ${sql.and(clauses)}` : sql``
    return sql<JobRow>`SELECT * FROM jobs ${where} ORDER BY seq DESC LIMIT ${filter.limit ?? 100}`.pipe(
      Effect.flatMap(decodeRows),
      storeError("list jobs")
    )
  }

  const attempts = (id: JobId) =>
    sql<AttemptRow>`SELECT * FROM job_attempts WHERE job_id = ${id} ORDER BY attempt`.pipe(
      Effect.map((rows) =>
        rows.map((r) =>
          new JobAttempt({
            jobId: r.job_id,
            attempt: r.attempt,
            state: r.state,
            exitCode: r.exit_code,
            reason: r.reason,
            startedAt: r.started_at,
            finishedAt: r.finished_at,
            location: r.location
          })
        )
      ),
      storeError("read attempts")
    )

  const active = sql<ActiveRow>`SELECT id, queue, state, priority, spec, attempts, submitted_at, started_at, run_after
    FROM jobs WHERE ${sql.in("state", ["pending", "held", "queued", "running"])} AND state <> 'completed' ORDER BY seq`.pipe(
    Effect.flatMap((rows) =>
      Effect.forEach(rows, (r) =>
        decodeSpec(r.spec).pipe(Effect.map((spec): ActiveJobRow => ({
          id: r.id,
          queue: r.queue,
          state: r.state,
          priority: r.priority,
          spec,
          attempts: r.attempts,
          submittedAt: r.submitted_at,
          startedAt: r.started_at,
          runAfter: r.run_after
        }))))
    ),
    storeError("read active jobs")
  )

  const clean = (filter: { readonly olderThanMs: number; readonly states?: ReadonlyArray<JobState> | undefined }, now: number) =>
    Effect.gen(function*() {
      const states = (filter.states ?? terminalStates).filter((s) => terminalStates.includes(s))
      if (states.length === 0) return []
      const rows = yield* sql<{ id: JobId }>`SELECT id FROM jobs WHERE ${sql.in("state", states)}
        AND finished_at <= ${now - filter.olderThanMs}`
      const ids = rows.map((r) => r.id)
      yield* forEachChunk(ids, (chunk) =>
        Effect.gen(function*() {
          yield* sql`DELETE FROM job_transitions WHERE ${sql.in("job_id", chunk)}`
          yield* sql`DELETE FROM job_attempts WHERE ${sql.in("job_id", chunk)}`
          yield* sql`DELETE FROM job_tags WHERE ${sql.in("job_id", chunk)}`
          yield* sql`DELETE FROM jobs WHERE ${sql.in("id", chunk)}`
        }))
      return ids
    }).pipe(sql.withTransaction, storeError("clean jobs"))

  return JobStore.of({ commit, states, idsByKey, get, list, attempts, active, clean })
})

/** Provides a JobStore over the SqlClient in context. */
export const layer: Layer.Layer<JobStore, never, SqlClient.SqlClient> = Layer.effect(JobStore, make)

interface JobRow {
  readonly id: JobId
  readonly name: string | null
  readonly queue: string
  readonly state: JobState
  readonly priority: number
  readonly spec: string
  readonly attempts: number
  readonly exit_code: number | null
  readonly result: string | null
  readonly reason: string | null
  readonly outputs: string | null
  readonly submitted_at: number
  readonly started_at: number | null
  readonly finished_at: number | null
  readonly location: string | null
  readonly transport_state: TransportState | null
}

interface ActiveRow {
  readonly id: JobId
  readonly queue: string
  readonly state: JobState
  readonly priority: number
  readonly spec: string
  readonly attempts: number
  readonly submitted_at: number
  readonly started_at: number | null
  readonly run_after: number | null
}

interface AttemptRow {
  readonly job_id: JobId
  readonly attempt: number
  readonly state: JobState
  readonly exit_code: number | null
  readonly reason: string | null
  readonly started_at: number
  readonly finished_at: number
  readonly location: string | null
}

const decodeSpecJson = Schema.decodeUnknown(Schema.parseJson(JobSpec))
const decodeSpec = (text: string) => decodeSpecJson(text)

const decodeRows = (rows: ReadonlyArray<JobRow>) =>
  Effect.forEach(rows, (r) =>
    decodeSpec(r.spec).pipe(Effect.map((spec) =>
      new JobRecord({
        id: r.id,
        name: r.name,
        queue: r.queue,
        state: r.state,
        priority: r.priority,
        spec,
        attempts: r.attempts,
        exitCode: r.exit_code,
        ...(r.result === null ? {} : { result: JSON.parse(r.result) as unknown }),
        reason: r.reason,
        outputs: r.outputs === null ? [] : (JSON.parse(r.outputs) as Array<string>),
        submittedAt: r.submitted_at,
        startedAt: r.started_at,
        finishedAt: r.finished_at,
        location: r.location,
        transportState: r.transport_state
      }, { disableValidation: true })
    )))

const storeError = (what: string) => <A, R>(effect: Effect.Effect<A, SqlError | { readonly _tag: string }, R>) =>
  Effect.mapError(effect, (cause) => new StoreError({ message: `could not ${what}: ${describe(cause)}`, cause }))

const describe = (cause: unknown): string => {
  const inner = (cause as { cause?: unknown }).cause
  if (inner instanceof Error) return inner.message
  if (cause instanceof Error) return cause.message
  return String(cause)
}

// Statement sizes are powers of four so that prepared statements are reused across batches.
const chunkSizes = [256, 64, 16, 4, 1] as const

const chunksOf = <T>(rows: ReadonlyArray<T>): Array<ReadonlyArray<T>> => {
  const chunks: Array<ReadonlyArray<T>> = []
  let offset = 0
  for (const size of chunkSizes) {
    while (rows.length - offset >= size) {
      chunks.push(rows.slice(offset, offset + size))
      offset += size
    }
  }
  return chunks
}

// One statement per range of rows (the chunks' sizes, without copying them out), to be run in order.
const inRanges = <T, A, E, R>(
  rows: ReadonlyArray<T>,
  f: (start: number, size: number) => Effect.Effect<A, E, R>
): Array<Effect.Effect<A, E, R>> => {
  const statements: Array<Effect.Effect<A, E, R>> = []
  let offset = 0
  for (const size of chunkSizes) {
    while (rows.length - offset >= size) {
      statements.push(f(offset, size))
      offset += size
    }
  }
  return statements
}

// One statement per chunk, to be run in order.
const chunked = <T, A, E, R>(
  rows: ReadonlyArray<T>,
  f: (chunk: ReadonlyArray<T>) => Effect.Effect<A, E, R>
): Array<Effect.Effect<A, E, R>> => chunksOf(rows).map(f)

const forEachChunk = <T, E, R>(
  rows: ReadonlyArray<T>,
  f: (chunk: ReadonlyArray<T>) => Effect.Effect<unknown, E, R>
): Effect.Effect<void, E, R> => Effect.suspend(() => Effect.forEach(chunksOf(rows), f, { discard: true }))

// Creation transitions (and the start of a job inserted as running) are written by the insert; the others are applied in rounds, so that a job
// changing twice in one batch (a failed attempt, then its retry) passes through both states.
const rounds = (transitions: ReadonlyArray<TransitionRow>): Array<Array<TransitionRow>> => {
  const result: Array<Array<TransitionRow>> = []
  const seen = new Map<JobId, number>()
  for (const t of transitions) {
    if (t.from === null || t.byInsert === true) continue
    const k = seen.get(t.id) ?? 0
    seen.set(t.id, k + 1)
    ;(result[k] ??= []).push(t)
  }
  return result
}

// The texts of the hot statements, one per chunk size: the same string each time, so that the
// prepared-statement cache finds it without building a new one of some thousands of characters.
const textBySize = (text: (size: number) => string) => {
  const cache = new Map<number, string>()
  return (size: number): string => {
    let cached = cache.get(size)
    if (cached === undefined) {
      cached = text(size)
      cache.set(size, cached)
    }
    return cached
  }
}

const insertText = textBySize((size) =>
  `INSERT INTO jobs (id, name, queue, state, priority, spec, idem_key, reason, submitted_at, started_at, finished_at, changed_at, attempts) VALUES ${
    tuples(size, 13)
  }`
)

// A new attempt records where it runs; every transition clears the transport's progress.
const updateText = textBySize((size) =>
  `WITH v (id, state, attempts, started_at, finished_at, exit_code, result, reason, outputs, run_after, changed_at, starts, location, spec) AS (VALUES ${
    tuples(size, 14)
  }) UPDATE jobs SET state = v.state, attempts = v.attempts, started_at = coalesce(v.started_at, jobs.started_at),
  finished_at = v.finished_at, exit_code = v.exit_code, result = v.result, reason = v.reason,
  outputs = coalesce(v.outputs, jobs.outputs), run_after = v.run_after, changed_at = v.changed_at,
  location = CASE WHEN v.starts = 1 THEN v.location ELSE jobs.location END, transport_state = NULL,
  spec = coalesce(v.spec, jobs.spec)
  FROM v WHERE jobs.id = v.id`
)

const tupleCache = new Map<string, string>()

const tuples = (rows: number, columns: number): string => {
  const key = `${rows}x${columns}`
  let text = tupleCache.get(key)
  if (text === undefined) {
    // No spaces: the text is hashed on every run by the prepared-statement cache.
    const one = `(${Array.from({ length: columns }, () => "?").join(",")})`
    text = Array.from({ length: rows }, () => one).join(",")
    tupleCache.set(key, text)
  }
  return text
}
