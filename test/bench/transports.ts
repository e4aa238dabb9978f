/**
 * RPC round trips between two processes, over every Troupe transport and the references:
 *  - Troupe's framed (framed://), socket (tcp://, unix://: plain @effect/rpc over a socket with
 *    msgpack, the issue's "plain @effect/rpc" reference) and folder (folder://) transports;
 *  - a raw Node TCP echo of length-prefixed messages (the limit);
 *  - Moleculer 0.14's TCP transporter with static node URLs.
 * For each: sequential p50/p99, and throughput with 1, 10 and 100 calls in flight, for a tiny
 * (16 B), a 1 KB and a 100 KB payload. The server is a child process; the client is this one.
 */
import * as Effect from "effect/Effect"
import * as Scope from "effect/Scope"
import * as Exit from "effect/Exit"
import { spawn } from "node:child_process"
import type { ChildProcess } from "node:child_process"
import * as Net from "node:net"
import * as Path from "node:path"
import * as Endpoint from "../../src/transport/Endpoint.js"
import * as Transport from "../../src/transport/Transport.js"
import type { Bench, Latency } from "./lib.js"
import { freePort, latency, ms, notes, now, progress, rate, ratio, table, tempDir, verdict } from "./lib.js"
import { EchoRpc } from "./transport-rpc.js"

const name = "transports"
const env = (key: string, fallback: number) => Number(process.env[key] ?? fallback)

/** How long each throughput scenario runs, and the most calls the sequential one makes. */
const scenarioMs = env("BENCH_TRANSPORT_MS", 1500)
const sequentialCalls = env("BENCH_TRANSPORT_SEQUENTIAL", 3000)
/** How long each target is warmed up before it is measured (half as long again with 100 in flight). */
const warmupMs = env("BENCH_TRANSPORT_WARMUP_MS", 1500)
const payloads = [
  { label: "16 B", bytes: 16 },
  { label: "1 KB", bytes: 1024 },
  { label: "100 KB", bytes: 100 * 1024 }
] as const
const inFlight = [1, 10, 100] as const

/** One way to make calls: `run` keeps `concurrency` calls going until `stop` says so, and returns each call's latency in ms. */
interface Caller {
  readonly run: (data: Uint8Array, concurrency: number, stop: (made: number) => boolean) => Promise<Array<number>>
  readonly close: () => Promise<void>
}

// A caller over a Promise-returning call, for the references.
const promiseCaller = (call: (data: Uint8Array) => Promise<unknown>, close: () => Promise<void>): Caller => ({
  run: async (data, concurrency, stop) => {
    const samples: Array<number> = []
    let made = 0
    const loop = async () => {
      while (!stop(made)) {
        made++
        const start = now()
        await call(data)
        samples.push(now() - start)
      }
    }
    await Promise.all(Array.from({ length: concurrency }, loop))
    return samples
  },
  close
})

interface Target {
  readonly label: string
  readonly start: () => Promise<{ readonly caller: Caller; readonly stop: () => Promise<void> }>
  /** Slow targets (the folder) get fewer sequential calls. */
  readonly slow?: boolean
}

interface Measured {
  readonly sequential: Latency & { readonly perSecond: number }
  readonly throughput: ReadonlyMap<string, { readonly perSecond: number; readonly latency: Latency }>
}

// ---------------------------------------------------------------------------------------------
// targets

const distBench = Path.resolve(import.meta.dirname)

const startServer = (args: ReadonlyArray<string>): Promise<ChildProcess> =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [Path.join(distBench, "transport-server.js"), ...args], {
      stdio: ["pipe", "pipe", "inherit"]
    })
    let seen = ""
    child.stdout!.on("data", (chunk: Buffer) => {
      seen += chunk.toString()
      if (seen.includes("ready")) resolve(child)
    })
    child.once("exit", (code) => reject(new Error(`server ${args.join(" ")} exited with ${code}`)))
  })

const stopServer = (child: ChildProcess): Promise<void> =>
  new Promise((resolve) => {
    if (child.exitCode !== null) return resolve()
    child.removeAllListeners("exit")
    child.once("exit", () => resolve())
    child.stdin!.end()
    setTimeout(() => child.kill("SIGKILL"), 3000).unref()
  })

