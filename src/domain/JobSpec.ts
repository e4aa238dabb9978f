import * as Schema from "effect/Schema"
import { JobId, QueueName } from "./JobId.js"

const PositiveInt = Schema.Int.pipe(Schema.positive())

/** The name of a remote machine a job can be sent to, as the local server's `--remote NAME=URL` gives it. */
export const RemoteName = Schema.String.pipe(Schema.pattern(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/))
const NonNegativeInt = Schema.Int.pipe(Schema.nonNegative())

/** Files shipped with a job: a list of paths (same relative path on arrival) or a map local → remote. */
export const FileSet = Schema.Union(
  Schema.Array(Schema.String),
  Schema.Record({ key: Schema.String, value: Schema.String })
)
/** Files shipped with a job. */
export type FileSet = typeof FileSet.Type

/** Where a function job runs: on the runtime's own fiber pool, or on a worker thread. */
export const FunctionPlacement = Schema.Literal("in-process", "thread")

// The fields of a JobSpec; the class below adds the cross-field rules.
const JobSpecFields = Schema.Struct({
  /** A caller-chosen id; submitting an id that already exists returns that job instead of a new one. */
  id: Schema.optional(JobId),
  command: Schema.optional(Schema.Union(Schema.String.pipe(Schema.minLength(1)), Schema.NonEmptyArray(Schema.String))),
  fn: Schema.optional(Schema.String.pipe(Schema.minLength(1))),
  args: Schema.optional(Schema.Unknown),
  placement: Schema.optional(FunctionPlacement),
  cwd: Schema.optional(Schema.String),
  /** Run on this remote (see `--remote NAME=URL`) instead of this machine. */
  on: Schema.optional(RemoteName),
  env: Schema.optional(Schema.Record({ key: Schema.String, value: Schema.String })),
  stdin: Schema.optional(Schema.String),
  files: Schema.optional(FileSet),
  outputs: Schema.optional(Schema.Array(Schema.String)),
  cores: Schema.optional(PositiveInt),
  memoryMb: Schema.optional(PositiveInt),
  timeLimitMs: Schema.optional(PositiveInt),
  after: Schema.optional(Schema.Array(JobId)),
  retries: Schema.optional(NonNegativeInt),
  retryDelayMs: Schema.optional(NonNegativeInt),
  priority: Schema.optional(Schema.Int),
  queue: Schema.optional(QueueName),
  name: Schema.optional(Schema.String.pipe(Schema.maxLength(256))),
  tags: Schema.optional(Schema.Array(Schema.String.pipe(Schema.minLength(1), Schema.maxLength(64)))),
  key: Schema.optional(Schema.String.pipe(Schema.minLength(1), Schema.maxLength(256)))
})

/**
 * What to run and how. Exactly one of `command` (a shell string or an argv array) and `fn`
 * (a registered function's name, with `args`) must be given.
 */
export class JobSpec extends Schema.Class<JobSpec>("JobSpec")(
  JobSpecFields.pipe(Schema.filter((spec) =>
    (spec.command === undefined) === (spec.fn === undefined)
      ? "a job needs exactly one of `command` and `fn`"
      : spec.args !== undefined && spec.fn === undefined
      ? "`args` goes with `fn`; a command takes its arguments in the argv array"
      : spec.on !== undefined && spec.fn !== undefined
      ? "function jobs run on this machine; only commands can be sent to a remote (`on`)"
      : undefined
  ))
) {}

/** The queue a spec lands in when it names none. */
export const defaultQueue = "default"

/** Default first retry delay; each later attempt doubles it. */
export const defaultRetryDelayMs = 1000

/** The human label for a job: its name, or its command, or its function. */
export const describeSpec = (spec: JobSpec): string =>
  spec.name ?? (spec.fn !== undefined ? `fn:${spec.fn}` : Array.isArray(spec.command) ? spec.command.join(" ") : String(spec.command))
