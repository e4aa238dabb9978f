import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Supervisor from "../../src/actors/Supervisor.js"
import * as NetQueue from "../../src/netqueue/NetQueue.js"
import { NetQueueClient } from "../../src/netqueue/Client.js"
import { NetQueueServer } from "../../src/netqueue/Server.js"
import { eventually } from "../integration/harness.js"
import { captureLog, RawPeer } from "./support.js"

const local = { host: "127.0.0.1", port: 0 }
const wait = <A>(what: string, check: () => A | undefined, timeoutMs = 5000) =>
  Effect.promise(() => eventually(check, timeoutMs, what))

const connect = (port: number, options: ConstructorParameters<typeof NetQueueClient>[0] = {}) =>
  Effect.acquireRelease(
    Effect.promise(async () => {
      const client = new NetQueueClient(options)
      await client.connect("127.0.0.1", port)
      return client
    }),
    (client) => Effect.promise(() => client.close())
  )
const take = (client: NetQueueClient, n: number) =>
  Effect.promise(async () => {
    const items: Array<string> = []
    for (let i = 0; i < n; i++) items.push(await client.get(true, 5000))
    return items
  })

describe("Net Queue trees", () => {
  it.scopedLive("items flow down a tree: root → two nodes → consumers, each item once; a childless node holds items for get", () =>
    Effect.gen(function*() {
      const root = yield* NetQueue.node({ listen: local })
      const left = yield* NetQueue.node({ listen: local, parent: { host: "127.0.0.1", port: root.port } })
      const right = yield* NetQueue.node({ listen: local, parent: { host: "127.0.0.1", port: root.port } })
      yield* wait("two children at the root", () => (root.node.clients.length === 2 ? true : undefined))
      const consumers = [yield* connect(left.port), yield* connect(right.port)]
      const items = Array.from({ length: 200 }, (_, i) => `item-${i}`)
      yield* root.put(items, { block: true, timeout: "5 seconds" })
      const got = [...(yield* take(consumers[0]!, 100)), ...(yield* take(consumers[1]!, 100))]
      assert.deepStrictEqual([...got].sort(), [...items].sort())
      // Each node got half (round robin), and items keep their order per consumer.
      assert.deepStrictEqual(got.slice(0, 100), got.slice(0, 100).slice().sort((a, b) => items.indexOf(a) - items.indexOf(b)))
      // A node with no children holds what reaches it, for its own get.
      const leaf = yield* NetQueue.node({ listen: local, parent: { host: "127.0.0.1", port: left.port } })
      yield* wait("the leaf under left", () => (left.node.clients.length === 2 ? true : undefined))
      yield* Effect.promise(() => consumers[0]!.close())
      yield* wait("left has only the leaf", () => (left.node.clients.length === 1 ? true : undefined))
      yield* left.put(["held"])
      assert.strictEqual(yield* leaf.get({ timeout: "5 seconds" }), "held")
      const report = root.node.report()
      assert.strictEqual(report.children.length, 2)
      assert.isTrue(report.children.every((child) => child.troupe && child.role === "consumer"))
    }).pipe(Effect.provide(Supervisor.layer)))

  it.scopedLive("backpressure: a full subtree reports Full upward, the root's put raises Full, and nothing is dropped", () =>
    Effect.gen(function*() {
      const root = yield* NetQueue.node({ listen: local, capacity: 5, window: 4 })
      const child = yield* NetQueue.node({ listen: local, capacity: 4, parent: { host: "127.0.0.1", port: root.port } })
      yield* wait("the child at the root", () => (root.node.clients.length === 1 ? true : undefined))
      const items = Array.from({ length: 9 }, (_, i) => `${i}`)
      // The child holds 4 and reports full; the root holds 5; the rest cannot be placed.
      const full = yield* Effect.flip(root.put([...items, "9", "10"], { block: true, timeout: "300 millis" }))
      assert.strictEqual(full._tag, "Full")
      assert.strictEqual((full as { accepted: number }).accepted, 9)
      yield* wait("the child reported full", () => (root.node.clients[0]!.full ? true : undefined))
      assert.isTrue(child.node.isFull)
      assert.strictEqual(root.node.report().children[0]!.state, "full")
      // A consumer under the child drains the tree: every accepted item arrives, once.
      const consumer = yield* connect(child.port)
      const got = yield* take(consumer, 9)
      assert.deepStrictEqual([...got].sort(), [...items].sort())
      yield* wait("the child has room again", () => (!root.node.clients[0]!.full ? true : undefined))
      yield* root.put(["more"], { block: true, timeout: "2 seconds" })
      assert.deepStrictEqual(yield* take(consumer, 1), ["more"])
    }).pipe(Effect.provide(Supervisor.layer)))

  it.scopedLive("health: a Troupe child that stops answering PING is dropped and its items go to another child; a plain one keeps at-most-once", () =>
    Effect.gen(function*() {
      const { log, waitFor } = captureLog()
      const server = yield* Effect.acquireRelease(
        Effect.promise(async () => {
          const server = new NetQueueServer({ log, pingInterval: 50, pingTimeout: 400, window: 5 })
          await server.bind("127.0.0.1", 0)
          return server
        }),
        (server) => Effect.promise(() => server.close())
      )
      // A silent Troupe child: announces troupe=1, never acknowledges, never answers PING.
      const silent = yield* Effect.promise(() => RawPeer.connect(server.port))
      silent.send(1)
      silent.send(3, "troupe=1")
      yield* Effect.promise(() => silent.waitFor(4))
      silent.send(5) // answers the first PING only
      yield* Effect.promise(() => silent.waitFor(3))
      yield* Effect.promise(() => server.put(["a", "b", "c"]))
      yield* Effect.promise(() => silent.waitItems(3))
      const healthy = yield* connect(server.port)
      yield* Effect.promise(() => waitFor(/closed \(ping-timeout\).*3 items in flight to it are dispatched again/))
      assert.deepStrictEqual(yield* take(healthy, 3), ["a", "b", "c"])
      yield* Effect.promise(() => healthy.close())
      // A silent plain child: its items were written, and are not sent again (the original's at-most-once).
      const plain = yield* Effect.promise(() => RawPeer.connect(server.port))
      plain.send(1)
      yield* Effect.promise(() => plain.waitFor(4))
      plain.send(5)
      yield* Effect.promise(() => server.put(["p"]))
      yield* Effect.promise(() => plain.waitItems(1))
      yield* Effect.promise(() => plain.waitClosed(3000))
      assert.strictEqual(server.heldCount, 0)
      silent.destroy()
    }))

  it.scopedLive("least-loaded dispatch follows the load reported in STATUS", () =>
    Effect.gen(function*() {
      const root = yield* NetQueue.node({ listen: local, policy: "least-loaded" })
      class Loaded extends NetQueueClient {
        constructor(private readonly reported: number) {
          super({})
        }
        override getStatus() {
          return `load=${this.reported}`
        }
      }
      const busy = yield* Effect.acquireRelease(
        Effect.promise(async () => {
          const c = new Loaded(100)
          await c.connect("127.0.0.1", root.port)
          return c
        }),
        (c) => Effect.promise(() => c.close())
      )
      const idle = yield* Effect.acquireRelease(
        Effect.promise(async () => {
          const c = new Loaded(0)
          await c.connect("127.0.0.1", root.port)
          return c
        }),
        (c) => Effect.promise(() => c.close())
      )
      yield* root.put(Array.from({ length: 20 }, (_, i) => `${i}`))
      assert.strictEqual((yield* take(idle, 20)).length, 20)
      assert.strictEqual(busy.pending, 0)
    }).pipe(Effect.provide(Supervisor.layer)))

  it.scopedLive("a node reconnects to a parent that comes back (supervised link)", () =>
    Effect.gen(function*() {
      const first = new NetQueueServer({})
      yield* Effect.promise(() => first.bind("127.0.0.1", 0))
      const port = first.port
      const node = yield* NetQueue.node({ listen: local, parent: { host: "127.0.0.1", port } })
      yield* wait("the node at the first parent", () => (first.clients.length === 1 ? true : undefined))
      yield* Effect.promise(() => first.close())
      const second = new NetQueueServer({})
      yield* Effect.promise(() => second.bind("127.0.0.1", port))
      yield* Effect.addFinalizer(() => Effect.promise(() => second.close()))
      yield* wait("the node at the second parent", () => (second.clients.length === 1 ? true : undefined))
      yield* Effect.promise(() => second.put(["again"]))
      assert.strictEqual(yield* node.get({ timeout: "5 seconds" }), "again")
    }).pipe(Effect.provide(Supervisor.layer)))
})
