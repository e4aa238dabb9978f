/** Scratch: framed (lean engine) against Moleculer's TCP transporter and a raw echo, interleaved, 16 B. */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"
import { spawn } from "node:child_process"
import * as Net from "node:net"
import * as Endpoint from "../src/transport/Endpoint.js"
import * as Transport from "../src/transport/Transport.js"
import { EchoRpc } from "../test/bench/transport-rpc.js"

const freePort = () =>
  new Promise<number>((resolve) => {
    const server = Net.createServer().listen(0, "127.0.0.1", () => {
      const port = (server.address() as Net.AddressInfo).port
      server.close(() => resolve(port))
    })
  })
const startServer = async (args: Array<string>) => {
  const child = spawn(process.execPath, [".bench-dist/test/bench/transport-server.js", ...args], { stdio: ["pipe", "pipe", "inherit"] })
  await new Promise<void>((resolve) => child.stdout!.on("data", (d: Buffer) => d.toString().includes("ready") && resolve()))
  return child
}
type Call = (data: Uint8Array) => Promise<unknown>
const promiseLoops = async (call: Call, inFlight: number, ms: number) => {
  let n = 0
  const end = performance.now() + ms
  await Promise.all(Array.from({ length: inFlight }, async () => {
    while (performance.now() < end) { await call(data); n++ }
  }))
  return n / (ms / 1000)
}
const data = new Uint8Array(16).fill(1)

const framed = async (inFlight: number) => {
  const url = `framed://127.0.0.1:${await freePort()}`
  const child = await startServer(["troupe", url])
  const scope = Effect.runSync(Scope.make())
  const client = await Effect.runPromise(Transport.makeClient(EchoRpc, Effect.runSync(Endpoint.parse(url))).pipe(Scope.extend(scope)))
  const run = async (ms: number) => {
    let n = 0
    const end = performance.now() + ms
    const loop = Effect.whileLoop({ while: () => performance.now() < end, body: () => client.Echo({ data }), step: () => { n++ } })
    await Effect.runPromise(Effect.all(Array.from({ length: inFlight }, () => loop), { concurrency: "unbounded", discard: true }))
    return n / (ms / 1000)
  }
  await run(500)
  const rate = await run(2000)
  await Effect.runPromise(Scope.close(scope, Exit.void))
  child.kill()
  return rate
}
const moleculer = async (inFlight: number) => {
  const { ServiceBroker } = await import("moleculer")
  const [serverPort, clientPort] = [await freePort(), await freePort()]
  const child = await startServer(["moleculer", String(serverPort), String(clientPort)])
  const broker = new ServiceBroker({
    nodeID: "client", logger: false,
    transporter: { type: "TCP", options: { udpDiscovery: false, port: clientPort, urls: [`127.0.0.1:${serverPort}/server`, `127.0.0.1:${clientPort}/client`] } }
  })
  await broker.start()
  await broker.waitForServices(["echo"], 10_000)
  const call: Call = (d) => broker.call("echo.echo", { data: Buffer.from(d).toString("latin1") })
  await promiseLoops(call, inFlight, 500)
  const rate = await promiseLoops(call, inFlight, 2000)
  await broker.stop()
  child.kill()
  return rate
}
const inFlight = Number(process.argv[2] ?? 100)
for (let round = 0; round < 2; round++) {
  const f = await framed(inFlight)
  const m = await moleculer(inFlight)
  console.log(`${inFlight} in flight: framed ${f.toFixed(0)}/s, Moleculer ${m.toFixed(0)}/s, ratio ${(f / m).toFixed(2)}`)
}
process.exit(0)
