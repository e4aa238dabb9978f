import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Runtime from "effect/Runtime"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import * as Crypto from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { JobSpec } from "../domain/JobSpec.js"
import type { JobId } from "../domain/JobId.js"
import type { RunOutcome } from "../executor/Executor.js"
import { Executor } from "../executor/Executor.js"
import type { Delivery, Mailbox } from "../transport/Mailbox.js"
import { isConfined } from "../transport/folder/FolderFiles.js"
import * as Batcher from "../internal/Batcher.js"
import type { JournalEntry } from "./Journal.js"
import { Journal, journalFile } from "./Journal.js"
import type { RemoteJob, RemoteJobState, RemoteMessage } from "./RemoteProtocol.js"
import {
  AliveSignal,
  BatchSignal,
  batchFilePrefix,
  batchFilesOf,
  FullQueueSignal,
  logFiles,
  QueueSignal,
  RemoteQueueEntry,
  ShippedFile,
  StateSignal
} from "./RemoteProtocol.js"

/** How a remote runs what it receives. */
export interface RemoteServerOptions {
  /** Each attempt runs in its own folder `<workdir>/jobs/<id>-<attempt>/`; files arrive there. */
  readonly workdir: string
  /** Cores available to jobs; a job's `cores` takes that many. */
  readonly cores: number
  /**
   * How long an ended attempt is kept after its end has been queued for the local server: its
   * folder, its journal line and its entry in `queue` answers. Undefined keeps them all.
   */
  readonly keepEndedMs?: number | undefined
}

/**
 * The remote side of the seed's job server: takes `submit`s from its mailbox, runs each attempt
 * with the local executor (the same limits, kill, timeout and output capture as the `local` role),
 * and answers with `state`s: acknowledged, running, then the end with the output files, stdout and
 * stderr attached. It answers `isalive`, `queue` and `fullqueue`, and `terminate` kills at once.
 * It keeps no database: an attempt's folder, and the line its end adds to the journal
 * (`Journal.ts`), are its record, so a repeated submit never runs a job twice, even after a restart.
 */
