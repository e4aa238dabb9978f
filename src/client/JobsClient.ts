import * as RpcClient from "@effect/rpc/RpcClient"
import type { RpcClientError } from "@effect/rpc/RpcClientError"
import type * as RpcGroup from "@effect/rpc/RpcGroup"
import * as Cause from "effect/Cause"
import * as Chunk from "effect/Chunk"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { InvalidSpec, JobNotFound } from "../domain/Errors.js"
import type { JobsError } from "../domain/Errors.js"
import { JobId } from "../domain/JobId.js"
import { CleanFilter, JobFilter } from "../domain/JobRecord.js"
import type { JobAttempt, JobEvent, JobRecord, QueueSummary } from "../domain/JobRecord.js"
import { JobSpec } from "../domain/JobSpec.js"
import type { JobSpecInput } from "../jobs/Jobs.js"
import { JobsRpc, Subscribed } from "../protocol/JobsRpc.js"
import type { OutputChannel } from "../protocol/JobsRpc.js"
import * as Endpoint from "../transport/Endpoint.js"
import type { ConnectFailed, InvalidEndpoint } from "../transport/Errors.js"
import * as Secret from "../transport/Secret.js"
import type { SecretError } from "../transport/Secret.js"
import * as Transport from "../transport/Transport.js"
import { ServerUnreachable } from "./Errors.js"

/** Every error a JobsClient call can report: the server's typed errors, or an unreachable server. */
export type JobsClientError = JobsError | ServerUnreachable

/** A job spec as plain data: the JobSpec constructor's input, or its encoded (wire) form with string ids. */
export type SubmitInput = JobSpecInput | typeof JobSpec.Encoded

/** Which jobs `list` returns, as plain data; every field narrows the result. */
export type ListFilterInput = Partial<typeof JobFilter.Encoded>

/** What `clean` removes, as plain data. */
export type CleanFilterInput = typeof CleanFilter.Encoded

/** Options for connecting to a server. */
export interface JobsClientOptions extends Transport.ClientOptions {
  /**
   * A file holding the shared secret, for servers that require the handshake; read when `secret`
   * is not given. Defaults to the TROUPE_SECRET_FILE environment variable.
   */
  readonly secretFile?: string | undefined
}

/** A typed client for a remote Jobs service (the `local` role), over any supported endpoint URL. */
export class JobsClient extends Context.Tag("troupe/client/JobsClient")<JobsClient, {
  /** The endpoint URL this client talks to. */
  readonly url: string
  /** Validate and store a job on the server; succeeds once it is committed. */
  readonly submit: (spec: SubmitInput) => Effect.Effect<JobId, JobsClientError>
  /** Submit several jobs in one commit. */
  readonly submitMany: (specs: ReadonlyArray<SubmitInput>) => Effect.Effect<ReadonlyArray<JobId>, JobsClientError>
  /** The current record of one job. */
  readonly get: (id: string) => Effect.Effect<JobRecord, JobsClientError>
  /** Wait until every job has finished; fails with WaitTimeout when `timeout` passes first. */
  readonly wait: (
    ids: ReadonlyArray<string>,
    options?: { readonly timeout?: Duration.DurationInput | undefined }
  ) => Effect.Effect<ReadonlyArray<JobRecord>, JobsClientError>
  /** Kill jobs that have not finished; returns the ids that were killed. */
  readonly kill: (ids: ReadonlyArray<string>) => Effect.Effect<ReadonlyArray<JobId>, JobsClientError>
  /** Run finished jobs again as new attempts, on the remote `on` if given; returns the ids requeued. */
  readonly resend: (
    ids: ReadonlyArray<string>,
    options?: { readonly on?: string | undefined }
  ) => Effect.Effect<ReadonlyArray<JobId>, JobsClientError>
  /** Jobs matching a filter, newest first. */
  readonly list: (filter?: ListFilterInput) => Effect.Effect<ReadonlyArray<JobRecord>, JobsClientError>
  /** Every attempt at running a job, oldest first. */
  readonly attempts: (id: string) => Effect.Effect<ReadonlyArray<JobAttempt>, JobsClientError>
  /** Every state transition from the moment the server subscribes, a moment after the stream starts. */
  readonly events: Stream.Stream<JobEvent, JobsClientError>
  /**
   * Subscribes and returns once the server has: a job submitted afterwards is seen from its first
   * transition to its last. The subscription lasts for the scope.
   */
  readonly subscribe: Effect.Effect<Stream.Stream<JobEvent, JobsClientError>, JobsClientError, Scope.Scope>
  /** A shell job's captured output; with `follow`, the stream continues until the job ends. */
  readonly output: (
    id: string,
    channel: OutputChannel,
    options?: { readonly follow?: boolean | undefined }
  ) => Stream.Stream<Uint8Array, JobsClientError>
  /** Delete finished jobs older than the cut-off; returns how many were removed. */
  readonly clean: (filter: CleanFilterInput) => Effect.Effect<number, JobsClientError>
  /** Counts and limits for every known queue. */
  readonly queues: Effect.Effect<ReadonlyArray<QueueSummary>, JobsClientError>
}>() {
  /** Provides a JobsClient connected to `url`; same as the module's `layer`. */
  static readonly layer = (
    url: string,
    options: JobsClientOptions = {}
  ): Layer.Layer<JobsClient, ServerUnreachable | InvalidEndpoint | SecretError> => layer(url, options)
  /** Connects within the current scope; same as the module's `make`. */
  static readonly make = (
    url: string,
    options: JobsClientOptions = {}
  ): Effect.Effect<JobsClient["Type"], ServerUnreachable | InvalidEndpoint | SecretError, Scope.Scope> =>
    make(url, options)
}

