import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Actor from "../actors/Actor.js"
import type { Supervisor } from "../actors/Supervisor.js"
import { JobId } from "../domain/JobId.js"
import { JobSpec } from "../domain/JobSpec.js"
import { PriorityQueue } from "../internal/PriorityQueue.js"
import type { ReadyJob } from "./Dispatch.js"

/** A ready job on the wire to a queue actor. */
export const ReadyJobSchema = Schema.Struct({
  id: JobId,
  queue: Schema.String,
  priority: Schema.Int,
  spec: JobSpec,
  runAfter: Schema.NullOr(Schema.Number)
})

/** The queue actor's protocol. */
export const QueueMessage = Schema.Union(
  /** Ready jobs to queue (already-known ids are ignored). */
  Schema.TaggedStruct("Enqueue", { jobs: Schema.Array(ReadyJobSchema) }),
  /** A runner ended, freeing its cores. */
  Schema.TaggedStruct("Finished", { id: JobId }),
  /** Drop or interrupt jobs being killed. */
  Schema.TaggedStruct("Cancel", { jobs: Schema.Array(Schema.Tuple(JobId, Schema.String)) }),
  /** A delayed retry is due, or dispatching was resumed. */
  Schema.TaggedStruct("Wake", {})
)
/** A message to a queue actor. */
export type QueueMessage = typeof QueueMessage.Type

/** How a queue runs one job: the runner reports back with `Finished` when done. */
export type RunJob = (job: ReadyJob, killReason: () => string | undefined) => Effect.Effect<void>

/** A live queue: its actor plus counters that readers may look at. */
export interface QueueHandle {
  readonly name: string
  readonly actor: Actor.ActorRef<QueueMessage>
  readonly concurrency: number
  /** Ids whose runners are alive. */
  readonly running: ReadonlyMap<JobId, Fiber.RuntimeFiber<void>>
  /** Stop starting new jobs (shutdown); running ones carry on. */
  readonly pause: () => void
}

/**
 * A queue actor: jobs wait in priority order (then FIFO) until the queue has free cores,
 * then run as their own fibers. Its state lives outside the behavior so that a restart
 * neither forgets queued jobs nor loses track of running ones.
 */
export const make = (options: {
  readonly name: string
  readonly concurrency: number
  readonly runJob: RunJob
  /** Where runner fibers live: they outlive actor restarts and end with the runtime. */
  readonly runnerScope: Scope.Scope
}): Effect.Effect<QueueHandle, never, Supervisor | Scope.Scope> =>
  Effect.gen(function*() {
    let order = 0
    let paused = false
    let usedCores = 0
    const ready = new PriorityQueue<Entry>((a, b) => a.priority > b.priority || (a.priority === b.priority && a.order < b.order))
    const delayed: Array<Entry> = []
    // The live entry of every waiting job; heap entries that are no longer here are skipped (lazy removal).
    const known = new Map<JobId, Entry>()
    const cores = new Map<JobId, number>()
    const running = new Map<JobId, Fiber.RuntimeFiber<void>>()
    const killReasons = new Map<JobId, string>()
    let wakeAt = Infinity

    const actor: Actor.ActorRef<QueueMessage> = yield* Actor.make<QueueMessage, never>({
      name: `queue:${options.name}`,
      capacity: 1_000_000,
      behavior: Effect.succeed((batch) =>
        Effect.suspend(() => {
          for (const { message } of batch) receive(message)
          return fill()
        })
      )
    })

    const receive = (message: QueueMessage) => {
      switch (message._tag) {
        case "Enqueue":
          for (const job of message.jobs) {
            if (known.has(job.id)) continue
            const entry: Entry = { job, priority: job.priority, order: order++ }
            known.set(job.id, entry)
            if (job.runAfter !== null && job.runAfter > Date.now()) delayed.push(entry)
            else ready.push(entry)
          }
          break
        case "Finished":
          usedCores -= cores.get(message.id) ?? 0
          cores.delete(message.id)
          running.delete(message.id)
          killReasons.delete(message.id)
          break
        case "Cancel":
          for (const [id, reason] of message.jobs) {
            const fiber = running.get(id)
            if (fiber !== undefined) {
              killReasons.set(id, reason)
              Effect.runFork(Fiber.interruptFork(fiber))
            }
            known.delete(id)
          }
          break
        case "Wake":
          break
      }
    }

    // Start as many ready jobs as free cores allow; a job wanting more cores than the queue has runs alone.
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
          if (running.has(next.job.id) || starts.some((j) => j.id === next.job.id)) {
            parked.push(ready.pop()!)
            continue
          }
          const want = Math.min(next.job.spec.cores ?? 1, options.concurrency)
          if (usedCores + want > options.concurrency) break
          ready.pop()
          known.delete(next.job.id)
          usedCores += want
          cores.set(next.job.id, want)
          starts.push(next.job)
        }
        for (const entry of parked) ready.push(entry)
        return starts.length === 0 ? scheduleWake() : Effect.zipRight(
          Effect.forEach(starts, (job) =>
            Effect.forkIn(
              options.runJob(job, () => killReasons.get(job.id)).pipe(
                Effect.ensuring(Effect.sync(() => actor.unsafeTell({ _tag: "Finished", id: job.id })))
              ),
              options.runnerScope
            ).pipe(Effect.map((fiber) => {
              running.set(job.id, fiber)
            })), { discard: true }),
          scheduleWake()
        )
      })

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
      pause: () => {
        paused = true
      }
    }
  })

interface Entry {
  readonly job: ReadyJob
  readonly priority: number
  readonly order: number
}
