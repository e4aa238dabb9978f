/**
 * Child process of jobs-list: resident memory of a runtime holding N queued jobs.
 * Run (compiled, by jobs-list) as `node .bench-dist/test/bench/queued-memory.js <N>`; prints one JSON line on stdout.
 *
 * One queue ("held", concurrency 1) gets a first job that blocks on a Promise, then N no-op
 * jobs submitted with submitMany in batches of 5,000: they stay queued behind it. RSS is read
 * while they wait; then the first `killCount` queued jobs are killed (timed), the blocker is
 * released, and the runtime is closed (the remaining queued jobs stay queued in the file).
 */
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import type { JobId } from "../../src/domain/JobId.js"
import { Jobs } from "../../src/jobs/Jobs.js"
import * as Troupe from "../../src/Troupe.js"
import { now } from "./lib.js"
import { noop, openRuntime } from "./troupe.js"

const total = Number(process.argv[2] ?? 100_000)
// Killing queued jobs costs a scan of the whole queue per id today (PriorityQueue.removeWhere);
// killing all 100,000 took ~8 minutes on the 2-core machine, so only the first `killCount` are killed.
const killCount = Number(process.argv[3] ?? 1_000)
const batch = 5_000

let release: (() => void) | undefined
const blocker = Troupe.defineFunction({
  args: Schema.Struct({}),
  success: Schema.Null,
  run: () => new Promise<null>((resolve) => (release = () => resolve(null)))
})

const main = async () => {
  const gc = (globalThis as { gc?: () => void }).gc
  gc?.()
  const before = process.memoryUsage()
  const rt = await openRuntime("memory", { functions: { noop, blocker }, queues: { held: { concurrency: 1 } }, shutdownGraceMs: 100 })
  try {
    gc?.()
    const opened = process.memoryUsage()
    const t0 = now()
    const ids = await rt.runtime.runPromise(Effect.gen(function*() {
      const jobs = yield* Jobs
      const first = yield* jobs.submit({ fn: "blocker", args: {}, queue: "held" })
      const ids: Array<JobId> = [first]
      for (let i = 0; i < total; i += batch) {
        const specs = Array.from({ length: Math.min(batch, total - i) }, () => ({ fn: "noop", args: {}, queue: "held" }))
        ids.push(...(yield* jobs.submitMany(specs)))
      }
      return ids
    }))
    const submitSeconds = (now() - t0) / 1000
    const summary = await rt.runtime.runPromise(Effect.flatMap(Jobs, (jobs) => jobs.queues))
    const held = summary.find((q) => q.queue === "held")
    await new Promise((resolve) => setTimeout(resolve, 500))
    const loaded = process.memoryUsage()
    gc?.()
    const loadedAfterGc = process.memoryUsage()
    const t1 = now()
    await rt.runtime.runPromise(Effect.gen(function*() {
      const jobs = yield* Jobs
      const killed = yield* jobs.kill(ids.slice(1, 1 + killCount))
      if (killed.length !== Math.min(killCount, total)) return yield* Effect.dieMessage(`killed ${killed.length} of ${killCount}`)
    }))
    const killSeconds = (now() - t1) / 1000
    release?.()
    await rt.runtime.runPromise(Effect.flatMap(Jobs, (jobs) => jobs.wait([ids[0]!], { timeout: "30 seconds" })))
    process.stdout.write(JSON.stringify({
      total,
      queued: held?.queued ?? -1,
      running: held?.running ?? -1,
      submitSeconds,
      killCount: Math.min(killCount, total),
      killSeconds,
      rssBefore: before.rss,
      rssOpened: opened.rss,
      rssLoaded: loaded.rss,
      heapLoaded: loaded.heapUsed,
      rssLoadedAfterGc: loadedAfterGc.rss,
      heapLoadedAfterGc: loadedAfterGc.heapUsed,
      gc: gc !== undefined
    }) + "\n")
  } finally {
    await rt.close()
    rt.remove()
  }
}

main().then(
  () => process.exit(0),
  (error) => {
    process.stderr.write(`queued-memory failed: ${error instanceof Error ? error.stack : String(error)}\n`)
    process.exit(1)
  }
)
