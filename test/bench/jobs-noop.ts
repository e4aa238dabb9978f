/**
 * No-op function jobs: submit → completed, with the job's metadata committed to SQLite.
 *
 * Troupe (Effect API, `Jobs` service):
 *  - 1,000 concurrent submitters, each looping submit → wait, on a queue of concurrency 256
 *    and on a queue of the default concurrency (= cores);
 *  - one `submitMany` of 20,000 jobs then one `wait` for all (the counterpart of BullMQ addBulk);
 *  - one sequential submitter: p50/p99 submit → completed.
 * Comparisons measured in the same run:
 *  - BullMQ, worker concurrency 100, Redis on 127.0.0.1:6379: addBulk 20,000 → all completed,
 *    1,000 concurrent add → waitUntilFinished loops, and sequential add → waitUntilFinished;
 *  - a bare loop calling the function itself (the limit).
 */
import * as Effect from "effect/Effect"
import * as os from "node:os"
import { Jobs } from "../../src/jobs/Jobs.js"
import type { JobSpecInput } from "../../src/jobs/Jobs.js"
import type { Bench, RateRow } from "./lib.js"
import { latency, notes, now, progress, rate, ratio, rateTable, verdict } from "./lib.js"
import { countStates, noop, openRuntime, submitWaitLoops } from "./troupe.js"

const name = "jobs-noop"
const env = (key: string, fallback: number) => Number(process.env[key] ?? fallback)

const concurrentTotal = env("BENCH_NOOP_JOBS", 40_000)
const submitters = env("BENCH_NOOP_SUBMITTERS", 1_000)
const bulkTotal = env("BENCH_NOOP_BULK", 20_000)
const sequentialTotal = env("BENCH_NOOP_SEQUENTIAL", 2_000)
const warmup = 2_000
const bullConcurrency = 100
const redis = { host: "127.0.0.1", port: 6379 }
const bar = 20_000

type Row = RateRow

const spec: JobSpecInput = { fn: "noop", args: {} }

// ---------------------------------------------------------------------------------------------
// Troupe

/** One submitMany of `total` jobs, then one wait for all of them. */
const bulk = (total: number) =>
  Effect.gen(function*() {
    const jobs = yield* Jobs
    const specs = Array.from({ length: total }, () => spec)
    const t0 = now()
    const ids = yield* jobs.submitMany(specs)
    const records = yield* jobs.wait(ids, { timeout: "300 seconds" })
    const seconds = (now() - t0) / 1000
    const bad = records.filter((r) => r.state !== "completed").length
    if (bad > 0) return yield* Effect.dieMessage(`${bad} bulk jobs did not complete`)
    return { seconds }
  })

const troupeConcurrent = async (label: string, concurrency: number | undefined): Promise<Row> => {
  const rt = await openRuntime("noop", concurrency === undefined ? { functions: { noop } } : {
    functions: { noop },
    queues: { default: { concurrency } }
  })
  try {
    await rt.runtime.runPromise(submitWaitLoops(spec, submitters, warmup))
    progress(name, `troupe ${label}: ${concurrentTotal} jobs from ${submitters} submitters`)
    const result = await rt.runtime.runPromise(submitWaitLoops(spec, submitters, concurrentTotal))
    await rt.close()
    const states = await countStates(rt.database)
    const completed = states.get("completed") ?? 0
    if (completed !== concurrentTotal + warmup) throw new Error(`expected ${concurrentTotal + warmup} completed rows, found ${completed}`)
    return { label, jobs: concurrentTotal, seconds: result.seconds, latency: latency(result.samples) }
  } finally {
    await rt.close().catch(() => {})
    rt.remove()
  }
}

