// Run with `npx tsx scratchpad/shell-cpu.ts`. CPU per `true` job, per process kind, in 2 submit → wait
// loops against raw spawn loops: the runtime's main process, its spawn helpers, and wall time.
import * as fs from "node:fs"
import { spawn } from "node:child_process"
import { openRuntime, submitWaitLoops } from "../test/bench/troupe.js"

const total = Number(process.env.N ?? 2000)
const ticks = 100 // USER_HZ
const childPids = (): Array<number> => {
  const out: Array<number> = []
  for (const tid of fs.readdirSync(`/proc/${process.pid}/task`)) {
    const text = fs.readFileSync(`/proc/${process.pid}/task/${tid}/children`, "utf8").trim()
    if (text) out.push(...text.split(/\s+/).map(Number))
  }
  return out
}
const cpuOf = (pid: number): number => {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8")
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
  // utime, stime, cutime, cstime (fields 14-17, here offset by 3)
  return (Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14])) / ticks * 1000
}
const selfCpu = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1000 }
const selfChildrenCpu = () => { const s = fs.readFileSync(`/proc/${process.pid}/stat`, "utf8"); const f = s.slice(s.lastIndexOf(")") + 2).split(" "); return (Number(f[13]) + Number(f[14])) / ticks * 1000 }

const spawnTrue = () => new Promise<void>((resolve) => spawn("true", [], { stdio: "ignore" }).once("exit", () => resolve()))
const raw = async () => {
  let next = 0
  const loop = async () => { while (next < total) { next++; await spawnTrue() } }
  const c0 = selfCpu(), k0 = selfChildrenCpu(), t0 = performance.now()
  await Promise.all([loop(), loop()])
  const wall = performance.now() - t0
  console.log(`raw: ${(total / wall * 1000).toFixed(0)}/s, main ${((selfCpu() - c0) / total * 1000).toFixed(0)} µs/job, children ${((selfChildrenCpu() - k0) / total * 1000).toFixed(0)} µs/job`)
}
const troupe = async () => {
  const rt = await openRuntime("shcpu", { cores: 2 })
  await rt.runtime.runPromise(submitWaitLoops({ command: ["true"] }, 2, 200))
  const helpers = childPids()
  const h0 = helpers.map(cpuOf), c0 = selfCpu(), t0 = performance.now()
  await rt.runtime.runPromise(submitWaitLoops({ command: ["true"] }, 2, total))
  const wall = performance.now() - t0
  const h = helpers.map((p, i) => cpuOf(p) - h0[i]!)
  console.log(`troupe: ${(total / wall * 1000).toFixed(0)}/s, main ${((selfCpu() - c0) / total * 1000).toFixed(0)} µs/job, helpers ${h.map((x) => (x / total * 1000).toFixed(0)).join("+")} µs/job (incl. their children)`)
  await rt.close(); rt.remove()
}
const main = async () => { if (process.env.ONLY === "troupe") { await troupe(); return } await raw(); await troupe(); await raw(); await troupe() }
main()
