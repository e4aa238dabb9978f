// Shared pieces of the framed transport tests: a test RpcGroup, a server and clients on real sockets.
import * as Rpc from "@effect/rpc/Rpc"
import * as RpcClient from "@effect/rpc/RpcClient"
import * as RpcGroup from "@effect/rpc/RpcGroup"
import * as RpcServer from "@effect/rpc/RpcServer"
import * as Effect from "effect/Effect"
import * as Logger from "effect/Logger"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import { Packr, Unpackr } from "msgpackr"
import * as Crypto from "node:crypto"
import * as Net from "node:net"
import * as Frame from "../../../src/protocol/Frame.js"
import * as Endpoint from "../../../src/transport/Endpoint.js"
import * as FramedWire from "../../../src/transport/framed/FramedWire.js"
import * as Handshake from "../../../src/transport/Handshake.js"
import * as FramedRpc from "../../../src/transport/framed/FramedRpc.js"
import type { Secret } from "../../../src/transport/Secret.js"
import { freePort } from "../../integration/harness.js"

export class TestRpc extends RpcGroup.make(
  Rpc.make("Echo", { payload: { text: Schema.String }, success: Schema.String }),
  Rpc.make("Count", {
    payload: { n: Schema.Int, chunk: Schema.optional(Schema.Int) },
    success: Schema.Int,
    stream: true
  }),
  Rpc.make("Bytes", { payload: { size: Schema.Int }, success: Schema.Uint8ArrayFromSelf }),
  Rpc.make("Upload", { payload: { data: Schema.Uint8ArrayFromSelf }, success: Schema.Int }),
  /** Counts its invocations per key, then answers after `millis`. */
  Rpc.make("Work", { payload: { key: Schema.String, millis: Schema.Int }, success: Schema.String })
) {}

/** How many times the server ran Work for each key. */
export type Invocations = Map<string, number>

export const handlers = (invocations: Invocations = new Map()) =>
  TestRpc.toLayer({
    Echo: ({ text }) => Effect.succeed(text.toUpperCase()),
    Count: ({ chunk, n }) => Stream.range(1, n, chunk),
    Bytes: ({ size }) => Effect.succeed(new Uint8Array(size).fill(7)),
    Upload: ({ data }) => Effect.succeed(data.length),
    Work: ({ key, millis }) =>
      Effect.sync(() => invocations.set(key, (invocations.get(key) ?? 0) + 1)).pipe(
        Effect.zipRight(Effect.sleep(millis)),
        Effect.as(key),
        // Interrupted runs are counted under "!key".
        Effect.onInterrupt(() => Effect.sync(() => invocations.set(`!${key}`, (invocations.get(`!${key}`) ?? 0) + 1)))
      )
  })

export const secret = (text: string): Secret => ({ key: new TextEncoder().encode(text), source: "test" })

/** Which RPC engine a fixture runs: Troupe's lean one (what Transport uses for framed://) or @effect/rpc's own. */
export type Engine = "lean" | "stock"

/** A framed RPC server on a free loopback port, for the test's scope. */
export const serve = (options: FramedRpc.ServerOptions = {}, invocations: Invocations = new Map(), engine: Engine = "lean") =>
  Effect.gen(function*() {
    const port = yield* Effect.promise(freePort)
    const endpoint = new Endpoint.FramedEndpoint({ host: "127.0.0.1", port })
    if (engine === "lean") {
      const server = yield* FramedRpc.makeServer(TestRpc, endpoint, options).pipe(Effect.provide(handlers(invocations)))
      return { endpoint, server, invocations }
    }
    const { protocol, server } = yield* FramedRpc.makeServerProtocol(endpoint, options)
    yield* RpcServer.make(TestRpc, { disableTracing: true }).pipe(
      Effect.provideService(RpcServer.Protocol, protocol),
      Effect.provide(handlers(invocations)),
      Effect.forkScoped
    )
    return { endpoint, server, invocations }
  })

