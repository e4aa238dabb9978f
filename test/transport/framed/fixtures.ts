// Shared pieces of the framed transport tests: a test RpcGroup, a server and clients on real sockets.
import * as Rpc from "@effect/rpc/Rpc"
import * as RpcClient from "@effect/rpc/RpcClient"
import * as RpcGroup from "@effect/rpc/RpcGroup"
import * as RpcServer from "@effect/rpc/RpcServer"
import * as Effect from "effect/Effect"
import * as Logger from "effect/Logger"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as Endpoint from "../../../src/transport/Endpoint.js"
import * as FramedRpc from "../../../src/transport/framed/FramedRpc.js"
import type { Secret } from "../../../src/transport/Secret.js"
import { freePort } from "../../integration/harness.js"

export class TestRpc extends RpcGroup.make(
  Rpc.make("Echo", { payload: { text: Schema.String }, success: Schema.String }),
  Rpc.make("Count", { payload: { n: Schema.Int }, success: Schema.Int, stream: true }),
  Rpc.make("Bytes", { payload: { size: Schema.Int }, success: Schema.Uint8ArrayFromSelf }),
  Rpc.make("Upload", { payload: { data: Schema.Uint8ArrayFromSelf }, success: Schema.Int }),
  /** Counts its invocations per key, then answers after `millis`. */
  Rpc.make("Work", { payload: { key: Schema.String, millis: Schema.Int }, success: Schema.String })
) {}

/** How many times the server ran Work for each key. */
export type Invocations = Map<string, number>

export const handlers = (invocations: Invocations = new Map()) =>
  TestRpc.toLayer({
    Echo: ({ text }) => Effect.succeed(text.toUpperCase()),
    Count: ({ n }) => Stream.range(1, n),
    Bytes: ({ size }) => Effect.succeed(new Uint8Array(size).fill(7)),
    Upload: ({ data }) => Effect.succeed(data.length),
    Work: ({ key, millis }) =>
      Effect.sync(() => invocations.set(key, (invocations.get(key) ?? 0) + 1)).pipe(
        Effect.zipRight(Effect.sleep(millis)),
        Effect.as(key)
      )
  })

export const secret = (text: string): Secret => ({ key: new TextEncoder().encode(text), source: "test" })

/** A framed RPC server on a free loopback port, for the test's scope. */
export const serve = (options: FramedRpc.ServerOptions = {}, invocations: Invocations = new Map()) =>
  Effect.gen(function*() {
    const port = yield* Effect.promise(freePort)
    const endpoint = new Endpoint.FramedEndpoint({ host: "127.0.0.1", port })
    const { protocol, server } = yield* FramedRpc.makeServerProtocol(endpoint, options)
    yield* RpcServer.make(TestRpc, { disableTracing: true }).pipe(
      Effect.provideService(RpcServer.Protocol, protocol),
      Effect.provide(handlers(invocations)),
      Effect.forkScoped
    )
    return { endpoint, server, invocations }
  })

/** A typed client over the framed transport, for the test's scope. */
export const connect = (endpoint: Endpoint.FramedEndpoint, options: FramedRpc.ClientOptions = {}) =>
  Effect.gen(function*() {
    const { client, protocol } = yield* FramedRpc.makeClientProtocol(endpoint, options)
    const rpc = yield* RpcClient.make(TestRpc, { disableTracing: true }).pipe(
      Effect.provideService(RpcClient.Protocol, protocol)
    )
    return { rpc, client }
  })

/** A logger that keeps the messages, to assert on log lines. */
export const collectLogs = () => {
  const lines: Array<string> = []
  const layer = Logger.replace(Logger.defaultLogger, Logger.make(({ message }) => lines.push(String(message))))
  return { lines, layer }
}

/** Polls `check` every 10 ms until it holds, for at most `millis`. */
export const waitUntil = (check: () => boolean, millis = 5000, what = "condition") =>
  Effect.gen(function*() {
    const deadline = Date.now() + millis
    while (!check()) {
      if (Date.now() > deadline) return yield* Effect.dieMessage(`timed out waiting for ${what}`)
      yield* Effect.sleep("10 millis")
    }
  })
