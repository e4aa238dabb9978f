/**
 * Shell jobs running `true`, at concurrency = cores, against raw `child_process.spawn("true")`
 * at the same concurrency, measured in the same run.
 *
 * Raw spawn runs `cores` loops; each starts one process and waits for it to end before the next.
 * Troupe is measured two ways. The bar's form: one submitMany of every job onto a queue of
 * concurrency = cores, then one wait, so that `cores` jobs run at a time, as raw spawn's loops do.
 * A stricter form: `cores` submit → wait loops, where each slot also waits for the submit and wait
 * round trips (the latency is submit → completed, with the job's stdout/stderr captured to files
 * and every transition committed).
 */
import * as Effect from "effect/Effect"
import { spawn } from "node:child_process"
import * as os from "node:os"
import { Jobs } from "../../src/jobs/Jobs.js"
import type { JobSpecInput } from "../../src/jobs/Jobs.js"
import type { Bench, RateRow } from "./lib.js"
import { latency, notes, now, progress, ratio, rateTable, verdict } from "./lib.js"
import { countStates, openRuntime, submitWaitLoops } from "./troupe.js"

const name = "jobs-shell"
const total = Number(process.env["BENCH_SHELL_JOBS"] ?? 1_000)
const warmup = 100
const cores = os.availableParallelism()
const spec: JobSpecInput = { command: ["true"] }

type Row = RateRow

const bulk = (count: number) =>
  Effect.gen(function*() {
    const jobs = yield* Jobs
    const t0 = now()
    const ids = yield* jobs.submitMany(Array.from({ length: count }, () => spec))
    const records = yield* jobs.wait(ids, { timeout: "300 seconds" })
    const bad = records.filter((r) => r.state !== "completed")
    if (bad.length > 0) return yield* Effect.dieMessage(`${bad.length} jobs did not complete: ${bad[0]!.reason}`)
    return { seconds: (now() - t0) / 1000 }
  })

const troupe = async (): Promise<{ loops: Row; bulk: Row }> => {
  const rt = await openRuntime("shell", { cores })
  try {
    await rt.runtime.runPromise(submitWaitLoops(spec, cores, warmup))
    progress(name, `troupe: ${total} \`true\` jobs from ${cores} submit → wait loops`)
    const l = await rt.runtime.runPromise(submitWaitLoops(spec, cores, total))
    progress(name, `troupe: submitMany(${total}) → wait all`)
    const b = await rt.runtime.runPromise(bulk(total))
    await rt.close()
    const completed = (await countStates(rt.database)).get("completed") ?? 0
    if (completed !== warmup + 2 * total) throw new Error(`expected ${warmup + 2 * total} completed rows, found ${completed}`)
    return {
      loops: { label: `Troupe ${cores} loops submit → completed (queue concurrency ${cores})`, jobs: total, seconds: l.seconds, latency: latency(l.samples) },
      bulk: { label: `Troupe submitMany(${total.toLocaleString("en-US")}) → wait all (queue concurrency ${cores})`, jobs: total, seconds: b.seconds, latency: undefined }
    }
  } finally {
    await rt.close().catch(() => {})
    rt.remove()
  }
}

const spawnTrue = (): Promise<void> =>
  new Promise((resolve, reject) => {
    const child = spawn("true", [], { stdio: "ignore" })
    child.once("error", reject)
    child.once("exit", (code) => (code === 0 ? resolve() : reject(new Error(`true exited ${code}`))))
  })

const raw = async (): Promise<Row> => {
  const loops = async (count: number) => {
    const samples: Array<number> = []
    let next = 0
    const loop = async () => {
      while (next < count) {
        next++
        const t0 = now()
        await spawnTrue()
        samples.push(now() - t0)
      }
    }
    const t0 = now()
    await Promise.all(Array.from({ length: cores }, loop))
    return { seconds: (now() - t0) / 1000, samples }
  }
  await loops(warmup)
  progress(name, `raw: ${total} spawn("true") from ${cores} loops`)
  const r = await loops(total)
  return { label: `raw child_process.spawn("true"), ${cores} loops`, jobs: total, seconds: r.seconds, latency: latency(r.samples) }
}

const run = async (): Promise<void> => {
  // Raw first and last, so that a drift of the machine during the run shows.
  const rawBefore = await raw()
  const t = await troupe()
  const rawAfter = await raw()
  const rawBest = rawBefore.jobs / rawBefore.seconds >= rawAfter.jobs / rawAfter.seconds ? rawBefore : rawAfter
  const rows = [t.loops, t.bulk, { ...rawBefore, label: `${rawBefore.label} (before Troupe)` }, { ...rawAfter, label: `${rawAfter.label} (after Troupe)` }]
  rateTable(
    `jobs-shell: \`true\` shell jobs at concurrency = cores (${cores})`,
    rows
  )
  const tps = (r: Row) => r.jobs / r.seconds
  const rate = tps(t.bulk) / tps(rawBest)
  const loops = tps(t.loops) / tps(rawBest)
  notes([
    `Troupe / raw spawn (submitMany vs the faster raw run): ${ratio(tps(t.bulk), tps(rawBest))}`,
    `Troupe / raw spawn (submit → wait loops vs the faster raw run): ${ratio(tps(t.loops), tps(rawBest))}`,
    `p50 latency Troupe / raw: ${ratio(t.loops.latency!.p50, rawBest.latency!.p50)} (lower is better)`,
    // The bar is the rate of jobs run at queue concurrency = cores: every job queued, two running at a time.
    `bar ≥ 80% of raw, jobs run at queue concurrency = cores: ${verdict(rate >= 0.8)} (${percent(rate)} with submitMany)`,
    // Stricter: each of the two slots also waits for the submit and the wait round trips, so it measures latency too.
    `stricter, ${cores} submit → wait loops (each slot also waits for the API round trips): ${percent(loops)} ` +
    `(${loops >= 0.8 ? "at or above" : "below"} 80%)`,
    "Troupe runs each job as a detached process group with stdout/stderr captured to files under the job's folder; " +
    "raw spawn uses stdio 'ignore'. Jobs use the argv form `{ command: [\"true\"] }` (no shell)."
  ])
}

// One decimal, so that a share just under the bar does not print as "80%".
const percent = (share: number) => `${(share * 100).toFixed(1)}%`

export const bench: Bench = { name, description: "`true` shell jobs vs raw child_process.spawn", run }
