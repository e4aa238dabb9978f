/** Scratch: the CPU cost of RpcClient alone, with a protocol that answers every request at once (no server). */
import * as Rpc from "@effect/rpc/Rpc"
import * as RpcClient from "@effect/rpc/RpcClient"
import * as RpcGroup from "@effect/rpc/RpcGroup"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"

class BenchRpc extends RpcGroup.make(Rpc.make("Echo", { payload: { text: Schema.String }, success: Schema.String })) {}

const program = Effect.gen(function*() {
  const protocol = yield* RpcClient.Protocol.make((write) =>
    Effect.succeed({
      send: (request) =>
        request._tag === "Request"
          ? write({ _tag: "Exit", requestId: request.id, exit: { _tag: "Success", value: (request.payload as any).text } })
          : Effect.void,
      supportsAck: true,
      supportsTransferables: false
    })
  )
  const client = yield* RpcClient.make(BenchRpc, { disableTracing: true }).pipe(Effect.provideService(RpcClient.Protocol, protocol))
  for (const conc of [1, 100]) {
    let done = 0
    const end = performance.now() + 2000
    const t0 = performance.now()
    yield* Effect.forEach(Array.from({ length: conc }), () => Effect.whileLoop({ while: () => performance.now() < end, body: () => client.Echo({ text: "x" }), step: () => { done++ } }), { concurrency: "unbounded", discard: true })
    console.log(`RpcClient alone, ${conc} in flight: ${(done / ((performance.now() - t0) / 1000)).toFixed(0)} calls/s (${((performance.now() - t0) * 1000 / done).toFixed(1)} µs per call)`)
  }
})
Effect.runPromise(Effect.scoped(program)).then(() => process.exit(0))
