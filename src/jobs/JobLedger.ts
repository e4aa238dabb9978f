import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type { Envelope } from "../actors/Actor.js"
import { InvalidSpec, JobNotFound, QueueFull } from "../domain/Errors.js"
import type { StoreError } from "../domain/Errors.js"
import type { JobId } from "../domain/JobId.js"
import { makeJobId } from "../domain/JobId.js"
import { JobEvent } from "../domain/JobRecord.js"
import type { JobRecord } from "../domain/JobRecord.js"
import type { QueueSummary } from "../domain/JobRecord.js"
import { JobSpec } from "../domain/JobSpec.js"
import { defaultQueue } from "../domain/JobSpec.js"
import type { JobState } from "../domain/JobState.js"
import type { NewJobRow, TransitionRow } from "../store/JobStore.js"
import { JobStore } from "../store/JobStore.js"
import type { Completions } from "./Completions.js"
import type { Dispatch, ReadyJob } from "./Dispatch.js"
import { Batch } from "./LedgerBatch.js"
import { JobTable } from "./JobTable.js"
import type { LiveJob, LiveState } from "./JobTable.js"
import { dependenciesFirst, findCycle } from "../internal/Dependencies.js"
import type { AttemptResult, Kill, LedgerMessage, Resend, Start, SubmitEach } from "./LedgerProtocol.js"

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
  const table = new JobTable(deps.completions)
  // The number of the last event published; it carries on across restarts of the ledger actor.
  let published = 0
  const view: LedgerView = {
    summary: (concurrency) => table.summary(concurrency, deps.capacity),
    stateOf: (id) => table.live.get(id)?.state
  }

  const behavior = Effect.gen(function*() {
    const store = yield* JobStore
    table.clear()
    const tx = new Batch()
    yield* recover(store, tx)
    yield* commitBatch(store, tx)

    // Messages are applied in order and synchronously; only one that needs a read leaves the fast path.
    return (batch: ReadonlyArray<Envelope<LedgerMessage>>) =>
      Effect.suspend(() => {
        const tx = new Batch()
        tx.events = deps.wantsEvents()
        const step = (from: number): Effect.Effect<void, StoreError> => {
          for (let i = from; i < batch.length; i++) {
            const envelope = batch[i]!
            const message = envelope.message
            switch (message._tag) {
              case "Submit": {
                const reads = submitReads(store, message.specs, tx)
                if (reads === undefined) {
                  submit(message.specs, noReads, envelope, tx)
                  break
                }
                return Effect.flatMap(reads, (found) => {
                  submit(message.specs, found, envelope, tx)
                  return step(i + 1)
                })
              }
              case "SubmitEach":
                submitEach(message, envelope, tx)
                break
              case "Start":
                start(message, envelope, tx)
                break
              case "Finish":
                for (const result of message.results) finish(result, tx)
                tx.replies.push(() => envelope.reply(Exit.void))
                break
              case "Kill": {
                const unknown = message.ids.filter((id) => !table.live.has(id) && !tx.finishedStates.has(id))
                if (unknown.length === 0) {
                  kill(message, emptyMap, envelope, tx)
                  break
                }
                return Effect.flatMap(store.states(unknown), (known) => {
                  kill(message, known, envelope, tx)
                  return step(i + 1)
                })
              }
              case "Progress":
                for (const update of message.updates) tx.progress.push(update)
                tx.replies.push(() => envelope.reply(Exit.void))
                break
              case "Resend": {
                const unknownHere = message.ids.filter((id) => !table.live.has(id) && !tx.newIds.has(id))
                return Effect.flatMap(store.get(unknownHere), (records) => {
                  resend(message, records, envelope, tx)
                  return step(i + 1)
                })
              }
              case "Flush":
                tx.replies.push(() => envelope.reply(Exit.void))
                break
            }
          }
          return commitBatch(store, tx)
        }
        return step(0).pipe(
          Effect.catchAll((error) => {
            if (tx.launch.length > 0) deps.dispatch.release(tx.launch)
            for (const envelope of batch) envelope.reply(Exit.fail(error))
            // Memory no longer matches the store: crash so the supervisor rebuilds from the store.
            return Effect.die(error)
          })
        )
      })
  })

  // --- messages ----------------------------------------------------------------------------

  // The reads a submit needs (repeated ids, idempotency keys, finished dependencies); none for most.
  const submitReads = (
    store: JobStore["Type"],
    specs: ReadonlyArray<JobSpec>,
    tx: Batch
  ): Effect.Effect<SubmitReads, StoreError> | undefined => {
    const askedIds: Array<JobId> = []
    const askedKeys: Array<string> = []
    const deps = new Set<JobId>()
    for (const spec of specs) {
      if (spec.id !== undefined && !table.live.has(spec.id) && !tx.newIds.has(spec.id)) askedIds.push(spec.id)
      if (spec.key !== undefined && !tx.keys.has(spec.key)) askedKeys.push(spec.key)
      for (const dep of spec.after ?? []) {
        if (!table.live.has(dep) && !tx.finishedStates.has(dep) && !tx.newIds.has(dep)) deps.add(dep)
      }
    }
    if (askedIds.length === 0 && askedKeys.length === 0 && deps.size === 0) return undefined
    return Effect.all({
      ids: askedIds.length > 0 ? store.states(askedIds) : Effect.succeed(emptyMap),
      keys: askedKeys.length > 0 ? store.idsByKey(askedKeys) : Effect.succeed(emptyKeys),
      deps: deps.size > 0 ? store.states(Array.from(deps)) : Effect.succeed(emptyMap)
    })
  }

  const submit = (specs: ReadonlyArray<JobSpec>, found: SubmitReads, envelope: Envelope<LedgerMessage>, tx: Batch) => {
    for (const [dep, state] of found.deps) tx.depStates.set(dep, state)
    const ids: Array<JobId> = new Array(specs.length)
    const fresh: Array<{ readonly id: JobId; readonly spec: JobSpec }> = []
    const requestKeys = new Map<string, JobId>()
    // Repeated ids and idempotency keys answer with the job that already exists.
    for (let i = 0; i < specs.length; i++) {
      const spec = specs[i]!
      if (spec.id !== undefined && (table.live.has(spec.id) || tx.newIds.has(spec.id) || found.ids.has(spec.id))) {
        ids[i] = spec.id
        continue
      }
      const existing = spec.key === undefined
        ? undefined
        : tx.keys.get(spec.key) ?? requestKeys.get(spec.key) ?? found.keys.get(spec.key)
      if (existing !== undefined) {
        ids[i] = existing
        continue
      }
      const id = spec.id ?? makeJobId()
      ids[i] = id
      if (spec.key !== undefined) requestKeys.set(spec.key, id)
      fresh.push({ id, spec })
    }
    const rejection = checkSubmission(fresh, tx)
    if (rejection !== undefined) {
      tx.replies.push(() => envelope.reply(Exit.fail(rejection)))
      return
    }
    const now = Date.now()
    for (const { id, spec } of dependenciesFirst(fresh)) insert(id, spec, now, tx)
    tx.replies.push(() => envelope.reply(Exit.succeed(ids)))
  }

  // Plain specs from separate callers: each one is refused or inserted on its own.
  const submitEach = (message: SubmitEach, envelope: Envelope<LedgerMessage>, tx: Batch) => {
    const specs = message.specs
    const results: Array<JobId | QueueFull> = new Array(specs.length)
    const now = Date.now()
    for (let i = 0; i < specs.length; i++) {
      const spec = specs[i]!
      const queue = spec.queue ?? defaultQueue
      const full = queueFull(queue, 1)
      if (full !== undefined) {
        results[i] = full
        continue
      }
      const id = makeJobId()
      insert(id, spec, now, tx)
      results[i] = id
    }
    tx.replies.push(() => envelope.reply(Exit.succeed(results)))
  }

  const queueFull = (queue: string, added: number): QueueFull | undefined => {
    const capacity = deps.capacity(queue)
    if (table.waiting(queue) + added <= capacity) return undefined
    return new QueueFull({
      queue,
      capacity,
      message: `queue ${queue} is full (${capacity} jobs waiting); try again later or raise its capacity`
    })
  }

  // A new job enters the table as held, queued, running (a free slot was claimed for it), or at
  // once failed when a dependency has failed.
  const insert = (id: JobId, spec: JobSpec, now: number, tx: Batch) => {
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
    for (const dep of spec.after ?? noDependencies) {
      if (table.live.has(dep)) table.hold(job, dep)
      else {
        const state = tx.finishedStates.get(dep) ?? tx.depStates.get(dep)
        if (state !== undefined && state !== "completed") failedBy ??= `dependency ${dep} ended ${state}`
      }
    }
    let state: JobState = failedBy !== undefined ? "failed" : job.waitingOn !== null ? "held" : "queued"
    const ready: ReadyJob | undefined = state === "queued"
      ? { id, queue, priority: job.priority, spec, runAfter: null }
      : undefined
    if (ready !== undefined && spec.on === undefined && deps.dispatch.claim(ready)) {
      state = "running"
      job.attempts = 1
      job.startedAt = now
    }
    tx.newIds.add(id)
    if (spec.key !== undefined) tx.keys.set(spec.key, id)
    tx.inserts.push({
      id,
      name: spec.name ?? null,
      queue,
      state,
      priority: job.priority,
      spec,
      key: spec.key ?? null,
      reason: failedBy ?? null,
      submittedAt: now,
      attempts: job.attempts
    } satisfies NewJobRow)
    // The insert writes these transitions itself (triggers): the batch keeps them for events only.
    if (!tx.events) {
      // Nothing to publish.
    } else if (state === "running") {
      tx.queueOf.set(id, queue)
      tx.transitions.push({ id, from: null, to: "queued", at: now, attempt: 0, exitCode: null, reason: null })
      tx.transitions.push({
        id,
        from: "queued",
        to: "running",
        at: now,
        attempt: 1,
        exitCode: null,
        reason: null,
        location: null,
        byInsert: true
      })
    } else {
      tx.queueOf.set(id, queue)
      tx.transitions.push({ id, from: null, to: state, at: now, attempt: 0, exitCode: null, reason: failedBy ?? null })
    }
    if (state === "failed") {
      table.unhold(job)
      tx.finishedStates.set(id, "failed")
      return
    }
    job.state = state as LiveState
    table.add(job)
    if (state === "running") tx.launch.push(ready!)
    else if (state === "queued") tx.ready.push(ready!)
  }

  // Dependencies must exist and form no cycle; queues must have room.
  const checkSubmission = (fresh: ReadonlyArray<{ readonly id: JobId; readonly spec: JobSpec }>, tx: Batch) => {
    const withDeps = fresh.filter((f) => f.spec.after !== undefined && f.spec.after.length > 0)
    if (withDeps.length > 0) {
      const inRequest = new Map(fresh.map((f) => [f.id, f.spec] as const))
      const missing = new Set<JobId>()
      for (const { spec } of withDeps) {
        for (const dep of spec.after!) {
          if (!inRequest.has(dep) && !table.live.has(dep) && !tx.finishedStates.has(dep) && !tx.depStates.has(dep)) {
            missing.add(dep)
          }
        }
      }
      if (missing.size > 0) {
        return new InvalidSpec({
          reason: "missing-dependency",
          message: `unknown dependenc${missing.size > 1 ? "ies" : "y"}: ${Array.from(missing).join(", ")}`
        })
      }
      const cycle = findCycle(inRequest)
      if (cycle !== undefined) {
        return new InvalidSpec({ reason: "dependency-cycle", message: `dependency cycle: ${cycle.join(" -> ")}` })
      }
    }
    const added = new Map<string, number>()
    for (const { spec } of fresh) {
      const queue = spec.queue ?? defaultQueue
      added.set(queue, (added.get(queue) ?? 0) + 1)
    }
    for (const [queue, n] of added) {
      const full = queueFull(queue, n)
      if (full !== undefined) return full
    }
    return undefined
  }

  const start = (message: Start, envelope: Envelope<LedgerMessage>, tx: Batch) => {
    const attempts = message.ids.map((id) => {
      const job = table.live.get(id)
      if (job === undefined || job.state !== "queued") return 0
      job.attempts += 1
      table.move(job, "running", tx)
      return job.attempts
    })
    tx.replies.push(() => envelope.reply(Exit.succeed(attempts)))
  }

  const finish = (result: AttemptResult, tx: Batch) => {
    const job = table.live.get(result.id)
    if (job === undefined || job.state !== "running") return
    // The result carries the details of the end: exit code, reason, outputs and the function's result.
    if (result.state !== "completed" && result.state !== "killed" && job.attempts < job.maxAttempts) {
      table.retry(job, result.state, tx, result)
      return
    }
    table.move(job, result.state, tx, result)
  }

  const kill = (message: Kill, known: ReadonlyMap<JobId, JobState>, envelope: Envelope<LedgerMessage>, tx: Batch) => {
    const missing = message.ids.filter((id) =>
      !table.live.has(id) && !tx.finishedStates.has(id) && !known.has(id) && !tx.newIds.has(id)
    )
    if (missing.length > 0) {
      tx.replies.push(() => envelope.reply(Exit.fail(JobNotFound.of(missing))))
      return
    }
    const killed: Array<JobId> = []
    for (const id of message.ids) {
      const job = table.live.get(id)
      if (job === undefined) continue
      killed.push(id)
      if (job.state === "running") tx.cancel.push([id, message.reason])
      else {
        if (job.state === "queued") tx.cancel.push([id, message.reason])
        table.move(job, "killed", tx, { reason: message.reason })
      }
    }
    tx.replies.push(() => envelope.reply(Exit.succeed(killed)))
  }

  // A finished job goes back to its queue as a new attempt, with a fresh retry budget; `on` moves it.
  const resend = (
    message: Resend,
    records: ReadonlyArray<JobRecord>,
    envelope: Envelope<LedgerMessage>,
    tx: Batch
  ) => {
    const byId = new Map(records.map((record) => [record.id, record] as const))
    const missing = message.ids.filter((id) => !table.live.has(id) && !byId.has(id))
    if (missing.length > 0) {
      tx.replies.push(() => envelope.reply(Exit.fail(JobNotFound.of(missing))))
      return
    }
    const unfinished = message.ids.filter((id) => table.live.has(id) || tx.finishedStates.has(id))
    if (unfinished.length > 0) {
      const state = table.live.get(unfinished[0]!)?.state ?? "finishing"
      tx.replies.push(() =>
        envelope.reply(Exit.fail(
          new InvalidSpec({
            reason: "malformed",
            message: `job ${unfinished[0]} has not finished (${state}); kill it first to send it again`
          })
        ))
      )
      return
    }
    for (const id of message.ids) {
      const record = byId.get(id)!
      const spec = message.on === undefined
        ? record.spec
        : new JobSpec({ ...record.spec, on: message.on }, { disableValidation: true })
      const job: LiveJob = {
        id,
        queue: record.queue,
        state: "queued",
        priority: record.priority,
        spec,
        attempts: record.attempts,
        maxAttempts: record.attempts + (spec.retries ?? 0) + 1,
        submittedAt: record.submittedAt,
        startedAt: record.startedAt,
        waitingOn: null
      }
      table.add(job)
      tx.queueOf.set(id, job.queue)
      tx.transitions.push({
        id,
        from: record.state,
        to: "queued",
        at: Date.now(),
        attempt: record.attempts,
        exitCode: null,
        reason: spec.on === undefined ? "sent again" : `sent again, to ${spec.on}`,
        ...(message.on === undefined ? {} : { spec })
      })
      tx.ready.push({ id, queue: job.queue, priority: job.priority, spec, runAfter: null })
    }
    tx.replies.push(() => envelope.reply(Exit.succeed(message.ids)))
  }

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
        table.add(job)
        if (job.state === "held") held.push(job)
        else if (job.state === "queued") {
          tx.ready.push({ id: job.id, queue: job.queue, priority: job.priority, spec: job.spec, runAfter: row.runAfter })
        }
      }
      // Runs that were under way when the previous owner died are lost; retries may run them again.
      // A run on a remote carried on without us: its runner picks it up again, and the remote's
      // answer (kept in its outbox, or already in our spool) ends it.
      for (const job of Array.from(table.live.values())) {
        if (job.state !== "running" || alive.has(job.id)) continue
        if (job.spec.on !== undefined) {
          tx.adopt.push({
            job: { id: job.id, queue: job.queue, priority: job.priority, spec: job.spec, runAfter: null },
            attempt: job.attempts
          })
          continue
        }
        const details = { reason: "the process running it stopped (crash or kill -9)" }
        if (job.attempts < job.maxAttempts) table.retry(job, "lost", tx, details)
        else table.move(job, "lost", tx, details)
      }
      const depIds = new Set<JobId>()
      for (const job of held) for (const dep of job.spec.after ?? []) if (!table.live.has(dep)) depIds.add(dep)
      const depStates = depIds.size > 0 ? yield* store.states(Array.from(depIds)) : emptyMap
      for (const job of held) {
        let failedBy: string | undefined
        for (const dep of job.spec.after ?? []) {
          if (table.live.has(dep)) table.hold(job, dep)
          else {
            const state = depStates.get(dep)
            if (state !== "completed") failedBy ??= `dependency ${dep} ${state === undefined ? "is missing" : `ended ${state}`}`
          }
        }
        if (failedBy !== undefined) table.move(job, "failed", tx, { reason: failedBy })
        else if (job.waitingOn === null) table.move(job, "queued", tx)
      }
      if (rows.length > 0) yield* Effect.logInfo(`recovered ${rows.length} unfinished jobs`)
    })

  // Applies a batch: one transaction, then dispatch, waiters, events and replies, in that order.
  const commitBatch = (store: JobStore["Type"], tx: Batch) =>
    Effect.gen(function*() {
      if (tx.inserts.length > 0 || tx.transitions.length > 0 || tx.progress.length > 0) {
        yield* store.commit(tx.inserts, tx.transitions, tx.progress)
      }
      if (tx.launch.length > 0) deps.dispatch.launch(tx.launch)
      if (tx.ready.length > 0) deps.dispatch.enqueue(tx.ready)
      if (tx.adopt.length > 0) deps.dispatch.adopt(tx.adopt)
      if (tx.cancel.length > 0) deps.dispatch.cancel(tx.cancel)
      for (const record of tx.finished) deps.completions.complete(record)
      if (tx.transitions.length > 0 && deps.wantsEvents()) deps.publish(tx.transitions.map((t) => eventOf(t, tx, ++published)))
      for (const reply of tx.replies) reply()
    })

  return { behavior, view }
}

const emptyMap: ReadonlyMap<JobId, JobState> = new Map()
const noDependencies: ReadonlyArray<JobId> = []
const emptyKeys: ReadonlyMap<string, JobId> = new Map()

// What the store said about the ids, keys and dependencies a submit names.
interface SubmitReads {
  readonly ids: ReadonlyMap<JobId, JobState>
  readonly keys: ReadonlyMap<string, JobId>
  readonly deps: ReadonlyMap<JobId, JobState>
}
const noReads: SubmitReads = { ids: emptyMap, keys: emptyKeys, deps: emptyMap }

const eventOf = (t: TransitionRow, tx: Batch, seq: number) =>
  new JobEvent({
    seq,
    id: t.id,
    queue: tx.queueOf.get(t.id) ?? defaultQueue,
    from: t.from,
    to: t.to,
    at: t.at,
    attempt: t.attempt,
    exitCode: t.exitCode,
    reason: t.reason
  }, { disableValidation: true })
