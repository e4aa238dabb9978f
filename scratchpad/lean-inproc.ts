/**
 * Scratch: the lean engine's CPU per call with no socket: a lean client and a lean server in one
 * process, joined by an in-memory session that packs and unpacks every message with msgpack, as
 * the framed session does, and delivers on setImmediate. 100 calls in flight inside Effect.
 */
import * as Effect from "effect/Effect"
import * as Scope from "effect/Scope"
import { Packr, Unpackr } from "msgpackr"
import * as LeanClient from "../src/rpc/LeanClient.js"
import * as LeanServer from "../src/rpc/LeanServer.js"
import { EchoRpc } from "../test/bench/transport-rpc.js"

const packr = new Packr({ useRecords: false })
const unpackr = new Unpackr({ useRecords: false })

// One direction of a session: messages packed on send, delivered in a batch on the next turn.
const pipe = (deliver: (messages: ReadonlyArray<unknown>) => void) => {
  let queued: Array<Uint8Array> = []
  const flush = () => {
    const batch = Buffer.concat(queued)
    queued = []
    deliver(unpackr.unpackMultiple(batch) as Array<unknown>)
  }
  return (message: unknown) => {
    if (queued.length === 0) setImmediate(flush)
    queued.push(packr.pack(message))
    return undefined
  }
}

const scope = Effect.runSync(Scope.make())
let server!: LeanServer.SessionEvents
let client!: LeanClient.LeanClient<any>
const toServer = pipe((messages) => server.onMessages(1, messages))
const toClient = pipe((messages) => client.onMessages(messages))
server = await Effect.runPromise(
  LeanServer.make(EchoRpc, { send: (_id, message) => toClient(message) }).pipe(
    Effect.provide(EchoRpc.toLayer({ Echo: ({ data }) => Effect.succeed(data) })),
    Scope.extend(scope)
  )
)
client = await Effect.runPromise(LeanClient.make(EchoRpc, { send: toServer, failure: () => undefined }).pipe(Scope.extend(scope)))
const rpc = client.client as unknown as { readonly Echo: (payload: { readonly data: Uint8Array }) => Effect.Effect<Uint8Array> }
const data = new Uint8Array(16).fill(1)
for (let round = 0; round < 5; round++) {
  let n = 0
  const t0 = performance.now()
  const c0 = process.cpuUsage()
  const end = t0 + 1000
  const loop = Effect.whileLoop({ while: () => performance.now() < end, body: () => rpc.Echo({ data }), step: () => { n++ } })
  await Effect.runPromise(Effect.all(Array.from({ length: 100 }, () => loop), { concurrency: "unbounded", discard: true }))
  const c1 = process.cpuUsage(c0)
  console.log(`${(n / ((performance.now() - t0) / 1000)).toFixed(0)} calls/s, ${((c1.user + c1.system) / n).toFixed(2)} µs CPU per call (client + server + msgpack)`)
}
process.exit(0)
