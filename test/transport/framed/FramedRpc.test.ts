import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import * as Endpoint from "../../../src/transport/Endpoint.js"
import * as FramedRpc from "../../../src/transport/framed/FramedRpc.js"
import { freePort } from "../../integration/harness.js"
import { connect, secret, serve, waitUntil } from "./fixtures.js"

const MiB = 1024 * 1024

describe("FramedRpc", () => {
  it.scopedLive("serves requests, streams and concurrent calls", () =>
    Effect.gen(function*() {
      const { endpoint } = yield* serve()
      const { rpc } = yield* connect(endpoint)
      assert.strictEqual(yield* rpc.Echo({ text: "hi" }), "HI")
      const counted = yield* Stream.runCollect(rpc.Count({ n: 1000 }))
      assert.deepStrictEqual(Array.from(counted), Array.from({ length: 1000 }, (_, i) => i + 1))
      const many = yield* Effect.forEach(
        Array.from({ length: 500 }, (_, i) => `m${i}`),
        (text) => rpc.Echo({ text }),
        { concurrency: 100 }
      )
      assert.deepStrictEqual(many, Array.from({ length: 500 }, (_, i) => `M${i}`))
    }))

  it.scopedLive("carries 16 MiB payloads both ways when the frame limit allows, and refuses larger ones clearly", () =>
    Effect.gen(function*() {
      const options = { maxFrameBytes: 17 * MiB }
      const { endpoint } = yield* serve(options)
      const { rpc } = yield* connect(endpoint, options)
      const down = yield* rpc.Bytes({ size: 16 * MiB })
      assert.strictEqual(down.length, 16 * MiB)
      assert.strictEqual(down[16 * MiB - 1], 7)
      assert.strictEqual(yield* rpc.Upload({ data: new Uint8Array(16 * MiB).fill(3) }), 16 * MiB)
      // Over the peer's limit: a typed error for that call only, and the session carries on.
      const tooBig = yield* Effect.flip(rpc.Upload({ data: new Uint8Array(18 * MiB) }))
      assert.strictEqual(tooBig._tag, "RpcClientError")
      assert.include(tooBig.message, "over the peer's frame limit")
      const replyTooBig = yield* Effect.exit(rpc.Bytes({ size: 18 * MiB }))
      assert.isTrue(replyTooBig._tag === "Failure" && String(replyTooBig.cause).includes("frame limit"))
      assert.strictEqual(yield* rpc.Echo({ text: "still here" }), "STILL HERE")
    }))

  it.scopedLive("serves several clients at once", () =>
    Effect.gen(function*() {
      const { endpoint } = yield* serve()
      const clients = yield* Effect.forEach([1, 2, 3], () => connect(endpoint))
      const answers = yield* Effect.forEach(clients, ({ rpc }, i) => rpc.Echo({ text: `c${i}` }), {
        concurrency: "unbounded"
      })
      assert.deepStrictEqual(answers, ["C0", "C1", "C2"])
    }))

  it.scopedLive("authenticates with the right secret; a wrong or missing one is ConnectFailed auth-failed", () =>
    Effect.gen(function*() {
      const { endpoint } = yield* serve({ secret: secret("the right secret, 32 bytes long!") })
      const { rpc } = yield* connect(endpoint, { secret: secret("the right secret, 32 bytes long!") })
      assert.strictEqual(yield* rpc.Echo({ text: "authenticated" }), "AUTHENTICATED")
      const wrong = yield* Effect.flip(connect(endpoint, { secret: secret("the wrong secret, 32 bytes long!") }))
      assert.strictEqual(wrong._tag, "ConnectFailed")
      assert.strictEqual(wrong.reason, "auth-failed")
      assert.include(wrong.message, "authentication failed")
      const missing = yield* Effect.flip(connect(endpoint))
      assert.strictEqual(missing.reason, "auth-failed")
      assert.include(missing.message, "--secret-file or TROUPE_SECRET_FILE")
    }))

  it.scopedLive("closing a client ends its session on the server at once, interrupting its requests", () =>
    Effect.gen(function*() {
      const { endpoint, invocations, server } = yield* serve()
      yield* Effect.scoped(Effect.gen(function*() {
        const { rpc } = yield* connect(endpoint)
        yield* Effect.fork(rpc.Work({ key: "running", millis: 60_000 }))
        yield* waitUntil(() => invocations.get("running") === 1, 5000, "the request to start")
        assert.strictEqual(server.clientIds().size, 1)
      }))
      yield* waitUntil(() => invocations.get("!running") === 1, 5000, "the request to be interrupted")
      assert.strictEqual(server.clientIds().size, 0)
    }))

  it.scopedLive("a taken port is a typed ListenFailed", () =>
    Effect.gen(function*() {
      const { endpoint } = yield* serve()
      const error = yield* Effect.flip(Layer.build(FramedRpc.layerServerProtocol(endpoint)))
      assert.strictEqual(error._tag, "ListenFailed")
      assert.strictEqual(error.reason, "address-in-use")
      assert.include(error.message, "framed://127.0.0.1:")
    }))

  it.live("reports a refused first connection as ConnectFailed refused", () =>
    Effect.gen(function*() {
      const endpoint = new Endpoint.FramedEndpoint({ host: "127.0.0.1", port: yield* Effect.promise(freePort) })
      const error = yield* Effect.flip(Effect.scoped(connect(endpoint)))
      assert.strictEqual(error._tag, "ConnectFailed")
      assert.strictEqual(error.reason, "refused")
      assert.include(error.message, "framed://127.0.0.1:")
    }))
})
