import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Path from "node:path"
import type { InvalidEndpoint } from "../client/index.js"
import type { ServerUnreachable } from "../client/Errors.js"
import type { JobsClient, JobsClientError, SubmitInput } from "../client/JobsClient.js"
import { JobNotFound, WaitTimeout } from "../domain/Errors.js"
import { JobId } from "../domain/JobId.js"
import type { JobRecord } from "../domain/JobRecord.js"
import { isTerminal, JobState } from "../domain/JobState.js"
import * as Args from "./Args.js"
import * as Format from "./Format.js"
import * as Output from "./Output.js"
import type { SecretError } from "../transport/Secret.js"

/** Opens the connection to the server; a command calls it only after its arguments are valid. */
export type Connect = Effect.Effect<JobsClient["Type"], ServerUnreachable | InvalidEndpoint | SecretError, Scope.Scope>

/** Errors a client command can end with; Main turns each into one stderr line and an exit code. */
export type CommandError = Args.UsageError | JobsClientError | InvalidEndpoint | SecretError

/** A client command: its option table and its body, which returns the process exit code. */
export interface ClientCommand {
  readonly options: Args.Options
  readonly positionals: boolean
  readonly run: (parsed: Args.Parsed, connect: Connect) => Effect.Effect<number, CommandError, Scope.Scope>
}

/** `submit [options] -- CMD [ARGS...]`: prints the job id; with --wait, exits with the job's exit code. */
export const submit: ClientCommand = {
  options: {
    ...Args.serverOption,
    name: { type: "string" },
    queue: { type: "string" },
    cores: { type: "string" },
    time: { type: "string" },
    after: { type: "string", multiple: true },
    retries: { type: "string" },
    key: { type: "string" },
    wait: { type: "boolean" },
    on: { type: "string" },
    in: { type: "string", multiple: true },
    out: { type: "string", multiple: true }
  },
  positionals: true,
  run: Effect.fnUntraced(function*(parsed, connect) {
    const argv = parsed.rest ?? parsed.positionals
    const [first, ...others] = argv
    if (first === undefined) {
      return yield* new Args.UsageError({ command: "submit", message: "missing the command to run (after --)" })
    }
    const cores = yield* Args.integer("submit", parsed, "cores", 1)
    const timeLimitMs = yield* Args.duration("submit", parsed, "time")
    const retries = yield* Args.integer("submit", parsed, "retries", 0)
    const after = Args.strings(parsed, "after").flatMap((ids) => ids.split(",")).map((id) => id.trim())
      .filter((id) => id.length > 0)
    const inputs = yield* inputFiles(Args.strings(parsed, "in"))
    const outputs = Args.strings(parsed, "out")
    const spec: SubmitInput = compact({
      command: others.length === 0 ? first : [first, ...others] as const,
      cwd: process.cwd(),
      name: Args.string(parsed, "name"),
      queue: Args.string(parsed, "queue"),
      cores,
      timeLimitMs,
      retries,
      after: after.length > 0 ? after : undefined,
      key: Args.string(parsed, "key"),
      on: Args.string(parsed, "on"),
      files: Object.keys(inputs).length > 0 ? inputs : undefined,
      outputs: outputs.length > 0 ? outputs : undefined
    })
    const client = yield* connect
    const id = yield* client.submit(spec)
    yield* Output.line(id)
    if (!Args.flag(parsed, "wait")) return 0
    const [record] = yield* client.wait([id])
    return Format.exitCodeOf(record!)
  })
}

// `--in LOCAL[:REMOTE]`: a local file (made absolute here, where the user is) and where it lands in
// the job's folder; by default the same relative path, or the file's name for an absolute path.
const inputFiles = (values: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const files: Record<string, string> = {}
    for (const value of values) {
      const split = value.lastIndexOf(":")
      const local = split > 0 ? value.slice(0, split) : value
      const remote = split > 0 ? value.slice(split + 1) : Path.isAbsolute(value) ? Path.basename(value) : value
      if (remote.length === 0 || Path.isAbsolute(remote) || Path.normalize(remote).startsWith("..")) {
        return yield* new Args.UsageError({
          command: "submit",
          message: `--in ${value}: the remote path must stay inside the job's folder (relative, no ..)`
        })
      }
      files[Path.resolve(local)] = remote
    }
    return files
  })

/** `status [--json] [ID...]`: a table or JSON array of jobs; the most recent 100 without ids. */
export const status: ClientCommand = {
  options: {
    ...Args.serverOption,
    json: { type: "boolean" },
    state: { type: "string", multiple: true },
    queue: { type: "string" },
    limit: { type: "string" }
  },
  positionals: true,
  run: Effect.fnUntraced(function*(parsed, connect) {
    const limit = (yield* Args.integer("status", parsed, "limit", 1)) ?? 100
    const states = yield* decodeStates("status", Args.strings(parsed, "state"))
    const ids = parsed.positionals
    yield* checkIds(ids)
    const client = yield* connect
    const records = ids.length > 0
      ? yield* inOrder(ids, yield* client.list({ ids, limit: ids.length }))
      : yield* client.list(compact({
        limit,
        states: states.length > 0 ? states : undefined,
        queue: Args.string(parsed, "queue")
      }))
    yield* Args.flag(parsed, "json")
      ? Output.line(JSON.stringify(records.map(Format.jobJson), null, 2))
      : Output.out(Format.jobTable(records, Date.now()))
    return 0
  })
}

