// Bulk no-op jobs (submitMany then wait for all), for profiling the runtime's per-job cost.
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import { Jobs } from "../src/jobs/Jobs.js"
import * as Troupe from "../src/Troupe.js"

const total = Number(process.env.N ?? 40000)
const program = Effect.gen(function*() {
  const jobs = yield* Jobs
  for (let round = 0; round < 3; round++) {
    const t0 = performance.now()
    const ids = yield* jobs.submitMany(Array.from({ length: total }, () => ({ fn: "noop" })))
    yield* jobs.wait(ids, { timeout: "300 seconds" })
    const dt = performance.now() - t0
    console.log(`${total} jobs in ${dt.toFixed(0)} ms -> ${(total / dt * 1000).toFixed(0)} jobs/s`)
  }
})
const layer = Troupe.layer({
  database: `/tmp/bulk-${process.pid}/t.db`,
  queues: { default: { concurrency: 256 } },
  functions: { noop: Troupe.defineFunction({ args: Schema.Unknown, success: Schema.Unknown, run: () => null }) }
})
Effect.runPromise(program.pipe(Effect.provide(layer), Effect.scoped)).catch((e) => {
  console.error(e)
  process.exit(1)
})
