/**
 * Net Queue: items through queue nodes running as separate processes (`--role=queue`).
 *  - One hop: a producer writes ENQUEUE frames (1 item, or 100 items, per frame) to a node; a
 *    consumer under that node counts the items. The anchor is the same bytes through a raw TCP relay
 *    process (no parsing), in the same run. Items/s, and the latency of one item at a time
 *    (producer write → consumer get), p50/p99.
 *  - A tree of 1 → 2 → 4 nodes (7 processes): a producer puts at the root, a consumer under each of
 *    the 4 leaves; items/s end to end, and p50/p99 from the root put to a leaf consumer's get.
 * Producer and consumers live in this process; the nodes and the relay are children.
 */
import { spawn } from "node:child_process"
import type { ChildProcess } from "node:child_process"
import * as Net from "node:net"
import * as Path from "node:path"
import { NetQueueClient } from "../../src/netqueue/Client.js"
import * as Wire from "../../src/netqueue/Wire.js"
import type { Bench } from "./lib.js"
import { freePort, latency, ms, notes, now, progress, rate, table, verdict } from "./lib.js"

const name = "netqueue"
const env = (key: string, fallback: number) => Number(process.env[key] ?? fallback)
const singleItems = env("BENCH_NQ_SINGLE", 200_000)
const batchedItems = env("BENCH_NQ_BATCHED", 2_000_000)
const latencySamples = env("BENCH_NQ_LATENCY", 3000)
const item = "item-0123456789a" // 16 bytes

const distBench = Path.resolve(import.meta.dirname)
const cli = Path.resolve(distBench, "../../../dist/node.js")

const waitListening = async (port: number): Promise<void> => {
  for (let i = 0; i < 400; i++) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = Net.connect(port, "127.0.0.1")
      socket.once("connect", () => {
        socket.destroy()
        resolve(true)
      })
      socket.once("error", () => resolve(false))
    })
    if (ok) return
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
  throw new Error(`nothing listening on ${port}`)
}

const startNode = async (parent?: number): Promise<{ readonly port: number; readonly child: ChildProcess }> => {
  const port = await freePort()
  const args = [cli, "--role=queue", "--listen", `framed://127.0.0.1:${port}`, "--window", "20000", "--capacity", "200000"]
  if (parent !== undefined) args.push("--parent", `framed://127.0.0.1:${parent}`)
  const child = spawn(process.execPath, args, { stdio: ["ignore", "ignore", "ignore"] })
  await waitListening(port)
  return { port, child }
}

const startRelay = async (): Promise<{ readonly port: number; readonly child: ChildProcess }> => {
  const port = await freePort()
  const child = spawn(process.execPath, [Path.join(distBench, "netqueue-relay.js"), String(port)], { stdio: ["pipe", "pipe", "inherit"] })
  await new Promise<void>((resolve) => child.stdout!.on("data", (chunk: Buffer) => chunk.toString().includes("ready") && resolve()))
  return { port, child }
}

const stop = (child: ChildProcess): Promise<void> =>
  new Promise((resolve) => {
    if (child.exitCode !== null) return resolve()
    child.once("exit", () => resolve())
    if (child.stdin) child.stdin.end()
    child.kill("SIGTERM")
    setTimeout(() => child.kill("SIGKILL"), 3000).unref()
  })

const rawSocket = (port: number): Promise<Net.Socket> =>
  new Promise((resolve, reject) => {
    const socket = Net.connect({ host: "127.0.0.1", port, noDelay: true })
    socket.once("connect", () => resolve(socket))
    socket.once("error", reject)
  })

// A raw producer: CONN and a producer STATUS, then frames written with backpressure.
const producer = async (port: number): Promise<Net.Socket> => {
  const socket = await rawSocket(port)
  socket.write(Buffer.concat([Wire.conn, Wire.encodeStatus("producer")]))
  socket.on("data", (chunk) => {
    // Answer PINGs so the node keeps us; nothing else comes to a producer.
    for (let i = 0; i + 6 <= chunk.length; i += 6) if (chunk.readInt16BE(i + 4) === 4) socket.write(Wire.pong)
  })
  return socket
}

const writeAll = async (socket: Net.Socket, frames: Buffer, times: number): Promise<void> => {
  for (let i = 0; i < times; i++) {
    if (!socket.write(frames)) await new Promise((resolve) => socket.once("drain", resolve))
  }
}

