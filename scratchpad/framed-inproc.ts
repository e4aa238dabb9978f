/**
 * Scratch: the cost of @effect/rpc itself, client and server in one process.
 * `node --import tsx scratchpad/framed-inproc.ts [direct|yield|inbox|framed]`: a direct in-memory protocol;
 * the same with one Effect.yieldNow per request; with the framed transport's Inbox hop both ways; the
 * framed transport over loopback. CONC=1,100 and MILLIS=2000 by default.
 */
import * as Rpc from "@effect/rpc/Rpc"
import * as RpcClient from "@effect/rpc/RpcClient"
import * as RpcGroup from "@effect/rpc/RpcGroup"
import * as RpcServer from "@effect/rpc/RpcServer"
import * as Effect from "effect/Effect"
import * as Mailbox from "effect/Mailbox"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as Endpoint from "../src/transport/Endpoint.js"
import * as FramedRpc from "../src/transport/framed/FramedRpc.js"
import { Inbox } from "../src/transport/framed/Inbox.js"

class BenchRpc extends RpcGroup.make(Rpc.make("Echo", { payload: { text: Schema.String }, success: Schema.String })) {}
const handlers = BenchRpc.toLayer({ Echo: ({ text }) => Effect.succeed(text) })

const program = Effect.gen(function*() {
  let toServer!: (clientId: number, m: any) => Effect.Effect<void>
  let toClient!: (m: any) => Effect.Effect<void>
  const serverProtocol = yield* RpcServer.Protocol.make((write) => {
    toServer = write
    return Effect.succeed({
      disconnects: Effect.runSync(Mailbox.make<number>()),
      send: (_id, response) => Effect.suspend(() => toClient(response)),
      end: () => Effect.void,
      clientIds: Effect.succeed(new Set([0])),
      initialMessage: Effect.succeed(Option.none()),
      supportsAck: true, supportsTransferables: false, supportsSpanPropagation: false
    })
  })
  const clientProtocol = yield* RpcClient.Protocol.make((write) => {
    toClient = write
    return Effect.succeed({
      send: (request) =>
        process.argv[2] === "yield"
          ? Effect.zipRight(Effect.yieldNow(), Effect.suspend(() => toServer(0, request)))
          : Effect.suspend(() => toServer(0, request)),
      supportsAck: true,
      supportsTransferables: false
    })
  })
  yield* RpcServer.make(BenchRpc, { disableTracing: true }).pipe(Effect.provideService(RpcServer.Protocol, serverProtocol), Effect.provide(handlers), Effect.forkScoped)
  let protocol: RpcClient.Protocol["Type"] = clientProtocol
  if (process.argv[2] === "framed") {
    const endpoint = new Endpoint.FramedEndpoint({ host: "127.0.0.1", port: 38000 + Math.floor(Math.random() * 1000) })
    const { protocol: server } = yield* FramedRpc.makeServerProtocol(endpoint)
    yield* RpcServer.make(BenchRpc, { disableTracing: true }).pipe(Effect.provideService(RpcServer.Protocol, server), Effect.provide(handlers), Effect.forkScoped)
    protocol = (yield* FramedRpc.makeClientProtocol(endpoint)).protocol
  }
  if (process.argv[2] === "inbox") {
    // The direct protocol with the framed transport's Inbox hop in both directions, no sockets.
    const toServerInbox = new Inbox<any>()
    const toClientInbox = new Inbox<any>()
    let serverWrite!: (clientId: number, m: any) => Effect.Effect<void>
    let clientWrite!: (m: any) => Effect.Effect<void>
    const server = yield* RpcServer.Protocol.make((write) => {
      serverWrite = write
      return Effect.succeed({
        disconnects: Effect.runSync(Mailbox.make<number>()),
        send: (_id, response) => Effect.sync(() => toClientInbox.offer(response)),
        end: () => Effect.void,
        clientIds: Effect.succeed(new Set([0])),
        initialMessage: Effect.succeed(Option.none()),
        supportsAck: true, supportsTransferables: false, supportsSpanPropagation: false
      })
    })
    yield* RpcServer.make(BenchRpc, { disableTracing: true }).pipe(Effect.provideService(RpcServer.Protocol, server), Effect.provide(handlers), Effect.forkScoped)
    protocol = yield* RpcClient.Protocol.make((write) => {
      clientWrite = write
      return Effect.succeed({ send: (request) => Effect.sync(() => toServerInbox.offer(request)), supportsAck: true, supportsTransferables: false })
    })
    yield* Effect.forkScoped(toServerInbox.consume((m) => serverWrite(0, m)))
    yield* Effect.forkScoped(toClientInbox.consume((m) => clientWrite(m)))
  }
  const client = yield* RpcClient.make(BenchRpc, { disableTracing: true }).pipe(Effect.provideService(RpcClient.Protocol, protocol))
  for (let i = 0; i < 5000; i++) yield* client.Echo({ text: "x" })
  for (const conc of (process.env.CONC ?? "1,100").split(",").map(Number)) {
    let done = 0
    const end = performance.now() + Number(process.env.MILLIS ?? 2000)
    const t0 = performance.now()
    yield* Effect.forEach(Array.from({ length: conc }), () => Effect.whileLoop({ while: () => performance.now() < end, body: () => client.Echo({ text: "x" }), step: () => { done++ } }), { concurrency: "unbounded", discard: true })
    console.log(`in-process, ${conc} in flight: ${(done / ((performance.now() - t0) / 1000)).toFixed(0)} req/s (${((performance.now() - t0) * 1000 / done).toFixed(1)} µs per call, both sides)`)
  }
})
Effect.runPromise(Effect.scoped(program)).then(() => process.exit(0))
