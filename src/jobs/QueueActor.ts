import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Actor from "../actors/Actor.js"
import type { Supervisor } from "../actors/Supervisor.js"
import { JobId } from "../domain/JobId.js"
import { JobSpec } from "../domain/JobSpec.js"
import { PriorityQueue } from "../internal/PriorityQueue.js"
import type { ReadyJob } from "./Dispatch.js"
import { AttemptResult } from "./LedgerProtocol.js"

/** A ready job on the wire to a queue actor. */
export const ReadyJobSchema = Schema.Struct({
  id: JobId,
  queue: Schema.String,
  priority: Schema.Int,
  spec: JobSpec,
  runAfter: Schema.NullOr(Schema.Number)
})

/** Replies once everything sent to the queue before it has been handled and reported. */
export class Sync extends Schema.TaggedRequest<Sync>()("Sync", {
  failure: Schema.Never,
  success: Schema.Void,
  payload: {}
}) {}

/** The queue actor's protocol. */
export const QueueMessage = Schema.Union(
  Sync,
  /** Ready jobs to queue (ids already waiting here are ignored). */
  Schema.TaggedStruct("Enqueue", { jobs: Schema.Array(ReadyJobSchema) }),
  /** An attempt ended (or never began: `result` null), freeing its cores. */
  Schema.TaggedStruct("Finished", { id: JobId, result: Schema.NullOr(AttemptResult) }),
  /** Drop or interrupt jobs being killed. */
  Schema.TaggedStruct("Cancel", { jobs: Schema.Array(Schema.Tuple(JobId, Schema.String)) }),
  /** A delayed retry is due. */
  Schema.TaggedStruct("Wake", {}),
  /** New jobs whose slot was claimed and whose start is committed: run their first attempts. */
  Schema.TaggedStruct("Launch", { jobs: Schema.Array(ReadyJobSchema) }),
  /** Attempts still running elsewhere (a remote) after a restart: run their runners again. */
  Schema.TaggedStruct("Adopt", {
    attempts: Schema.Array(Schema.Struct({ job: ReadyJobSchema, attempt: Schema.Int }))
  })
)
/** A message to a queue actor. */
export type QueueMessage = typeof QueueMessage.Type

/** What a queue needs from the rest of the runtime. */
export interface QueueWiring {
  /**
   * Commit attempts as running; `done` gets each attempt number, 0 for jobs that must not run.
   * Sent synchronously, so that it shares a ledger batch with the ends reported just before it.
   * False when the ledger's mailbox is full.
   */
  readonly start: (ids: ReadonlyArray<JobId>, done: (exit: Exit.Exit<ReadonlyArray<number>, unknown>) => void) => boolean
  /** Run one attempt to its end (the executor); interruption is a kill. */
  readonly run: (job: ReadyJob, attempt: number) => Effect.Effect<AttemptResult>
  /** Run an attempt at once when it can end synchronously (a plain function); undefined otherwise. */
  readonly runNow?: (job: ReadyJob, attempt: number) => AttemptResult | Effect.Effect<AttemptResult> | undefined
  /** True when `runNow` is expected to end the job's attempt synchronously (see `chained` below). */
  readonly synchronous?: (job: ReadyJob) => boolean
  /** Hand finished attempts to the ledger. */
  readonly report: (results: ReadonlyArray<AttemptResult>) => void
}

/** A live queue: its actor plus counters that readers may look at. */
export interface QueueHandle {
  readonly name: string
  readonly actor: Actor.ActorRef<QueueMessage>
  readonly concurrency: number
  /** Ids whose runners are alive. */
  readonly running: ReadonlyMap<JobId, Fiber.RuntimeFiber<void>>
  /** Jobs taken off the queue whose start is not yet committed. */
  readonly starting: () => number
  /** Stop starting new jobs (shutdown); running ones carry on. */
  readonly pause: () => void
  /** Hand ready jobs to the queue. */
  readonly enqueue: (jobs: ReadonlyArray<ReadyJob>) => void
  /** Reserve cores for a new job when nothing waits here and cores are free; true when reserved. */
  readonly claim: (job: ReadyJob) => boolean
  /** Run the first attempts of claimed jobs (their start is committed). */
  readonly launch: (jobs: ReadonlyArray<ReadyJob>) => void
  /** Free the cores of claimed jobs that will not start. */
  readonly release: (jobs: ReadonlyArray<ReadyJob>) => void
}