const troupeTarget = (label: string, makeUrl: () => Promise<string>, slow = false): Target => ({
  label,
  slow,
  start: async () => {
    const url = await makeUrl()
    const child = await startServer(["troupe", url])
    const endpoint = Effect.runSync(Endpoint.parse(url))
    const scope = Effect.runSync(Scope.make())
    const client = await Effect.runPromise(Transport.makeClient(EchoRpc, endpoint).pipe(Scope.extend(scope)))
    // The loops run inside Effect, as an Effect program would make its calls.
    const run: Caller["run"] = (data, concurrency, stop) => {
      const samples: Array<number> = []
      let made = 0
      const loop = Effect.whileLoop({
        while: () => !stop(made),
        body: () =>
          Effect.suspend(() => {
            made++
            const start = now()
            return Effect.map(client.Echo({ data }), () => samples.push(now() - start))
          }),
        step: () => {}
      })
      return Effect.runPromise(
        Effect.all(Array.from({ length: concurrency }, () => loop), { concurrency: "unbounded", discard: true })
      ).then(() => samples)
    }
    return {
      caller: { run, close: () => Effect.runPromise(Scope.close(scope, Exit.void)) },
      stop: () => stopServer(child)
    }
  }
})

// Length-prefixed echo over one connection; answers come back in order, so a FIFO matches them.
const rawTarget: Target = {
  label: "raw Node TCP echo (limit)",
  start: async () => {
    const port = await freePort()
    const child = await startServer(["raw", String(port)])
    const socket = Net.createConnection({ host: "127.0.0.1", port, noDelay: true })
    await new Promise((resolve) => socket.once("connect", resolve))
    // An echo answers with exactly the bytes sent, so counting bytes is enough to match answers.
    const waiting: Array<{ readonly bytes: number; readonly resolve: () => void }> = []
    let received = 0
    socket.on("data", (chunk: Buffer) => {
      received += chunk.length
      while (waiting.length > 0 && received >= waiting[0]!.bytes) {
        const done = waiting.shift()!
        received -= done.bytes
        done.resolve()
      }
    })
    const call = (data: Uint8Array) =>
      new Promise<void>((resolve) => {
        const header = Buffer.alloc(4)
        header.writeUInt32BE(data.length)
        waiting.push({ bytes: 4 + data.length, resolve })
        socket.write(Buffer.concat([header, data]))
      })
    return { caller: promiseCaller(call, async () => void socket.destroy()), stop: () => stopServer(child) }
  }
}

const moleculerTarget: Target = {
  label: "Moleculer 0.14 TCP transporter",
  start: async () => {
    const { ServiceBroker } = await import("moleculer")
    const [serverPort, clientPort] = [await freePort(), await freePort()]
    const child = await startServer(["moleculer", String(serverPort), String(clientPort)])
    const broker = new ServiceBroker({
      nodeID: "client",
      logger: false,
      transporter: {
        type: "TCP",
        options: {
          udpDiscovery: false,
          port: clientPort,
          urls: [`127.0.0.1:${serverPort}/server`, `127.0.0.1:${clientPort}/client`]
        }
      }
    })
    await broker.start()
    await broker.waitForServices(["echo"], 10_000)
    // Moleculer's default serializer is JSON: the payload travels as a string of the same length.
    const call = (data: Uint8Array) => broker.call("echo.echo", { data: Buffer.from(data).toString("latin1") })
    return { caller: promiseCaller(call, () => broker.stop()), stop: () => stopServer(child) }
  }
}

// ---------------------------------------------------------------------------------------------
// measuring

const sequential = async (caller: Caller, calls: number): Promise<Measured["sequential"]> => {
  const data = new Uint8Array(16).fill(1)
  // Warm both processes up (the JIT needs a few thousand calls) the same way for every target:
  // a long-running server is warm, and a cold one measures the compiler, not the transport.
  const warmUntil = now() + warmupMs
  await caller.run(data, 1, (made) => made >= calls || now() >= warmUntil)
  await caller.run(data, 100, () => now() >= warmUntil + warmupMs / 2)
  const t0 = now()
  const samples = await caller.run(data, 1, (made) => made >= calls)
  const seconds = (now() - t0) / 1000
  return { ...latency(samples), perSecond: calls / seconds }
}

// Keeps `concurrency` calls in flight for the scenario's duration.
const throughput = async (caller: Caller, bytes: number, concurrency: number) => {
  const data = new Uint8Array(bytes).fill(7)
  const t0 = now()
  const deadline = t0 + scenarioMs
  const samples = await caller.run(data, concurrency, () => now() >= deadline)
  const seconds = (now() - t0) / 1000
  return { perSecond: samples.length / seconds, latency: latency(samples) }
}

