// Run with `npx tsx scratchpad/shell-phases.ts` (the spawn helper is found beside the sources; a bundle would not find it).
// Where a `true` shell job's submit → completed time goes, in 2 submit → wait loops: submit → the
// job's start, start → end (the process), end → the waiter resumed; from the records' timestamps.
import * as Effect from "effect/Effect"
import { Jobs } from "../src/jobs/Jobs.js"
import { openRuntime } from "../test/bench/troupe.js"

const total = Number(process.env.N ?? 600)
const main = async () => {
  const rt = await openRuntime("phases", { cores: 2 })
  const phases: Array<[number, number, number, number]> = []
  const loop = Effect.gen(function*() {
    const jobs = yield* Jobs
    for (let i = 0; i < total / 2; i++) {
      const t0 = Date.now()
      const p0 = performance.now()
      const id = yield* jobs.submit({ command: ["true"] })
      const p1 = performance.now()
      const [record] = yield* jobs.wait([id], { timeout: "60 seconds" })
      const t3 = Date.now()
      phases.push([record!.startedAt! - t0, record!.finishedAt! - record!.startedAt!, t3 - record!.finishedAt!, p1 - p0])
    }
  })
  await rt.runtime.runPromise(Effect.all([loop, loop], { concurrency: 2 }))
  await rt.close()
  rt.remove()
  const median = (k: number) => phases.map((p) => p[k]!).sort((a, b) => a - b)[Math.floor(phases.length / 2)]!.toFixed(2)
  const mean = (k: number) => (phases.reduce((s, p) => s + p[k]!, 0) / phases.length).toFixed(2)
  console.log(`ms (median/mean): submit→start ${median(0)}/${mean(0)}, start→end ${median(1)}/${mean(1)}, end→resumed ${median(2)}/${mean(2)}, submit call ${median(3)}/${mean(3)}`)
}
main()
