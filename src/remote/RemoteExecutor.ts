import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Queue from "effect/Queue"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import * as Crypto from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { InvalidSpec } from "../domain/Errors.js"
import type { JobSpec } from "../domain/JobSpec.js"
import type { RunRequest } from "../executor/Executor.js"
import { Executor, RunOutcome } from "../executor/Executor.js"
import * as Endpoint from "../transport/Endpoint.js"
import type { Delivery, Mailbox } from "../transport/Mailbox.js"
import * as NetworkMailbox from "../transport/mailbox/NetworkMailbox.js"
import type * as Transport from "../transport/Transport.js"
import * as Batcher from "../internal/Batcher.js"
import type { MailboxError } from "../transport/Mailbox.js"
import type { StateSignal } from "./RemoteProtocol.js"
import {
  BatchSignal,
  batchFilePrefix,
  batchFilesOf,
  IsAliveSignal,
  logFiles,
  RemoteJob,
  RemoteMessage,
  ShippedFile,
  SubmitSignal,
  TerminateSignal
} from "./RemoteProtocol.js"
import { sha256File } from "./RemoteServer.js"

/** The remotes a local server sends jobs to, and how it watches them. */
export interface RemotesOptions {
  /** Remote name → endpoint URL (any transport), as `--remote NAME=URL` gives them. */
  readonly remotes: Readonly<Record<string, string>>
  /** Each remote's mailbox spool lives in `<dataDir>/remotes/<name>/`. */
  readonly dataDir: string
  /** How often each remote is asked `isalive`; default 2 s. */
  readonly heartbeatMs?: number
  /** A remote silent this long while it has our jobs is taken for dead, and its jobs are lost; default 10 s. */
  readonly deadAfterMs?: number
  /** Options for the transports (the shared secret). */
  readonly transport?: Transport.ServerOptions & Transport.ClientOptions
}

/**
 * The executor of a local server with remotes: a job whose spec names a remote (`on`) is sent
 * there as a `submit` with its input files, and its attempt ends when the remote's final `state`
 * comes back with the outputs, stdout and stderr, which land in the job's folder as for a local
 * job. Every other job runs on the local executor underneath. A remote that stops answering
 * `isalive` for `deadAfterMs` loses the attempts it had; the queue retries them where allowed.
 */
export const layer = (options: RemotesOptions): Layer.Layer<Executor, never, Executor> =>
  Layer.scoped(
    Executor,
    Effect.gen(function*() {
      const local = yield* Executor
      const remotes = new Map<string, Remote>()
      for (const [name, url] of Object.entries(options.remotes)) {
        const endpoint = Either.getOrThrowWith(Endpoint.parseEither(url), (error) => new Error(error.message))
        remotes.set(name, yield* connect(name, endpoint, options))
      }
      return Executor.of({
        validate: (spec) =>
          spec.on === undefined ? local.validate(spec) : validateRemote(spec, remotes),
        run: (request) =>
          request.spec.on === undefined ? local.run(request) : remotes.get(request.spec.on)!.run(request)
      })
    })
  )

// ---------------------------------------------------------------------------------------------
// private

interface Remote {
  readonly run: (request: RunRequest) => Effect.Effect<RunOutcome>
}

interface Waiter {
  readonly events: Queue.Queue<Event>
  /** When the submit went into the outbox. */
  sentAt: number
}

// The most submits one batch carries.
const maxBatch = 256

interface Outgoing {
  readonly job: RemoteJob
  readonly pairs: ReadonlyArray<readonly [string, string]>
}

// How many early states are kept for runners that have not started waiting yet.
const maxUnclaimed = 10_000

type Event =
  | { readonly _tag: "State"; readonly signal: StateSignal; readonly files: ReadonlyMap<string, string> }
  | { readonly _tag: "Lost"; readonly reason: string }

const validateRemote = (spec: JobSpec, remotes: ReadonlyMap<string, Remote>): Effect.Effect<void, InvalidSpec> => {
  if (!remotes.has(spec.on!)) {
    const known = Array.from(remotes.keys())
    return Effect.fail(
      new InvalidSpec({
        reason: "malformed",
        message: `unknown remote ${spec.on} (configured: ${known.length === 0 ? "none; start the server with --remote NAME=URL" : known.join(", ")})`
      })
    )
  }
  for (const local of inputPairs(spec).map(([local]) => local)) {
    if (!fs.existsSync(local)) {
      return Effect.fail(new InvalidSpec({ reason: "malformed", message: `input file does not exist: ${local}` }))
    }
  }
  return Effect.void
}

