import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import type { InvalidSpec } from "../domain/Errors.js"
import type { JobId } from "../domain/JobId.js"
import type { TransportState } from "../domain/JobRecord.js"
import type { JobSpec } from "../domain/JobSpec.js"

/** One attempt to hand to an executor. */
export interface RunRequest {
  readonly id: JobId
  readonly spec: JobSpec
  /** 1 for the first run, 2 for the first retry, and so on. */
  readonly attempt: number
  /** The job's own directory: `<data>/jobs/<id>/`; stdout, stderr and collected files go here. */
  readonly jobDir: string
  /** Reports how far a remote attempt has got (sent, acknowledged, running); recorded on the job. */
  readonly progress?: ((state: TransportState) => void) | undefined
}

/** How an attempt ended, as the executor saw it. Kill is not here: it is an interruption. */
export class RunOutcome extends Schema.Class<RunOutcome>("RunOutcome")({
  /** `lost`: the attempt's fate cannot be known (a remote stopped answering). */
  state: Schema.Literal("completed", "failed", "timeout", "lost"),
  exitCode: Schema.NullOr(Schema.Int),
  reason: Schema.NullOr(Schema.String),
  /** The encoded return value of a function job. */
  result: Schema.optional(Schema.Unknown),
  /** Output files matched by the spec's `outputs` globs, as absolute paths. */
  outputs: Schema.Array(Schema.String)
}) {}

/** Runs the attempts of jobs on this machine: shell commands and registered functions. */
export class Executor extends Context.Tag("troupe/Executor")<Executor, {
  /** Check what can be checked before storing: the command exists, the cwd exists, the function is registered. */
  readonly validate: (spec: JobSpec) => Effect.Effect<void, InvalidSpec>
  /** Optional synchronous form of `validate`, for executors that decide at once: the problem, or undefined. */
  readonly check?: (spec: JobSpec) => InvalidSpec | undefined
  /**
   * Run one attempt to the end. Never fails: a bad exit, a timeout or a spawn error is an outcome.
   * Interrupting the effect kills the whole process group and waits for it to go.
   */
  readonly run: (request: RunRequest) => Effect.Effect<RunOutcome>
  /**
   * Optional fast path: start an attempt right now, in the caller's fiber. Returns its outcome when it
   * ended synchronously (a plain function), the rest of the attempt as an effect when it went async,
   * or undefined when it did not start and needs `run`.
   */
  readonly runNow?: (request: RunRequest) => RunOutcome | Effect.Effect<RunOutcome> | undefined
  /**
   * Optional hint: true when `runNow` is expected to end an attempt of this spec synchronously (a
   * registered function whose last in-process call answered synchronously). Queues may then start
   * such attempts back to back, since they never execute at the same time.
   */
  readonly isSynchronous?: (spec: JobSpec) => boolean
}>() {}
