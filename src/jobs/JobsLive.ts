import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as ExecutionStrategy from "effect/ExecutionStrategy"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as ParseResult from "effect/ParseResult"
import * as PubSub from "effect/PubSub"
import * as Runtime from "effect/Runtime"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import * as Actor from "../actors/Actor.js"
import { MailboxFull } from "../actors/Actor.js"
import { Supervisor } from "../actors/Supervisor.js"
import { InvalidSpec, JobNotFound, QueueFull, ShuttingDown, WaitTimeout } from "../domain/Errors.js"
import type { JobId } from "../domain/JobId.js"
import { CleanFilter, JobFilter } from "../domain/JobRecord.js"
import type { JobEvent, JobRecord } from "../domain/JobRecord.js"
import { JobSpec } from "../domain/JobSpec.js"
import { isTerminal } from "../domain/JobState.js"
import { Executor } from "../executor/Executor.js"
import type { RunOutcome } from "../executor/Executor.js"
import * as OutputFollower from "../executor/OutputFollower.js"
import { Deadlines } from "../internal/Deadlines.js"
import * as Instance from "../internal/Instance.js"
import { JobStore } from "../store/JobStore.js"
import { Completions } from "./Completions.js"
import type { Dispatch, ReadyJob } from "./Dispatch.js"
import { Jobs } from "./Jobs.js"
import type { JobSpecInput, SubmitError } from "./Jobs.js"
import * as JobLedger from "./JobLedger.js"
import { Finish, Flush, Kill, Progress, Resend, Start, Submit, SubmitEach } from "./LedgerProtocol.js"
import type { AttemptResult, LedgerMessage } from "./LedgerProtocol.js"
import * as QueueActor from "./QueueActor.js"
import * as WaitOne from "./WaitOne.js"

/** Limits of one named queue. */
export interface QueueOptions {
  /** Cores the queue may use at once; defaults to the runtime's `cores`. */
  readonly concurrency?: number
  /** Most held plus queued jobs; a submit past it fails with QueueFull. */
  readonly capacity?: number
}

/** How the job runtime is set up. */
export interface RuntimeOptions {
  /** Where per-job folders (stdout, stderr) live. */
  readonly dataDir: string
  /** The default concurrency of every queue. */
  readonly cores: number
  readonly queues?: Readonly<Record<string, QueueOptions>>
  /** Capacity of queues that are not configured. */
  readonly defaultCapacity?: number
  /** On shutdown, how long running jobs may finish before they are killed. */
  readonly shutdownGraceMs?: number
}

const noQueueOptions: QueueOptions = {}

/** How many messages wait in the ledger's mailbox before senders are refused (MailboxFull). */
const ledgerCapacity = 65_536

/** Default queue capacity: enough for large sweeps, bounded so that memory stays bounded. */
export const defaultCapacity = 1_000_000

