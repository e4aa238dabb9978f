/** Scratch: CPU per call of the framed lean client with N calls in flight (N from argv), for profiling. */
import * as Effect from "effect/Effect"
import * as Scope from "effect/Scope"
import { spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Endpoint from "../src/transport/Endpoint.js"
import * as Transport from "../src/transport/Transport.js"
import { EchoRpc } from "../test/bench/transport-rpc.js"

const inFlight = Number(process.argv[2] ?? 100)
const url = `framed://127.0.0.1:${7700 + Math.floor(Math.random() * 200)}`
const server = spawn(process.execPath, [".bench-dist/test/bench/transport-server.js", "troupe", url], { stdio: ["pipe", "pipe", "inherit"] })
await new Promise<void>((resolve) => server.stdout!.on("data", (d: Buffer) => d.toString().includes("ready") && resolve()))
const serverCpu = () => {
  const f = Fs.readFileSync(`/proc/${server.pid}/stat`, "utf8").split(") ")[1]!.split(" ")
  return (Number(f[11]) + Number(f[12])) * 10_000
}
const scope = Effect.runSync(Scope.make())
const client = await Effect.runPromise(Transport.makeClient(EchoRpc, Effect.runSync(Endpoint.parse(url))).pipe(Scope.extend(scope)))
const data = new Uint8Array(16).fill(1)
for (let round = 0; round < 4; round++) {
  const c0 = process.cpuUsage()
  const s0 = serverCpu()
  let n = 0
  const t0 = performance.now()
  const end = t0 + 1500
  const loop = Effect.whileLoop({ while: () => performance.now() < end, body: () => client.Echo({ data }), step: () => { n++ } })
  await Effect.runPromise(Effect.all(Array.from({ length: inFlight }, () => loop), { concurrency: "unbounded", discard: true }))
  const c1 = process.cpuUsage(c0)
  console.log(
    `${inFlight} in flight: ${(n / ((performance.now() - t0) / 1000)).toFixed(0)}/s, client cpu ${((c1.user + c1.system) / n).toFixed(1)} µs/call ` +
      `(sys ${(c1.system / n).toFixed(1)}), server cpu ${((serverCpu() - s0) / n).toFixed(1)} µs/call`
  )
}
server.stdin!.end()
process.exit(0)