export const run = (
  mailbox: Mailbox<RemoteMessage>,
  options: RemoteServerOptions
): Effect.Effect<never, never, Executor> =>
  Effect.gen(function*() {
    const executor = yield* Executor
    const jobsDir = path.resolve(options.workdir, "jobs")
    fs.mkdirSync(jobsDir, { recursive: true })
    const gate = new CoreGate(options.cores)
    const entries = new Map<string, Entry>()
    const running = new Map<JobId, Fiber.RuntimeFiber<void>>()
    // Cores in use, and attempts waiting for cores: a job that must wait is acknowledged first.
    let busy = 0
    // Work started from callbacks (a log tailer, a failed journal write's log line) runs with the
    // server's services and logger.
    const runFork = Runtime.runFork(yield* Effect.runtime<never>())
    let waiting = 0

    const { ended, journal } = yield* Effect.acquireRelease(
      Effect.sync(() => openJournal(options.workdir, jobsDir)),
      ({ journal }) => Effect.sync(() => journal.close())
    )
    // When each journaled attempt ended; `shipped` holds those whose end is queued for the local
    // server with its files (the end of an earlier process was queued before it journaled more).
    const endedAt = new Map(ended)
    yield* reportInterrupted(mailbox, jobsDir, journal, endedAt)
    const shipped = new Set(endedAt.keys())

    const send = (message: RemoteMessage, files?: Readonly<Record<string, string>>) =>
      mailbox.send(message, Crypto.randomUUID(), files).pipe(
        Effect.retry({ times: 5 }),
        Effect.catchAll((error) => Effect.logError(`could not queue a message for the local server: ${error.message}`))
      )

    // States leave in order through one writer: what piles up while it writes goes as one batch.
    // The ends in it are journaled first, in one write, so an end is on record before it is sent.
    const outgoing = yield* Batcher.make((items: ReadonlyArray<Outgoing>) => {
      const ends = record(journal, items, (message) => void runFork(Effect.logError(message)))
      for (const end of ends) endedAt.set(end.key, end.at)
      const sent = items.length === 1 ? send(items[0]!.signal, items[0]!.files) : Effect.suspend(() => {
        const files: Record<string, string> = {}
        for (const { files: own, signal } of items) {
          for (const [local, name] of Object.entries(own ?? {})) files[local] = `${batchFilePrefix(signal.id, signal.attempt)}${name}`
        }
        return send(new BatchSignal({ submits: [], states: items.map((item) => item.signal) }, true), files)
      })
      return ends.length === 0 ? sent : Effect.zipLeft(sent, Effect.sync(() => {
        for (const end of ends) shipped.add(end.key)
      }))
    }, maxBatch, () => (waiting > 0 ? busyLingerMs : lingerMs))

    // Attempts that ended more than `keepEndedMs` ago, with their ends queued, leave the disk and
    // the queue; the journal is rewritten without them.
    const sweepEnded = (keepMs: number) =>
      Effect.promise(async () => {
        const cutoff = Date.now() - keepMs
        const old: Array<string> = []
        for (const [key, at] of endedAt) if (at <= cutoff && shipped.has(key)) old.push(key)
        if (old.length === 0) return
        for (const key of old) {
          await fs.promises.rm(path.join(jobsDir, key), { recursive: true, force: true })
          endedAt.delete(key)
          shipped.delete(key)
          entries.delete(key)
        }
        journal.compact((key) => endedAt.has(key))
      }).pipe(Effect.catchAllDefect((cause) => Effect.logWarning("could not remove old attempt folders", cause)))
    if (options.keepEndedMs !== undefined) {
      const keepMs = options.keepEndedMs
      const every = Duration.millis(sweepIntervalMs(keepMs))
      // The first sweep waits one interval, so that a restart does not start by deleting.
      yield* Effect.fork(Effect.sleep(every).pipe(Effect.zipRight(Effect.repeat(sweepEnded(keepMs), Schedule.spaced(every)))))
    }

    const state = (entry: Entry, to: RemoteJobState, details: Partial<FinalDetails> = {}) =>
      Effect.suspend(() => {
        const ends = to !== "acknowledged" && to !== "running"
        // An attempt counts as running (for isalive) until its end is in the outbox: an answer
        // that left before the end would tell the local server the end was lost.
        if (!ends) entry.state = to
        if (to === "running" && entry.startedAt === null) entry.startedAt = Date.now()
        if (details.at !== undefined) entry.finishedAt = details.at
        entry.exitCode = details.exitCode ?? null
        const signal = new StateSignal({
            id: entry.job.id,
            attempt: entry.job.attempt,
            state: to,
            exitCode: details.exitCode ?? null,
            reason: details.reason ?? null,
            at: details.at ?? Date.now(),
            outputs: details.outputs ?? [],
            logs: details.files !== undefined
          }, true)
        const item = details.files === undefined ? { signal } : { signal, files: details.files }
        // An acknowledgement need not wait for its batch: what follows it is queued behind it.
        if (to === "acknowledged") return Effect.asVoid(outgoing.push(item))
        return Effect.ensuring(outgoing.offer(item), Effect.sync(() => {
          entry.state = to
        }))
      })

    // Started once the attempt has run a moment (a quick one goes straight to its end, one message
    // instead of two): says it runs, then ships new stdout and stderr, so the local side can follow them.
    const tailLogs = (entry: Entry) =>
      Effect.gen(function*() {
        const sent = { stdout: 0, stderr: 0 }
        yield* state(entry, "running")
        while (true) {
          for (const channel of ["stdout", "stderr"] as const) {
            const piece = yield* Effect.promise(() => readPiece(path.join(entry.logDir, channel), sent[channel]))
            if (piece === undefined) continue
            yield* outgoing.offer({
              signal: new StateSignal({
                id: entry.job.id,
                attempt: entry.job.attempt,
                state: "running",
                exitCode: null,
                reason: null,
                at: Date.now(),
                outputs: [],
                logs: false,
                output: { channel, offset: sent[channel], data: piece }
              }, true)
            })
            sent[channel] += piece.length
          }
          yield* Effect.sleep(tailIntervalMs)
        }
      })

    // Runs the attempt with its tailer forked only if it outlives the first interval: a plain
    // timer until then, so a short job costs no second fiber.
    const runTailed = (entry: Entry, run: Effect.Effect<RunOutcome>) =>
      Effect.suspend(() => {
        let tailer: Fiber.RuntimeFiber<never> | undefined
        const timer = setTimeout(() => {
          tailer = runFork(tailLogs(entry))
        }, tailIntervalMs)
        return Effect.ensuring(run, Effect.suspend(() => {
          clearTimeout(timer)
          return tailer === undefined ? Effect.void : Fiber.interrupt(tailer)
        }))
      })

    const runAttempt = (entry: Entry) => {
      let ended = false
      return Effect.gen(function*() {
        const cores = Math.min(entry.job.cores ?? 1, options.cores)
        waiting++
        let admitted = false
        // The cores are held while the command runs; its end is recorded and shipped after they
        // are free, so the next job starts at once.
        const outcome = yield* gate.withCores(cores)(Effect.gen(function*() {
          waiting--
          admitted = true
          busy += cores
          yield* Effect.addFinalizer(() => Effect.sync(() => (busy -= cores)))
          entry.state = "running"
          entry.startedAt = Date.now()
          return yield* runTailed(entry, executor.run({
            id: entry.job.id,
            spec: specOf(entry.job, entry.dir),
            attempt: entry.job.attempt,
            jobDir: entry.logDir
          }))
        }).pipe(Effect.scoped)).pipe(Effect.ensuring(Effect.sync(() => {
          if (!admitted) waiting--
        })))
        yield* Effect.uninterruptible(Effect.suspend(() => {
          ended = true
          return finish(entry, outcome.state === "lost" ? "failed" : outcome.state, outcome)
        }))
      }).pipe(
        Effect.onInterrupt(() =>
          ended ? Effect.void : finish(entry, "killed", { exitCode: null, reason: "terminated by the local server", outputs: [] })
        ),
        Effect.ensuring(Effect.sync(() => running.delete(entry.job.id)))
      )
    }

    // Ships the end with its files; the writer journals it before it goes.
    const finish = (
      entry: Entry,
      to: RemoteJobState,
      outcome: Pick<RunOutcome, "exitCode" | "reason" | "outputs">
    ) =>
      Effect.gen(function*() {
        const at = Date.now()
        const outputs = outcome.outputs.length === 0
          ? []
          : yield* Effect.promise(() => describeOutputs(entry.dir, outcome.outputs))
        const files: Record<string, string> = {}
        for (const output of outputs) files[path.join(entry.dir, output.path)] = output.path
        // Empty logs are not shipped: the local side, as the local executor, leaves them unmade.
        for (const [channel, name] of Object.entries(logFiles)) {
          const local = path.join(entry.logDir, channel)
          // Small metadata calls on the hot path are synchronous: cheaper than a promise each.
          if ((fs.statSync(local, { throwIfNoEntry: false })?.size ?? 0) > 0) files[local] = name
        }
        const details: FinalDetails = { exitCode: outcome.exitCode, reason: outcome.reason, at, outputs, files }
        yield* state(entry, to, details)
      })

    const submit = (files: ReadonlyMap<string, string>, job: RemoteJob) =>
      Effect.gen(function*() {
        const key = `${job.id}-${job.attempt}`
        const dir = path.join(jobsDir, key)
        if (entries.has(key) || !claimFolder(dir)) {
          yield* Effect.logInfo(`ignored a repeated submit of ${job.id} attempt ${job.attempt}`)
          return
        }
        const entry: Entry = {
          job,
          dir,
          logDir: path.join(dir, logFolder),
          state: "acknowledged",
          startedAt: null,
          finishedAt: null,
          exitCode: null
        }
        entries.set(key, entry)
        // Asynchronous even with no files: by the time it returns, the attempts forked before this
        // one have taken their cores or queued for them, which the check below reads.
        const problem = yield* Effect.promise(() => placeInputs(entry, files))
        if (problem !== undefined) {
          yield* state(entry, "rejected", { reason: problem, at: Date.now() })
          return
        }
        // A job that waits for cores says it was acknowledged; one that starts at once says running.
        if (waiting > 0 || busy + Math.min(job.cores ?? 1, options.cores) > options.cores) {
          yield* state(entry, "acknowledged")
        }
        const fiber = yield* Effect.forkDaemon(runAttempt(entry))
        running.set(job.id, fiber)
      })

    const listed = (states: ReadonlyArray<RemoteJobState> | undefined) =>
      Array.from(entries.values())
        .filter((entry) => states === undefined || states.includes(entry.state))
        .map((entry) =>
          new RemoteQueueEntry({
            id: entry.job.id,
            attempt: entry.job.attempt,
            name: entry.job.name ?? null,
            state: entry.state,
            exitCode: entry.exitCode,
            startedAt: entry.startedAt,
            finishedAt: entry.finishedAt
          })
        )

    const handle = (delivery: Delivery<RemoteMessage>) => {
      const message = delivery.message
      switch (message._tag) {
        case "submit":
          return submit(delivery.files, message.job)
        case "batch":
          return Effect.forEach(message.submits, ({ job }) =>
            submit(batchFilesOf(delivery.files, job.id, job.attempt), job).pipe(
              Effect.catchAllCause((cause) => Effect.logError(`could not take job ${job.id}`, cause))
            ), { discard: true })
        case "terminate":
          return Effect.forEach(message.ids, (id) => {
            const fiber = running.get(id)
            return fiber === undefined ? Effect.void : Fiber.interruptFork(fiber)
          }, { discard: true })
        case "isalive":
          return send(
            new AliveSignal({
              nonce: message.nonce,
              running: Array.from(entries.values())
                .filter((entry) => entry.state === "running" || entry.state === "acknowledged")
                .map((entry) => ({ id: entry.job.id, attempt: entry.job.attempt }))
            })
          )
        case "queue":
          return message.jobs !== undefined
            ? Effect.void
            : send(new QueueSignal({ request: message.request, jobs: listed(message.states) }))
        case "fullqueue":
          return message.queue !== undefined ? Effect.void : send(
            new FullQueueSignal({
              request: message.request,
              queue: { cores: options.cores, running: running.size, jobs: listed(undefined) }
            })
          )
        case "state":
        case "alive":
          return Effect.logWarning(`a remote does not take ${message._tag} messages; ignored`)
      }
    }

    return yield* mailbox.messages.pipe(
      Stream.runForEach((delivery) =>
        handle(delivery).pipe(
          Effect.catchAllCause((cause) => Effect.logError("could not handle a message", cause))
        )
      ),
      Effect.catchAll((error) => Effect.logError(`the mailbox failed: ${error.message}`)),
      Effect.zipRight(Effect.never)
    )
  }).pipe(Effect.scoped)