/** `wait [--timeout D] ID...`: exit 0 when every job completed with code 0, 1 otherwise, 3 on timeout. */
export const wait: ClientCommand = {
  options: { ...Args.serverOption, timeout: { type: "string" } },
  positionals: true,
  run: Effect.fnUntraced(function*(parsed, connect) {
    const ids = parsed.positionals
    if (ids.length === 0) return yield* new Args.UsageError({ command: "wait", message: "missing job ids" })
    const timeoutMs = yield* Args.duration("wait", parsed, "timeout")
    yield* checkIds(ids)
    const client = yield* connect
    const records = Output.stderrIsTty() && ids.length > 1
      ? yield* waitWithProgress(client, ids, timeoutMs)
      : yield* client.wait(ids, { timeout: timeoutMs === undefined ? undefined : Duration.millis(timeoutMs) })
    const bad = records.filter((record) => record.state !== "completed" || record.exitCode !== 0)
    if (bad.length === 0) return 0
    yield* Output.problem(
      `${bad.length} of ${records.length} job${records.length > 1 ? "s" : ""} did not succeed: ${
        bad.slice(0, 10).map(describeOutcome).join(", ")
      }${bad.length > 10 ? ", ..." : ""}`
    )
    return 1
  })
}

/** `kill ID...`: kills the jobs still active and prints their ids. */
export const kill: ClientCommand = {
  options: { ...Args.serverOption },
  positionals: true,
  run: Effect.fnUntraced(function*(parsed, connect) {
    const ids = parsed.positionals
    if (ids.length === 0) return yield* new Args.UsageError({ command: "kill", message: "missing job ids" })
    yield* checkIds(ids)
    const client = yield* connect
    const killed = yield* client.kill(ids)
    for (const id of killed) yield* Output.line(id)
    return 0
  })
}

/** `resend [--on NAME] ID...`: runs finished jobs again as new attempts; prints the ids requeued. */
export const resend: ClientCommand = {
  options: { ...Args.serverOption, on: { type: "string" }, wait: { type: "boolean" } },
  positionals: true,
  run: Effect.fnUntraced(function*(parsed, connect) {
    const ids = parsed.positionals
    if (ids.length === 0) return yield* new Args.UsageError({ command: "resend", message: "missing job ids" })
    yield* checkIds(ids)
    const client = yield* connect
    const requeued = yield* client.resend(ids, { on: Args.string(parsed, "on") })
    for (const id of requeued) yield* Output.line(id)
    if (!Args.flag(parsed, "wait")) return 0
    const records = yield* client.wait(requeued)
    return records.every((record) => Format.exitCodeOf(record) === 0) ? 0 : 1
  })
}

/** `logs [-f] [--stderr] ID`: copies a job's captured output to stdout, following it with -f. */
export const logs: ClientCommand = {
  options: {
    ...Args.serverOption,
    follow: { type: "boolean", short: "f" },
    stderr: { type: "boolean" }
  },
  positionals: true,
  run: Effect.fnUntraced(function*(parsed, connect) {
    const [id, ...extra] = parsed.positionals
    if (id === undefined || extra.length > 0) {
      return yield* new Args.UsageError({ command: "logs", message: "expected exactly one job id" })
    }
    yield* checkIds([id])
    const client = yield* connect
    const channel = Args.flag(parsed, "stderr") ? "stderr" : "stdout"
    yield* client.output(id, channel, { follow: Args.flag(parsed, "follow") }).pipe(
      Stream.runForEach(Output.out)
    )
    return 0
  })
}

/**
 * `events [--json] [ID...]`: prints transitions as they are committed, until interrupted; with ids,
 * only those jobs', and it exits once each has ended (0 when all completed with exit code 0).
 */
export const events: ClientCommand = {
  options: { ...Args.serverOption, json: { type: "boolean" } },
  positionals: true,
  run: Effect.fnUntraced(function*(parsed, connect) {
    const ids = parsed.positionals
    yield* checkIds(ids)
    const client = yield* connect
    const json = Args.flag(parsed, "json")
    // Subscribed before the records are read: nothing can end unseen in between.
    const stream = yield* client.subscribe
    const watched = new Set(ids)
    const pending = new Set<string>()
    let bad = 0
    if (ids.length > 0) {
      for (const record of yield* inOrder(ids, yield* client.list({ ids, limit: ids.length }))) {
        if (!isTerminal(record.state)) pending.add(record.id)
        else if (record.state !== "completed" || record.exitCode !== 0) bad++
      }
      if (pending.size === 0) return bad === 0 ? 0 : 1
    }
    let last: number | undefined
    yield* stream.pipe(
      Stream.filter((event) => watched.size === 0 || watched.has(event.id)),
      Stream.tap((event) =>
        Effect.gen(function*() {
          if (event.seq !== undefined && last !== undefined && event.seq > last + 1 && watched.size === 0) {
            yield* Output.problem(`missed ${event.seq - last - 1} events: this client fell behind the server's buffer`)
          }
          last = event.seq ?? last
          yield* Output.line(json ? JSON.stringify(Format.eventJson(event)) : Format.eventLine(event))
          if (pending.has(event.id) && isTerminal(event.to)) {
            pending.delete(event.id)
            if (event.to !== "completed" || event.exitCode !== 0) bad++
          }
        })),
      Stream.takeUntil(() => ids.length > 0 && pending.size === 0),
      Stream.runDrain
    )
    return bad === 0 ? 0 : 1
  })
}

