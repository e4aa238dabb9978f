import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type { Envelope } from "../actors/Actor.js"
import { InvalidSpec, JobNotFound, QueueFull } from "../domain/Errors.js"
import type { JobId } from "../domain/JobId.js"
import { makeJobId } from "../domain/JobId.js"
import { JobEvent, JobRecord, QueueSummary } from "../domain/JobRecord.js"
import type { JobSpec } from "../domain/JobSpec.js"
import { defaultQueue, defaultRetryDelayMs } from "../domain/JobSpec.js"
import type { JobState } from "../domain/JobState.js"
import { isTerminal } from "../domain/JobState.js"
import type { NewJobRow, TransitionRow } from "../store/JobStore.js"
import { JobStore } from "../store/JobStore.js"
import type { Completions } from "./Completions.js"
import type { Dispatch, ReadyJob } from "./Dispatch.js"
import type { AttemptResult, Kill, LedgerMessage, Start, Submit } from "./LedgerProtocol.js"

/** What the ledger is wired to. */
export interface LedgerDeps {
  readonly dispatch: Dispatch
  readonly completions: Completions
  /** Receives committed transitions; called only when `wantsEvents` says somebody listens. */
  readonly publish: (events: ReadonlyArray<JobEvent>) => void
  readonly wantsEvents: () => boolean
  /** Most held plus queued jobs a queue accepts. */
  readonly capacity: (queue: string) => number
}

/** The ledger's view of the jobs that are not finished, shared with readers in this process. */
export interface LedgerView {
  /** Counts per queue of held, queued and running jobs. */
  readonly summary: (concurrency: (queue: string) => number) => ReadonlyArray<QueueSummary>
  /** The live state of a job, if it is not finished. */
  readonly stateOf: (id: JobId) => JobState | undefined
}

/**
 * The job ledger: the single writer of job state. It owns the state machine of every
 * unfinished job (dependencies, retries, kills), commits each batch of messages in one
 * transaction (group commit), and only then answers, dispatches and publishes.
 * Its state is rebuilt from the store whenever it (re)starts, which is also crash recovery.
 */
