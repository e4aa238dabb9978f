/**
 * Fuzzing of the frame decoder and of a live framed server.
 *
 * - `fuzz`: random and mutated byte streams, fed in random splits. The decoder must never throw,
 *   never hold more than one frame beyond its limit, and decode every valid stream exactly.
 * - `fuzzServer`: garbage connections to a framed RPC server over real sockets (random bytes before
 *   the handshake, after it, and mutated frames inside an open session), while a well-behaved client
 *   keeps calling. Every call must be answered correctly and the process must not fail.
 *
 * `npm run fuzz -- [frames] [seed] [connections]` runs a million frames and 2,000 connections; the
 * test suite runs slices.
 */
import * as Rpc from "@effect/rpc/Rpc"
import * as RpcClient from "@effect/rpc/RpcClient"
import * as RpcGroup from "@effect/rpc/RpcGroup"
import * as RpcServer from "@effect/rpc/RpcServer"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Schema from "effect/Schema"
import { Packr } from "msgpackr"
import * as Crypto from "node:crypto"
import * as Net from "node:net"
import { encode, FrameDecoder } from "../../src/protocol/Frame.js"
import * as Endpoint from "../../src/transport/Endpoint.js"
import * as FramedRpc from "../../src/transport/framed/FramedRpc.js"
import * as FramedWire from "../../src/transport/framed/FramedWire.js"
import * as Handshake from "../../src/transport/Handshake.js"

/** A small deterministic generator (mulberry32), so that a failure can be replayed by seed. */
export const random = (seed: number) => () => {
  seed |= 0
  seed = (seed + 0x6d2b79f5) | 0
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}

/** What one fuzz run saw. */
export interface FuzzReport {
  readonly frames: number
  readonly validStreams: number
  readonly rejectedStreams: number
  readonly maxPending: number
}

/** Runs about `frames` frames through fresh decoders; throws (with the seed) on the first violation. */
export const fuzz = (frames: number, seed: number, maxFrameBytes = 4096): FuzzReport => {
  const next = random(seed)
  const int = (n: number) => Math.floor(next() * n)
  let sent = 0
  let validStreams = 0
  let rejectedStreams = 0
  let maxPending = 0
  while (sent < frames) {
    const count = 1 + int(50)
    const expected = Array.from({ length: count }, () => {
      const data = new Uint8Array(int(next() < 0.9 ? 64 : maxFrameBytes - 2))
      for (let i = 0; i < data.length; i++) data[i] = int(256)
      return { type: int(65536) - 32768, data }
    })
    sent += count
    const stream = concatAll(expected.map((f) => encode(f.type, f.data)))
    const mutate = next() < 0.5
    if (mutate) {
      const edits = 1 + int(8)
      for (let i = 0; i < edits; i++) stream[int(stream.length)] = int(256)
    }
    const decoder = new FrameDecoder(maxFrameBytes)
    const got: Array<{ type: number; data: Uint8Array }> = []
    let rejected = false
    let offset = 0
    while (offset < stream.length) {
      const size = 1 + int(next() < 0.5 ? 16 : 4096)
      const result = decoder.push(stream.subarray(offset, offset + size))
      offset += size
      maxPending = Math.max(maxPending, decoder.pending)
      if (decoder.pending > maxFrameBytes + 4 + 4096) {
        throw new Error(`seed ${seed}: decoder holds ${decoder.pending} bytes, over the limit`)
      }
      if (Either.isLeft(result)) {
        rejected = true
        break
      }
      got.push(...result.right)
    }
    if (rejected) rejectedStreams++
    else validStreams++
    if (!mutate) {
      if (rejected || got.length !== expected.length) throw new Error(`seed ${seed}: a valid stream was not decoded whole`)
      for (let i = 0; i < got.length; i++) {
        const a = got[i]!
        const b = expected[i]!
        if (a.type !== b.type || !sameBytes(a.data, b.data)) throw new Error(`seed ${seed}: frame ${i} differs`)
      }
    }
  }
  return { frames: sent, validStreams, rejectedStreams, maxPending }
}