/** `queue [--json]`: every queue's limits and counts. */
export const queue: ClientCommand = {
  options: { ...Args.serverOption, json: { type: "boolean" } },
  positionals: false,
  run: Effect.fnUntraced(function*(parsed, connect) {
    const client = yield* connect
    const queues = yield* client.queues
    yield* Args.flag(parsed, "json")
      ? Output.line(JSON.stringify(queues.map((q) => ({ ...q })), null, 2))
      : Output.out(Format.queueTable(queues))
    return 0
  })
}

/** `clean [--older-than D] [--state S]...`: deletes old finished jobs and prints how many. */
export const clean: ClientCommand = {
  options: {
    ...Args.serverOption,
    "older-than": { type: "string" },
    state: { type: "string", multiple: true }
  },
  positionals: false,
  run: Effect.fnUntraced(function*(parsed, connect) {
    const olderThanMs = (yield* Args.duration("clean", parsed, "older-than")) ?? 7 * 86_400_000
    const states = yield* decodeStates("clean", Args.strings(parsed, "state"))
    const client = yield* connect
    const removed = yield* client.clean(states.length > 0 ? { olderThanMs, states } : { olderThanMs })
    yield* Output.line(String(removed))
    return 0
  })
}

/** Every client command by name. */
export const commands: Readonly<Record<string, ClientCommand>> = { submit, status, wait, kill, resend, logs, events, queue, clean }

/** Drops the undefined fields of an object, so optional fields stay absent (exactOptionalPropertyTypes). */
export const compact = <A extends object>(fields: { readonly [K in keyof A]: A[K] | undefined }): A =>
  Object.fromEntries(Object.entries(fields).filter(([, value]) => value !== undefined)) as A

// ---------------------------------------------------------------------------------------------
// private

// Polls Wait in one-second slices so the pending count can be redrawn as "n/m done".
const waitWithProgress = Effect.fnUntraced(function*(
  client: JobsClient["Type"],
  ids: ReadonlyArray<string>,
  timeoutMs: number | undefined
) {
  const deadline = timeoutMs === undefined ? Infinity : Date.now() + timeoutMs
  const total = ids.length
  while (true) {
    const slice = Math.max(1, Math.min(1000, deadline - Date.now()))
    const result = yield* client.wait(ids, { timeout: Duration.millis(slice) }).pipe(
      Effect.catchIf(
        (error): error is WaitTimeout => error._tag === "WaitTimeout" && Date.now() < deadline,
        (error) => Effect.succeed(error)
      ),
      Effect.tapError(() => Output.err("\n"))
    )
    if (!(result instanceof WaitTimeout)) {
      yield* Output.progress(`${total}/${total} done\n`)
      return result
    }
    yield* Output.progress(`${total - result.pending.length}/${total} done`)
  }
})

const describeOutcome = (record: JobRecord): string =>
  `${record.id} (${record.state}${record.exitCode === null ? "" : `, exit ${record.exitCode}`})`

const checkIds = (ids: ReadonlyArray<string>): Effect.Effect<void, JobNotFound> => {
  const bad = ids.filter((id) => !Schema.is(JobId)(id))
  return bad.length > 0 ? Effect.fail(JobNotFound.of(bad)) : Effect.void
}

const inOrder = (
  ids: ReadonlyArray<string>,
  records: ReadonlyArray<JobRecord>
): Effect.Effect<ReadonlyArray<JobRecord>, JobNotFound> => {
  const byId = new Map(records.map((record) => [record.id as string, record]))
  const missing = ids.filter((id) => !byId.has(id))
  return missing.length > 0 ? Effect.fail(JobNotFound.of(missing)) : Effect.succeed(ids.map((id) => byId.get(id)!))
}

const decodeStates = (
  command: string,
  states: ReadonlyArray<string>
): Effect.Effect<ReadonlyArray<JobState>, Args.UsageError> => {
  const bad = states.filter((state) => !Schema.is(JobState)(state))
  return bad.length > 0
    ? Effect.fail(
      new Args.UsageError({
        command,
        message: `unknown state "${bad[0]}"; states are ${JobState.literals.join(", ")}`
      })
    )
    : Effect.succeed(states as ReadonlyArray<JobState>)
}
