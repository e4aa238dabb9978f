import * as Rpc from "@effect/rpc/Rpc"
import * as RpcClient from "@effect/rpc/RpcClient"
import * as RpcGroup from "@effect/rpc/RpcGroup"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import { spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import * as Endpoint from "../../../src/transport/Endpoint.js"
import * as SocketRpc from "../../../src/transport/socket/SocketRpc.js"
import * as Transport from "../../../src/transport/Transport.js"
import { canConnect, eventually, freePort, tempDir } from "../../integration/harness.js"

class TestRpc extends RpcGroup.make(
  Rpc.make("Echo", { payload: { text: Schema.String }, success: Schema.String }),
  Rpc.make("Count", { payload: { n: Schema.Int }, success: Schema.Int, stream: true }),
  Rpc.make("Bytes", { payload: { size: Schema.Int }, success: Schema.Uint8ArrayFromSelf })
) {}

const handlers = TestRpc.toLayer({
  Echo: ({ text }) => Effect.succeed(text.toUpperCase()),
  Count: ({ n }) => Stream.range(1, n),
  Bytes: ({ size }) => Effect.succeed(new Uint8Array(size).fill(7))
})

const serve = (endpoint: Endpoint.Endpoint) =>
  Layer.build(Transport.layerServer(TestRpc, endpoint).pipe(Layer.provide(handlers)))

const connect = (endpoint: Endpoint.Endpoint) =>
  Effect.flatMap(
    Layer.build(Transport.layerClientProtocol(endpoint)),
    (protocol) => RpcClient.make(TestRpc, { disableTracing: true }).pipe(Effect.provide(protocol))
  )

const conformance = (name: string, makeEndpoint: () => Promise<Endpoint.SocketEndpoint>) =>
  describe(name, () => {
    it.scopedLive("serves requests, streams and binary payloads", () =>
      Effect.gen(function*() {
        const endpoint = yield* Effect.promise(makeEndpoint)
        yield* serve(endpoint)
        const client = yield* connect(endpoint)
        assert.strictEqual(yield* client.Echo({ text: "hi" }), "HI")
        const counted = yield* Stream.runCollect(client.Count({ n: 100 }))
        assert.deepStrictEqual(Array.from(counted), Array.from({ length: 100 }, (_, i) => i + 1))
        const bytes = yield* client.Bytes({ size: 1 << 20 })
        assert.strictEqual(bytes.length, 1 << 20)
        assert.strictEqual(bytes[12345], 7)
        const many = yield* Effect.forEach(
          Array.from({ length: 200 }, (_, i) => `m${i}`),
          (text) => client.Echo({ text }),
          { concurrency: 50 }
        )
        assert.strictEqual(many[199], "M199")
      }))

    it.scopedLive("serves several clients at once", () =>
      Effect.gen(function*() {
        const endpoint = yield* Effect.promise(makeEndpoint)
        yield* serve(endpoint)
        const clients = yield* Effect.forEach([1, 2, 3], () => connect(endpoint))
        const answers = yield* Effect.forEach(clients, (client, i) => client.Echo({ text: `c${i}` }), {
          concurrency: "unbounded"
        })
        assert.deepStrictEqual(answers, ["C0", "C1", "C2"])
      }))

    it.live("reports a refused connection as a typed ConnectFailed", () =>
      Effect.gen(function*() {
        const endpoint = yield* Effect.promise(makeEndpoint)
        const error = yield* Effect.flip(SocketRpc.checkReachable(endpoint))
        assert.strictEqual(error._tag, "ConnectFailed")
        assert.include(["refused", "not-found"], error.reason)
        assert.include(error.message, Endpoint.format(endpoint))
      }))
  })

conformance("SocketRpc over tcp", async () => new Endpoint.TcpEndpoint({ host: "127.0.0.1", port: await freePort() }))
conformance("SocketRpc over unix", async () => new Endpoint.UnixEndpoint({ path: Path.join(tempDir(), "t.sock") }))

describe("SocketRpc listeners", () => {
  it.scopedLive("one layer graph serves tcp and unix endpoints side by side", () =>
    Effect.gen(function*() {
      const tcp = new Endpoint.TcpEndpoint({ host: "127.0.0.1", port: yield* Effect.promise(freePort) })
      const unix = new Endpoint.UnixEndpoint({ path: Path.join(tempDir(), "both.sock") })
      yield* Layer.build(
        Layer.mergeAll(Transport.layerServer(TestRpc, tcp), Transport.layerServer(TestRpc, unix)).pipe(
          Layer.provide(handlers)
        )
      )
      const viaTcp = yield* connect(tcp)
      const viaUnix = yield* connect(unix)
      assert.strictEqual(yield* viaUnix.Echo({ text: "unix" }), "UNIX")
      assert.strictEqual(yield* viaTcp.Echo({ text: "tcp" }), "TCP")
    }).pipe(Effect.timeout("10 seconds")))

  it.scopedLive("a unix socket file is owner-only and removed on close", () =>
    Effect.gen(function*() {
      const path = Path.join(tempDir(), "sub", "perm.sock")
      const endpoint = new Endpoint.UnixEndpoint({ path })
      yield* Effect.scoped(Effect.gen(function*() {
        yield* serve(endpoint)
        const stat = Fs.statSync(path)
        assert.isTrue(stat.isSocket())
        assert.strictEqual(stat.mode & 0o777, 0o600)
      }))
      assert.isFalse(Fs.existsSync(path))
    }))

  it.scopedLive("a stale unix socket left by a killed server is replaced", () =>
    Effect.gen(function*() {
      const path = Path.join(tempDir(), "stale.sock")
      // A real server process that dies without cleaning up leaves the socket file behind.
      const child = spawn(process.execPath, ["-e", `require("net").createServer().listen(${JSON.stringify(path)})`])
      yield* Effect.promise(() => eventually(async () => (await canConnect({ path })) || undefined, 10_000, "child"))
      child.kill("SIGKILL")
      yield* Effect.promise(() => new Promise((resolve) => child.once("exit", resolve)))
      assert.isTrue(Fs.statSync(path).isSocket())
      assert.isFalse(yield* Effect.promise(() => canConnect({ path })))
      const endpoint = new Endpoint.UnixEndpoint({ path })
      yield* serve(endpoint)
      const client = yield* connect(endpoint)
      assert.strictEqual(yield* client.Echo({ text: "fresh" }), "FRESH")
    }))

  it.scopedLive("a live unix socket or a regular file is never removed", () =>
    Effect.gen(function*() {
      const dir = tempDir()
      const live = new Endpoint.UnixEndpoint({ path: Path.join(dir, "live.sock") })
      yield* serve(live)
      const second = yield* Effect.flip(serve(live))
      assert.strictEqual(second._tag, "ListenFailed")
      assert.strictEqual(second.reason, "in-use-by-live-server")
      const file = Path.join(dir, "file.sock")
      Fs.writeFileSync(file, "keep me")
      const onFile = yield* Effect.flip(serve(new Endpoint.UnixEndpoint({ path: file })))
      assert.strictEqual(onFile.reason, "not-a-socket")
      assert.strictEqual(Fs.readFileSync(file, "utf8"), "keep me")
    }))

  it.scopedLive("a taken tcp port is a typed ListenFailed", () =>
    Effect.gen(function*() {
      const endpoint = new Endpoint.TcpEndpoint({ host: "127.0.0.1", port: yield* Effect.promise(freePort) })
      yield* serve(endpoint)
      const error = yield* Effect.flip(serve(endpoint))
      assert.strictEqual(error._tag, "ListenFailed")
      assert.strictEqual(error.reason, "address-in-use")
      assert.include(error.message, Endpoint.format(endpoint))
    }))
})
