// Where the tail of `true` shell jobs in 2 submit → wait loops comes from: each job's latency beside
// the main process's GC pauses (PerformanceObserver), compiled with esbuild into .bench-dist/scratchpad.
import * as Effect from "effect/Effect"
import { PerformanceObserver } from "node:perf_hooks"
import { Jobs } from "../src/jobs/Jobs.js"
import { openRuntime, submitWaitLoops } from "../test/bench/troupe.js"
const total = Number(process.env.N ?? 2000)
const gcs: Array<[number, number, number]> = []
new PerformanceObserver((list) => { for (const e of list.getEntries()) gcs.push([e.startTime, e.duration, (e as any).detail?.kind ?? 0]) }).observe({ entryTypes: ["gc"] })
const rt = await openRuntime("tail", { cores: 2 })
await rt.runtime.runPromise(submitWaitLoops({ command: ["true"] }, 2, 200))
gcs.length = 0
const jobs: Array<[number, number]> = []
const parts: Array<[number, number, number]> = []
const loop = Effect.gen(function*() {
  const j = yield* Jobs
  for (let i = 0; i < total / 2; i++) {
    const t0 = performance.now()
    const id = yield* j.submit({ command: ["true"] })
    const t1 = performance.now()
    const [rec] = yield* j.wait([id], { timeout: "60 seconds" })
    const t2 = performance.now()
    jobs.push([t0, t2])
    parts.push([t1 - t0, t2 - t1, rec!.finishedAt! - rec!.startedAt!])
  }
})
const w0 = performance.now()
await rt.runtime.runPromise(Effect.all([loop, loop], { concurrency: 2 }))
const wall = performance.now() - w0
const lat = jobs.map(([a, b]) => b - a).sort((a, b) => a - b)
const q = (p: number) => lat[Math.floor(p * lat.length)]!.toFixed(2)
const slow = jobs.filter(([a, b]) => b - a > 4)
const overlaps = slow.filter(([a, b]) => gcs.some(([s, d]) => s < b && s + d > a)).length
const gcTotal = gcs.reduce((s, g) => s + g[1], 0)
console.log(`${(total / wall * 1000).toFixed(0)}/s p50 ${q(0.5)} p90 ${q(0.9)} p99 ${q(0.99)} mean ${(lat.reduce((s, x) => s + x, 0) / lat.length).toFixed(2)}`)
console.log(`slow (>4 ms): ${slow.length}, with a GC inside: ${overlaps}; GCs ${gcs.length}, total ${gcTotal.toFixed(0)} ms, max ${Math.max(...gcs.map((g) => g[1])).toFixed(2)} ms, kinds ${JSON.stringify(gcs.reduce((m: any, g) => (m[g[2]] = (m[g[2]] ?? 0) + 1, m), {}))}`)
const share = lat.filter((x) => x > 4).reduce((s, x) => s + x, 0) / lat.reduce((s, x) => s + x, 0)
console.log(`time share of slow jobs ${(share * 100).toFixed(0)}%`)
await rt.close(); rt.remove()
// The same distribution for raw spawn loops, after.
{
  const { spawn } = await import("node:child_process")
  const one = () => new Promise<void>((resolve) => spawn("true", [], { stdio: "ignore" }).once("exit", () => resolve()))
  const lat2: Array<number> = []
  let n = 0
  const w1 = performance.now()
  await Promise.all([0, 1].map(async () => { while (n < total) { n++; const t = performance.now(); await one(); lat2.push(performance.now() - t) } }))
  const wall2 = performance.now() - w1
  lat2.sort((a, b) => a - b)
  const r = (p: number) => lat2[Math.floor(p * lat2.length)]!.toFixed(2)
  console.log(`raw ${(total / wall2 * 1000).toFixed(0)}/s p50 ${r(0.5)} p90 ${r(0.9)} p99 ${r(0.99)} mean ${(lat2.reduce((s, x) => s + x, 0) / lat2.length).toFixed(2)}`)
}
{
  const hist = new Map<number, number>()
  for (const x of lat) { const b = Math.min(20, Math.floor(x * 2) / 2); hist.set(b, (hist.get(b) ?? 0) + 1) }
  console.log("troupe histogram (ms bucket: jobs):", [...hist].sort((a, b) => a[0] - b[0]).map(([b, c]) => `${b}:${c}`).join(" "))
}
{
  const slowParts = parts.filter((p) => p[0] + p[1] > 4)
  const avg = (xs: Array<[number, number, number]>, k: number) => (xs.reduce((s, p) => s + p[k]!, 0) / xs.length).toFixed(2)
  console.log(`all: submit ${avg(parts, 0)} wait ${avg(parts, 1)} run(ms clock) ${avg(parts, 2)}; slow: submit ${avg(slowParts, 0)} wait ${avg(slowParts, 1)} run ${avg(slowParts, 2)}`)
}
{
  await new Promise((r) => setTimeout(r, 300))
  const fs = await import("node:fs")
  const h = new Map<string, any>()
  for (const f of fs.readdirSync("/tmp").filter((f) => f.startsWith("htrace-"))) {
    const pid = f.slice(7, -5)
    for (const t of JSON.parse(fs.readFileSync(`/tmp/${f}`, "utf8"))) h.set(`${pid}:${t.id}`, t)
    fs.rmSync(`/tmp/${f}`)
  }
  const rows: Array<Array<number>> = []
  for (const [k, m] of (globalThis as any).__mtrace as Map<string, any>) {
    const t = h.get(k); if (!t || !m.end) continue
    rows.push([t.recv - m.send, t.spawned - t.recv, t.exit - t.spawned, Math.max(t.exit, t.drained) - t.exit, m.end - Math.max(t.exit, t.drained), m.end - m.send])
  }
  const names = ["hop→helper", "spawn()", "spawned→exit", "exit→drained", "hop→main", "total"]
  const med = (k: number, xs: Array<Array<number>>) => { const v = xs.map((r) => r[k]!).sort((a, b) => a - b); return v[Math.floor(v.length / 2)]!.toFixed(2) }
  const mean = (k: number, xs: Array<Array<number>>) => (xs.reduce((s, r) => s + r[k]!, 0) / xs.length).toFixed(2)
  const slow = rows.filter((r) => r[5]! > 3.5)
  console.log(`spawns ${rows.length}, slow(>3.5ms) ${slow.length}`)
  for (let k = 0; k < names.length; k++) console.log(`${names[k]!.padEnd(14)} median ${med(k, rows)} mean ${mean(k, rows)} | slow mean ${mean(k, slow)}`)
}