/** Builds the Jobs service: the ledger actor, one actor per queue, and runners per job. */
export const make = (options: RuntimeOptions) =>
  Effect.gen(function*() {
    const store = yield* JobStore
    const executor = yield* Executor
    const scope = yield* Effect.scope
    const runtime = yield* Effect.runtime<Supervisor>()
    const runnerScope = yield* Scope.fork(scope, ExecutionStrategy.parallel)
    // Queue actors are created on demand; their scope closes after the shutdown finalizer below has run.
    const actorScope = yield* Scope.fork(scope, ExecutionStrategy.sequential)
    const completions = new Completions()
    const hub = yield* PubSub.sliding<ReadonlyArray<JobEvent>>(65_536)
    let subscribers = 0
    let accepting = true

    const queueOptions = (queue: string): QueueOptions => options.queues?.[queue] ?? noQueueOptions
    const concurrencyOf = (queue: string) => queueOptions(queue).concurrency ?? options.cores
    const capacityOf = (queue: string) => queueOptions(queue).capacity ?? options.defaultCapacity ?? defaultCapacity
    // Ids are safe file names: joining them needs no normalising.
    const jobsRoot = path.join(options.dataDir, "jobs")
    const jobDir = (id: JobId) => jobsRoot + path.sep + id

    const queues = new Map<string, QueueActor.QueueHandle>()

    const queueFor = (name: string): QueueActor.QueueHandle => {
      let handle = queues.get(name)
      if (handle === undefined) {
        handle = Runtime.runSync(runtime)(
          QueueActor.make({ name, concurrency: concurrencyOf(name), wiring, runnerScope }).pipe(
            Scope.extend(actorScope)
          )
        )
        queues.set(name, handle)
      }
      return handle
    }

    const dispatch: Dispatch = {
      enqueue: (jobs) => {
        const byQueue = new Map<string, Array<ReadyJob>>()
        for (const job of jobs) {
          const list = byQueue.get(job.queue)
          if (list === undefined) byQueue.set(job.queue, [job])
          else list.push(job)
        }
        for (const [name, list] of byQueue) queueFor(name).enqueue(list)
      },
      claim: (job) => queueFor(job.queue).claim(job),
      launch: (jobs) => {
        for (const [name, list] of groupByQueue(jobs)) queueFor(name).launch(list)
      },
      release: (jobs) => {
        for (const [name, list] of groupByQueue(jobs)) queueFor(name).release(list)
      },
      cancel: (jobs) => {
        for (const handle of queues.values()) handle.actor.unsafeTell({ _tag: "Cancel", jobs })
      },
      running: () => {
        const ids = new Set<JobId>()
        for (const handle of queues.values()) for (const id of handle.running.keys()) ids.add(id)
        return ids
      },
      adopt: (attempts) => {
        for (const entry of attempts) {
          queueFor(entry.job.queue).actor.unsafeTell({ _tag: "Adopt", attempts: [entry] })
        }
      }
    }

    const ledger = JobLedger.make({
      dispatch,
      completions,
      publish: (events) => void hub.unsafeOffer(events),
      wantsEvents: () => subscribers > 0,
      capacity: capacityOf
    })
    const ledgerRef = yield* Actor.make<LedgerMessage, never>({
      name: "ledger",
      capacity: ledgerCapacity,
      maxBatch: 4096,
      behavior: Effect.provideService(ledger.behavior, JobStore, store)
    })

    const wiring: QueueActor.QueueWiring = {
      start: (ids, done) => ledgerRef.unsafeAsk(new Start({ ids }, true), done),
      ...(executor.runNow === undefined ? {} : {
        runNow: (job: ReadyJob, attempt: number) => {
          const outcome = executor.runNow!({ id: job.id, spec: job.spec, attempt, jobDir: jobDir(job.id) })
          if (outcome === undefined) return undefined
          return Effect.isEffect(outcome) ? Effect.map(outcome, (o) => resultOf(job, o)) : resultOf(job, outcome)
        }
      }),
      ...(executor.isSynchronous === undefined ? {} : { synchronous: (job: ReadyJob) => executor.isSynchronous!(job.spec) }),
      run: (job, attempt) =>
        Effect.map(
          executor.run({
            id: job.id,
            spec: job.spec,
            attempt,
            jobDir: jobDir(job.id),
            progress: job.spec.on === undefined ? undefined : (transportState) => {
              // Progress is advisory: if the mailbox is full, the next state says more anyway.
              ledgerRef.unsafeTell(new Progress({ updates: [{ id: job.id, attempt, transportState }] }, true))
            }
          }),
          (outcome) => resultOf(job, outcome)
        ),
      // Ends of attempts must reach the ledger: a full mailbox is retried, never dropped.
      report: (results) => {
        if (!ledgerRef.unsafeTell(new Finish({ results }, true))) {
          Effect.runFork(
            ledgerRef.tell(new Finish({ results }, true)).pipe(Effect.retry(Schedule.spaced("10 millis")), Effect.orDie)
          )
        }
      }
    }

    // --- the service ------------------------------------------------------------------------

    // Synchronous decoding: a submit is on the hot path and needs no effectful parsing.
    const decodeSpec = Schema.decodeUnknownEither(JobSpec, { onExcessProperty: "error" })
    const toSpec = (input: JobSpecInput | JobSpec): Either.Either<JobSpec, InvalidSpec> =>
      input instanceof JobSpec ? Either.right(input) : Either.mapLeft(simpleSpec(input) ?? decodeSpec(input), (error) =>
        new InvalidSpec({ reason: "malformed", message: `malformed job spec: ${ParseResult.TreeFormatter.formatErrorSync(error)}` }))
    const shuttingDown = new ShuttingDown({ message: "the job server is shutting down and takes no new jobs" })
    const overloaded = (full: MailboxFull) =>
      Effect.fail(new QueueFull({ queue: "(ledger)", capacity: full.capacity, message: "the job server is overloaded; try again" }))

    const submitMany = (inputs: ReadonlyArray<JobSpecInput | JobSpec>) =>
      Effect.suspend((): Effect.Effect<ReadonlyArray<JobId>, SubmitError> => {
        if (!accepting) return Effect.fail(shuttingDown)
        const specs: Array<JobSpec> = []
        for (const input of inputs) {
          const spec = toSpec(input)
          if (Either.isLeft(spec)) return Effect.fail(spec.left)
          specs.push(spec.right)
        }
        return Effect.zipRight(
          Effect.forEach(specs, executor.validate, { discard: true }),
          Effect.catchTag(ledgerRef.ask(new Submit({ specs }, true)), "MailboxFull", overloaded)
        )
      })

    // Plain single submits made in the same tick travel to the ledger together, in one message
    // (sent once the tick's work is done), and each gets its own answer.
    let group: { readonly specs: Array<JobSpec>; readonly resumes: Array<(effect: Effect.Effect<JobId, SubmitError>) => void> } | undefined
    const sendGroup = () => {
      const { resumes, specs } = group!
      group = undefined
      const sent = ledgerRef.unsafeAsk(new SubmitEach({ specs }, true), (exit) => {
        if (Exit.isFailure(exit)) {
          const failure = Exit.failCause(exit.cause)
          for (const resume of resumes) resume(failure)
          return
        }
        const results = exit.value
        for (let i = 0; i < resumes.length; i++) {
          const result = results[i]!
          resumes[i]!(typeof result === "string" ? Exit.succeed(result) : Exit.fail(result))
        }
      })
      if (!sent) {
        const full = overloaded(new MailboxFull({ actor: "ledger", capacity: ledgerCapacity, message: "the ledger's mailbox is full" }))
        for (const resume of resumes) resume(full)
      }
    }
    const joinGroup = (spec: JobSpec, resume: (effect: Effect.Effect<JobId, SubmitError>) => void) => {
      if (group === undefined) {
        group = { specs: [], resumes: [] }
        queueMicrotask(sendGroup)
      }
      group.specs.push(spec)
      group.resumes.push(resume)
    }
    const isPlain = (spec: JobSpec) => spec.id === undefined && spec.key === undefined && (spec.after === undefined || spec.after.length === 0)

    const submitOne = (spec: JobSpec) =>
      Effect.zipRight(
        executor.validate(spec),
        ledgerRef.ask(new Submit({ specs: [spec] }, true)).pipe(
          Effect.map((ids) => ids[0]!),
          Effect.catchTag("MailboxFull", overloaded)
        )
      )

    // One suspension per submit: a plain spec checked synchronously joins the tick's group at once.
    const submit = (input: JobSpecInput | JobSpec) =>
      Effect.async<JobId, SubmitError>((resume) => {
        if (!accepting) return resume(Effect.fail(shuttingDown))
        const spec = toSpec(input)
        if (Either.isLeft(spec)) return resume(Effect.fail(spec.left))
        if (!isPlain(spec.right)) return resume(submitOne(spec.right))
        if (executor.check === undefined) {
          const plain = spec.right
          return resume(Effect.zipRight(executor.validate(plain), Effect.async<JobId, SubmitError>((r) => joinGroup(plain, r))))
        }
        const problem = executor.check(spec.right)
        if (problem !== undefined) return resume(Effect.fail(problem))
        joinGroup(spec.right, resume)
      })

    const get = (id: JobId) =>
      Effect.flatMap(store.get([id]), (records) => records.length === 0 ? Effect.fail(JobNotFound.of([id])) : Effect.succeed(records[0]!))

    const waitMany = (ids: ReadonlyArray<JobId>, waitOptions?: { readonly timeout?: Duration.DurationInput }) =>
      Effect.suspend(() => {
        const results = new Map<JobId, JobRecord>()
        const remaining = new Set(ids)
        let resume: (() => void) | undefined
        const waiters = Array.from(remaining, (id) => {
          const waiter = (record: JobRecord) => {
            results.set(id, record)
            remaining.delete(id)
            if (remaining.size === 0) resume?.()
          }
          completions.register(id, waiter)
          return [id, waiter] as const
        })
        return Effect.gen(function*() {
          const unseen = Array.from(remaining).filter((id) => ledger.view.stateOf(id) === undefined)
          if (unseen.length > 0) {
            const records = yield* store.get(unseen)
            const found = new Set(records.map((r) => r.id))
            const missing = unseen.filter((id) => !found.has(id))
            if (missing.length > 0) return yield* Effect.fail(JobNotFound.of(missing))
            for (const record of records) {
              if (isTerminal(record.state) && remaining.has(record.id)) {
                results.set(record.id, record)
                remaining.delete(record.id)
              }
            }
          }
          if (remaining.size > 0) {
            const done = Effect.async<void>((callback) => {
              resume = () => callback(Effect.void)
              if (remaining.size === 0) callback(Effect.void)
            })
            if (waitOptions?.timeout !== undefined) {
              yield* Effect.timeoutFail(done, {
                duration: waitOptions.timeout,
                onTimeout: () =>
                  new WaitTimeout({
                    pending: Array.from(remaining),
                    message: `${remaining.size} job(s) still unfinished after ${Duration.format(waitOptions.timeout!)}`
                  })
              })
            } else yield* done
          }
          return ids.map((id) => results.get(id)!)
        }).pipe(Effect.ensuring(Effect.sync(() => {
          for (const [id, waiter] of waiters) completions.unregister(id, waiter)
        })))
      })

    // One unfinished job, the common case (see WaitOne).
    const waitOne = WaitOne.make({
      completions,
      deadlines: new Deadlines(),
      isLive: (id) => ledger.view.stateOf(id) !== undefined,
      fallback: (id, timeout) => waitMany([id], timeout === undefined ? undefined : { timeout })
    })

    const wait = (ids: ReadonlyArray<JobId>, waitOptions?: { readonly timeout?: Duration.DurationInput }) =>
      ids.length === 1 ? waitOne(ids[0]!, waitOptions?.timeout) : waitMany(ids, waitOptions)

    const kill = (ids: ReadonlyArray<JobId>) =>
      Effect.gen(function*() {
        const killed = yield* ledgerRef.ask(new Kill({ ids, reason: "killed on request" }, true)).pipe(
          Effect.catchTag("MailboxFull", Effect.die)
        )
        if (killed.length > 0) yield* wait(killed).pipe(Effect.catchTag("WaitTimeout", () => Effect.void))
        return killed
      })

    // A new place is checked like a submit (the remote must be known); the ledger checks the rest.
    const resend = (ids: ReadonlyArray<JobId>, resendOptions?: { readonly on?: string | undefined }) =>
      Effect.gen(function*() {
        const on = resendOptions?.on
        if (on !== undefined) {
          const records = yield* store.get(ids)
          for (const record of records) {
            yield* executor.validate(new JobSpec({ ...record.spec, on }, { disableValidation: true }))
          }
        }
        return yield* ledgerRef.ask(new Resend(on === undefined ? { ids } : { ids, on }, true)).pipe(
          Effect.catchTag("MailboxFull", Effect.die)
        )
      })

    // Subscribed when this runs, not when the stream is first pulled: nothing committed after is missed.
    const subscribe = Effect.gen(function*() {
      yield* Effect.acquireRelease(Effect.sync(() => subscribers++), () => Effect.sync(() => subscribers--))
      const dequeue = yield* PubSub.subscribe(hub)
      return Stream.flattenIterables(Stream.fromQueue(dequeue))
    })
    const events = Stream.unwrapScoped(subscribe)

    const clean = (filter: CleanFilter) =>
      Effect.gen(function*() {
        const ids = yield* store.clean(filter, Date.now())
        yield* Effect.forEach(ids, (id) => Effect.promise(() => fs.rm(jobDir(id), { recursive: true, force: true })), {
          concurrency: 16,
          discard: true
        })
        return ids.length
      })

    // --- shutdown ---------------------------------------------------------------------------

    yield* Effect.addFinalizer(() =>
      Effect.gen(function*() {
        accepting = false
        for (const handle of queues.values()) handle.pause()
        const runningCount = () => Array.from(queues.values()).reduce((n, q) => n + q.running.size, 0)
        const grace = options.shutdownGraceMs ?? 10_000
        if (runningCount() > 0) {
          yield* Effect.logInfo(`waiting up to ${grace} ms for ${runningCount()} running job(s)`)
          yield* Effect.repeat(Effect.sync(runningCount), {
            until: (n) => n === 0,
            schedule: Schedule.spaced("20 millis").pipe(Schedule.upTo(Duration.millis(grace)))
          })
        }
        // Kill what still runs; rounds that were starting meanwhile are caught by the next pass.
        for (let pass = 0; pass < 5; pass++) {
          const fibers: Array<Fiber.RuntimeFiber<void>> = []
          for (const handle of queues.values()) {
            const jobs = Array.from(handle.running.keys(), (id) => [id, "the job server shut down before the job finished"] as const)
            fibers.push(...handle.running.values())
            if (jobs.length > 0) handle.actor.unsafeTell({ _tag: "Cancel", jobs })
          }
          yield* Fiber.awaitAll(fibers).pipe(Effect.timeout("30 seconds"), Effect.ignore)
          const starting = Array.from(queues.values()).reduce((n, q) => n + q.starting(), 0)
          if (fibers.length === 0 && starting === 0) break
          yield* Effect.sleep("20 millis")
        }
        // Ends reported by runners pass through their queue before the ledger's final flush.
        yield* Effect.forEach(queues.values(), (handle) => handle.actor.ask(new QueueActor.Sync({}, true)), { discard: true }).pipe(
          Effect.timeout("10 seconds"),
          Effect.ignore
        )
        yield* ledgerRef.ask(new Flush({}, true)).pipe(Effect.timeout("10 seconds"), Effect.ignore)
      })
    )

    return Jobs.of({
      submit,
      submitMany,
      get,
      wait,
      kill,
      resend,
      list: (filter) => store.list(new JobFilter(filter ?? {}, true)),
      attempts: (id) => Effect.zipRight(get(id), store.attempts(id)),
      events,
      subscribe,
      output: (id, channel, outputOptions) =>
        Stream.unwrap(Effect.map(get(id), () =>
          Stream.fromEffect(Effect.sync(() => path.join(jobDir(id), channel))).pipe(
            Stream.flatMap((file) =>
              OutputFollower.follow(file, {
                follow: outputOptions?.follow ?? false,
                isDone: Effect.sync(() => ledger.view.stateOf(id) === undefined)
              })
            )
          ))),
      clean: (filter) => clean(new CleanFilter(filter, true)),
      queues: Effect.sync(() => ledger.view.summary(concurrencyOf))
    })
  })

