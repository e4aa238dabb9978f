// Quick no-op job rates for iterations: 1,000 submitters (concurrency 256) and one submitMany,
// with the CPU time per job (user + system), which moves less than the rate on a shared machine.
import * as Effect from "effect/Effect"
import { Jobs } from "../src/jobs/Jobs.js"
import { countStates, noop, openRuntime, submitWaitLoops } from "../test/bench/troupe.js"

const total = Number(process.env.N ?? 20000)
const bulkTotal = Number(process.env.BULK ?? 20000)
const spec = { fn: "noop", args: {} }
// C: the queue's concurrency; "default" leaves it at the runtime's cores.
const concurrency = process.env.C ?? "256"

const main = async () => {
  const rt = await openRuntime(
    "noopq",
    concurrency === "default" ? { functions: { noop } } : { functions: { noop }, queues: { default: { concurrency: Number(concurrency) } } }
  )
  await rt.runtime.runPromise(submitWaitLoops(spec, 1000, 2000))
  ;(globalThis as any).__st = undefined
  const c0 = process.cpuUsage()
  const r = await rt.runtime.runPromise(submitWaitLoops(spec, 1000, total))
  const c1 = process.cpuUsage(c0)
  if (process.env.ST) console.log(JSON.stringify((globalThis as any).__st))
  const b0 = process.cpuUsage()
  const t0 = performance.now()
  await rt.runtime.runPromise(Effect.gen(function*() {
    const jobs = yield* Jobs
    const ids = yield* jobs.submitMany(Array.from({ length: bulkTotal }, () => spec))
    yield* jobs.wait(ids, { timeout: "300 seconds" })
  }))
  const bs = (performance.now() - t0) / 1000
  const b1 = process.cpuUsage(b0)
  await rt.close()
  const states = await countStates(rt.database)
  rt.remove()
  const us = (c: NodeJS.CpuUsage, n: number) => `${((c.user + c.system) / n).toFixed(1)} (sys ${(c.system / n).toFixed(1)})`
  console.log(`loops: ${Math.round(total / r.seconds)}/s cpu ${us(c1, total)} us/job | bulk: ${Math.round(bulkTotal / bs)}/s cpu ${us(b1, bulkTotal)} us/job | rows ${JSON.stringify([...states])}`)
}
main()