// Input files as local → remote pairs; local paths are taken relative to the job's cwd.
const inputPairs = (spec: JobSpec): ReadonlyArray<readonly [string, string]> => {
  const base = spec.cwd ?? process.cwd()
  const files = spec.files
  if (files === undefined) return []
  if (Array.isArray(files)) {
    return (files as ReadonlyArray<string>).map((file) => [path.resolve(base, file), file] as const)
  }
  return Object.entries(files as Readonly<Record<string, string>>).map(([local, remote]) =>
    [path.resolve(base, local), remote] as const
  )
}

const connect = (name: string, endpoint: Endpoint.Endpoint, options: RemotesOptions) =>
  Effect.gen(function*() {
    const mailbox: Mailbox<RemoteMessage> = yield* NetworkMailbox.connect(
      RemoteMessage,
      endpoint,
      {
        spool: path.join(options.dataDir, "remotes", name),
        rescanMs: 250,
        waitForPeer: true,
        ...(options.transport === undefined ? {} : { transport: options.transport })
      }
    ).pipe(Effect.orDie)
    const heartbeatMs = options.heartbeatMs ?? 2000
    const deadAfterMs = options.deadAfterMs ?? 10_000
    const waiters = new Map<string, Waiter>()
    // States that came before anyone waited for them (after a restart, answers arrive before the
    // runners are back); a runner takes its own when it starts waiting.
    const unclaimed = new Map<string, Array<Event>>()
    // When each isalive went out: an answer speaks for every submit sent before it.
    const asked = new Map<string, number>()
    // The last sign of life, or when we started waiting on an idle remote, whichever is later.
    let lastHeard = Date.now()

    const route = (delivery: Delivery<RemoteMessage>) =>
      Effect.suspend(() => {
        lastHeard = Date.now()
        const message = delivery.message
        if (message._tag === "alive") return settleForgotten(message.nonce, message.running)
        if (message._tag === "state") return routeState(message, delivery.files)
        if (message._tag !== "batch") return Effect.void
        return Effect.forEach(message.states, (signal) =>
          routeState(signal, batchFilesOf(delivery.files, signal.id, signal.attempt)), { discard: true })
      })

    const routeState = (signal: StateSignal, files: ReadonlyMap<string, string>) =>
      Effect.suspend(() => {
        const key = `${signal.id}-${signal.attempt}`
        const event: Event = { _tag: "State", signal, files }
        const waiter = waiters.get(key)
        if (waiter !== undefined) return Queue.offer(waiter.events, event)
        if (unclaimed.size >= maxUnclaimed) unclaimed.delete(unclaimed.keys().next().value!)
        unclaimed.set(key, [...(unclaimed.get(key) ?? []), event])
        return Effect.void
      })

    // Submits leave through one writer: a burst of jobs goes as one batch; a lone job as a plain
    // submit under its own uuid.
    const submits = yield* Batcher.make((items: ReadonlyArray<Outgoing>): Effect.Effect<void, MailboxError> => {
      if (items.length === 1) {
        const { job, pairs } = items[0]!
        return mailbox.send(new SubmitSignal({ job }, true), `${job.id}-${job.attempt}-submit`, Object.fromEntries(pairs))
      }
      const files: Record<string, string> = {}
      for (const { job, pairs } of items) {
        for (const [local, remote] of pairs) files[local] = `${batchFilePrefix(job.id, job.attempt)}${remote}`
      }
      return mailbox.send(
        new BatchSignal({ submits: items.map(({ job }) => new SubmitSignal({ job }, true)), states: [] }, true),
        Crypto.randomUUID(),
        files
      )
    }, maxBatch)

    // The remote handles its inbox in order, so its answer to an isalive sent after our submit has
    // seen that submit. An attempt it no longer runs, whose end we never got, has lost its answer.
    const settleForgotten = (nonce: string, running: ReadonlyArray<{ readonly id: string; readonly attempt: number }>) =>
      Effect.suspend(() => {
        const askedAt = asked.get(nonce)
        asked.delete(nonce)
        if (askedAt === undefined) return Effect.void
        const alive = new Set(running.map((r) => `${r.id}-${r.attempt}`))
        return Effect.forEach(waiters, ([key, waiter]) =>
          waiter.sentAt < askedAt && !alive.has(key)
            ? Queue.offer(waiter.events, { _tag: "Lost", reason: `remote ${name} no longer has this attempt, and its end never arrived` })
            : Effect.void, { discard: true })
      })

    yield* mailbox.messages.pipe(
      Stream.runForEach(route),
      Effect.catchAllCause((cause) => Effect.logError(`remote ${name}: the mailbox failed`, cause)),
      Effect.forkScoped
    )

    // isalive on a beat; a remote that has our jobs and has said nothing for too long is dead to them.
    yield* Effect.gen(function*() {
      if (waiters.size === 0) {
        lastHeard = Date.now()
        return
      }
      // A large answer still downloading is a sign of life too.
      lastHeard = Math.max(lastHeard, mailbox.lastActivity?.() ?? 0)
      if (Date.now() - lastHeard > deadAfterMs) {
        const reason = `remote ${name} did not answer for ${Math.round((Date.now() - lastHeard) / 1000)} s`
        for (const waiter of waiters.values()) yield* Queue.offer(waiter.events, { _tag: "Lost", reason })
        lastHeard = Date.now()
        return
      }
      const nonce = Crypto.randomUUID()
      for (const [old, at] of asked) if (Date.now() - at > 10 * deadAfterMs) asked.delete(old)
      asked.set(nonce, Date.now())
      yield* mailbox.send(new IsAliveSignal({ nonce }), Crypto.randomUUID()).pipe(Effect.catchAll(() => Effect.void))
    }).pipe(Effect.repeat(Schedule.spaced(heartbeatMs)), Effect.forkScoped)

    const run = (request: RunRequest): Effect.Effect<RunOutcome> =>
      Effect.gen(function*() {
        const key = `${request.id}-${request.attempt}`
        const events = yield* Queue.unbounded<Event>()
        if (waiters.size === 0) lastHeard = Date.now()
        const waiter: Waiter = { events, sentAt: Infinity }
        waiters.set(key, waiter)
        yield* Effect.addFinalizer(() => Effect.sync(() => waiters.delete(key)))
        yield* Queue.offerAll(events, unclaimed.get(key) ?? [])
        unclaimed.delete(key)
        const pairs = inputPairs(request.spec)
        const inputs = pairs.length === 0 ? [] : yield* Effect.promise(() =>
          Promise.all(pairs.map(async ([local, remote]) => {
            const stat = await fs.promises.stat(local)
            return new ShippedFile({ path: remote, size: stat.size, sha256: await sha256File(local) })
          }))
        )
        const spec = request.spec
        const job = new RemoteJob({
          id: request.id,
          attempt: request.attempt,
          command: spec.command!,
          ...(spec.env === undefined ? {} : { env: spec.env }),
          ...(spec.stdin === undefined ? {} : { stdin: spec.stdin }),
          ...(spec.timeLimitMs === undefined ? {} : { timeLimitMs: spec.timeLimitMs }),
          ...(spec.cores === undefined ? {} : { cores: spec.cores }),
          ...(spec.outputs === undefined ? {} : { outputs: spec.outputs }),
          ...(spec.name === undefined ? {} : { name: spec.name }),
          ...(inputs.length === 0 ? {} : { inputs })
        }, true)
        // After a restart this repeats the submit of an attempt the remote has: it runs nothing twice.
        yield* submits.offer({ job, pairs }).pipe(Effect.orDie)
        waiter.sentAt = Date.now()
        request.progress?.("sent")
        let reported: string = "sent"
        while (true) {
          const event = yield* Queue.take(events)
          if (event._tag === "Lost") {
            return new RunOutcome({ state: "lost", exitCode: null, reason: event.reason, outputs: [] })
          }
          const signal = event.signal
          switch (signal.state) {
            case "acknowledged":
            case "running":
              if (signal.output !== undefined) {
                yield* Effect.promise(() => writeLogPiece(request.jobDir, signal.output!))
              }
              if (signal.state !== reported) request.progress?.(signal.state)
              reported = signal.state
              continue
            default:
              // An end with nothing attached (a silent job without outputs) needs no file work.
              return event.files.size === 0 && signal.outputs.length === 0
                ? outcomeOf(signal, [])
                : yield* Effect.promise(() => settle(request, signal, event.files))
          }
        }
      }).pipe(
        Effect.scoped,
        // A kill interrupts the attempt: tell the remote to stop it too.
        Effect.onInterrupt(() =>
          mailbox.send(new TerminateSignal({ ids: [request.id] }), `${request.id}-${request.attempt}-terminate`).pipe(
            Effect.catchAll(() => Effect.void)
          )
        ),
        Effect.catchAllDefect((defect) =>
          Effect.succeed(
            new RunOutcome({
              state: "failed",
              exitCode: null,
              reason: `could not send the job to remote ${name}: ${String(defect)}`,
              outputs: []
            })
          )
        )
      )

    return { run } satisfies Remote
  })

