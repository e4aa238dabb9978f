import * as RpcClient from "@effect/rpc/RpcClient"
import * as RpcServer from "@effect/rpc/RpcServer"
import { assert, describe, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import * as Endpoint from "../../../src/transport/Endpoint.js"
import * as FolderRpc from "../../../src/transport/folder/FolderRpc.js"
import { tempDir } from "../../integration/harness.js"
import { handlers, TestRpc, waitFor } from "./fixtures.js"

const fast = { rescanMs: 50, heartbeatMs: 100, peerTimeoutMs: 1000 } as const

/** A folder RPC peer (test/transport/folder/peer.mjs, built from dist/) in its own process, killed with the scope. */
export const spawnPeer = (mode: "server" | "client", root: string, options: object = fast) =>
  Effect.gen(function*() {
    const script = path.resolve(import.meta.dirname, "peer.mjs")
    const child = yield* Effect.acquireRelease(
      Effect.sync(() => spawn(process.execPath, [script, mode, root, JSON.stringify(options)], { stdio: ["ignore", "pipe", "inherit"] })),
      (child) => Effect.sync(() => child.kill("SIGKILL"))
    )
    yield* Effect.async<void, Error>((resume) => {
      child.stdout!.once("data", () => resume(Effect.void))
      child.once("exit", (code) => resume(Effect.fail(new Error(`the ${mode} process exited (${code}) before it was ready`))))
    }).pipe(Effect.timeoutFail({ duration: "20 seconds", onTimeout: () => new Error(`the ${mode} process was not ready in time`) }), Effect.orDie)
    return child
  })

describe("FolderRpc across processes", () => {
  it.scopedLive("a client here talks to a server in another process; the server's death fails the requests in flight", () =>
    Effect.gen(function*() {
      const root = tempDir("troupe-folder-2p-")
      const server = yield* spawnPeer("server", root)
      const protocol = yield* Layer.build(FolderRpc.layerClientProtocol(new Endpoint.FolderEndpoint({ path: root }), fast))
      const client = yield* RpcClient.make(TestRpc, { disableTracing: true }).pipe(Effect.provide(protocol))
      assert.strictEqual(yield* client.Echo({ text: "across" }), "ACROSS")
      assert.deepStrictEqual(Chunk.toArray(yield* Stream.runCollect(client.Count({ n: 500 }))).length, 500)
      assert.strictEqual((yield* client.Bytes({ size: 1 << 20 })).length, 1 << 20)
      const answers = yield* Effect.forEach(Array.from({ length: 300 }, (_, i) => `r${i}`), (text) => client.Echo({ text }), { concurrency: 100 })
      assert.strictEqual(answers[299], "R299")
      // A stream in flight when the server is killed ends with an error once its heartbeat stops.
      const forever = yield* Effect.fork(Effect.either(Stream.runDrain(client.Forever())))
      server.kill("SIGKILL")
      const outcome = yield* forever.await.pipe(Effect.flatten, Effect.timeout("10 seconds"))
      assert.isTrue(Either.isLeft(outcome))
      assert.include(String(Either.isLeft(outcome) ? outcome.left.message : ""), "no heartbeat from the server")
    }))

  it.scopedLive("a client process that is killed is noticed by the server: its stream is interrupted, its folder removed", () =>
    Effect.gen(function*() {
      const root = tempDir("troupe-folder-2p-")
      const started = yield* Deferred.make<void>()
      const interrupted = yield* Deferred.make<void>()
      yield* Layer.build(
        RpcServer.layer(TestRpc, { disableTracing: true }).pipe(
          Layer.provide(FolderRpc.layerServerProtocol(new Endpoint.FolderEndpoint({ path: root }), fast)),
          Layer.provide(TestRpc.toLayer({
            ...handlers,
            Forever: () =>
              Stream.fromEffect(Deferred.succeed(started, undefined)).pipe(
                Stream.flatMap(() => Stream.never),
                Stream.ensuring(Deferred.succeed(interrupted, undefined))
              )
          }))
        )
      )
      const client = yield* spawnPeer("client", root)
      yield* Deferred.await(started)
      const clientDirs = () => fs.readdirSync(FolderRpc.layout(root).toClient).filter((f) => f !== "server.json")
      assert.strictEqual(clientDirs().length, 1)
      client.kill("SIGKILL")
      yield* Deferred.await(interrupted).pipe(Effect.timeout("10 seconds"))
      yield* waitFor("the client's folder removed", () => (clientDirs().length === 0 ? true : undefined))
    }))
})
