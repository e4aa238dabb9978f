/**
 * `status` / `list` over a database of 1,000,000 finished jobs, the database's size per job,
 * and the resident memory of a runtime holding 100,000 queued jobs.
 *
 * Building a million jobs through the runtime would take longer than the time budget (a few
 * thousand no-op jobs per second here), so the rows are written with the runtime's own store
 * API (`SqliteStore.layer` → `JobStore.commit(inserts, transitions)`) in batches of 5,000, each job
 * with the same rows the runtime writes for a completed job: the job row, three transitions
 * (→ queued → running → completed) and one attempt. The size per job of a database built by the
 * runtime itself (20,000 no-op jobs) is reported beside it as a check.
 *
 * The data set: 97% completed, 2% failed, 1% killed; queue "default" for 90%, "batch" for 9%
 * (spread evenly), and "archive" for 1% (all among the oldest jobs, so no recent row matches);
 * 1,000 distinct names ("report-0" … "report-999").
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { spawnSync } from "node:child_process"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import type { JobId } from "../../src/domain/JobId.js"
import { JobSpec } from "../../src/domain/JobSpec.js"
import type { JobState } from "../../src/domain/JobState.js"
import { Jobs } from "../../src/jobs/Jobs.js"
import type { NewJobRow, TransitionRow } from "../../src/store/JobStore.js"
import { JobStore } from "../../src/store/JobStore.js"
import * as SqliteStore from "../../src/store/SqliteStore.js"
import type { Bench, Latency } from "./lib.js"
import { bytes, databaseSize, latency, ms, notes, now, progress, rate, table, tempDir, verdict } from "./lib.js"
import { noop, openRuntime } from "./troupe.js"

const name = "jobs-list"
const total = Number(process.env["BENCH_LIST_JOBS"] ?? 1_000_000)
const queuedTotal = Number(process.env["BENCH_LIST_QUEUED"] ?? 100_000)
const batch = 5_000
const iterations = 200
const listBarMs = 20
const rssBarBytes = 300 * 1024 * 1024

// Ids as the runtime makes them: 9 base-32 chars of time, then 7 more (a counter here, so unique).
const idOf = (base: number, i: number): JobId =>
  ((base + Math.floor(i / 50)).toString(32).padStart(9, "0") + i.toString(32).padStart(7, "0")) as JobId

const stateOf = (i: number): JobState => (i % 100 === 7 || i % 100 === 57 ? "failed" : i % 100 === 33 ? "killed" : "completed")
const queueOf = (i: number): string => (i < total / 100 ? "archive" : i % 11 === 5 ? "batch" : "default")
const nameOf = (i: number): string => `report-${i % 1000}`

const build = async (database: string): Promise<{ seconds: number; ids: ReadonlyArray<JobId> }> => {
  const base = Date.now() - total * 20
  const ids: Array<JobId> = []
  const t0 = now()
  await Effect.gen(function*() {
    const store = yield* JobStore
    for (let start = 0; start < total; start += batch) {
      const inserts: Array<NewJobRow> = []
      const transitions: Array<TransitionRow> = []
      for (let i = start; i < Math.min(total, start + batch); i++) {
        const id = idOf(Math.floor(base / 20), i)
        ids.push(id)
        const at = base + i * 20
        const queue = queueOf(i)
        const spec = new JobSpec({ fn: "noop", args: {}, queue, name: nameOf(i) })
        inserts.push({ id, name: nameOf(i), queue, state: "queued", priority: 0, spec, key: null, reason: null, submittedAt: at })
        const state = stateOf(i)
        const reason = state === "failed" ? "exit code 1" : state === "killed" ? "killed on request" : null
        transitions.push(
          { id, from: null, to: "queued", at, attempt: 0, exitCode: null, reason: null },
          { id, from: "queued", to: "running", at: at + 1, attempt: 1, exitCode: null, reason: null },
          {
            id,
            from: "running",
            to: state,
            at: at + 2,
            attempt: 1,
            exitCode: state === "completed" ? 0 : state === "failed" ? 1 : null,
            reason,
            ...(state === "completed" ? { result: null } : {}),
            outputs: []
          }
        )
      }
      yield* store.commit(inserts, transitions)
      if ((start / batch) % 40 === 39) progress(name, `built ${(start + batch).toLocaleString("en-US")} rows`)
    }
  }).pipe(Effect.provide(SqliteStore.layer({ filename: database })), Effect.runPromise)
  return { seconds: (now() - t0) / 1000, ids }
}

interface Query {
  readonly label: string
  readonly expect: (n: number) => boolean
  readonly run: (jobs: Jobs["Type"], i: number) => Effect.Effect<number, unknown>
}

const time = (jobs: Jobs["Type"], query: Query): Effect.Effect<Latency, unknown> =>
  Effect.gen(function*() {
    for (let i = 0; i < 20; i++) yield* query.run(jobs, i)
    const samples: Array<number> = []
    for (let i = 0; i < iterations; i++) {
      const t0 = now()
      const n = yield* query.run(jobs, i)
      samples.push(now() - t0)
      if (!query.expect(n)) return yield* Effect.dieMessage(`${query.label}: unexpected result size ${n}`)
    }
    return latency(samples)
  })

const runtimeBuiltSize = async (): Promise<number> => {
  const count = 20_000
  const rt = await openRuntime("list-size", { functions: { noop }, queues: { default: { concurrency: 256 } } })
  try {
    await rt.runtime.runPromise(Effect.gen(function*() {
      const jobs = yield* Jobs
      for (let i = 0; i < count; i += batch) {
        const ids = yield* jobs.submitMany(Array.from({ length: batch }, (_, k) => ({ fn: "noop", args: {}, name: nameOf(i + k) })))
        yield* jobs.wait(ids, { timeout: "120 seconds" })
      }
    }))
    await rt.close()
    return databaseSize(rt.database).total / count
  } finally {
    await rt.close().catch(() => {})
    rt.remove()
  }
}

interface MemoryResult {
  readonly total: number
  readonly queued: number
  readonly submitSeconds: number
  readonly killCount: number
  readonly killSeconds: number
  readonly rssBefore: number
  readonly rssOpened: number
  readonly rssLoaded: number
  readonly heapLoaded: number
  readonly rssLoadedAfterGc: number
  readonly heapLoadedAfterGc: number
}

// In a child process, so that this process's history (and the 1M-row page cache) does not count.
const queuedMemory = (): MemoryResult => {
  const script = path.join(path.dirname(fileURLToPath(import.meta.url)), "queued-memory.js")
  const result = spawnSync(process.execPath, ["--expose-gc", script, String(queuedTotal)], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
    timeout: 300_000
  })
  if (result.status !== 0) throw new Error(`queued-memory exited ${result.status} ${result.signal ?? ""}`)
  const line = result.stdout.split("\n").find((l) => l.startsWith("{"))
  if (line === undefined) throw new Error(`queued-memory printed no result: ${result.stdout}`)
  return JSON.parse(line) as MemoryResult
}

const run = async (): Promise<void> => {
  const { dir, remove } = tempDir("list")
  const database = path.join(dir, "troupe.db")
  try {
    progress(name, `building ${total.toLocaleString("en-US")} job rows with JobStore.commit in batches of ${batch}`)
    const built = await build(database)
    const size = databaseSize(database)
    progress(name, `built in ${built.seconds.toFixed(1)} s; opening the runtime on it`)

    const layerOnBig = (await import("../../src/Troupe.js")).layer({ database, dataDir: dir })
    const ids = built.ids
    const queries: ReadonlyArray<Query> = [
      { label: `list({ states: ["failed"], limit: 50 })`, expect: (n) => n === 50, run: (jobs) => Effect.map(jobs.list({ states: ["failed"], limit: 50 }), (r) => r.length) },
      { label: `list({ queue: "batch", limit: 50 }) (9% of jobs)`, expect: (n) => n === 50, run: (jobs) => Effect.map(jobs.list({ queue: "batch", limit: 50 }), (r) => r.length) },
      { label: `list({ queue: "archive", limit: 50 }) (1%, all old)`, expect: (n) => n === 50, run: (jobs) => Effect.map(jobs.list({ queue: "archive", limit: 50 }), (r) => r.length) },
      { label: `list({ name: "report-N", limit: 50 })`, expect: (n) => n === 50, run: (jobs, i) => Effect.map(jobs.list({ name: nameOf(i * 7), limit: 50 }), (r) => r.length) },
      { label: `list({ limit: 50 })`, expect: (n) => n === 50, run: (jobs) => Effect.map(jobs.list({ limit: 50 }), (r) => r.length) },
      { label: `list({ states: ["failed"], limit: 50, before: <middle id> })`, expect: (n) => n === 50, run: (jobs) => Effect.map(jobs.list({ states: ["failed"], limit: 50, before: ids[total >> 1]! }), (r) => r.length) },
      { label: `get(id) (random id)`, expect: (n) => n === 1, run: (jobs, i) => Effect.map(jobs.get(ids[(i * 7919 * 104729) % ids.length]!), () => 1) }
    ]
    const results: Array<{ readonly label: string; readonly latency: Latency }> = []
    await Effect.gen(function*() {
      const jobs = yield* Jobs
      for (const query of queries) {
        progress(name, query.label)
        results.push({ label: query.label, latency: yield* time(jobs, query) })
      }
    }).pipe(Effect.provide(Layer.fresh(layerOnBig)), Effect.scoped, Effect.runPromise)

    table(
      `jobs-list: queries on ${total.toLocaleString("en-US")} job records (SQLite, ${iterations} runs each)`,
      ["query", "p50", "p99", "max", "queries/s at p50"],
      results.map((r) => [r.label, ms(r.latency.p50), ms(r.latency.p99), ms(r.latency.max), rate(1000 / r.latency.p50)])
    )

    progress(name, "database size per job of a runtime-built database (20,000 no-op jobs)")
    const runtimePerJob = await runtimeBuiltSize()
    progress(name, `resident memory with ${queuedTotal.toLocaleString("en-US")} queued jobs (child process)`)
    const memory = queuedMemory()

    table(
      "jobs-list: database size and memory",
      ["measure", "value"],
      [
        [`build ${total.toLocaleString("en-US")} rows through JobStore.commit`, `${built.seconds.toFixed(1)} s (${rate(total / built.seconds)})`],
        ["database file + WAL", `${bytes(size.main)} + ${bytes(size.wal)} = ${bytes(size.total)}`],
        [`bytes per job (${total.toLocaleString("en-US")} store-built rows, incl. WAL)`, `${(size.total / total).toFixed(0)} B`],
        ["bytes per job (20,000 runtime-built no-op jobs, incl. WAL)", `${runtimePerJob.toFixed(0)} B`],
        [`RSS of a runtime holding ${memory.queued.toLocaleString("en-US")} queued jobs`, bytes(memory.rssLoaded)],
        ["  same, after a full GC", bytes(memory.rssLoadedAfterGc)],
        ["  RSS of the same process before opening the runtime", bytes(memory.rssBefore)],
        ["  RSS after opening the runtime, before submitting", bytes(memory.rssOpened)],
        ["  V8 heap used with the jobs queued (after GC)", bytes(memory.heapLoadedAfterGc)],
        [`  submitMany of ${memory.total.toLocaleString("en-US")} jobs (batches of ${batch})`, `${memory.submitSeconds.toFixed(1)} s (${rate(memory.total / memory.submitSeconds)})`],
        [`  kill ${memory.killCount.toLocaleString("en-US")} of them while ${memory.total.toLocaleString("en-US")} are queued`, `${memory.killSeconds.toFixed(1)} s`]
      ]
    )
    const filtered = results.filter((r) => r.label.startsWith("list({ states") || r.label.startsWith("list({ queue") || r.label.startsWith("list({ name"))
    const worst = filtered.reduce((a, b) => (b.latency.p50 > a.latency.p50 ? b : a))
    notes([
      `bar p50 < ${listBarMs} ms for a filtered list page: ${verdict(worst.latency.p50 < listBarMs)} (slowest filtered p50: ${ms(worst.latency.p50)}, ${worst.label})`,
      `bar RSS < 300 MB with ${queuedTotal.toLocaleString("en-US")} queued jobs: ${verdict(memory.rssLoaded < rssBarBytes)} (${bytes(memory.rssLoaded)}; ` +
      `${bytes(memory.rssLoaded - memory.rssOpened)} more than the idle runtime, ${((memory.rssLoaded - memory.rssOpened) / memory.total).toFixed(0)} B per queued job)`,
      "The 1M rows were written with the runtime's store API (JobStore.commit), not submitted through the runtime: at the " +
      "measured no-op rate that would take several minutes."
    ])
  } finally {
    remove()
  }
}

export const bench: Bench = { name, description: "list/status over 1M jobs, DB size per job, RSS with 100k queued jobs", run }