const measure = async (target: Target): Promise<Measured> => {
  progress(name, `${target.label}: starting`)
  const { caller, stop } = await target.start()
  try {
    const seq = await sequential(caller, target.slow === true ? Math.min(500, sequentialCalls) : sequentialCalls)
    progress(name, `${target.label}: sequential p50 ${ms(seq.p50)}, ${rate(seq.perSecond)}`)
    const results = new Map<string, { perSecond: number; latency: Latency }>()
    for (const payload of payloads) {
      for (const n of inFlight) {
        const result = await throughput(caller, payload.bytes, n)
        results.set(`${payload.label}@${n}`, result)
        progress(name, `${target.label}: ${payload.label}, ${n} in flight: ${rate(result.perSecond)}`)
      }
    }
    return { sequential: seq, throughput: results }
  } finally {
    await caller.close()
    await stop()
  }
}

// ---------------------------------------------------------------------------------------------
// report

const run = async () => {
  const unixDir = tempDir("troupe-bench-unix-")
  const folderDir = tempDir("troupe-bench-folder-")
  const targets: ReadonlyArray<Target> = [
    rawTarget,
    troupeTarget("Troupe framed://", async () => `framed://127.0.0.1:${await freePort()}`),
    troupeTarget("Troupe tcp:// (plain @effect/rpc, msgpack)", async () => `tcp://127.0.0.1:${await freePort()}`),
    troupeTarget("Troupe unix://", async () => `unix://${Path.join(unixDir.dir, "bench.sock")}`),
    troupeTarget("Troupe folder://", async () => `folder://${folderDir.dir}`, true),
    moleculerTarget
  ]
  const measured: Array<readonly [Target, Measured]> = []
  try {
    for (const target of targets) measured.push([target, await measure(target)])
  } finally {
    unixDir.remove()
    folderDir.remove()
  }
  const cell = (m: Measured, key: string) => rate(m.throughput.get(key)!.perSecond)
  table(
    "RPC round trips between two processes: sequential latency (16 B payload)",
    ["transport", "p50", "p99", "calls/s"],
    measured.map(([t, m]) => [t.label, ms(m.sequential.p50), ms(m.sequential.p99), rate(m.sequential.perSecond)])
  )
  table(
    "Throughput (calls/s) by payload and calls in flight",
    ["transport", ...payloads.flatMap((p) => inFlight.map((n) => `${p.label} ×${n}`))],
    measured.map(([t, m]) => [t.label, ...payloads.flatMap((p) => inFlight.map((n) => cell(m, `${p.label}@${n}`)))])
  )
  table(
    "Latency with 100 in flight, 1 KB (p50 / p99)",
    ["transport", "p50", "p99"],
    measured.map(([t, m]) => {
      const l = m.throughput.get("1 KB@100")!.latency
      return [t.label, ms(l.p50), ms(l.p99)]
    })
  )
  const find = (prefix: string) => measured.find(([t]) => t.label.startsWith(prefix))?.[1]
  const framed = find("Troupe framed")!
  const moleculer = find("Moleculer")!
  const plain = find("Troupe tcp")!
  const raw = find("raw")!
  const folder = find("Troupe folder")!
  const framed100 = framed.throughput.get("16 B@100")!.perSecond
  const moleculer100 = moleculer.throughput.get("16 B@100")!.perSecond
  const folder100 = Math.max(...inFlight.map((n) => folder.throughput.get(`1 KB@${n}`)!.perSecond))
  notes([
    `framed sequential p50 ${ms(framed.sequential.p50)} (bar ≤ 100 µs): ${verdict(framed.sequential.p50 <= 0.1)}; ` +
    `raw TCP echo p50 ${ms(raw.sequential.p50)}`,
    `framed, 100 in flight, 16 B: ${rate(framed100)} (bar ≥ 60,000/s and ahead of Moleculer's ${rate(moleculer100)}): ` +
    `${verdict(framed100 >= 60_000 && framed100 > moleculer100)}; ${ratio(framed100, moleculer100)} Moleculer, ` +
    `${ratio(framed100, plain.throughput.get("16 B@100")!.perSecond)} plain @effect/rpc over tcp`,
    `folder: ${rate(folder100)} round trips (two messages each) at best, 1 KB, sequential p50 ${ms(folder.sequential.p50)} ` +
    `(bars ≥ 1,000/s and p50 ≤ 10 ms): ${verdict(folder100 >= 1000 && folder.sequential.p50 <= 10)}`
  ])
}

export const bench: Bench = {
  name,
  description: "RPC round trips over framed, tcp, unix and folder, against raw TCP and Moleculer",
  run
}
