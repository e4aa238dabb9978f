import type * as Rpc from "@effect/rpc/Rpc"
import * as RpcClient from "@effect/rpc/RpcClient"
import type * as RpcGroup from "@effect/rpc/RpcGroup"
import * as RpcSerialization from "@effect/rpc/RpcSerialization"
import * as RpcServer from "@effect/rpc/RpcServer"
import { assert, describe, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as fs from "node:fs"
import * as path from "node:path"
import * as Endpoint from "../../../src/transport/Endpoint.js"
import type { ListenFailed } from "../../../src/transport/Errors.js"
import { encodeEnvelope, fileName } from "../../../src/transport/folder/FolderChannel.js"
import * as FolderRpc from "../../../src/transport/folder/FolderRpc.js"
import { tempDir } from "../../integration/harness.js"
import { handlers as handlersImpl, TestRpc, waitFor } from "./fixtures.js"

const fast = { rescanMs: 50, heartbeatMs: 100, peerTimeoutMs: 1000 } as const

const serve = (endpoint: Endpoint.FolderEndpoint, layer: Layer.Layer<Rpc.ToHandler<RpcGroup.Rpcs<typeof TestRpc>>> = handlers) =>
  Layer.build(
    RpcServer.layer(TestRpc, { disableTracing: true, concurrency: "unbounded" }).pipe(
      Layer.provide(FolderRpc.layerServerProtocol(endpoint, fast)),
      Layer.provide(layer)
    )
  )

const connect = (endpoint: Endpoint.FolderEndpoint, options: FolderRpc.ClientOptions = {}) =>
  Effect.flatMap(
    Layer.build(FolderRpc.layerClientProtocol(endpoint, { ...fast, ...options })),
    (protocol) => RpcClient.make(TestRpc, { disableTracing: true }).pipe(Effect.provide(protocol))
  )

const handlers = TestRpc.toLayer(handlersImpl)

const freshEndpoint = () => new Endpoint.FolderEndpoint({ path: tempDir("troupe-folder-rpc-") })

describe("FolderRpc", () => {
  it.scopedLive("round trips: a request, a stream, 16 MiB each way, and 200 in flight", () =>
    Effect.gen(function*() {
      const endpoint = freshEndpoint()
      yield* serve(endpoint)
      const client = yield* connect(endpoint)
      assert.strictEqual(yield* client.Echo({ text: "hi" }), "HI")
      const counted = yield* Stream.runCollect(client.Count({ n: 1000 }).pipe(Stream.rechunk(100)))
      assert.deepStrictEqual(Chunk.toArray(counted), Array.from({ length: 1000 }, (_, i) => i + 1))
      const bytes = yield* client.Bytes({ size: 16 << 20 })
      assert.strictEqual(bytes.length, 16 << 20)
      assert.strictEqual(bytes[12345], 7)
      const upload = new Uint8Array(16 << 20).fill(1)
      assert.strictEqual(yield* client.Upload({ data: upload }), 16 << 20)
      const many = yield* Effect.forEach(
        Array.from({ length: 200 }, (_, i) => `m${i}`),
        (text) => client.Echo({ text }),
        { concurrency: 200 }
      )
      assert.strictEqual(many[199], "M199")
      // Everything consumed: no message files are left behind. A file is removed after the
      // server has taken it in, which may be just after the answer went out, so wait for it.
      const toServer = FolderRpc.layout(endpoint.path).toServer
      yield* waitFor("every request file consumed", () =>
        fs.readdirSync(toServer).some((f) => f.endsWith(".msg")) ? undefined : true)
    }))

  it.scopedLive("two clients at once", () =>
    Effect.gen(function*() {
      const endpoint = freshEndpoint()
      yield* serve(endpoint)
      const [a, b] = yield* Effect.all([connect(endpoint), connect(endpoint)])
      const answers = yield* Effect.all(
        [a!.Echo({ text: "a" }), b!.Echo({ text: "b" }), Stream.runCollect(b!.Count({ n: 3 }))],
        { concurrency: "unbounded" }
      )
      assert.deepStrictEqual([answers[0], answers[1], Chunk.toArray(answers[2])], ["A", "B", [1, 2, 3]])
    }))

  it.scopedLive("garbage, torn, unknown-version and stray files are quarantined with a reason; the server keeps answering", () =>
    Effect.gen(function*() {
      const endpoint = freshEndpoint()
      yield* serve(endpoint)
      const client = yield* connect(endpoint)
      const dirs = FolderRpc.layout(endpoint.path)
      fs.writeFileSync(path.join(dirs.toServer, fileName("cgarbage", 0)), "\u0000\u0001 not msgpack at all")
      fs.writeFileSync(path.join(dirs.toServer, fileName("ctorn", 0)), encodeEnvelope({ from: "ctorn", seq: 0, sentAt: 1, messages: [{ _tag: "Hello" }] }).subarray(0, 20))
      const future = RpcSerialization.msgPack.unsafeMake().encode({ troupe: 99, from: "cfuture", seq: 0, sentAt: 1, messages: [] })
      fs.writeFileSync(path.join(dirs.toServer, fileName("cfuture", 0)), future as Uint8Array)
      fs.writeFileSync(path.join(dirs.toServer, fileName("cwrong", 0)), encodeEnvelope({ from: "cwrong", seq: 0, sentAt: 1, messages: [{ _tag: "Nope" }] }))
      fs.writeFileSync(path.join(dirs.toServer, "notes.txt"), "hello")
      fs.writeFileSync(path.join(dirs.toServer, ".in-flight.msg.XyZ123"), "partial rsync temp file")
      const quarantine = path.join(dirs.toServer, "quarantine")
      const reasons = yield* waitFor("five quarantined files", () => {
        const files = fs.existsSync(quarantine) ? fs.readdirSync(quarantine).filter((f) => f.endsWith(".reason")) : []
        return files.length === 5 ? files.map((f) => fs.readFileSync(path.join(quarantine, f), "utf8")) : undefined
      })
      assert.isTrue(reasons.some((r) => r.includes("torn")))
      assert.isTrue(reasons.some((r) => r.includes("garbage")))
      assert.isTrue(reasons.some((r) => r.includes("unknown format version 99")))
      assert.isTrue(reasons.some((r) => r.includes("not a valid client message")))
      assert.isTrue(reasons.some((r) => r.includes("not a message file")))
      assert.isTrue(fs.existsSync(path.join(dirs.toServer, ".in-flight.msg.XyZ123")))
      assert.strictEqual(yield* client.Echo({ text: "still here" }), "STILL HERE")
      // Well-formed files with bad requests: an unknown RPC and a payload of the wrong shape get
      // answers (a defect, a failure) in that client's folder; everyone else is still served.
      const request = (id: string, tag: string, payload: unknown) => ({ _tag: "Request", id, tag, payload, headers: [] })
      fs.writeFileSync(
        path.join(dirs.toServer, fileName("crude", 0)),
        encodeEnvelope({ from: "crude", seq: 0, sentAt: Date.now(), messages: [{ _tag: "Hello" }, request("1", "Nope", {}), request("2", "Echo", { text: 5 })] })
      )
      const replies = yield* waitFor("answers to the bad requests", () => {
        const dir = path.join(dirs.toClient, "crude")
        const tags = fs.existsSync(dir)
          ? fs.readdirSync(dir).filter((f) => f.endsWith(".msg")).flatMap((f) =>
            (RpcSerialization.msgPack.unsafeMake().decode(fs.readFileSync(path.join(dir, f)))[0] as { messages: Array<{ _tag: string }> }).messages
          ).map((m) => m._tag)
          : []
        return tags.includes("Exit") && tags.includes("Defect") ? tags : undefined
      })
      assert.include(replies, "Welcome")
      assert.strictEqual(yield* client.Echo({ text: "and still" }), "AND STILL")
    }))

  it.live("a client with no server fails with ConnectFailed within the timeout", () =>
    Effect.gen(function*() {
      const endpoint = freshEndpoint()
      const started = Date.now()
      const error = yield* Effect.flip(Effect.scoped(connect(endpoint, { connectTimeout: "500 millis" })))
      const took = Date.now() - started
      assert.strictEqual(error._tag, "ConnectFailed")
      assert.strictEqual(error.reason, "not-found")
      assert.include(error.message, Endpoint.format(endpoint))
      assert.isBelow(took, 2000)
      // The hello it left is taken back, and so is its reply folder.
      assert.deepStrictEqual(fs.readdirSync(FolderRpc.layout(endpoint.path).toServer).filter((f) => f.endsWith(".msg")), [])
      const missing = yield* Effect.flip(Effect.scoped(connect(new Endpoint.FolderEndpoint({ path: "/nonexistent/troupe" }))))
      assert.strictEqual(missing.reason, "not-found")
    }))

  it.scopedLive("a second server on a folder that is being served is refused", () =>
    Effect.gen(function*() {
      const endpoint = freshEndpoint()
      yield* serve(endpoint)
      const error = yield* Effect.flip(serve(endpoint))
      assert.strictEqual(error._tag, "ListenFailed")
      assert.strictEqual((error as ListenFailed).reason, "in-use-by-live-server")
    }))

  it.scopedLive("a client the server timed out gets its requests in flight failed, then is served again", () =>
    Effect.gen(function*() {
      const endpoint = freshEndpoint()
      yield* serve(endpoint)
      // Heartbeats far apart: the server (peer timeout 1 s) forgets this client while it is idle.
      const client = yield* connect(endpoint, { heartbeatMs: 60_000, peerTimeoutMs: 120_000 })
      assert.strictEqual(yield* client.Echo({ text: "one" }), "ONE")
      yield* waitFor("the server to forget the client", () => (clientFolders(endpoint).length === 0 ? true : undefined))
      const failed = yield* Effect.flip(client.Echo({ text: "two" }))
      assert.include(String(failed.message), "no longer knew this client")
      assert.strictEqual(yield* client.Echo({ text: "three" }), "THREE")
    }))

  it.scopedLive("a restarted server: requests in flight fail, and the client says hello to the new one", () =>
    Effect.gen(function*() {
      const endpoint = freshEndpoint()
      const first = yield* Scope.make()
      yield* serve(endpoint).pipe(Scope.extend(first))
      const client = yield* connect(endpoint)
      assert.strictEqual(yield* client.Echo({ text: "before" }), "BEFORE")
      const forever = yield* Effect.fork(Effect.either(Stream.runDrain(client.Forever())))
      yield* Scope.close(first, Exit.void)
      assert.isTrue(Either.isLeft(yield* Fiber.join(forever)))
      yield* serve(endpoint)
      // Until the new server's welcome arrives, calls fail fast; then they are answered.
      const answer = yield* client.Echo({ text: "after" }).pipe(
        Effect.retry(Schedule.spaced("50 millis").pipe(Schedule.upTo("10 seconds")))
      )
      assert.strictEqual(answer, "AFTER")
    }))

  it.scopedLive("a client that says goodbye is forgotten at once: its stream is interrupted, its folder removed", () =>
    Effect.gen(function*() {
      const endpoint = freshEndpoint()
      const { started, interrupted, layer } = yield* foreverProbe
      yield* serve(endpoint, layer)
      yield* Effect.scoped(Effect.gen(function*() {
        const client = yield* connect(endpoint, { peerTimeoutMs: 60_000 })
        yield* Effect.forkScoped(Stream.runDrain(client.Forever()))
        yield* Deferred.await(started)
      }))
      yield* Deferred.await(interrupted)
      yield* waitFor("the reply folder removed", () => (clientFolders(endpoint).length === 0 ? true : undefined))
    }))

  it.scopedLive("a client that falls silent is disconnected after the peer timeout", () =>
    Effect.gen(function*() {
      const endpoint = freshEndpoint()
      const { started, interrupted, layer } = yield* foreverProbe
      yield* serve(endpoint, layer)
      // A client that says hello, starts a stream, and is never heard from again (as if killed).
      const dirs = FolderRpc.layout(endpoint.path)
      const request = { _tag: "Request", id: "1", tag: "Forever", payload: {}, headers: [] }
      const file = path.join(dirs.toServer, fileName("cgone", 0))
      fs.writeFileSync(file, encodeEnvelope({ from: "cgone", seq: 0, sentAt: Date.now(), messages: [{ _tag: "Hello" }, request] }))
      yield* Deferred.await(started)
      assert.deepStrictEqual(clientFolders(endpoint), ["cgone"])
      const since = Date.now()
      yield* Deferred.await(interrupted)
      assert.isAtLeast(Date.now() - since, 500)
      yield* waitFor("the reply folder removed", () => (clientFolders(endpoint).length === 0 ? true : undefined))
    }))
})

const clientFolders = (endpoint: Endpoint.FolderEndpoint) =>
  fs.readdirSync(FolderRpc.layout(endpoint.path).toClient).filter((f) => f !== "server.json" && !f.startsWith("."))

// Handlers whose Forever stream reports that it started and that it was interrupted.
const foreverProbe = Effect.gen(function*() {
  const started = yield* Deferred.make<void>()
  const interrupted = yield* Deferred.make<void>()
  const layer = TestRpc.toLayer({
    ...handlersImpl,
    Forever: () =>
      Stream.fromEffect(Deferred.succeed(started, undefined)).pipe(
        Stream.flatMap(() => Stream.never),
        Stream.ensuring(Deferred.succeed(interrupted, undefined))
      )
  })
  return { started, interrupted, layer }
})