// ---------------------------------------------------------------------------------------------
// private

/**
 * Cores for attempts, handed out in arrival order. Effect's semaphore wakes every waiter each
 * time a permit comes back, which costs the square of the queue's length when a thousand jobs
 * wait; this wakes only the attempts that can start.
 */
class CoreGate {
  private readonly waiting: Array<{ readonly cores: number; readonly start: () => void }> = []
  constructor(private free: number) {}

  withCores(cores: number) {
    return <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
      Effect.uninterruptibleMask((restore) =>
        Effect.flatMap(restore(this.acquire(cores)), () =>
          Effect.ensuring(restore(self), Effect.sync(() => this.release(cores))))
      )
  }

  private acquire(cores: number): Effect.Effect<void> {
    return Effect.async<void>((resume) => {
      if (this.waiting.length === 0 && this.free >= cores) {
        this.free -= cores
        return resume(Effect.void)
      }
      const waiter = { cores, start: () => resume(Effect.void) }
      this.waiting.push(waiter)
      return Effect.sync(() => {
        const at = this.waiting.indexOf(waiter)
        if (at >= 0) this.waiting.splice(at, 1)
        // Started but interrupted before it ran: give the cores back.
        else this.release(cores)
      })
    })
  }

  private release(cores: number): void {
    this.free += cores
    while (this.waiting.length > 0 && this.free >= this.waiting[0]!.cores) {
      const next = this.waiting.shift()!
      this.free -= next.cores
      next.start()
    }
  }
}

