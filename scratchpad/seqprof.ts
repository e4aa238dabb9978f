import * as Effect from "effect/Effect"
import * as Scope from "effect/Scope"
import { spawn } from "node:child_process"
import * as Endpoint from "../src/transport/Endpoint.js"
import * as Transport from "../src/transport/Transport.js"
import { EchoRpc } from "../test/bench/transport-rpc.js"
const url = `framed://127.0.0.1:${7700 + Math.floor(Math.random() * 200)}`
const server = spawn(process.execPath, [".bench-dist/test/bench/transport-server.js", "troupe", url], { stdio: ["pipe", "pipe", "inherit"] })
await new Promise<void>((resolve) => server.stdout!.on("data", (d: Buffer) => d.toString().includes("ready") && resolve()))
const scope = Effect.runSync(Scope.make())
const client = await Effect.runPromise(Transport.makeClient(EchoRpc, Effect.runSync(Endpoint.parse(url))).pipe(Scope.extend(scope)))
const data = new Uint8Array(16).fill(1)
for (let round = 0; round < 10; round++) {
  const c0 = process.cpuUsage(); let n = 0; const t0 = performance.now()
  await Effect.runPromise(Effect.whileLoop({ while: () => n < 3000, body: () => client.Echo({ data }), step: () => { n++ } }))
  const c1 = process.cpuUsage(c0)
  console.log(`${(n / ((performance.now() - t0) / 1000)).toFixed(0)}/s cpu ${((c1.user + c1.system) / n).toFixed(1)} µs/call (user ${(c1.user / n).toFixed(1)} sys ${(c1.system / n).toFixed(1)})`)
}
server.stdin!.end(); process.exit(0)
