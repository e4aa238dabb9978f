/**
 * Scratch: the module server's server → worker hop, layer by layer, in one run: raw IPC
 * (process.send), the worker channel alone (WorkerProcess.call with callbacks), and
 * ModuleServer.com from an Effect loop and through Effect.runPromise per call.
 * Run after `npm run build`: `node --import tsx scratchpad/modules-hop.ts` uses the src worker;
 * the numbers that matter come from the dist build (see test/bench/modules.ts).
 */
import * as Effect from "effect/Effect"
import { spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import * as ModuleServer from "../src/modules/ModuleServer.js"
import { WorkerProcess } from "../src/modules/internal/WorkerProcess.js"

const quantile = (samples: Array<number>, q: number) => {
  const s = [...samples].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)]!
}
const report = (label: string, samples: Array<number>, concurrentRate: number) =>
  console.log(`| ${label.padEnd(44)} | ${(quantile(samples, 0.5) * 1000).toFixed(0).padStart(5)} µs | ${(quantile(samples, 0.99) * 1000).toFixed(0).padStart(6)} µs | ${Math.round(concurrentRate).toLocaleString("en-US").padStart(8)}/s |`)

const measure = async (label: string, call: () => Promise<unknown>) => {
  for (let i = 0; i < 1000; i++) await call()
  const samples: Array<number> = []
  for (let i = 0; i < 5000; i++) {
    const t0 = performance.now()
    await call()
    samples.push(performance.now() - t0)
  }
  let next = 0
  const t0 = performance.now()
  await Promise.all(Array.from({ length: 16 }, async () => {
    while (next++ < 40_000) await call()
  }))
  report(label, samples, 40_000 / ((performance.now() - t0) / 1000))
}

const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "hop-"))
Fs.writeFileSync(Path.join(dir, "echo.mjs"), "export const echo = (x) => x\n")
Fs.writeFileSync(Path.join(dir, "c.json"), JSON.stringify({ echo: ["./echo.mjs", "*", null, { concurrency: 16 }] }))

const ipc = spawn(process.execPath, ["-e", "process.on('message', (m) => process.send(m))"], { stdio: ["ignore", "inherit", "inherit", "ipc"] })
const waiting: Array<(v: unknown) => void> = []
ipc.on("message", (m) => waiting.shift()!(m))
await measure("raw IPC, process.send", () => new Promise((resolve) => {
  waiting.push(resolve)
  ipc.send({ fn: "echo", args: ["x"] })
}))
ipc.kill()

const worker = new WorkerProcess({ onLog: () => {}, onFiles: () => {}, onExit: () => {} })
await worker.load({ name: "echo", file: Path.join(dir, "echo.mjs"), exportName: "*", dispatch: null, typescript: false }, 10_000)
await measure("worker channel (WorkerProcess.call)", () => new Promise((resolve) => worker.call({ fn: "echo", args: ["x"], clientIp: "127.0.0.1", done: resolve })))
await worker.stop(1000)

await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
  const modules = yield* ModuleServer.make({ configFile: Path.join(dir, "c.json"), watchConfig: false, spareWorkers: false })
  yield* Effect.promise(() => measure("ModuleServer.com, Effect.runPromise per call", () => Effect.runPromise(modules.com("echo", "echo", ["x"]))))
  // Inside Effect: the sequential loop as an Effect program makes it.
  const call = modules.com("echo", "echo", ["x"])
  const samples: Array<number> = []
  for (let i = 0; i < 1000; i++) yield* call
  for (let i = 0; i < 5000; i++) {
    const t0 = performance.now()
    yield* call
    samples.push(performance.now() - t0)
  }
  let next = 0
  const t0 = performance.now()
  yield* Effect.all(Array.from({ length: 16 }, () => Effect.whileLoop({ while: () => next++ < 40_000, body: () => call, step: () => {} })), { concurrency: "unbounded" })
  report("ModuleServer.com, in an Effect loop", samples, 40_000 / ((performance.now() - t0) / 1000))
})))
