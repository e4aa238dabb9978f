import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Runtime from "effect/Runtime"
import * as Stream from "effect/Stream"
import type { JobId } from "../domain/JobId.js"
import type { JobAttempt, JobEvent, JobRecord, QueueSummary } from "../domain/JobRecord.js"
import * as Subscription from "../internal/Subscription.js"
import type { JobSubscription } from "../jobs/Jobs.js"
import type { OutputChannel } from "../protocol/JobsRpc.js"
import * as JobsClient from "./JobsClient.js"

/**
 * A connection to a Jobs server for code that does not use Effect. Every method rejects with
 * the typed error classes (JobNotFound, InvalidSpec, QueueFull, WaitTimeout, StoreError,
 * ShuttingDown, ServerUnreachable), never with a wrapper.
 */
export interface JobsConnection {
  /** The endpoint URL of the server. */
  readonly url: string
  /** Validate and store a job; resolves to its id once committed. */
  readonly submit: (spec: JobsClient.SubmitInput) => Promise<JobId>
  /** Submit several jobs in one commit. */
  readonly submitMany: (specs: ReadonlyArray<JobsClient.SubmitInput>) => Promise<ReadonlyArray<JobId>>
  /** The current record of one job. */
  readonly get: (id: string) => Promise<JobRecord>
  /** Wait until every job has finished; rejects with WaitTimeout when `timeout` passes first. */
  readonly wait: (
    ids: ReadonlyArray<string>,
    options?: { readonly timeout?: Duration.DurationInput }
  ) => Promise<ReadonlyArray<JobRecord>>
  /** Kill jobs that have not finished; resolves to the ids that were killed. */
  readonly kill: (ids: ReadonlyArray<string>) => Promise<ReadonlyArray<JobId>>
  /** Run finished jobs again as new attempts, on the remote `on` if given; resolves to the ids requeued. */
  readonly resend: (ids: ReadonlyArray<string>, options?: { readonly on?: string }) => Promise<ReadonlyArray<JobId>>
  /** Jobs matching a filter, newest first. */
  readonly list: (filter?: JobsClient.ListFilterInput) => Promise<ReadonlyArray<JobRecord>>
  /** Every attempt at running a job, oldest first. */
  readonly attempts: (id: string) => Promise<ReadonlyArray<JobAttempt>>
  /** State transitions from a moment after the iteration starts; stop iterating (break) to unsubscribe. */
  readonly events: () => AsyncIterable<JobEvent>
  /**
   * Resolves once the server has subscribed: a job submitted afterwards is seen from its first
   * transition. Iterate the result; the subscription ends with the iteration or with `close`.
   */
  readonly subscribe: () => Promise<JobSubscription>
  /** A shell job's captured output; with `follow`, it continues until the job ends. */
  readonly output: (
    id: string,
    channel?: OutputChannel,
    options?: { readonly follow?: boolean }
  ) => AsyncIterable<Uint8Array>
  /** Delete finished jobs older than the cut-off; resolves to how many were removed. */
  readonly clean: (filter: JobsClient.CleanFilterInput) => Promise<number>
  /** Counts and limits for every known queue. */
  readonly queues: () => Promise<ReadonlyArray<QueueSummary>>
  /** Close the connection; pending calls are interrupted. */
  readonly close: () => Promise<void>
}

/** Connects to the Jobs server at `url`; rejects with ServerUnreachable or InvalidEndpoint. */
export const connectJobs = async (
  url: string,
  options: JobsClient.JobsClientOptions = {}
): Promise<JobsConnection> => {
  const managed = ManagedRuntime.make(JobsClient.layer(url, options))
  const runtime = await managed.runtime().catch(async (error: unknown) => {
    await managed.dispose()
    throw unwrap(error)
  })
  const client = Context.get(runtime.context, JobsClient.JobsClient)
  const run = <A, E>(effect: Effect.Effect<A, E>): Promise<A> =>
    managed.runPromiseExit(effect).then((exit) => {
      if (Exit.isSuccess(exit)) return exit.value
      throw Cause.squash(exit.cause)
    })
  const iterate = <A, E>(stream: Stream.Stream<A, E>): AsyncIterable<A> =>
    Stream.toAsyncIterableRuntime(stream, runtime)
  return {
    url: client.url,
    submit: (spec) => run(client.submit(spec)),
    submitMany: (specs) => run(client.submitMany(specs)),
    get: (id) => run(client.get(id)),
    wait: (ids, options) => run(client.wait(ids, options)),
    kill: (ids) => run(client.kill(ids)),
    resend: (ids, options) => run(client.resend(ids, options)),
    list: (filter) => run(client.list(filter)),
    attempts: (id) => run(client.attempts(id)),
    events: () => iterate(client.events),
    subscribe: () => Subscription.open(client.subscribe, run, iterate),
    output: (id, channel = "stdout", options) => iterate(client.output(id, channel, options)),
    clean: (filter) => run(client.clean(filter)),
    queues: () => run(client.queues),
    close: () => managed.dispose()
  }
}

// ManagedRuntime rejects with a FiberFailure; callers want the typed error inside it.
const unwrap = (error: unknown): unknown => {
  if (Runtime.isFiberFailure(error)) return Cause.squash(error[Runtime.FiberFailureCauseId])
  return error
}