// A consumer whose items are counted as they arrive (acknowledged on return), waking `onCount`.
class CountingConsumer extends NetQueueClient {
  count = 0
  onCount: () => void = () => {}
  constructor() {
    super({ configFile: "", window: 20000 })
  }
  override handleServerEnqueue(items: ReadonlyArray<string>): void {
    this.count += items.length
    this.onCount()
  }
}

const until = (consumer: CountingConsumer, target: number): Promise<void> =>
  new Promise((resolve) => {
    if (consumer.count >= target) return resolve()
    consumer.onCount = () => {
      if (consumer.count >= target) resolve()
    }
  })

// Frames of `perFrame` items, enough of them to make a ~256 KiB write.
const chunkOf = (perFrame: number): { readonly bytes: Buffer; readonly items: number } => {
  const frame = Wire.encodeEnqueue(Array.from({ length: perFrame }, () => item))
  const frames = Math.max(1, Math.floor(256 * 1024 / frame.length))
  return { bytes: Buffer.concat(Array.from({ length: frames }, () => frame)), items: frames * perFrame }
}

const hopThroughput = async (port: number, perFrame: number, total: number): Promise<number> => {
  const consumer = new CountingConsumer()
  await consumer.connect("127.0.0.1", port)
  const socket = await producer(port)
  const chunk = chunkOf(perFrame)
  const times = Math.ceil(total / chunk.items)
  const target = times * chunk.items
  const t0 = now()
  const done = until(consumer, target)
  await writeAll(socket, chunk.bytes, times)
  await done
  const elapsed = now() - t0
  socket.destroy()
  await consumer.close()
  return target / (elapsed / 1000)
}

const relayThroughput = async (perFrame: number, total: number): Promise<number> => {
  const relay = await startRelay()
  try {
    const sink = await rawSocket(relay.port)
    await new Promise((resolve) => setTimeout(resolve, 50)) // the relay must see the sink first
    const socket = await rawSocket(relay.port)
    const chunk = chunkOf(perFrame)
    const times = Math.ceil(total / chunk.items)
    const bytes = times * chunk.bytes.length
    let received = 0
    const t0 = now()
    const done = new Promise<void>((resolve) =>
      sink.on("data", (data) => {
        received += data.length
        if (received >= bytes) resolve()
      })
    )
    await writeAll(socket, chunk.bytes, times)
    await done
    const elapsed = now() - t0
    socket.destroy()
    sink.destroy()
    return times * chunk.items / (elapsed / 1000)
  } finally {
    await stop(relay.child)
  }
}

// One item at a time: write one ENQUEUE, wait for the consumer's get.
const hopLatency = async (port: number, samples: number): Promise<Array<number>> => {
  const consumer = new NetQueueClient({ configFile: "" })
  await consumer.connect("127.0.0.1", port)
  const socket = await producer(port)
  const frame = Wire.encodeEnqueue([item])
  const out: Array<number> = []
  for (let i = 0; i < samples; i++) {
    const t0 = now()
    socket.write(frame)
    await consumer.get(true, 5000)
    out.push(now() - t0)
  }
  socket.destroy()
  await consumer.close()
  return out
}

const relayLatency = async (samples: number): Promise<Array<number>> => {
  const relay = await startRelay()
  try {
    const sink = await rawSocket(relay.port)
    await new Promise((resolve) => setTimeout(resolve, 50))
    const socket = await rawSocket(relay.port)
    const frame = Wire.encodeEnqueue([item])
    let wake: () => void = () => {}
    sink.on("data", () => wake())
    const out: Array<number> = []
    for (let i = 0; i < samples; i++) {
      const t0 = now()
      const arrived = new Promise<void>((resolve) => (wake = resolve))
      socket.write(frame)
      await arrived
      out.push(now() - t0)
    }
    socket.destroy()
    sink.destroy()
    return out
  } finally {
    await stop(relay.child)
  }
}

