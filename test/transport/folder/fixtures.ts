// Shared by the folder transport tests: the RPC group they serve, and a bounded wait on a condition.
import * as Rpc from "@effect/rpc/Rpc"
import * as RpcGroup from "@effect/rpc/RpcGroup"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"

/** The RPCs the folder tests call; test/transport/folder/peer.mjs defines the same group for child processes. */
export class TestRpc extends RpcGroup.make(
  Rpc.make("Echo", { payload: { text: Schema.String }, success: Schema.String }),
  Rpc.make("Count", { payload: { n: Schema.Int }, success: Schema.Int, stream: true }),
  Rpc.make("Bytes", { payload: { size: Schema.Int }, success: Schema.Uint8ArrayFromSelf }),
  Rpc.make("Upload", { payload: { data: Schema.Uint8ArrayFromSelf }, success: Schema.Int }),
  Rpc.make("Forever", { success: Schema.Int, stream: true })
) {}

/** The handlers, apart from Forever, which each test that uses it provides. */
export const handlers = {
  Echo: ({ text }: { readonly text: string }) => Effect.succeed(text.toUpperCase()),
  Count: ({ n }: { readonly n: number }) => Stream.range(1, n),
  Bytes: ({ size }: { readonly size: number }) => Effect.succeed(new Uint8Array(size).fill(7)),
  Upload: ({ data }: { readonly data: Uint8Array }) => Effect.succeed(data.reduce((sum, b) => sum + b, 0)),
  Forever: () => Stream.never
}

/** Polls `check` every 20 ms until it gives a value, failing after `timeoutMs`. */
export const waitFor = <A>(what: string, check: () => A | undefined, timeoutMs = 15_000): Effect.Effect<A> =>
  Effect.gen(function*() {
    const deadline = Date.now() + timeoutMs
    while (Date.now() < deadline) {
      const value = check()
      if (value !== undefined) return value
      yield* Effect.sleep("20 millis")
    }
    return yield* Effect.dieMessage(`timed out waiting for ${what}`)
  })
