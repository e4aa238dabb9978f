/** Scratch: the CPU cost of RpcServer alone: requests fed in batches of 100 by a protocol, replies counted and dropped. */
import * as Rpc from "@effect/rpc/Rpc"
import * as RpcGroup from "@effect/rpc/RpcGroup"
import * as RpcServer from "@effect/rpc/RpcServer"
import * as Effect from "effect/Effect"
import * as Mailbox from "effect/Mailbox"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"

class BenchRpc extends RpcGroup.make(Rpc.make("Echo", { payload: { text: Schema.String }, success: Schema.String })) {}
const handlers = BenchRpc.toLayer({ Echo: ({ text }) => Effect.succeed(text) })

const program = Effect.gen(function*() {
  let writeRequest!: (clientId: number, message: any) => Effect.Effect<void>
  let replies = 0
  let wake: () => void = () => {}
  const protocol = yield* RpcServer.Protocol.make((write) => {
    writeRequest = write
    return Effect.succeed({
      disconnects: Effect.runSync(Mailbox.make<number>()),
      send: () =>
        Effect.sync(() => {
          if (++replies % 100 === 0) wake()
        }),
      end: () => Effect.void,
      clientIds: Effect.succeed(new Set([0])),
      initialMessage: Effect.succeed(Option.none()),
      supportsAck: true,
      supportsTransferables: false,
      supportsSpanPropagation: false
    })
  })
  yield* RpcServer.make(BenchRpc, { disableTracing: true }).pipe(
    Effect.provideService(RpcServer.Protocol, protocol),
    Effect.provide(handlers),
    Effect.forkScoped
  )
  yield* Effect.sleep("50 millis")
  let id = 0
  const end = performance.now() + 3000
  const t0 = performance.now()
  while (performance.now() < end) {
    const replied = new Promise<void>((resolve) => {
      wake = resolve
    })
    for (let i = 0; i < 100; i++) {
      yield* writeRequest(0, { _tag: "Request", id: String(id++), tag: "Echo", payload: { text: "x" }, headers: [] })
    }
    yield* Effect.promise(() => replied)
  }
  console.log(`RpcServer alone, batches of 100: ${(replies / ((performance.now() - t0) / 1000)).toFixed(0)} requests/s (${((performance.now() - t0) * 1000 / replies).toFixed(1)} µs per request)`)
})
Effect.runPromise(Effect.scoped(program)).then(() => process.exit(0))