const troupeBulkAndSequential = async (): Promise<{ bulk: Row; sequential: Row }> => {
  const rt = await openRuntime("noop", { functions: { noop }, queues: { default: { concurrency: 256 } } })
  try {
    await rt.runtime.runPromise(bulk(warmup))
    progress(name, `troupe: submitMany ${bulkTotal} jobs, then wait for all`)
    const b = await rt.runtime.runPromise(bulk(bulkTotal))
    progress(name, `troupe: ${sequentialTotal} sequential submit → completed`)
    await rt.runtime.runPromise(submitWaitLoops(spec, 1, 200))
    const s = await rt.runtime.runPromise(submitWaitLoops(spec, 1, sequentialTotal))
    return {
      bulk: { label: `Troupe submitMany(${bulkTotal.toLocaleString("en-US")}) → wait all, concurrency 256`, jobs: bulkTotal, seconds: b.seconds, latency: undefined },
      sequential: { label: "Troupe sequential submit → completed", jobs: sequentialTotal, seconds: s.seconds, latency: latency(s.samples) }
    }
  } finally {
    await rt.close().catch(() => {})
    rt.remove()
  }
}

// ---------------------------------------------------------------------------------------------
// BullMQ

let redisPersistence = "unknown"

const bullmq = async (): Promise<{ bulk: Row; concurrent: Row; sequential: Row }> => {
  const { Queue, QueueEvents, Worker } = await import("bullmq")
  const queueName = `troupe-bench-${process.pid}-${Date.now()}`
  const queue = new Queue(queueName, { connection: redis })
  await queue.obliterate({ force: true })
  queue.setMaxListeners(submitters + 16)
  const client = (await queue.client) as unknown as { config: (op: string, key: string) => Promise<Array<string>> }
  const config = async (key: string) => (await client.config("GET", key))[1] ?? "?"
  redisPersistence = `appendonly=${await config("appendonly")}, save="${await config("save")}"`
  const events = new QueueEvents(queueName, { connection: redis })
  events.setMaxListeners(submitters + 16)
  await events.waitUntilReady()
  let completed = 0
  let onCompleted: (() => void) | undefined
  const worker = new Worker(queueName, async () => null, { connection: { ...redis, maxRetriesPerRequest: null }, concurrency: bullConcurrency })
  worker.on("completed", () => {
    completed++
    onCompleted?.()
  })
  worker.on("failed", (job, error) => {
    throw new Error(`bullmq job ${job?.id} failed: ${error.message}`)
  })
  await worker.waitUntilReady()
  const untilCompleted = (target: number, timeoutMs: number) =>
    new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`bullmq: ${completed}/${target} completed after ${timeoutMs} ms`)), timeoutMs)
      onCompleted = () => {
        if (completed >= target) {
          clearTimeout(timer)
          onCompleted = undefined
          resolve()
        }
      }
      onCompleted()
    })

  const addWait = async (loops: number, total: number) => {
    const samples: Array<number> = []
    let next = 0
    const loop = async () => {
      while (next < total) {
        next++
        const t0 = now()
        const job = await queue.add("noop", {})
        await job.waitUntilFinished(events, 120_000)
        samples.push(now() - t0)
      }
    }
    const t0 = now()
    await Promise.all(Array.from({ length: Math.min(loops, total) }, loop))
    return { seconds: (now() - t0) / 1000, samples }
  }

  const addBulk = async (total: number) => {
    const start = completed
    const t0 = now()
    const chunk = 1_000
    for (let i = 0; i < total; i += chunk) {
      await queue.addBulk(Array.from({ length: Math.min(chunk, total - i) }, () => ({ name: "noop", data: {} })))
    }
    await untilCompleted(start + total, 300_000)
    return { seconds: (now() - t0) / 1000 }
  }

  try {
    await addBulk(warmup)
    progress(name, `bullmq: addBulk ${bulkTotal} jobs (chunks of 1,000), worker concurrency ${bullConcurrency}`)
    const b = await addBulk(bulkTotal)
    progress(name, `bullmq: ${concurrentTotal} jobs from ${submitters} add → waitUntilFinished loops`)
    const c = await addWait(submitters, concurrentTotal)
    progress(name, `bullmq: ${sequentialTotal} sequential add → waitUntilFinished`)
    await addWait(1, 200)
    const s = await addWait(1, sequentialTotal)
    return {
      bulk: { label: `BullMQ addBulk(${bulkTotal.toLocaleString("en-US")}) → all completed, worker concurrency ${bullConcurrency}`, jobs: bulkTotal, seconds: b.seconds, latency: undefined },
      concurrent: { label: `BullMQ ${submitters.toLocaleString("en-US")} submitters add → waitUntilFinished, worker concurrency ${bullConcurrency}`, jobs: concurrentTotal, seconds: c.seconds, latency: latency(c.samples) },
      sequential: { label: "BullMQ sequential add → waitUntilFinished", jobs: sequentialTotal, seconds: s.seconds, latency: latency(s.samples) }
    }
  } finally {
    await worker.close()
    await events.close()
    await queue.obliterate({ force: true }).catch(() => {})
    await queue.close()
  }
}