// The end of a remote attempt: its logs and outputs move into the job's folder, checked by sha256.
const settle = async (
  request: RunRequest,
  signal: StateSignal,
  files: ReadonlyMap<string, string>
): Promise<RunOutcome> => {
  for (const [channel, name] of Object.entries(logFiles)) {
    const delivered = files.get(name)
    // The remote ships only logs that have something in them. A silent stream gets no file, as
    // with the local executor (readers take a missing log as empty): creating two empty files
    // and the job's folder cost more than the rest of a short job's end on this side. What was
    // followed while it ran is kept (a reader may have it open) and only the rest is appended.
    if (delivered !== undefined) await completeLog(delivered, path.join(request.jobDir, channel))
  }
  const outputs: Array<string> = []
  for (const output of signal.outputs) {
    const delivered = files.get(output.path)
    const target = path.join(request.jobDir, "outputs", output.path)
    if (delivered === undefined) {
      return failedWith(`output file ${output.path} did not arrive from the remote`)
    }
    await move(delivered, target)
    const sha256 = await sha256File(target)
    if (sha256 !== output.sha256) {
      return failedWith(`output file ${output.path} arrived damaged (sha256 ${sha256}, expected ${output.sha256})`)
    }
    outputs.push(target)
  }
  return outcomeOf(signal, outputs)
}