export const make = (deps: LedgerDeps) => {
  const live = new Map<JobId, LiveJob>()
  const dependents = new Map<JobId, Set<JobId>>()
  const counts = new Map<string, { held: number; queued: number; running: number }>()

  const view: LedgerView = {
    summary: (concurrency) =>
      Array.from(counts.entries()).map(([queue, c]) =>
        new QueueSummary({
          queue,
          concurrency: concurrency(queue),
          capacity: deps.capacity(queue),
          held: c.held,
          queued: c.queued,
          running: c.running
        })
      ),
    stateOf: (id) => live.get(id)?.state
  }

  const countsOf = (queue: string) => {
    let c = counts.get(queue)
    if (c === undefined) {
      c = { held: 0, queued: 0, running: 0 }
      counts.set(queue, c)
    }
    return c
  }
  const track = (job: LiveJob, delta: 1 | -1) => {
    countsOf(job.queue)[job.state] += delta
  }

  const behavior = Effect.gen(function*() {
    const store = yield* JobStore
    live.clear()
    dependents.clear()
    counts.clear()
    const tx = new Batch()
    yield* recover(store, tx)
    yield* commitBatch(store, tx)

    return (batch: ReadonlyArray<Envelope<LedgerMessage>>) =>
      Effect.gen(function*() {
        const tx = new Batch()
        for (const envelope of batch) {
          const message = envelope.message
          switch (message._tag) {
            case "Submit":
              yield* submit(store, message, envelope, tx)
              break
            case "Start":
              start(message, envelope, tx)
              break
            case "Finish":
              for (const result of message.results) finish(result, tx)
              tx.replies.push(() => envelope.reply(Exit.void))
              break
            case "Kill":
              yield* kill(store, message, envelope, tx)
              break
            case "Flush":
              tx.replies.push(() => envelope.reply(Exit.void))
              break
          }
        }
        yield* commitBatch(store, tx).pipe(
          Effect.catchAll((error) => {
            for (const envelope of batch) envelope.reply(Exit.fail(error))
            // Memory no longer matches the store: crash so the supervisor rebuilds from the store.
            return Effect.die(error)
          })
        )
      })
  })

  // Applies a batch: one transaction, then dispatch, waiters, events and replies, in that order.
  const commitBatch = (store: JobStore["Type"], tx: Batch) =>
    Effect.gen(function*() {
      if (tx.inserts.length > 0 || tx.transitions.length > 0) {
        yield* store.commit(tx.inserts, tx.transitions)
      }
      if (tx.ready.length > 0) deps.dispatch.enqueue(tx.ready)
      if (tx.cancel.length > 0) deps.dispatch.cancel(tx.cancel)
      for (const record of tx.finished) deps.completions.complete(record)
      if (tx.transitions.length > 0 && deps.wantsEvents()) {
        deps.publish(tx.transitions.map((t) =>
          new JobEvent({
            id: t.id,
            queue: tx.queueOf.get(t.id) ?? defaultQueue,
            from: t.from,
            to: t.to,
            at: t.at,
            attempt: t.attempt,
            exitCode: t.exitCode,
            reason: t.reason
          }, { disableValidation: true })
        ))
      }
      for (const reply of tx.replies) reply()
    })

  // --- transitions -------------------------------------------------------------------------

  const move = (
    job: LiveJob,
    to: JobState,
    tx: Batch,
    details: Partial<Pick<TransitionRow, "exitCode" | "reason" | "result" | "outputs" | "runAfter">> = {}
  ) => {
    const now = Date.now()
    const from = job.state
    tx.queueOf.set(job.id, job.queue)
    tx.transitions.push({
      id: job.id,
      from,
      to,
      at: now,
      attempt: job.attempts,
      exitCode: details.exitCode ?? null,
      reason: details.reason ?? null,
      ...(details.result === undefined ? {} : { result: details.result }),
      ...(details.outputs === undefined ? {} : { outputs: details.outputs }),
      ...(details.runAfter === undefined ? {} : { runAfter: details.runAfter }),
      ...(from === "running" ? { attemptStartedAt: job.startedAt } : {})
    })
    if (isTerminal(to)) {
      track(job, -1)
      live.delete(job.id)
      if (deps.completions.has(job.id)) {
        tx.finished.push(recordOf(job, to, now, details))
      }
      settleDependents(job.id, to, tx)
      return
    }
    track(job, -1)
    job.state = to as LiveState
    track(job, 1)
    if (to === "running") job.startedAt = now
    if (to === "queued") {
      tx.ready.push({ id: job.id, queue: job.queue, priority: job.priority, spec: job.spec, runAfter: details.runAfter ?? null })
    }
  }

  // A finished job releases or fails the jobs held on it.
  const settleDependents = (id: JobId, state: JobState, tx: Batch) => {
    const waiting = dependents.get(id)
    if (waiting === undefined) return
    dependents.delete(id)
    for (const dependentId of waiting) {
      const dependent = live.get(dependentId)
      if (dependent === undefined || dependent.state !== "held") continue
      if (state === "completed") {
        dependent.waitingOn?.delete(id)
        if (dependent.waitingOn === null || dependent.waitingOn.size === 0) move(dependent, "queued", tx)
      } else {
        move(dependent, "failed", tx, { reason: `dependency ${id} ended ${state}` })
      }
    }
  }

  const hold = (job: LiveJob, on: JobId) => {
    ;(job.waitingOn ??= new Set()).add(on)
    let set = dependents.get(on)
    if (set === undefined) {
      set = new Set()
      dependents.set(on, set)
    }
    set.add(job.id)
  }

  // --- messages ----------------------------------------------------------------------------

  const submit = (store: JobStore["Type"], message: Submit, envelope: Envelope<LedgerMessage>, tx: Batch) =>
    Effect.gen(function*() {
      const specs = message.specs
      const ids: Array<JobId> = new Array(specs.length)
      const fresh: Array<{ readonly index: number; readonly id: JobId; readonly spec: JobSpec }> = []

      // Repeated ids and idempotency keys answer with the job that already exists.
      const askedIds = specs.flatMap((s) => s.id !== undefined && !live.has(s.id) && !tx.newIds.has(s.id) ? [s.id] : [])
      const askedKeys = specs.flatMap((s) => s.key !== undefined && !tx.keys.has(s.key) ? [s.key] : [])
      const knownIds = askedIds.length > 0 ? yield* store.states(askedIds) : emptyMap
      const knownKeys = askedKeys.length > 0 ? yield* store.idsByKey(askedKeys) : emptyKeys
      const requestKeys = new Map<string, JobId>()
      for (let i = 0; i < specs.length; i++) {
        const spec = specs[i]!
        if (spec.id !== undefined && (live.has(spec.id) || tx.newIds.has(spec.id) || knownIds.has(spec.id))) {
          ids[i] = spec.id
          continue
        }
        const existing = spec.key === undefined
          ? undefined
          : tx.keys.get(spec.key) ?? requestKeys.get(spec.key) ?? knownKeys.get(spec.key)
        if (existing !== undefined) {
          ids[i] = existing
          continue
        }
        const id = spec.id ?? makeJobId()
        ids[i] = id
        if (spec.key !== undefined) requestKeys.set(spec.key, id)
        fresh.push({ index: i, id, spec })
      }

      const rejection = yield* checkSubmission(store, fresh, tx)
      if (rejection !== undefined) {
        tx.replies.push(() => envelope.reply(Exit.fail(rejection)))
        return
      }

      const now = Date.now()
      for (const { id, spec } of dependenciesFirst(fresh)) {
        const queue = spec.queue ?? defaultQueue
        const job: LiveJob = {
          id,
          queue,
          state: "held",
          priority: spec.priority ?? 0,
          spec,
          attempts: 0,
          maxAttempts: (spec.retries ?? 0) + 1,
          submittedAt: now,
          startedAt: null,
          waitingOn: null
        }
        let failedBy: string | undefined
        for (const dep of spec.after ?? []) {
          if (live.has(dep)) hold(job, dep)
          else {
            const state = tx.finishedStates.get(dep) ?? tx.depStates.get(dep)
            if (state !== undefined && state !== "completed") failedBy ??= `dependency ${dep} ended ${state}`
          }
        }
        const state: JobState = failedBy !== undefined ? "failed" : job.waitingOn !== null ? "held" : "queued"
        tx.newIds.add(id)
        if (spec.key !== undefined) tx.keys.set(spec.key, id)
        tx.queueOf.set(id, queue)
        tx.inserts.push({
          id,
          name: spec.name ?? null,
          queue,
          state,
          priority: job.priority,
          spec,
          key: spec.key ?? null,
          reason: failedBy ?? null,
          submittedAt: now
        } satisfies NewJobRow)
        tx.transitions.push({ id, from: null, to: state, at: now, attempt: 0, exitCode: null, reason: failedBy ?? null })
        if (state === "failed") {
          for (const dep of job.waitingOn ?? []) dependents.get(dep)?.delete(id)
          tx.finishedStates.set(id, "failed")
          continue
        }
        job.state = state
        live.set(id, job)
        track(job, 1)
        if (state === "queued") tx.ready.push({ id, queue, priority: job.priority, spec, runAfter: null })
      }
      tx.replies.push(() => envelope.reply(Exit.succeed(ids)))
    })

  // Dependencies must exist and form no cycle; queues must have room.
  const checkSubmission = (
    store: JobStore["Type"],
    fresh: ReadonlyArray<{ readonly id: JobId; readonly spec: JobSpec }>,
    tx: Batch
  ) =>
    Effect.gen(function*() {
      const inRequest = new Map(fresh.map((f) => [f.id, f.spec] as const))
      const unknown = new Set<JobId>()
      for (const { spec } of fresh) {
        for (const dep of spec.after ?? []) {
          if (!inRequest.has(dep) && !live.has(dep) && !tx.finishedStates.has(dep)) unknown.add(dep)
        }
      }
      if (unknown.size > 0) {
        const found = yield* store.states(Array.from(unknown))
        for (const [dep, state] of found) tx.depStates.set(dep, state)
        const missing = Array.from(unknown).filter((dep) => !found.has(dep))
        if (missing.length > 0) {
          return new InvalidSpec({
            reason: "missing-dependency",
            message: `unknown dependenc${missing.length > 1 ? "ies" : "y"}: ${missing.join(", ")}`
          })
        }
      }
      const cycle = findCycle(inRequest)
      if (cycle !== undefined) {
        return new InvalidSpec({ reason: "dependency-cycle", message: `dependency cycle: ${cycle.join(" -> ")}` })
      }
      const added = new Map<string, number>()
      for (const { spec } of fresh) {
        const queue = spec.queue ?? defaultQueue
        added.set(queue, (added.get(queue) ?? 0) + 1)
      }
      for (const [queue, n] of added) {
        const c = countsOf(queue)
        const capacity = deps.capacity(queue)
        if (c.held + c.queued + n > capacity) {
          return new QueueFull({
            queue,
            capacity,
            message: `queue ${queue} is full (${capacity} jobs waiting); try again later or raise its capacity`
          })
        }
      }
      return undefined
    })

  const start = (message: Start, envelope: Envelope<LedgerMessage>, tx: Batch) => {
    const attempts = message.ids.map((id) => {
      const job = live.get(id)
      if (job === undefined || job.state !== "queued") return 0
      job.attempts += 1
      move(job, "running", tx)
      return job.attempts
    })
    tx.replies.push(() => envelope.reply(Exit.succeed(attempts)))
  }

  const finish = (result: AttemptResult, tx: Batch) => {
    const job = live.get(result.id)
    if (job === undefined || job.state !== "running") return
    const details = {
      exitCode: result.exitCode,
      reason: result.reason,
      outputs: result.outputs,
      ...(result.result === undefined ? {} : { result: result.result })
    }
    if (result.state !== "completed" && result.state !== "killed" && job.attempts < job.maxAttempts) {
      retry(job, result.state, tx, details)
      return
    }
    move(job, result.state, tx, details)
  }

  // A failed attempt with retries left: record the failure, then queue it again after a backoff.
  const retry = (
    job: LiveJob,
    state: "failed" | "timeout" | "lost",
    tx: Batch,
    details: Partial<Pick<TransitionRow, "exitCode" | "reason">>
  ) => {
    const now = Date.now()
    tx.queueOf.set(job.id, job.queue)
    tx.transitions.push({
      id: job.id,
      from: "running",
      to: state,
      at: now,
      attempt: job.attempts,
      exitCode: details.exitCode ?? null,
      reason: details.reason ?? null,
      attemptStartedAt: job.startedAt
    })
    const delay = (job.spec.retryDelayMs ?? defaultRetryDelayMs) * 2 ** (job.attempts - 1)
    track(job, -1)
    job.state = "queued"
    track(job, 1)
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

  const kill = (store: JobStore["Type"], message: Kill, envelope: Envelope<LedgerMessage>, tx: Batch) =>
    Effect.gen(function*() {
      const notLive = message.ids.filter((id) => !live.has(id) && !tx.finishedStates.has(id))
      const known = notLive.length > 0 ? yield* store.states(notLive) : emptyMap
      const missing = notLive.filter((id) => !known.has(id) && !tx.newIds.has(id))
      if (missing.length > 0) {
        tx.replies.push(() => envelope.reply(Exit.fail(JobNotFound.of(missing))))
        return
      }
      const killed: Array<JobId> = []
      for (const id of message.ids) {
        const job = live.get(id)
        if (job === undefined) continue
        killed.push(id)
        if (job.state === "running") tx.cancel.push([id, message.reason])
        else {
          if (job.state === "queued") tx.cancel.push([id, message.reason])
          move(job, "killed", tx, { reason: message.reason })
        }
      }
      tx.replies.push(() => envelope.reply(Exit.succeed(killed)))
    })

  // --- recovery ----------------------------------------------------------------------------

  const recover = (store: JobStore["Type"], tx: Batch) =>
    Effect.gen(function*() {
      const rows = yield* store.active
      const alive = deps.dispatch.running()
      const held: Array<LiveJob> = []
      for (const row of rows) {
        const job: LiveJob = {
          id: row.id,
          queue: row.queue,
          state: row.state === "pending" ? "queued" : row.state as LiveState,
          priority: row.priority,
          spec: row.spec,
          attempts: row.attempts,
          maxAttempts: (row.spec.retries ?? 0) + 1,
          submittedAt: row.submittedAt,
          startedAt: row.startedAt,
          waitingOn: null
        }
        live.set(job.id, job)
        track(job, 1)
        if (job.state === "held") held.push(job)
        else if (job.state === "queued") {
          tx.ready.push({ id: job.id, queue: job.queue, priority: job.priority, spec: job.spec, runAfter: row.runAfter })
        }
      }
      // Runs that were under way when the previous owner died are lost; retries may run them again.
      for (const job of Array.from(live.values())) {
        if (job.state !== "running" || alive.has(job.id)) continue
        const details = { reason: "the process running it stopped (crash or kill -9)" }
        if (job.attempts < job.maxAttempts) retry(job, "lost", tx, details)
        else move(job, "lost", tx, details)
      }
      const depIds = new Set<JobId>()
      for (const job of held) for (const dep of job.spec.after ?? []) if (!live.has(dep)) depIds.add(dep)
      const depStates = depIds.size > 0 ? yield* store.states(Array.from(depIds)) : emptyMap
      for (const job of held) {
        let failedBy: string | undefined
        for (const dep of job.spec.after ?? []) {
          if (live.has(dep)) hold(job, dep)
          else {
            const state = depStates.get(dep)
            if (state !== "completed") failedBy ??= `dependency ${dep} ${state === undefined ? "is missing" : `ended ${state}`}`
          }
        }
        if (failedBy !== undefined) move(job, "failed", tx, { reason: failedBy })
        else if (job.waitingOn === null) move(job, "queued", tx)
      }
      if (rows.length > 0) yield* Effect.logInfo(`recovered ${rows.length} unfinished jobs`)
    })

  return { behavior, view }
}

type LiveState = "held" | "queued" | "running"

interface LiveJob {
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

// Everything one batch of messages changes, applied together after one commit.
class Batch {
  readonly inserts: Array<NewJobRow> = []
  readonly transitions: Array<TransitionRow> = []
  readonly ready: Array<ReadyJob> = []
  readonly cancel: Array<readonly [JobId, string]> = []
  readonly finished: Array<JobRecord> = []
  readonly replies: Array<() => void> = []
  readonly newIds = new Set<JobId>()
  readonly keys = new Map<string, JobId>()
  readonly queueOf = new Map<JobId, string>()
  readonly finishedStates = new Map<JobId, JobState>()
  readonly depStates = new Map<JobId, JobState>()
}

const emptyMap: ReadonlyMap<JobId, JobState> = new Map()
const emptyKeys: ReadonlyMap<string, JobId> = new Map()

const recordOf = (
  job: LiveJob,
  state: JobState,
  now: number,
  details: Partial<Pick<TransitionRow, "exitCode" | "reason" | "result" | "outputs">>
) =>
  new JobRecord({
    id: job.id,
    name: job.spec.name ?? null,
    queue: job.queue,
    state,
    priority: job.priority,
    spec: job.spec,
    attempts: job.attempts,
    exitCode: details.exitCode ?? null,
    ...(details.result === undefined ? {} : { result: details.result }),
    reason: details.reason ?? null,
    outputs: details.outputs ?? [],
    submittedAt: job.submittedAt,
    startedAt: job.startedAt,
    finishedAt: now
  }, { disableValidation: true })

// Jobs in one request may depend on each other: insert dependencies first (the request has no cycle).
const dependenciesFirst = <T extends { readonly id: JobId; readonly spec: JobSpec }>(
  fresh: ReadonlyArray<T>
): ReadonlyArray<T> => {
  if (fresh.every((f) => f.spec.after === undefined || f.spec.after.length === 0)) return fresh
  const byId = new Map(fresh.map((f) => [f.id, f] as const))
  const ordered: Array<T> = []
  const seen = new Set<JobId>()
  const visit = (item: T) => {
    if (seen.has(item.id)) return
    seen.add(item.id)
    for (const dep of item.spec.after ?? []) {
      const inner = byId.get(dep)
      if (inner !== undefined) visit(inner)
    }
    ordered.push(item)
  }
  for (const item of fresh) visit(item)
  return ordered
}

// Depth-first search over the dependencies inside one request.
const findCycle = (specs: ReadonlyMap<JobId, JobSpec>): ReadonlyArray<JobId> | undefined => {
  const done = new Set<JobId>()
  const path: Array<JobId> = []
  const onPath = new Set<JobId>()
  const visit = (id: JobId): ReadonlyArray<JobId> | undefined => {
    if (onPath.has(id)) return [...path.slice(path.indexOf(id)), id]
    if (done.has(id)) return undefined
    onPath.add(id)
    path.push(id)
    for (const dep of specs.get(id)?.after ?? []) {
      if (!specs.has(dep)) continue
      const cycle = visit(dep)
      if (cycle !== undefined) return cycle
    }
    path.pop()
    onPath.delete(id)
    done.add(id)
    return undefined
  }
  for (const id of specs.keys()) {
    const cycle = visit(id)
    if (cycle !== undefined) return cycle
  }
  return undefined
}
