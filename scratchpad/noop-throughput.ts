// Throughput of no-op function jobs through the real runtime, for profiling (bundle it with esbuild).
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import { Jobs } from "../src/jobs/Jobs.js"
import * as Troupe from "../src/Troupe.js"

const submitters = Number(process.env.SUBMITTERS ?? 1000)
const total = Number(process.env.N ?? 40000)
const program = Effect.gen(function*() {
  const jobs = yield* Jobs
  let next = 0
  const t0 = performance.now()
  yield* Effect.forEach(Array.from({ length: submitters }), () =>
    Effect.gen(function*() {
      while (next < total) {
        next++
        const id = yield* jobs.submit({ fn: "noop" })
        yield* jobs.wait([id])
      }
    }), { concurrency: "unbounded", discard: true })
  const dt = performance.now() - t0
  console.log(`${total} jobs in ${dt.toFixed(0)} ms -> ${(total / dt * 1000).toFixed(0)} jobs/s`)
})
const layer = Troupe.layer({
  database: `/tmp/noop-${process.pid}/t.db`,
  queues: { default: { concurrency: 256 } },
  functions: { noop: Troupe.defineFunction({ args: Schema.Unknown, success: Schema.Unknown, run: () => null }) }
})
Effect.runPromise(program.pipe(Effect.provide(layer), Effect.scoped)).catch((e) => {
  console.error(e)
  process.exit(1)
})