// ---------------------------------------------------------------------------------------------
// The limit: calling the function in a loop

const bareLoop = async (): Promise<Row> => {
  const total = concurrentTotal
  const samples: Array<number> = []
  for (let i = 0; i < warmup; i++) await noop.run({})
  const t0 = now()
  for (let i = 0; i < total; i++) {
    const t = now()
    await noop.run({})
    samples.push(now() - t)
  }
  return { label: "bare loop: await fn.run({})", jobs: total, seconds: (now() - t0) / 1000, latency: latency(samples) }
}

// ---------------------------------------------------------------------------------------------

const run = async (): Promise<void> => {
  const cores = os.availableParallelism()
  const c256 = await troupeConcurrent(`Troupe ${submitters.toLocaleString("en-US")} submitters submit → wait, queue concurrency 256`, 256)
  const cDefault = await troupeConcurrent(
    `Troupe ${submitters.toLocaleString("en-US")} submitters submit → wait, default concurrency (cores = ${cores})`,
    undefined
  )
  const { bulk: tBulk, sequential: tSeq } = await troupeBulkAndSequential()
  progress(name, "bullmq")
  const bull = await bullmq()
  const bare = await bareLoop()

  const rows: Array<Row> = [c256, cDefault, bull.concurrent, tBulk, bull.bulk, tSeq, bull.sequential, bare]
  rateTable(
    "jobs-noop: no-op function jobs, submit → completed (durable metadata)",
    rows
  )
  const tps = (r: Row) => r.jobs / r.seconds
  const best = Math.max(tps(c256), tps(tBulk))
  const bestBull = Math.max(tps(bull.concurrent), tps(bull.bulk))
  notes([
    `Troupe / BullMQ, 1,000 submitters (concurrency 256 vs worker concurrency 100): ${ratio(tps(c256), tps(bull.concurrent))}`,
    `Troupe / BullMQ, bulk (submitMany vs addBulk): ${ratio(tps(tBulk), tps(bull.bulk))}`,
    `Troupe / BullMQ, sequential p50 latency: ${ratio(tSeq.latency!.p50, bull.sequential.latency!.p50)} (lower is better)`,
    `Troupe / bare loop (1,000 submitters, concurrency 256): ${ratio(tps(c256), tps(bare))}`,
    `bar ≥ ${bar.toLocaleString("en-US")} jobs/s: ${verdict(tps(c256) >= bar)} (1,000 submitters: ${rate(tps(c256))}; bulk: ${rate(tps(tBulk))})`,
    `bar ahead of BullMQ: ${verdict(tps(c256) > tps(bull.concurrent) && tps(tBulk) > tps(bull.bulk))} (best Troupe ${rate(best)} vs best BullMQ ${rate(bestBull)})`,
    `Troupe rows were counted in the closed SQLite file after each 1,000-submitter run (all 'completed').`,
    `BullMQ's Redis config: ${redisPersistence} (appendonly=no and an empty save mean its job records live in memory only).`,
    "BullMQ keeps completed jobs (no removeOnComplete), as Troupe keeps its records."
  ])
}

export const bench: Bench = { name, description: "no-op function jobs vs BullMQ vs a bare loop", run }