/** A typed client over the framed transport, for the test's scope. */
export const connect = (endpoint: Endpoint.FramedEndpoint, options: FramedRpc.ClientOptions = {}, engine: Engine = "lean") =>
  Effect.gen(function*() {
    if (engine === "lean") {
      const { client, framed } = yield* FramedRpc.makeClient(TestRpc, endpoint, options)
      return { rpc: client, client: framed }
    }
    const { client, protocol } = yield* FramedRpc.makeClientProtocol(endpoint, options)
    const rpc = yield* RpcClient.make(TestRpc, { disableTracing: true }).pipe(
      Effect.provideService(RpcClient.Protocol, protocol)
    )
    return { rpc, client }
  })

/** A logger that keeps the messages, to assert on log lines. */
export const collectLogs = () => {
  const lines: Array<string> = []
  const layer = Logger.replace(Logger.defaultLogger, Logger.make(({ message }) => lines.push(String(message))))
  return { lines, layer }
}

/** Polls `check` every 10 ms until it holds, for at most `millis`. */
export const waitUntil = (check: () => boolean, millis = 5000, what = "condition") =>
  Effect.gen(function*() {
    const deadline = Date.now() + millis
    while (!check()) {
      if (Date.now() > deadline) return yield* Effect.dieMessage(`timed out waiting for ${what}`)
      yield* Effect.sleep("10 millis")
    }
  })

/** A hand-driven client: a real socket through the handshake and OPEN, then raw bytes both ways. */
export interface RawPeer {
  readonly socket: Net.Socket
  /** Frames received after ACCEPT. */
  readonly frames: Array<Frame.Frame>
  /** Resolves when the server closes the socket. */
  readonly closed: Promise<void>
}

/** Opens a raw session on a framed server (no secret). */
export const rawPeer = (endpoint: Endpoint.FramedEndpoint) =>
  Effect.gen(function*() {
    const socket = yield* Effect.acquireRelease(
      Effect.async<Net.Socket>((resume) => {
        const socket = Net.connect(endpoint.port, endpoint.host, () => resume(Effect.succeed(socket)))
        socket.on("error", () => {})
      }),
      (socket) => Effect.sync(() => socket.destroy())
    )
    const leftover = yield* Handshake.clientHandshake(socket)
    const frames: Array<Frame.Frame> = []
    const decoder = new Frame.FrameDecoder()
    const onChunk = (chunk: Uint8Array) => {
      const result = decoder.push(chunk)
      if (result._tag === "Right") frames.push(...result.right)
    }
    onChunk(leftover)
    socket.on("data", onChunk)
    const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()))
    socket.resume()
    socket.write(
      FramedWire.encodeOpen({
        resume: false,
        sessionId: Crypto.randomBytes(16).toString("hex"),
        received: 0,
        maxFrameBytes: Frame.defaultMaxFrameBytes
      })
    )
    yield* waitUntil(() => frames.some((frame) => frame.type === FramedWire.FramedType.Accept), 5000, "ACCEPT")
    frames.length = 0
    return { socket, frames, closed } satisfies RawPeer
  })

/** A DATA frame carrying msgpack-encoded messages from sequence number `first`. */
export const dataFrame = (first: number, messages: ReadonlyArray<unknown>, ack = 0): Uint8Array => {
  const packr = new Packr({ useRecords: false })
  const body = Buffer.concat(messages.map((message) => packr.pack(message)))
  const header = Buffer.alloc(16)
  FramedWire.writeU64(header, 0, ack)
  FramedWire.writeU64(header, 8, first)
  return Frame.encode(FramedWire.FramedType.Data, Buffer.concat([header, body]))
}

/** The messages in a DATA frame. */
export const dataMessages = (frame: Frame.Frame): Array<any> =>
  new Unpackr({ useRecords: false }).unpackMultiple(Buffer.from(frame.data.subarray(16))) as Array<any>

/** A raw Echo request in the framed transport's compact RPC form (`src/rpc/Wire.ts`). */
export const echoRequest = (id: number, text: string) => [0, id, "Echo", { text }]
