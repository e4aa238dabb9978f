// CPU per com() call on a direct route: the client (this process), the worker, and the server, from /proc.
import * as Effect from "effect/Effect"
import { spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { ModulesClient } from "../src/client/index.js"

const n = Number(process.env.N ?? 20000)
const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "com-cpu-"))
Fs.writeFileSync(Path.join(dir, "echo.mjs"), "export const echo = (x) => x\n")
Fs.writeFileSync(Path.join(dir, "server.config.json"), JSON.stringify({ echo: ["./echo.mjs", "*", null] }))
const port = 17000 + Math.floor(Math.random() * 1000)
const server = spawn(process.execPath, ["dist/node.js", "--role=module", "--config", Path.join(dir, "server.config.json"), "--listen", `framed://127.0.0.1:${port}`, "--compat", "off"], { stdio: "ignore" })
const ticks = (pid: number) => {
  const f = Fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ")
  return (Number(f[11]) + Number(f[12])) * 10_000 // µs (100 Hz)
}
const children = (pid: number) => Fs.readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/).filter(Boolean).map(Number)
const main = Effect.gen(function*() {
  yield* Effect.sleep("1500 millis")
  const client = yield* ModulesClient.make(`framed://127.0.0.1:${port}`)
  const call = client.com("echo", "echo", "x")
  for (let i = 0; i < 5000; i++) yield* call
  const pids = [server.pid!, ...children(server.pid!)]
  const before = pids.map(ticks)
  const c0 = process.cpuUsage()
  const t0 = performance.now()
  for (let i = 0; i < n; i++) yield* call
  const wall = performance.now() - t0
  const c = process.cpuUsage(c0)
  const after = pids.map(ticks)
  console.log(`${(wall * 1000 / n).toFixed(1)} µs/call wall; client cpu ${((c.user + c.system) / n).toFixed(1)} µs/call (sys ${(c.system / n).toFixed(1)}); ` +
    pids.map((p, i) => `pid ${p} ${((after[i]! - before[i]!) / n).toFixed(1)}`).join(", "))
})
Effect.runPromise(Effect.scoped(main)).finally(() => { server.kill("SIGKILL"); Fs.rmSync(dir, { recursive: true, force: true }) })