const tree = async (): Promise<{ readonly perSecond: number; readonly samples: Array<number> }> => {
  const root = await startNode()
  const middles = [await startNode(root.port), await startNode(root.port)]
  const leaves = [
    await startNode(middles[0]!.port),
    await startNode(middles[0]!.port),
    await startNode(middles[1]!.port),
    await startNode(middles[1]!.port)
  ]
  const nodes = [root, ...middles, ...leaves]
  try {
    const consumers = await Promise.all(leaves.map(async (leaf) => {
      const consumer = new CountingConsumer()
      await consumer.connect("127.0.0.1", leaf.port)
      return consumer
    }))
    // The links come up with backoff: wait until an item reaches a leaf.
    const socket = await producer(root.port)
    const total = () => consumers.reduce((sum, c) => sum + c.count, 0)
    for (let i = 0; i < 400 && total() === 0; i++) {
      socket.write(Wire.encodeEnqueue([item]))
      await new Promise((resolve) => setTimeout(resolve, 25))
    }
    const warm = await new Promise<number>((resolve) => setTimeout(() => resolve(total()), 200))
    const chunk = chunkOf(100)
    const times = Math.ceil(batchedItems / 2 / chunk.items)
    const target = warm + times * chunk.items
    const t0 = now()
    const done = new Promise<void>((resolve) => {
      for (const consumer of consumers) {
        consumer.onCount = () => {
          if (total() >= target) resolve()
        }
      }
    })
    await writeAll(socket, chunk.bytes, times)
    await done
    const perSecond = (times * chunk.items) / ((now() - t0) / 1000)
    // Latency: one item at a time, root put → whichever leaf consumer gets it.
    const samples: Array<number> = []
    for (let i = 0; i < latencySamples / 3; i++) {
      const before = total()
      const t1 = now()
      const arrived = new Promise<void>((resolve) => {
        for (const consumer of consumers) consumer.onCount = () => total() > before && resolve()
      })
      socket.write(Wire.encodeEnqueue([item]))
      await arrived
      samples.push(now() - t1)
    }
    socket.destroy()
    await Promise.all(consumers.map((c) => c.close()))
    return { perSecond, samples }
  } finally {
    await Promise.all(nodes.map((n) => stop(n.child)))
  }
}

const run = async (): Promise<void> => {
  const node = await startNode()
  let single: number, batched: number, hop: Array<number>
  try {
    progress(name, `one hop, 1 item per ENQUEUE, ${singleItems} items`)
    single = await hopThroughput(node.port, 1, singleItems)
    progress(name, `one hop, 100 items per ENQUEUE, ${batchedItems} items`)
    batched = await hopThroughput(node.port, 100, batchedItems)
    progress(name, `one hop latency, ${latencySamples} items one at a time`)
    hop = await hopLatency(node.port, latencySamples)
  } finally {
    await stop(node.child)
  }
  progress(name, "raw TCP relay, the same bytes")
  const rawSingle = await relayThroughput(1, singleItems)
  const rawBatched = await relayThroughput(100, batchedItems)
  const rawHop = await relayLatency(latencySamples)
  progress(name, "tree 1 → 2 → 4 (7 processes)")
  const treeResult = await tree()
  const h = latency(hop)
  const r = latency(rawHop)
  const t = latency(treeResult.samples)
  table("Net Queue: items through one node (separate process)", ["path", "items/s, 1 per ENQUEUE", "items/s, 100 per ENQUEUE", "p50", "p99"], [
    ["Troupe queue node (producer → node → consumer)", rate(single), rate(batched), ms(h.p50), ms(h.p99)],
    ["raw TCP relay of the same bytes (limit)", rate(rawSingle), rate(rawBatched), ms(r.p50), ms(r.p99)]
  ])
  table("Net Queue: tree of 1 → 2 → 4 nodes (7 processes)", ["measure", "value"], [
    ["items/s end to end (100 per ENQUEUE at the root, 4 leaf consumers)", rate(treeResult.perSecond)],
    ["root put → leaf get, p50", ms(t.p50)],
    ["root put → leaf get, p99", ms(t.p99)]
  ])
  notes([
    `bar ≥ 200,000 items/s through one hop, batched: ${verdict(batched >= 200_000)} (${rate(batched)})`,
    `bar p50 hop latency ≤ 100 µs: ${verdict(h.p50 <= 0.1)} (${ms(h.p50)}; the raw relay's p50 is ${ms(r.p50)})`,
    "latency is one item at a time: producer write → node → consumer get, two loopback legs, as the relay"
  ])
}

export const bench: Bench = {
  name,
  description: "Net Queue items/s and latency through one node and a 1 → 2 → 4 tree, against a raw TCP relay",
  run
}