// The most states one batch carries, and how long a state that follows another closely waits for
// more; longer while attempts wait for cores, since their ends are sure to follow. At a few hundred
// short jobs a second this puts several ends in each mailbox message instead of about one, and
// each message costs both ends files written, read and removed.
const maxBatch = 256
const lingerMs = 5
const busyLingerMs = 25

interface Outgoing {
  readonly signal: StateSignal
  readonly files?: Readonly<Record<string, string>>
}

// How often a running attempt's logs are checked for news, and the most one message carries.
const tailIntervalMs = 250
const tailPieceBytes = 256 * 1024

// The bytes of a file from `offset` on, at most one piece; undefined when there are none.
const readPiece = async (file: string, offset: number): Promise<Uint8Array | undefined> => {
  const handle = await fs.promises.open(file, "r").catch(() => undefined)
  if (handle === undefined) return undefined
  try {
    const buffer = Buffer.alloc(tailPieceBytes)
    const { bytesRead } = await handle.read(buffer, 0, tailPieceBytes, offset)
    return bytesRead === 0 ? undefined : buffer.subarray(0, bytesRead)
  } finally {
    await handle.close()
  }
}

/** Where an attempt's own files (stdout, stderr, its end state) live inside its folder. */
const logFolder = ".troupe"

interface Entry {
  readonly job: RemoteJob
  readonly dir: string
  readonly logDir: string
  state: RemoteJobState
  startedAt: number | null
  finishedAt: number | null
  exitCode: number | null
}