const sameBytes = (a: Uint8Array, b: Uint8Array) => a.length === b.length && a.every((x, i) => x === b[i])

const concatAll = (parts: ReadonlyArray<Uint8Array>): Uint8Array => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let offset = 0
  for (const part of parts) {
    out.set(part, offset)
    offset += part.length
  }
  return out
}

/** What a server fuzz run saw. */
export interface ServerFuzzReport {
  readonly connections: number
  /** Garbage connections by what they sent. */
  readonly kinds: Record<GarbageKind, number>
  /** Calls the well-behaved client made (all answered correctly). */
  readonly goodCalls: number
  /** Growth of the heap over the run, in MiB. */
  readonly heapGrowthMiB: number
}

type GarbageKind = "before-handshake" | "after-handshake" | "in-session"

/**
 * Opens `connections` garbage connections (8 at a time) to a framed server on 127.0.0.1 while a
 * client keeps calling Echo; rejects (with the seed) if a call fails or gets a wrong answer.
 */
export const fuzzServer = (connections: number, seed: number): Promise<ServerFuzzReport> =>
  Effect.runPromise(Effect.scoped(fuzzServerEffect(connections, seed)).pipe(
    Logger.withMinimumLogLevel(LogLevel.Error)
  ))

class FuzzRpc extends RpcGroup.make(Rpc.make("Echo", { payload: { text: Schema.String }, success: Schema.String })) {}

const fuzzServerEffect = (connections: number, seed: number) =>
  Effect.gen(function*() {
    const next = random(seed)
    const int = (n: number) => Math.floor(next() * n)
    const port = yield* Effect.promise(freePort)
    const endpoint = new Endpoint.FramedEndpoint({ host: "127.0.0.1", port })
    const maxFrameBytes = 64 * 1024
    const { protocol } = yield* FramedRpc.makeServerProtocol(endpoint, { maxFrameBytes, handshakeTimeout: "500 millis" })
    yield* RpcServer.make(FuzzRpc, { disableTracing: true }).pipe(
      Effect.provideService(RpcServer.Protocol, protocol),
      Effect.provide(FuzzRpc.toLayer({ Echo: ({ text }) => Effect.succeed(text) })),
      Effect.forkScoped
    )
    const client = yield* RpcClient.make(FuzzRpc, { disableTracing: true }).pipe(
      Effect.provideService(RpcClient.Protocol, (yield* FramedRpc.makeClientProtocol(endpoint)).protocol)
    )
    let running = true
    let goodCalls = 0
    const good = yield* Effect.fork(Effect.whileLoop({
      while: () => running,
      body: () =>
        Effect.flatMap(client.Echo({ text: `call ${goodCalls}` }), (answer) =>
          answer === `call ${goodCalls}`
            ? Effect.void
            : Effect.dieMessage(`seed ${seed}: call ${goodCalls} got ${JSON.stringify(answer)}`)),
      step: () => {
        goodCalls++
      }
    }))
    const heapBefore = process.memoryUsage().heapUsed
    const kinds: Record<GarbageKind, number> = { "before-handshake": 0, "after-handshake": 0, "in-session": 0 }
    const plans = Array.from({ length: connections }, () => {
      const kind = (["before-handshake", "after-handshake", "in-session"] as const)[int(3)]!
      kinds[kind]++
      return { kind, bytes: garbage(kind, next, maxFrameBytes) }
    })
    yield* Effect.forEach(plans, ({ bytes, kind }) => Effect.promise(() => sendGarbage(port, kind, bytes)), {
      concurrency: 8,
      discard: true
    })
    running = false
    const outcome = yield* good.await
    if (outcome._tag === "Failure") return yield* Effect.dieMessage(`seed ${seed}: the good client failed`)
    const last = yield* client.Echo({ text: "after the garbage" })
    if (last !== "after the garbage") return yield* Effect.dieMessage(`seed ${seed}: the last call got ${last}`)
    const heapGrowthMiB = (process.memoryUsage().heapUsed - heapBefore) / (1024 * 1024)
    return { connections, kinds, goodCalls, heapGrowthMiB } satisfies ServerFuzzReport
  })