// The outcome a remote's final state stands for.
const outcomeOf = (signal: StateSignal, outputs: ReadonlyArray<string>): RunOutcome => {
  switch (signal.state) {
    case "completed":
    case "failed":
    case "timeout":
      return new RunOutcome({ state: signal.state, exitCode: signal.exitCode, reason: signal.reason, outputs })
    case "lost":
      return new RunOutcome({ state: "lost", exitCode: null, reason: signal.reason, outputs })
    default:
      return new RunOutcome({
        state: "failed",
        exitCode: signal.exitCode,
        reason: signal.reason ?? `the remote reported ${signal.state}`,
        outputs
      })
  }
}

// Writes a piece of a running job's log at its offset (a repeated piece lands on itself).
const writeLogPiece = async (
  jobDir: string,
  piece: { readonly channel: "stdout" | "stderr"; readonly offset: number; readonly data: Uint8Array }
): Promise<void> => {
  await fs.promises.mkdir(jobDir, { recursive: true })
  const handle = await fs.promises.open(path.join(jobDir, piece.channel), fs.constants.O_WRONLY | fs.constants.O_CREAT)
  try {
    await handle.write(piece.data, 0, piece.data.length, piece.offset)
  } finally {
    await handle.close()
  }
}

// The whole log arrived with the end: append what the pieces did not bring yet.
const completeLog = async (delivered: string, target: string): Promise<void> => {
  const have = await fs.promises.stat(target).then((s) => s.size, () => -1)
  if (have < 0) return move(delivered, target)
  const rest = fs.createReadStream(delivered, { start: have })
  const out = fs.createWriteStream(target, { flags: "a" })
  await new Promise<void>((resolve, reject) => {
    rest.on("error", reject)
    out.on("error", reject)
    out.on("finish", () => resolve())
    rest.pipe(out)
  })
  await fs.promises.rm(delivered, { force: true })
}

const failedWith = (reason: string) => new RunOutcome({ state: "failed", exitCode: null, reason, outputs: [] })

const move = async (from: string, to: string): Promise<void> => {
  await fs.promises.mkdir(path.dirname(to), { recursive: true })
  await fs.promises.rename(from, to).catch(async () => {
    await fs.promises.copyFile(from, to)
    await fs.promises.rm(from, { force: true })
  })
}
