/**
 * Scratch benchmark: @effect/rpc over the framed transport vs over the plain socket transport,
 * server in a child process. `node --import tsx scratchpad/framed-bench.ts [seconds]`
 */
import * as Rpc from "@effect/rpc/Rpc"
import * as RpcClient from "@effect/rpc/RpcClient"
import * as RpcGroup from "@effect/rpc/RpcGroup"
import * as RpcServer from "@effect/rpc/RpcServer"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import { fork } from "node:child_process"
import * as Net from "node:net"
import * as Endpoint from "../src/transport/Endpoint.js"
import * as FramedRpc from "../src/transport/framed/FramedRpc.js"
import * as SocketRpc from "../src/transport/socket/SocketRpc.js"

class BenchRpc extends RpcGroup.make(
  Rpc.make("Echo", { payload: { text: Schema.String }, success: Schema.String })
) {}

const handlers = BenchRpc.toLayer({ Echo: ({ text }) => Effect.succeed(text) })

const framedPort = 39000 + Math.floor(Math.random() * 1000)
const socketPort = framedPort + 1000
const rawPort = framedPort + 2000

// Sequential 8-byte round trips over a plain socket: the floor for any transport.
const rawEcho = (seconds: number) =>
  new Promise<void>((resolve) => {
    const socket = Net.connect({ port: rawPort, host: "127.0.0.1", noDelay: true })
    const latencies: Array<number> = []
    const end = performance.now() + seconds * 1000
    let t0 = 0
    const ping = () => {
      t0 = performance.now()
      socket.write("12345678")
    }
    let got = 0
    socket.on("data", (chunk) => {
      got += chunk.length
      if (got < 8) return
      got = 0
      latencies.push((performance.now() - t0) * 1000)
      if (performance.now() < end) return ping()
      socket.destroy()
      latencies.sort((a, b) => a - b)
      console.log(`raw tcp  sequential p50 ${percentile(latencies, 0.5).toFixed(0)} µs p99 ${percentile(latencies, 0.99).toFixed(0)} µs`)
      resolve()
    })
    socket.on("connect", ping)
  })

const serve = () => {
  const framed = RpcServer.layer(BenchRpc, { disableTracing: true }).pipe(
    Layer.provide(FramedRpc.layerServerProtocol(new Endpoint.FramedEndpoint({ host: "127.0.0.1", port: Number(process.env.FRAMED_PORT) })))
  )
  const socket = RpcServer.layer(BenchRpc, { disableTracing: true }).pipe(
    Layer.provide(SocketRpc.layerServerProtocol(new Endpoint.TcpEndpoint({ host: "127.0.0.1", port: Number(process.env.SOCKET_PORT) })))
  )
  Effect.runFork(
    Layer.launch(Layer.mergeAll(framed, socket).pipe(Layer.provide(handlers))).pipe(
      Effect.onExit(() => Effect.sync(() => process.exit(0)))
    )
  )
  // The anchor: a raw TCP echo, Nagle off.
  Net.createServer({ noDelay: true }, (socket) => socket.pipe(socket)).listen(Number(process.env.RAW_PORT), "127.0.0.1")
  process.on("SIGINT", () => process.exit(0))
  process.on("message", () => {
    const usage = process.cpuUsage()
    process.send?.({
      cpu: process.env.CPU === "system" ? usage.system : process.env.CPU === "user" ? usage.user : usage.user + usage.system
    })
  })
  setTimeout(() => process.send?.("ready"), 300)
}

const percentile = (sorted: Array<number>, p: number) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!

let serverCpu: () => Promise<number> = async () => 0

const cpuNow = () => {
  const usage = process.cpuUsage()
  return process.env.CPU === "system" ? usage.system : process.env.CPU === "user" ? usage.user : usage.user + usage.system
}

const measure = (name: string, protocol: Layer.Layer<RpcClient.Protocol, unknown>, seconds: number) =>
  Effect.scoped(Effect.gen(function*() {
    const client = yield* RpcClient.make(BenchRpc, { disableTracing: true }).pipe(
      Effect.provide(yield* Layer.build(protocol))
    )
    for (let i = 0; i < 2000; i++) yield* client.Echo({ text: "x" })
    const latencies: Array<number> = []
    const seqEnd = performance.now() + (process.env.PAR_ONLY ? 0.1 : seconds) * 1000
    while (performance.now() < seqEnd) {
      const t0 = performance.now()
      yield* client.Echo({ text: "x" })
      latencies.push((performance.now() - t0) * 1000)
    }
    latencies.sort((a, b) => a - b)
    let done = 0
    const parEnd = performance.now() + seconds * 1000
    const server0 = yield* Effect.promise(() => serverCpu())
    const client0 = cpuNow()
    const t0 = performance.now()
    const ticker = process.env.TICK ? setInterval(() => {
      console.log(`  ${name} ${done} done`)
    }, 1000) : undefined
    yield* Effect.forEach(
      Array.from({ length: 100 }),
      () =>
        Effect.whileLoop({
          while: () => performance.now() < parEnd,
          body: () => client.Echo({ text: "x" }),
          step: () => {
            done++
          }
        }),
      { concurrency: "unbounded", discard: true }
    )
    if (ticker) clearInterval(ticker)
    const rate = done / ((performance.now() - t0) / 1000)
    const clientCpu = (cpuNow() - client0) / done
    const serverCpuPerCall = ((yield* Effect.promise(() => serverCpu())) - server0) / done
    console.log(
      `${name.padEnd(8)} sequential p50 ${percentile(latencies, 0.5).toFixed(0)} µs p99 ${
        percentile(latencies, 0.99).toFixed(0)
      } µs (${latencies.length} calls)  |  100 in flight: ${rate.toFixed(0)} req/s, CPU per call: client ${
        clientCpu.toFixed(1)
      } µs, server ${serverCpuPerCall.toFixed(1)} µs`
    )
  }))

if (process.argv[2] === "serve") {
  serve()
} else {
  const seconds = Number(process.argv[2] ?? 3)
  const rounds = Number(process.argv[3] ?? 2)
  const child = fork(new URL(import.meta.url).pathname, ["serve"], {
    execArgv: ["--import", "tsx", ...(process.env.SEMI ? [`--max-semi-space-size=${process.env.SEMI}`] : []), ...(process.env.SERVER_PROF ? ["--cpu-prof", "--cpu-prof-dir=/tmp/framed-prof"] : [])],
    env: { ...process.env, FRAMED_PORT: String(framedPort), SOCKET_PORT: String(socketPort), RAW_PORT: String(rawPort) }
  })
  serverCpu = () =>
    new Promise((resolve) => {
      child.once("message", (message: any) => resolve(message.cpu))
      child.send("cpu")
    })
  child.once("message", () => {
    const framed = FramedRpc.layerClientProtocol(new Endpoint.FramedEndpoint({ host: "127.0.0.1", port: framedPort }))
    const socket = SocketRpc.layerClientProtocol(new Endpoint.TcpEndpoint({ host: "127.0.0.1", port: socketPort }))
    const only = process.env.ONLY
    Effect.runPromise(Effect.gen(function*() {
      for (let round = 0; round < rounds; round++) {
        yield* Effect.promise(() => rawEcho(Math.min(seconds, 2)))
        if (only !== "socket") yield* measure("framed", framed, seconds)
        if (only !== "framed") yield* measure("socket", socket, seconds)
      }
    })).then(
      () => {
        child.kill("SIGINT")
        setTimeout(() => process.exit(0), 500)
      },
      (error) => {
        console.error(error)
        child.kill()
        process.exit(1)
      }
    )
  })
}
