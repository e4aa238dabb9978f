/** Scratch: framed RPC round trips with the lean engine against the raw echo, two processes. */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"
import { spawn } from "node:child_process"
import * as Net from "node:net"
import * as Endpoint from "../src/transport/Endpoint.js"
import * as Transport from "../src/transport/Transport.js"
import { EchoRpc } from "../test/bench/transport-rpc.js"

const port = Number(process.env.PORT ?? 7700 + Math.floor(Math.random() * 200))
const url = process.argv[2] ?? `framed://127.0.0.1:${port}`
const server = spawn(process.execPath, [".bench-dist/test/bench/transport-server.js", "troupe", url], { stdio: ["pipe", "pipe", "inherit"] })
await new Promise<void>((resolve) => server.stdout!.on("data", (d: Buffer) => d.toString().includes("ready") && resolve()))
const scope = Effect.runSync(Scope.make())
const client = await Effect.runPromise(Transport.makeClient(EchoRpc, Effect.runSync(Endpoint.parse(url))).pipe(Scope.extend(scope)))
const data = new Uint8Array(16).fill(1)
import * as Fs from "node:fs"
import * as RpcClient from "@effect/rpc/RpcClient"
import * as Layer from "effect/Layer"
const serverCpu = () => { const f = Fs.readFileSync(`/proc/${server.pid}/stat`, "utf8").split(") ")[1]!.split(" "); return (Number(f[11]) + Number(f[12])) * 10 }
const stock = process.env.STOCK === "1"
  ? await Effect.runPromise(Effect.flatMap(Layer.build(Transport.layerClientProtocol(Effect.runSync(Endpoint.parse(url)))), (p) => RpcClient.make(EchoRpc, { disableTracing: true }).pipe(Effect.provide(p))).pipe(Scope.extend(scope)))
  : undefined
const call = stock ?? client
const measure = async (conc: number, ms: number) => {
  const c0 = process.cpuUsage(); const s0 = serverCpu()
  const samples: Array<number> = []
  const end = performance.now() + ms
  const loop = Effect.whileLoop({
    while: () => performance.now() < end,
    body: () => Effect.suspend(() => { const t = performance.now(); return Effect.map(call.Echo({ data }), () => samples.push(performance.now() - t)) }),
    step: () => {}
  })
  const t0 = performance.now()
  await Effect.runPromise(Effect.all(Array.from({ length: conc }, () => loop), { concurrency: "unbounded", discard: true }))
  const secs = (performance.now() - t0) / 1000
  samples.sort((a, b) => a - b)
  const c1 = process.cpuUsage(c0); const s1 = serverCpu() - s0
  console.log(`client cpu ${((c1.user + c1.system) / samples.length).toFixed(1)} µs/call, server cpu ${(s1 * 1000 / samples.length).toFixed(1)} µs/call`)
  console.log(`${conc} in flight: ${(samples.length / secs).toFixed(0)}/s p50 ${(samples[Math.floor(samples.length / 2)]! * 1000).toFixed(0)} µs p99 ${(samples[Math.floor(samples.length * 0.99)]! * 1000).toFixed(0)} µs`)
}
await measure(1, 500)
for (const c of [1, 10, 100]) await measure(c, 1500)
await Effect.runPromise(Scope.close(scope, Exit.void))
server.stdin!.end()
void Net
process.exit(0)
