// Run compiled (esbuild transform into .bench-dist/scratchpad) or with tsx. Main-process CPU per job
// in 2 submit → wait loops, for no-op function jobs and for `true` shell jobs.
import { noop, openRuntime, submitWaitLoops } from "../test/bench/troupe.js"
import type { JobSpecInput } from "../src/jobs/Jobs.js"
const total = Number(process.env.N ?? 3000)
const measure = async (label: string, spec: JobSpecInput) => {
  const rt = await openRuntime("loopcpu", { cores: 2, functions: { noop } })
  await rt.runtime.runPromise(submitWaitLoops(spec, 2, 300))
  const c0 = process.cpuUsage(), t0 = performance.now()
  await rt.runtime.runPromise(submitWaitLoops(spec, 2, total))
  const c = process.cpuUsage(c0), wall = performance.now() - t0
  console.log(`${label}: ${(total / wall * 1000).toFixed(0)}/s, main CPU ${((c.user + c.system) / total).toFixed(0)} µs/job (user ${(c.user / total).toFixed(0)}, sys ${(c.system / total).toFixed(0)})`)
  await rt.close(); rt.remove()
}
await measure("noop fn", { fn: "noop", args: {} })
await measure("true shell", { command: ["true"] })
await measure("noop fn", { fn: "noop", args: {} })
await measure("true shell", { command: ["true"] })