interface FinalDetails {
  readonly exitCode: number | null
  readonly reason: string | null
  readonly at: number
  readonly outputs: ReadonlyArray<ShippedFile>
  readonly files: Readonly<Record<string, string>>
}

// The attempt runs in its folder; a cwd in the job is taken inside it.
const specOf = (job: RemoteJob, dir: string): JobSpec =>
  new JobSpec({
    command: job.command,
    cwd: job.cwd !== undefined && isConfined(job.cwd) ? path.join(dir, job.cwd) : dir,
    ...(job.env === undefined ? {} : { env: job.env }),
    ...(job.stdin === undefined ? {} : { stdin: job.stdin }),
    ...(job.timeLimitMs === undefined ? {} : { timeLimitMs: job.timeLimitMs }),
    ...(job.outputs === undefined ? {} : { outputs: job.outputs })
  }, { disableValidation: true })

// Makes the attempt's folder; false when it exists (the attempt came before). Its `.troupe/`
// folder is made by the executor on the first byte of output: a silent job costs one mkdir.
const claimFolder = (dir: string): boolean => {
  try {
    fs.mkdirSync(dir)
    return true
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).code === "EEXIST") return false
    throw cause
  }
}

// Moves the delivered files into the attempt's folder and checks them against the job's checksums.
const placeInputs = async (entry: Entry, files: ReadonlyMap<string, string>): Promise<string | undefined> => {
  const expected = new Map((entry.job.inputs ?? []).map((file) => [file.path, file] as const))
  for (const [relative, delivered] of files) {
    if (!isConfined(relative)) return `input file ${relative} leaves the job's folder`
    const target = path.join(entry.dir, relative)
    await fs.promises.mkdir(path.dirname(target), { recursive: true })
    await fs.promises.rename(delivered, target).catch(() => fs.promises.copyFile(delivered, target))
    const want = expected.get(relative)
    if (want !== undefined) {
      const got = await sha256File(target)
      if (got !== want.sha256) return `input file ${relative} arrived damaged (sha256 ${got}, expected ${want.sha256})`
    }
    expected.delete(relative)
  }
  if (expected.size > 0) return `input files did not arrive: ${Array.from(expected.keys()).join(", ")}`
  return undefined
}