/** Connects to the Jobs server at `url`; fails with ServerUnreachable when nothing answers within the timeout. */
export const make = Effect.fn("JobsClient.make")(function*(url: string, options: JobsClientOptions = {}) {
  const endpoint = yield* Endpoint.parse(url)
  const secret = options.secret ?? (yield* Secret.resolve(options.secretFile))
  const rpc = yield* Transport.makeClient(JobsRpc, endpoint, { ...options, secret }).pipe(Effect.mapError(unreachable))
  return fromRpcClient(Endpoint.format(endpoint), rpc)
}) satisfies (
  url: string,
  options?: JobsClientOptions
) => Effect.Effect<JobsClient["Type"], ServerUnreachable | InvalidEndpoint | SecretError, Scope.Scope>

/** Provides a JobsClient connected to `url` for the layer's lifetime. */
export const layer = (
  url: string,
  options: JobsClientOptions = {}
): Layer.Layer<JobsClient, ServerUnreachable | InvalidEndpoint | SecretError> =>
  Layer.scoped(JobsClient, make(url, options))

// ---------------------------------------------------------------------------------------------
// private

type JobsRpcClient = RpcClient.RpcClient<RpcGroup.Rpcs<typeof JobsRpc>, RpcClientError>

const fromRpcClient = (url: string, rpc: JobsRpcClient): JobsClient["Type"] => {
  const lost = (error: RpcClientError | JobsError): JobsClientError =>
    error._tag === "RpcClientError"
      ? new ServerUnreachable({
        url,
        reason: "connection-lost",
        message: `lost connection to server ${url}`,
        cause: error
      })
      : error
  // A call the server interrupted (it is shutting down) ends like a lost connection, not as our interruption.
  const ended = (cause: Cause.Cause<RpcClientError | JobsError>): Cause.Cause<JobsClientError> =>
    Cause.isInterruptedOnly(cause)
      ? Cause.fail(
        new ServerUnreachable({ url, reason: "connection-lost", message: `server ${url} ended the call (shut down?)` })
      )
      : Cause.map(cause, lost)
  const call = <A>(effect: Effect.Effect<A, RpcClientError | JobsError>) =>
    Effect.catchAllCause(effect, (cause) => Effect.failCause(ended(cause)))
  const stream = <A>(self: Stream.Stream<A, RpcClientError | JobsError>) =>
    Stream.catchAllCause(self, (cause) => Stream.failCause(ended(cause)))
  return JobsClient.of({
    url,
    submit: (spec) => Effect.flatMap(decodeSpec(spec), (spec) => call(rpc.Submit({ spec }))),
    submitMany: (specs) =>
      Effect.flatMap(Effect.forEach(specs, decodeSpec), (specs) => call(rpc.SubmitMany({ specs }))),
    get: (id) => Effect.flatMap(decodeIds([id]), ([id]) => call(rpc.Get({ id: id! }))),
    wait: (ids, options) =>
      Effect.flatMap(decodeIds(ids), (ids) =>
        call(rpc.Wait(
          options?.timeout === undefined
            ? { ids }
            : { ids, timeoutMs: Duration.toMillis(Duration.decode(options.timeout)) }
        ))),
    kill: (ids) => Effect.flatMap(decodeIds(ids), (ids) => call(rpc.Kill({ ids }))),
    resend: (ids, options) =>
      Effect.flatMap(decodeIds(ids), (ids) =>
        call(rpc.Resend(options?.on === undefined ? { ids } : { ids, on: options.on }))),
    list: (filter = {}) =>
      Effect.flatMap(decodeInput(JobFilter, "filter", filter), (filter) => call(rpc.List({ filter }))),
    attempts: (id) => Effect.flatMap(decodeIds([id]), ([id]) => call(rpc.Attempts({ id: id! }))),
    events: stream(rpc.Events(undefined)),
    subscribe: Effect.gen(function*() {
      const pull = yield* Stream.toPull(stream(rpc.Subscribe(undefined)))
      // Chunks are read until the server's Subscribed; what came with it in its chunk is kept.
      let leftover: Chunk.Chunk<Subscribed | JobEvent> = Chunk.empty()
      while (true) {
        const chunk = yield* Effect.catchAll(pull, (end) =>
          Option.match(end, {
            onNone: () => new ServerUnreachable({ url, reason: "connection-lost", message: `server ${url} ended the subscription` }),
            onSome: (error) => Effect.fail(error)
          }))
        const at = Chunk.findFirstIndex(chunk, (item) => item instanceof Subscribed)
        if (Option.isSome(at)) {
          leftover = Chunk.drop(chunk, at.value + 1)
          break
        }
      }
      const rest = Stream.repeatEffectChunkOption(pull)
      return Stream.concat(Stream.fromChunk(leftover), rest).pipe(
        Stream.filter((item): item is JobEvent => !(item instanceof Subscribed))
      )
    }),
    output: (id, channel, options) =>
      Stream.unwrap(Effect.map(decodeIds([id]), ([id]) =>
        stream(rpc.Output({ id: id!, channel, follow: options?.follow ?? false })))),
    clean: (filter) =>
      Effect.flatMap(decodeInput(CleanFilter, "clean filter", filter), (filter) => call(rpc.Clean({ filter }))),
    queues: call(rpc.Queues(undefined))
  })
}