const groupByQueue = (jobs: ReadonlyArray<ReadyJob>): Map<string, Array<ReadyJob>> => {
  const byQueue = new Map<string, Array<ReadyJob>>()
  for (const job of jobs) {
    const list = byQueue.get(job.queue)
    if (list === undefined) byQueue.set(job.queue, [job])
    else list.push(job)
  }
  return byQueue
}

// One object per attempt, its result set only when there is one (no spread on the hot path).
const resultOf = (job: ReadyJob, outcome: RunOutcome): AttemptResult => {
  const result: { -readonly [K in keyof AttemptResult]: AttemptResult[K] } = {
    id: job.id,
    state: outcome.state,
    exitCode: outcome.exitCode,
    reason: outcome.reason,
    outputs: outcome.outputs
  }
  if (outcome.result !== undefined) result.result = outcome.result
  return result
}

// The commonest specs, `{ fn, args }` and `{ command: argv }`, pass a structural check that accepts
// exactly what the schema would; anything else (undefined here) goes through the schema.
const simpleSpec = (input: unknown): Either.Either<JobSpec, never> | undefined => {
  if (typeof input !== "object" || input === null || Object.getPrototypeOf(input) !== Object.prototype) return undefined
  const record = input as Record<string, unknown>
  let keys = 0
  for (const key in record) {
    if (!Object.prototype.hasOwnProperty.call(record, key)) return undefined
    if (key !== "fn" && key !== "args" && key !== "command") return undefined
    if (record[key] === undefined) return undefined
    keys++
  }
  const { args, command, fn } = record
  if (fn !== undefined) {
    if (typeof fn !== "string" || fn.length === 0 || command !== undefined) return undefined
    return Either.right(Instance.trusted(JobSpec, keys === 2 ? { fn, args } : { fn }))
  }
  if (keys !== 1 || !Array.isArray(command) || command.length === 0) return undefined
  for (const part of command) if (typeof part !== "string") return undefined
  return Either.right(Instance.trusted(JobSpec, { command: command.slice() as [string, ...Array<string>] }))
}

/** The Jobs service over a JobStore and an Executor. */
export const layer = (
  options: RuntimeOptions
): Layer.Layer<Jobs, never, JobStore | Executor | Supervisor> => Layer.scoped(Jobs, make(options))
