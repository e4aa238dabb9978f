// A folder RPC peer in its own process, built from dist/: `node peer.mjs server <root> [options JSON]`
// serves the folder tests' RPC group and prints "ready"; `node peer.mjs client <root> [options JSON]`
// connects, starts a Forever stream, prints "streaming" and waits to be killed.
import * as Rpc from "@effect/rpc/Rpc"
import * as RpcClient from "@effect/rpc/RpcClient"
import * as RpcGroup from "@effect/rpc/RpcGroup"
import * as RpcServer from "@effect/rpc/RpcServer"
import { Effect, Layer, Schema, Stream } from "effect"
import * as Endpoint from "../../../dist/transport/Endpoint.js"
import * as FolderRpc from "../../../dist/transport/folder/FolderRpc.js"

// The same group as fixtures.ts.
class TestRpc extends RpcGroup.make(
  Rpc.make("Echo", { payload: { text: Schema.String }, success: Schema.String }),
  Rpc.make("Count", { payload: { n: Schema.Int }, success: Schema.Int, stream: true }),
  Rpc.make("Bytes", { payload: { size: Schema.Int }, success: Schema.Uint8ArrayFromSelf }),
  Rpc.make("Upload", { payload: { data: Schema.Uint8ArrayFromSelf }, success: Schema.Int }),
  Rpc.make("Forever", { success: Schema.Int, stream: true })
) {}

const [mode, root, json] = process.argv.slice(2)
const endpoint = new Endpoint.FolderEndpoint({ path: root })
const options = json === undefined ? {} : JSON.parse(json)

const handlers = TestRpc.toLayer({
  Echo: ({ text }) => Effect.succeed(text.toUpperCase()),
  Count: ({ n }) => Stream.range(1, n),
  Bytes: ({ size }) => Effect.succeed(new Uint8Array(size).fill(7)),
  Upload: ({ data }) => Effect.succeed(data.reduce((sum, b) => sum + b, 0)),
  Forever: () => Stream.never
})

const server = Effect.gen(function*() {
  yield* Layer.build(
    RpcServer.layer(TestRpc, { disableTracing: true, concurrency: "unbounded" }).pipe(
      Layer.provide(FolderRpc.layerServerProtocol(endpoint, options)),
      Layer.provide(handlers)
    )
  )
  process.stdout.write("ready\n")
  return yield* Effect.never
})

const client = Effect.gen(function*() {
  const protocol = yield* Layer.build(FolderRpc.layerClientProtocol(endpoint, options))
  const rpc = yield* RpcClient.make(TestRpc, { disableTracing: true }).pipe(Effect.provide(protocol))
  yield* Effect.forkScoped(Stream.runDrain(rpc.Forever()))
  process.stdout.write("streaming\n")
  return yield* Effect.never
})

Effect.runFork(Effect.scoped(mode === "server" ? server : client))
process.on("SIGTERM", () => process.exit(0))
