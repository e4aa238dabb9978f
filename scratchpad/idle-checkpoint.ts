// Job latency in bursts separated by quiet gaps, to see where SQLite's checkpoint pause lands.
// Compile with esbuild into .bench-dist/scratchpad and run; toggle the idle checkpoint by editing
// the compiled default (defaultIdleCheckpointMs) in .bench-dist/src/store/IdleCheckpoint.js.
import * as Effect from "effect/Effect"
import { Jobs } from "../src/jobs/Jobs.js"
import { noop, openRuntime } from "../test/bench/troupe.js"
const bursts = Number(process.env.BURSTS ?? 30)
const perBurst = Number(process.env.PER_BURST ?? 1000)
const gapMs = Number(process.env.GAP_MS ?? 500)
const rt = await openRuntime("idleck", { functions: { noop } })
const samples: Array<number> = []
const loop = (count: number) => Effect.gen(function*() {
  const jobs = yield* Jobs
  for (let i = 0; i < count; i++) {
    const t0 = performance.now()
    const id = yield* jobs.submit({ fn: "noop", args: {} })
    yield* jobs.wait([id], { timeout: "60 seconds" })
    samples.push(performance.now() - t0)
  }
})
for (let b = 0; b < bursts; b++) {
  await rt.runtime.runPromise(Effect.all([loop(perBurst / 2), loop(perBurst / 2)], { concurrency: 2 }))
  await new Promise((r) => setTimeout(r, gapMs))
}
samples.sort((a, b) => a - b)
const q = (p: number) => samples[Math.min(samples.length - 1, Math.floor(p * samples.length))]!.toFixed(2)
console.log(`${samples.length} jobs in ${bursts} bursts: p50 ${q(0.5)} ms, p99 ${q(0.99)}, p99.9 ${q(0.999)}, max ${q(1)}; over 10 ms: ${samples.filter((x) => x > 10).length}`)
await rt.close(); rt.remove()