/**
 * A queue actor: jobs wait in priority order (then FIFO) until the queue has free cores.
 * Each round starts its jobs with one ledger request, runs each attempt as its own fiber,
 * and reports the attempts that ended in one ledger message. Its state lives outside the
 * behavior so that a restart neither forgets queued jobs nor loses track of running ones.
 */
export const make = (options: {
  readonly name: string
  readonly concurrency: number
  readonly wiring: QueueWiring
  /** Where runner fibers live: they outlive actor restarts and end with the runtime. */
  readonly runnerScope: Scope.Scope
}): Effect.Effect<QueueHandle, never, Supervisor | Scope.Scope> =>
  Effect.gen(function*() {
    const { wiring } = options
    let order = 0
    let paused = false
    let usedCores = 0
    let starting = 0
    // Jobs told to the actor and not yet received: a claim must not overtake them.
    let inFlight = 0
    const ready = new PriorityQueue<Entry>((a, b) => a.priority > b.priority || (a.priority === b.priority && a.order < b.order))
    const delayed: Array<Entry> = []
    // The live entry of every waiting job; heap entries that are no longer here are skipped (lazy removal).
    const known = new Map<JobId, Entry>()
    const cores = new Map<JobId, number>()
    const running = new Map<JobId, Fiber.RuntimeFiber<void>>()
    const killReasons = new Map<JobId, string>()
    let wakeAt = Infinity
    // Jobs expected to end synchronously, taken without cores and not yet begun. Such attempts never
    // execute at the same time (each runs to its end in place), so while a core is free a round may
    // take many of them: their starts share one commit instead of one commit per core per round.
    // Each takes a core while it executes; one that finds none free waits for one (`deferred`), and
    // one that unexpectedly goes asynchronous keeps its core until it ends.
    const chained = new Set<JobId>()
    const deferred = new Map<JobId, readonly [job: ReadyJob, attempt: number]>()
    const chainable = (job: ReadyJob) =>
      wiring.synchronous !== undefined && usedCores < options.concurrency && chained.size < maxChained &&
      job.spec.on === undefined && wiring.synchronous(job)

    const actor: Actor.ActorRef<QueueMessage> = yield* Actor.make<QueueMessage, never>({
      name: `queue:${options.name}`,
      capacity: 1_000_000,
      behavior: Effect.succeed((batch) =>
        Effect.suspend(() => {
          const ended: Array<AttemptResult> = []
          for (const { message } of batch) receive(message, ended)
          if (ended.length > 0) wiring.report(ended)
          for (const envelope of batch) if (envelope.message._tag === "Sync") envelope.reply(Exit.void)
          return fill()
        })
      )
    })

    const receive = (message: QueueMessage, ended: Array<AttemptResult>) => {
      switch (message._tag) {
        case "Enqueue":
          inFlight -= message.jobs.length
          for (const job of message.jobs) {
            if (known.has(job.id)) continue
            const entry: Entry = { job, priority: job.priority, order: order++ }
            known.set(job.id, entry)
            if (job.runAfter !== null && job.runAfter > Date.now()) delayed.push(entry)
            else ready.push(entry)
          }
          break
        case "Finished":
          release(message.id)
          if (message.result !== null) ended.push(message.result)
          break
        case "Cancel":
          for (const [id, reason] of message.jobs) {
            known.delete(id)
            if (!cores.has(id)) continue
            // Started or starting: a runner registered later sees the reason and stops at once.
            killReasons.set(id, reason)
            const fiber = running.get(id)
            if (fiber !== undefined) Effect.runFork(Fiber.interruptFork(fiber))
            const waiting = deferred.get(id)
            if (waiting !== undefined) {
              deferred.delete(id)
              collectEnds(ended, () => begin(waiting[0], waiting[1]))
            }
          }
          break
        case "Launch":
          starting -= message.jobs.length
          // A claimed job whose cores were released meanwhile does not start.
          collectEnds(ended, () => message.jobs.forEach((job) => cores.has(job.id) && begin(job, 1)))
          break
        case "Adopt":
          for (const { attempt, job } of message.attempts) {
            if (cores.has(job.id)) continue
            cores.set(job.id, 0)
            Effect.runFork(
              Effect.forkIn(runner(job, attempt), options.runnerScope).pipe(
                Effect.map((fiber) => {
                  // A runner that has already ended has freed its cores: it is not running any more.
                  if (cores.has(job.id)) running.set(job.id, fiber)
                })
              )
            )
          }
          break
        case "Wake":
        case "Sync":
          break
      }
    }

    // Take as many ready jobs as free cores allow; a job wanting more cores than the queue has runs alone.
    const fill = () =>
      Effect.suspend(() => {
        promoteDue()
        if (paused) return Effect.void
        const starts: Array<ReadyJob> = []
        const parked: Array<Entry> = []
        while (ready.size > 0) {
          const next = ready.peek()!
          if (known.get(next.job.id) !== next) {
            ready.pop()
            continue
          }
          // A retry queued before its previous attempt's runner has ended waits for that runner.
          if (cores.has(next.job.id)) {
            parked.push(ready.pop()!)
            continue
          }
          const sync = chainable(next.job)
          // A job sent to a remote uses the remote's cores, which its own queue counts, not ours.
          const want = sync || next.job.spec.on !== undefined ? 0 : Math.min(next.job.spec.cores ?? 1, options.concurrency)
          if (usedCores + want > options.concurrency) break
          ready.pop()
          known.delete(next.job.id)
          usedCores += want
          cores.set(next.job.id, want)
          if (sync) chained.add(next.job.id)
          starts.push(next.job)
        }
        for (const entry of parked) ready.push(entry)
        if (starts.length > 0) startRound(starts)
        return scheduleWake()
      })

    // One ledger request commits the whole round as running; then each attempt begins.
    const startRound = (jobs: ReadonlyArray<ReadyJob>) => {
      starting += jobs.length
      const sent = wiring.start(jobs.map((job) => job.id), (exit) => {
        starting -= jobs.length
        if (Exit.isSuccess(exit)) {
          // The ends of synchronous functions go to the ledger together, and the next round is taken once.
          const ends: Array<AttemptResult> = []
          collectEnds(ends, () => jobs.forEach((job, i) => begin(job, exit.value[i] ?? 0)))
          if (ends.length > 0) wiring.report(ends)
          if (ready.size > 0 && !paused) Effect.runSync(fill())
          return
        }
        Effect.runFork(Effect.logError(`queue ${options.name} could not start ${jobs.length} job(s)`, exit.cause))
        for (const job of jobs) finished(job.id, null)
      })
      if (!sent) {
        starting -= jobs.length
        Effect.runFork(Effect.logError(`queue ${options.name} could not start ${jobs.length} job(s): the ledger is full`))
        for (const job of jobs) finished(job.id, null)
      }
    }

    // A committed start: a synchronous function ends here; anything else gets its runner.
    const begin = (job: ReadyJob, attempt: number) => {
      if (attempt === 0) return finished(job.id, null)
      const reason = killReasons.get(job.id)
      if (reason !== undefined) {
        return finished(job.id, { id: job.id, state: "killed", exitCode: null, reason, outputs: [] })
      }
      if (chained.delete(job.id)) {
        if (usedCores >= options.concurrency) {
          deferred.set(job.id, [job, attempt])
          return
        }
        usedCores += 1
        cores.set(job.id, 1)
      }
      const now = wiring.runNow?.(job, attempt)
      if (now !== undefined && !Effect.isEffect(now)) return finished(job.id, now)
      const fiber = Effect.runSync(Effect.forkIn(runner(job, attempt, now), options.runnerScope))
      if (cores.has(job.id)) running.set(job.id, fiber)
    }

    const release = (id: JobId) => {
      usedCores -= cores.get(id) ?? 0
      cores.delete(id)
      chained.delete(id)
      deferred.delete(id)
      running.delete(id)
      killReasons.delete(id)
    }

    const runner = (job: ReadyJob, attempt: number, body: Effect.Effect<AttemptResult> = wiring.run(job, attempt)) =>
      body.pipe(
        Effect.onExit((exit) =>
          Effect.sync(() => {
            if (Exit.isSuccess(exit)) return finished(job.id, exit.value)
            const killed = Exit.isInterrupted(exit)
            finished(job.id, {
              id: job.id,
              state: killed ? "killed" : "failed",
              exitCode: null,
              reason: killed ? killReasons.get(job.id) ?? "killed" : "the runner failed unexpectedly",
              outputs: []
            })
          })
        ),
        Effect.asVoid,
        Effect.catchAllCause(() => Effect.void)
      )

    // An attempt ended (or never began: result null). Its cores are free at once and its end goes
    // straight to the ledger; jobs waiting for the cores start in the same breath, so that their
    // start shares the ledger's next commit with this end.
    const finished = (id: JobId, result: AttemptResult | null) => {
      release(id)
      if (deferred.size > 0) beginDeferred()
      if (collecting !== undefined) {
        if (result !== null) collecting.push(result)
        return
      }
      if (result !== null) wiring.report([result])
      if (ready.size > 0 && !paused) Effect.runSync(fill())
    }
    // Chained jobs that found every core taken begin, in order, as cores free up.
    let beginning = false
    const beginDeferred = () => {
      if (beginning) return
      beginning = true
      try {
        for (const [id, [job, attempt]] of deferred) {
          if (usedCores >= options.concurrency) break
          deferred.delete(id)
          // Begun as a chained job: it takes a core now.
          chained.add(id)
          begin(job, attempt)
        }
      } finally {
        beginning = false
      }
    }
    // While a started round begins, ends are collected here instead of reported one by one.
    let collecting: Array<AttemptResult> | undefined
    const collectEnds = (into: Array<AttemptResult>, body: () => void) => {
      const outer = collecting
      collecting = into
      try {
        body()
      } finally {
        collecting = outer
      }
    }

    const promoteDue = () => {
      if (delayed.length === 0) return
      const now = Date.now()
      for (let i = delayed.length - 1; i >= 0; i--) {
        const entry = delayed[i]!
        if (known.get(entry.job.id) !== entry) delayed.splice(i, 1)
        else if ((entry.job.runAfter ?? 0) <= now) {
          ready.push(entry)
          delayed.splice(i, 1)
        }
      }
    }

    // One timer for the earliest delayed retry.
    const scheduleWake = () =>
      Effect.suspend(() => {
        if (delayed.length === 0) return Effect.void
        const earliest = Math.min(...delayed.map((e) => e.job.runAfter ?? 0))
        if (earliest >= wakeAt) return Effect.void
        wakeAt = earliest
        return Effect.forkIn(
          Effect.sleep(Math.max(0, earliest - Date.now())).pipe(
            Effect.zipRight(Effect.sync(() => {
              wakeAt = Infinity
              actor.unsafeTell({ _tag: "Wake" })
            }))
          ),
          options.runnerScope
        ).pipe(Effect.asVoid)
      })

    return {
      name: options.name,
      actor,
      concurrency: options.concurrency,
      running,
      starting: () => starting + deferred.size,
      pause: () => {
        paused = true
      },
      enqueue: (jobs) => {
        inFlight += jobs.length
        if (!actor.unsafeTell({ _tag: "Enqueue", jobs })) inFlight -= jobs.length
      },
      claim: (job) => {
        if (paused || inFlight > 0 || ready.size > 0 || known.has(job.id) || cores.has(job.id)) return false
        if (chainable(job)) {
          cores.set(job.id, 0)
          chained.add(job.id)
          starting += 1
          return true
        }
        const want = Math.min(job.spec.cores ?? 1, options.concurrency)
        if (usedCores + want > options.concurrency) return false
        usedCores += want
        cores.set(job.id, want)
        starting += 1
        return true
      },
      launch: (jobs) => {
        if (!actor.unsafeTell({ _tag: "Launch", jobs })) {
          // Never dropped: the jobs are committed as running.
          Effect.runFork(actor.tell({ _tag: "Launch", jobs }).pipe(Effect.retry(Schedule.spaced("10 millis")), Effect.orDie))
        }
      },
      release: (jobs) => {
        starting -= jobs.length
        for (const job of jobs) release(job.id)
        actor.unsafeTell({ _tag: "Wake" })
      }
    }
  })

// The most jobs of one queue taken ahead of their cores because they end synchronously.
const maxChained = 1024

interface Entry {
  readonly job: ReadyJob
  readonly priority: number
  readonly order: number
}
