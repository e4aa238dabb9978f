/** Scratch: how long a worker takes from spawn to Ready, from source (tsx) or from dist. */
import { WorkerProcess } from "../src/modules/internal/WorkerProcess.js"

const once = async () => {
  const t0 = performance.now()
  const w = new WorkerProcess({ onLog: () => {}, onFiles: () => {}, onExit: () => {} })
  await w.load({ name: "m", file: process.argv[2] ?? "/tmp/wt/m.mjs", exportName: "f", dispatch: null, typescript: (process.argv[2] ?? "").endsWith(".ts") }, 10_000)
  const t1 = performance.now()
  await w.stop(1000)
  return t1 - t0
}
const times: Array<number> = []
for (let i = 0; i < 5; i++) times.push(await once())
console.log(times.map((t) => t.toFixed(0)).join(" "), "ms")
