import * as Rpc from "@effect/rpc/Rpc"
import * as RpcClient from "@effect/rpc/RpcClient"
import * as RpcGroup from "@effect/rpc/RpcGroup"
import * as RpcServer from "@effect/rpc/RpcServer"
import { assert, describe, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as Endpoint from "../../src/transport/Endpoint.js"
import * as FramedRpc from "../../src/transport/framed/FramedRpc.js"
import * as FramedWire from "../../src/transport/framed/FramedWire.js"
import * as Transport from "../../src/transport/Transport.js"
import { freePort } from "../integration/harness.js"
import { dataFrame, dataMessages, rawPeer, waitUntil } from "../transport/framed/fixtures.js"

class Refused extends Schema.TaggedError<Refused>()("Refused", { reason: Schema.String }) {}

class LeanTestRpc extends RpcGroup.make(
  Rpc.make("Greet", { payload: { name: Schema.String }, success: Schema.String, error: Refused }),
  Rpc.make("Crash", { payload: { message: Schema.String }, success: Schema.String }),
  Rpc.make("Wait", { payload: { key: Schema.String }, success: Schema.String }),
  Rpc.make("Ticks", {
    payload: { n: Schema.Int, failAt: Schema.optional(Schema.Int) },
    success: Schema.Int,
    error: Refused,
    stream: true
  }),
  Rpc.make("Date", { payload: { at: Schema.DateFromNumber }, success: Schema.DateFromNumber }),
  Rpc.make("Defaulted", {
    payload: { n: Schema.Int.pipe(Schema.propertySignature, Schema.withConstructorDefault(() => 7)) },
    success: Schema.Int
  })
) {}

/** What the handlers saw, for assertions on the server's side. */
interface Seen {
  readonly started: Set<string>
  readonly interrupted: Set<string>
  produced: number
  readonly disconnected: Array<number>
}

const newSeen = (): Seen => ({ started: new Set(), interrupted: new Set(), produced: 0, disconnected: [] })

const handlers = (seen: Seen) =>
  LeanTestRpc.toLayer({
    Greet: ({ name }) =>
      name === "nobody" ? Effect.fail(new Refused({ reason: "no name" })) : Effect.succeed(`hello ${name}`),
    Crash: ({ message }) => Effect.die(new Error(message)),
    Wait: ({ key }) =>
      Effect.sync(() => seen.started.add(key)).pipe(
        Effect.zipRight(Effect.never),
        Effect.onInterrupt(() => Effect.sync(() => seen.interrupted.add(key)))
      ),
    Ticks: ({ failAt, n }) =>
      Stream.range(1, n).pipe(
        Stream.tap((i) =>
          Effect.suspend(() => {
            seen.produced = i
            return i === failAt ? Effect.fail(new Refused({ reason: `tick ${i}` })) : Effect.void
          })
        )
      ),
    Date: ({ at }) => Effect.succeed(new Date(at.getTime() + 1000)),
    Defaulted: ({ n }) => Effect.succeed(n)
  })

const endpointOnFreePort = Effect.map(
  Effect.promise(freePort),
  (port) => new Endpoint.FramedEndpoint({ host: "127.0.0.1", port })
)

type Engine = "lean" | "stock"

const serve = (engine: Engine, seen: Seen, options: { readonly concurrency?: number } = {}) =>
  Effect.gen(function*() {
    const endpoint = yield* endpointOnFreePort
    if (engine === "lean") {
      yield* FramedRpc.makeServer(LeanTestRpc, endpoint, {
        ...options,
        onDisconnect: (clientId) => Effect.sync(() => seen.disconnected.push(clientId))
      }).pipe(Effect.provide(handlers(seen)))
    } else {
      const { protocol } = yield* FramedRpc.makeServerProtocol(endpoint)
      yield* RpcServer.make(LeanTestRpc, { disableTracing: true }).pipe(
        Effect.provideService(RpcServer.Protocol, protocol),
        Effect.provide(handlers(seen)),
        Effect.forkScoped
      )
    }
    return endpoint
  })

const connect = (engine: Engine, endpoint: Endpoint.FramedEndpoint) =>
  engine === "lean"
    ? Effect.map(FramedRpc.makeClient(LeanTestRpc, endpoint), ({ client }) => client)
    : Effect.flatMap(
      FramedRpc.makeClientProtocol(endpoint),
      ({ protocol }) =>
        RpcClient.make(LeanTestRpc, { disableTracing: true }).pipe(Effect.provideService(RpcClient.Protocol, protocol))
    )

const pairs: ReadonlyArray<readonly [Engine, Engine]> = [["lean", "lean"], ["lean", "stock"], ["stock", "lean"]]

describe("lean RPC engine", () => {
  for (const [clientEngine, serverEngine] of pairs) {
    it.scopedLive(`${clientEngine} client, ${serverEngine} server: values, typed errors, defects, streams`, () =>
      Effect.gen(function*() {
        const seen = newSeen()
        const rpc = yield* connect(clientEngine, yield* serve(serverEngine, seen))
        assert.strictEqual(yield* rpc.Greet({ name: "ada" }), "hello ada")
        // Transformations run on both ends: a Date travels as a number and comes back as a Date.
        const later = yield* rpc.Date({ at: new Date(1_000) })
        assert.strictEqual(later.getTime(), 2_000)
        // A payload field with a constructor default may be left out by the caller.
        assert.strictEqual(yield* rpc.Defaulted({}), 7)
        assert.strictEqual(yield* rpc.Defaulted({ n: 3 }), 3)
        const refused = yield* Effect.flip(rpc.Greet({ name: "nobody" }))
        assert.strictEqual(refused._tag, "Refused")
        assert.strictEqual((refused as Refused).reason, "no name")
        const ticks = yield* Stream.runCollect(rpc.Ticks({ n: 50 }))
        assert.deepStrictEqual(Chunk.toReadonlyArray(ticks), Array.from({ length: 50 }, (_, i) => i + 1))
        const failed = yield* Effect.flip(Stream.runDrain(rpc.Ticks({ n: 50, failAt: 3 })))
        assert.strictEqual(failed._tag, "Refused")
        if (serverEngine === "lean") {
          // The lean server fails only the request whose handler died; the stock one fails the whole client.
          const crashed = yield* Effect.exit(rpc.Crash({ message: "boom" }))
          assert.isTrue(Exit.isFailure(crashed) && Cause.isDie(crashed.cause))
          assert.include(Cause.pretty((crashed as Exit.Failure<unknown, unknown>).cause), "boom")
        }
        assert.strictEqual(yield* rpc.Greet({ name: "again" }), "hello again")
      }))
  }

  it.scopedLive("interrupting a call interrupts its handler on the server, and other calls carry on", () =>
    Effect.gen(function*() {
      const seen = newSeen()
      const rpc = yield* connect("lean", yield* serve("lean", seen))
      const waiting = yield* Effect.fork(rpc.Wait({ key: "a" }))
      yield* waitUntil(() => seen.started.has("a"), 5000, "the handler to start")
      yield* Fiber.interrupt(waiting)
      yield* waitUntil(() => seen.interrupted.has("a"), 5000, "the handler to be interrupted")
      assert.strictEqual(yield* rpc.Greet({ name: "b" }), "hello b")
    }))

  it.scopedLive("a defect in one handler does not fail the client's other calls in flight", () =>
    Effect.gen(function*() {
      const seen = newSeen()
      const rpc = yield* connect("lean", yield* serve("lean", seen))
      const waiting = yield* Effect.fork(rpc.Wait({ key: "survivor" }))
      yield* waitUntil(() => seen.started.has("survivor"), 5000, "the handler to start")
      yield* Effect.exit(rpc.Crash({ message: "boom" }))
      assert.isNull(waiting.unsafePoll())
      assert.isFalse(seen.interrupted.has("survivor"))
    }))

  it.scopedLive("a stream read slowly holds its producer back: one chunk in flight beyond the client's buffer", () =>
    Effect.gen(function*() {
      const seen = newSeen()
      const rpc = yield* connect("lean", yield* serve("lean", seen))
      const firstFive = yield* rpc.Ticks({ n: 100_000 }).pipe(Stream.rechunk(1), Stream.take(5), Stream.runCollect)
      assert.strictEqual(firstFive.length, 5)
      // Stream.range emits chunks of up to 4,096; the server sends one, waits for its Ack, then the next.
      assert.isAtMost(seen.produced, 3 * 4096)
    }))

  it.scopedLive("concurrency bounds the requests running at once; an answer already made needs no turn", () =>
    Effect.gen(function*() {
      const seen = newSeen()
      const rpc = yield* connect("lean", yield* serve("lean", seen, { concurrency: 1 }))
      const first = yield* Effect.fork(rpc.Wait({ key: "first" }))
      yield* waitUntil(() => seen.started.has("first"), 5000, "the first handler to start")
      yield* Effect.fork(rpc.Wait({ key: "second" }))
      // Greet answers with Effect.succeed: nothing runs, so it does not wait for the permit.
      assert.strictEqual(yield* rpc.Greet({ name: "meanwhile" }), "hello meanwhile")
      assert.isFalse(seen.started.has("second"))
      yield* Fiber.interrupt(first)
      yield* waitUntil(() => seen.started.has("second"), 5000, "the second handler to start once the first is gone")
    }))

  it.scopedLive("a client that goes away is reported once through onDisconnect, with its calls interrupted", () =>
    Effect.gen(function*() {
      const seen = newSeen()
      const endpoint = yield* serve("lean", seen)
      yield* Effect.scoped(Effect.gen(function*() {
        const rpc = yield* connect("lean", endpoint)
        yield* Effect.fork(rpc.Wait({ key: "orphan" }))
        yield* waitUntil(() => seen.started.has("orphan"), 5000, "the handler to start")
      }))
      yield* waitUntil(() => seen.disconnected.length === 1, 5000, "onDisconnect")
      yield* waitUntil(() => seen.interrupted.has("orphan"), 5000, "the orphan to be interrupted")
    }))

  it.scopedLive("bad requests get a defect for that request only: unknown tag, undecodable payload, duplicate id", () =>
    Effect.gen(function*() {
      const seen = newSeen()
      const endpoint = yield* serve("lean", seen)
      const peer = yield* rawPeer(endpoint)
      peer.socket.write(dataFrame(1, [
        [0, 1, "NoSuchRpc", {}],
        [0, 2, "Greet", { name: 42 }],
        [0, 3, "Wait", { key: "dup" }],
        [0, 3, "Wait", { key: "dup" }],
        [0, 4, "Greet", { name: "fine" }]
      ]))
      const replies: Array<any> = []
      yield* waitUntil(() => {
        replies.length = 0
        for (const frame of peer.frames) {
          if (frame.type === FramedWire.FramedType.Data) replies.push(...dataMessages(frame))
        }
        return replies.length >= 4
      }, 5000, "four replies")
      // [1, id, cause] is a failure; [0, id, value] a success.
      const byId = new Map(replies.map((reply) => [reply[1], reply]))
      assert.include(byId.get(1)[2].defect, "unknown request tag: NoSuchRpc")
      assert.include(byId.get(2)[2].defect, "Expected string")
      assert.include(byId.get(3)[2].defect, "already running")
      assert.deepStrictEqual(byId.get(4), [0, 4, "hello fine"])
      // A message that is not a request at all is a protocol error for the client: it is told, and still served.
      peer.socket.write(dataFrame(6, ["not a list", [0, 5, "Greet", { name: "after" }]]))
      yield* waitUntil(() => {
        const all = peer.frames.filter((f) => f.type === FramedWire.FramedType.Data).flatMap(dataMessages)
        return all.some((m) => m[0] === 4) && all.some((m) => m[1] === 5 && m[2] === "hello after")
      }, 5000, "a defect and the next answer")
    }))

  it.scopedLive("Transport serves and calls framed:// with the lean engine, and other schemes with @effect/rpc", () =>
    Effect.gen(function*() {
      const seen = newSeen()
      for (const url of [`framed://127.0.0.1:${yield* Effect.promise(freePort)}`, `tcp://127.0.0.1:${yield* Effect.promise(freePort)}`]) {
        const endpoint = yield* Endpoint.parse(url)
        yield* Layer.build(Transport.layerServer(LeanTestRpc, endpoint).pipe(Layer.provide(handlers(seen))))
        const rpc = yield* Transport.makeClient(LeanTestRpc, endpoint)
        assert.strictEqual(yield* rpc.Greet({ name: url }), `hello ${url}`)
      }
    }))
})
