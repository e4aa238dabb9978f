import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Fiber from "effect/Fiber"
import * as Stream from "effect/Stream"
import * as Net from "node:net"
import * as Endpoint from "../../../src/transport/Endpoint.js"
import { connect, serve, waitUntil } from "./fixtures.js"

/** A TCP proxy the test can cut, stop, restart and point elsewhere. */
const proxy = (targetPort: number) =>
  Effect.acquireRelease(
    Effect.async<Proxy>((resume) => {
      const state = new Proxy(targetPort)
      state.server.listen(0, "127.0.0.1", () => resume(Effect.succeed(state)))
    }),
    (proxy) => Effect.sync(() => proxy.stop())
  )

class Proxy {
  readonly sockets = new Set<Net.Socket>()
  server = this.makeServer()
  port = 0
  constructor(public target: number) {}

  get endpoint() {
    this.port ||= (this.server.address() as Net.AddressInfo).port
    return new Endpoint.FramedEndpoint({ host: "127.0.0.1", port: this.port })
  }

  /** Cuts every connection through the proxy; new ones are still accepted. */
  cut() {
    for (const socket of this.sockets) socket.destroy()
  }

  /** Stops listening and cuts everything: the server looks gone. */
  stop() {
    this.server.close()
    this.cut()
  }

  /** Listens again on the same port. */
  restart() {
    return new Promise<void>((resolve) => {
      this.server = this.makeServer()
      this.server.listen(this.port, "127.0.0.1", () => resolve())
    })
  }

  private makeServer() {
    return Net.createServer((inbound) => {
      const outbound = Net.connect(this.target, "127.0.0.1")
      for (const socket of [inbound, outbound]) {
        this.sockets.add(socket)
        socket.on("error", () => {})
        socket.once("close", () => {
          this.sockets.delete(socket)
          inbound.destroy()
          outbound.destroy()
        })
      }
      inbound.pipe(outbound)
      outbound.pipe(inbound)
    })
  }
}

const keys = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}${i}`)

describe("Framed transport reconnect", () => {
  it.scopedLive("cut connections with 150+ calls in flight: every call completes exactly once", () =>
    Effect.gen(function*() {
      const { endpoint, invocations, server } = yield* serve()
      const { client, rpc } = yield* connect(endpoint)

      // 1. All 150 are running on the server when the server side cuts the connection: replies come after resume.
      const running = keys("a", 150)
      const first = yield* Effect.fork(Effect.forEach(running, (key) => rpc.Work({ key, millis: 200 }), { concurrency: "unbounded" }))
      yield* waitUntil(() => running.every((key) => invocations.has(key)), 5000, "150 calls running")
      server.dropConnections()
      assert.deepStrictEqual(yield* Fiber.join(first), running)

      // 2. Requests cut before they were written: the client side cuts in the same tick as it sends.
      const unsent = keys("b", 150)
      const second = yield* Effect.fork(Effect.forEach(unsent, (key) => rpc.Work({ key, millis: 5 }), { concurrency: "unbounded" }))
      yield* Effect.yieldNow()
      client.dropConnection()
      assert.deepStrictEqual(yield* Fiber.join(second), unsent)

      // 3. Cuts at arbitrary moments while requests and replies stream both ways.
      const busy = keys("c", 400)
      const third = yield* Effect.fork(
        Effect.forEach(busy, (key, i) => rpc.Work({ key, millis: i % 40 }), { concurrency: 150 })
      )
      for (let cut = 0; cut < 6; cut++) {
        yield* Effect.sleep("15 millis")
        if (cut % 2 === 0) server.dropConnections()
        else client.dropConnection()
      }
      assert.deepStrictEqual(yield* Fiber.join(third), busy)

      for (const key of [...running, ...unsent, ...busy]) assert.strictEqual(invocations.get(key), 1, key)
      assert.isFalse([...invocations.keys()].some((key) => key.startsWith("!")), "no request was interrupted")
      assert.strictEqual(server.clientIds().size, 1, "the same session throughout")
    }))

  it.scopedLive("a stream cut several times arrives whole and in order", () =>
    Effect.gen(function*() {
      const { endpoint, server } = yield* serve()
      const { client, rpc } = yield* connect(endpoint)
      // Small chunks, each acknowledged by the client before the next: the stream spans the cuts.
      const collected = yield* Effect.fork(Stream.runCollect(rpc.Count({ n: 20_000, chunk: 20 })))
      let cutsWhileStreaming = 0
      for (let cut = 0; cut < 6; cut++) {
        yield* Effect.sleep("10 millis")
        if ((yield* Fiber.poll(collected))._tag === "None") cutsWhileStreaming++
        if (cut % 2 === 0) server.dropConnections()
        else client.dropConnection()
      }
      const values = Array.from(yield* Fiber.join(collected))
      assert.isAtLeast(cutsWhileStreaming, 2)
      assert.strictEqual(values.length, 20_000)
      assert.isTrue(values.every((value, i) => value === i + 1))
    }))

  it.scopedLive("the client gives up after its window with a typed error; the server then drops the session", () =>
    Effect.gen(function*() {
      const { endpoint, invocations } = yield* serve({ resumeWindow: "300 millis" })
      const relay = yield* proxy(endpoint.port)
      const { client, rpc } = yield* connect(relay.endpoint, { reconnectWindow: "400 millis" })
      const call = yield* Effect.fork(Effect.either(rpc.Work({ key: "long", millis: 60_000 })))
      yield* waitUntil(() => invocations.get("long") === 1, 5000, "the call to start")
      relay.stop()
      const started = Date.now()
      const result = yield* Fiber.join(call)
      assert.isTrue(Either.isLeft(result))
      const error = (result as Either.Left<any, unknown>).left
      assert.strictEqual(error._tag, "RpcClientError")
      assert.include(error.message, "could not reconnect within 400ms")
      assert.isAtLeast(Date.now() - started, 350)
      // While the server stays away, calls fail at once with the same error.
      const fast = yield* Effect.flip(rpc.Echo({ text: "now?" }))
      assert.include(fast.message, "could not reconnect")
      // The server ended the session after its resume window, interrupting the request.
      yield* waitUntil(() => invocations.get("!long") === 1, 5000, "the request to be interrupted")
      // When the server is reachable again, the client starts a new session by itself.
      yield* Effect.promise(() => relay.restart())
      yield* waitUntil(() => client.failure() === undefined, 5000, "the client to reconnect")
      assert.strictEqual(yield* rpc.Echo({ text: "back" }), "BACK")
    }))

  it.scopedLive("a server that no longer knows the session fails the calls in flight; new calls go through", () =>
    Effect.gen(function*() {
      const first = yield* serve()
      const second = yield* serve()
      const relay = yield* proxy(first.endpoint.port)
      const { rpc } = yield* connect(relay.endpoint)
      const call = yield* Effect.fork(Effect.either(rpc.Work({ key: "lost", millis: 60_000 })))
      yield* waitUntil(() => first.invocations.get("lost") === 1, 5000, "the call to start")
      // As if the server restarted: the client's resume reaches a server without its session.
      relay.target = second.endpoint.port
      relay.cut()
      const result = yield* Fiber.join(call)
      assert.isTrue(Either.isLeft(result))
      assert.include((result as Either.Left<any, unknown>).left.message, "no longer has this client's session")
      assert.strictEqual(yield* rpc.Echo({ text: "fresh" }), "FRESH")
      assert.strictEqual(second.invocations.size, 0)
    }))
})