// Output paths relative to the attempt's folder, with sizes and checksums.
const describeOutputs = async (dir: string, outputs: ReadonlyArray<string>): Promise<ReadonlyArray<ShippedFile>> => {
  const described: Array<ShippedFile> = []
  for (const output of outputs) {
    const relative = path.relative(dir, output)
    if (!isConfined(relative)) continue
    const stat = await fs.promises.stat(output).catch(() => undefined)
    if (stat === undefined || !stat.isFile()) continue
    described.push(new ShippedFile({ path: relative, size: stat.size, sha256: await sha256File(output) }))
  }
  return described
}

/** The sha256 of a file, read as a stream. */
export const sha256File = async (file: string): Promise<string> => {
  const hash = Crypto.createHash("sha256")
  // Large reads: with the default 64 KiB a 1 GiB output took twice as long to hash.
  for await (const chunk of fs.createReadStream(file, { highWaterMark: 1024 * 1024 })) hash.update(chunk as Buffer)
  return hash.digest("hex")
}

// The journal, kept to the attempts whose folders are still there.
const openJournal = (workdir: string, jobsDir: string) => {
  const folders = new Set(fs.readdirSync(jobsDir))
  return Journal.open(journalFile(path.resolve(workdir)), (key) => folders.has(key))
}

// How often old attempts are looked for: a quarter of the time they are kept, within 0.1 s–10 min.
const sweepIntervalMs = (keepMs: number): number => Math.min(10 * 60_000, Math.max(100, Math.floor(keepMs / 4)))

// Journals the ends among states about to be sent, and gives them. A failed write is logged and
// the state still goes: the local server's record matters more than ours.
const record = (
  journal: Journal,
  items: ReadonlyArray<Outgoing>,
  logError: (message: string) => void
): ReadonlyArray<JournalEntry> => {
  const ends: Array<JournalEntry> = []
  for (const { signal } of items) {
    if (signal.state === "acknowledged" || signal.state === "running") continue
    ends.push({
      key: `${signal.id}-${signal.attempt}`,
      state: signal.state,
      exitCode: signal.exitCode,
      reason: signal.reason,
      at: signal.at
    })
  }
  try {
    journal.append(ends)
  } catch (cause) {
    logError(`could not journal ${ends.length} ends: ${String(cause)}`)
  }
  return ends
}

// Attempts that were running when a previous remote process died never finished: say so, so the
// local server need not wait for its heartbeat timeout. An attempt has ended when the journal has
// it, or (remotes before the journal) when its folder has `.troupe/state.json`.
const reportInterrupted = (
  mailbox: Mailbox<RemoteMessage>,
  jobsDir: string,
  journal: Journal,
  ended: Map<string, number>
) =>
  Effect.gen(function*() {
    const names = yield* Effect.promise(() => fs.promises.readdir(jobsDir).catch(() => [] as Array<string>))
    for (const name of names) {
      const match = /^(.+)-(\d+)$/.exec(name)
      if (match === null || ended.has(name)) continue
      if (fs.existsSync(path.join(jobsDir, name, logFolder, "state.json"))) continue
      const at = Date.now()
      const reason = "the remote restarted while the job ran"
      journal.append([{ key: name, state: "lost", exitCode: null, reason, at }])
      ended.set(name, at)
      yield* mailbox.send(
        new StateSignal({
          id: match[1] as JobId,
          attempt: Number(match[2]),
          state: "lost",
          exitCode: null,
          reason,
          at,
          outputs: [],
          logs: false
        }),
        Crypto.randomUUID()
      ).pipe(Effect.catchAll(() => Effect.void))
    }
  })