const unreachable = (error: ConnectFailed): ServerUnreachable =>
  new ServerUnreachable({
    url: error.url,
    reason: error.reason,
    message: `cannot reach server ${error.url} (${error.detail})`
  })

const decodeSpec = (spec: SubmitInput): Effect.Effect<JobSpec, InvalidSpec> =>
  spec instanceof JobSpec ? Effect.succeed(spec) : decodeInput(JobSpec, "job spec", spec)

const decodeInput = <A, I>(
  schema: Schema.Schema<A, I>,
  what: string,
  input: unknown
): Effect.Effect<A, InvalidSpec> =>
  Schema.decodeUnknown(schema)(input).pipe(
    Effect.mapError((error) =>
      new InvalidSpec({
        reason: "malformed",
        message: `invalid ${what}: ${ParseResult.TreeFormatter.formatErrorSync(error)}`
      })
    )
  )

// An id that cannot be a JobId cannot name a job either: report it as unknown, as the server would.
const decodeIds = (ids: ReadonlyArray<string>): Effect.Effect<ReadonlyArray<JobId>, JobNotFound> => {
  const bad = ids.filter((id) => !Schema.is(JobId)(id))
  return bad.length > 0 ? Effect.fail(JobNotFound.of(bad)) : Effect.succeed(ids as ReadonlyArray<JobId>)
}