// The bytes one garbage connection sends after its preamble.
const garbage = (kind: GarbageKind, next: () => number, maxFrameBytes: number): Uint8Array => {
  const int = (n: number) => Math.floor(next() * n)
  const randomBytes = (n: number) => Uint8Array.from({ length: n }, () => int(256))
  if (kind !== "in-session" || next() < 0.2) return randomBytes(1 + int(next() < 0.9 ? 64 : 4096))
  // Plausible frames of Troupe's types, then mutated: a valid DATA frame with a real request, a
  // DATA frame of random msgpack, random types, and lengths up to 2^31.
  const packr = new Packr({ useRecords: false })
  const frames: Array<Uint8Array> = []
  const count = 1 + int(6)
  for (let i = 0; i < count; i++) {
    const header = Buffer.alloc(16)
    FramedWire.writeU64(header, 0, int(3))
    FramedWire.writeU64(header, 8, 1 + int(3))
    const choice = int(4)
    const body = choice === 0
      ? packr.pack([0, int(1000), "Echo", { text: "x" }])
      : choice === 1
      ? packr.pack([int(6), int(10)])
      : randomBytes(int(200))
    const type = next() < 0.7 ? FramedWire.FramedType.Data : int(65536) - 32768
    frames.push(encode(type, Buffer.concat([header, body])))
  }
  const stream = Buffer.concat(frames)
  const edits = int(4)
  for (let i = 0; i < edits; i++) stream[int(stream.length)] = int(256)
  if (next() < 0.1) stream.writeInt32BE(next() < 0.5 ? -1 - int(1000) : maxFrameBytes + 1 + int(1 << 30), 0)
  return stream
}

// Connects, gets to the planned point, writes the garbage, and waits for the server to close (or closes after 1 s).
const sendGarbage = (port: number, kind: GarbageKind, bytes: Uint8Array): Promise<void> =>
  new Promise((resolve) => {
    const socket = Net.connect(port, "127.0.0.1")
    socket.on("error", () => {})
    const timer = setTimeout(() => socket.destroy(), 1000)
    socket.once("close", () => {
      clearTimeout(timer)
      resolve()
    })
    socket.once("connect", () => {
      if (kind === "before-handshake") {
        socket.resume() // read the greeting, so the close is seen
        return void socket.end(bytes)
      }
      Effect.runPromise(Handshake.clientHandshake(socket)).then(() => {
        socket.resume()
        if (kind === "in-session") {
          socket.write(
            FramedWire.encodeOpen({
              resume: false,
              sessionId: Crypto.randomBytes(16).toString("hex"),
              received: 0,
              maxFrameBytes: 1 << 20
            })
          )
        }
        socket.end(bytes)
      }, () => socket.destroy())
    })
  })

const freePort = (): Promise<number> =>
  new Promise((resolve) => {
    const server = Net.createServer()
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as Net.AddressInfo).port
      server.close(() => resolve(port))
    })
  })

const isMain = import.meta.url === `file://${process.argv[1]}`
if (isMain) {
  const total = Number(process.argv[2] ?? 1_000_000)
  const seed = Number(process.argv[3] ?? Date.now() % 100000)
  const connections = Number(process.argv[4] ?? 2000)
  const t0 = performance.now()
  const report = fuzz(total, seed)
  process.stdout.write(`decoder (seed ${seed}): ${JSON.stringify(report)} in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`)
  const t1 = performance.now()
  fuzzServer(connections, seed).then((serverReport) => {
    process.stdout.write(
      `server (seed ${seed}): ${JSON.stringify(serverReport)} in ${((performance.now() - t1) / 1000).toFixed(1)} s\n`
    )
    process.exit(0)
  }, (error) => {
    process.stderr.write(`server fuzz failed: ${error}\n`)
    process.exit(1)
  })
}
