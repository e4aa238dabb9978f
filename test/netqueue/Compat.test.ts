import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { spawn } from "node:child_process"
import * as Path from "node:path"
import * as Readline from "node:readline"
import * as Supervisor from "../../src/actors/Supervisor.js"
import { NetQueueClient } from "../../src/netqueue/Client.js"
import * as NetQueue from "../../src/netqueue/NetQueue.js"
import { runCommand } from "../integration/harness.js"

// The Python Net Queue peer, written from the seed's description; it knows frame types 1–6 only.
const peer = Path.join(import.meta.dirname, "netqueue_peer.py")

const runPython = (args: ReadonlyArray<string>) => runCommand("python3", [peer, ...args], { timeoutMs: 20_000 })

// A Python Net Queue server driven line by line over stdin/stdout.
const pythonServer = Effect.acquireRelease(
  Effect.promise(async () => {
    const child = spawn("python3", [peer, "server", "127.0.0.1", "0"], { stdio: ["pipe", "pipe", "inherit"] })
    const lines = Readline.createInterface({ input: child.stdout! })
    const queue: Array<string> = []
    const waiters: Array<() => void> = []
    lines.on("line", (line) => {
      queue.push(line)
      for (const wake of waiters.splice(0)) wake()
    })
    const next = async (): Promise<string> => {
      const deadline = Date.now() + 15_000
      while (queue.length === 0) {
        if (Date.now() > deadline) throw new Error("the python server said nothing")
        await new Promise<void>((resolve) => {
          waiters.push(resolve)
          setTimeout(resolve, 1000)
        })
      }
      return queue.shift()!
    }
    // Sends a command; returns the lines of its answer up to the one ending in ok/full/empty.
    const command = async (text: string): Promise<Array<string>> => {
      child.stdin!.write(text + "\n")
      const answer: Array<string> = []
      for (;;) {
        const line = await next()
        answer.push(line)
        if (/ (ok|full|empty)$/.test(line)) return answer
      }
    }
    const ready = await next()
    const port = Number(/^ready (\d+)$/.exec(ready)![1])
    return { child, port, command }
  }),
  ({ child }) =>
    Effect.promise(() =>
      new Promise<void>((resolve) => {
        child.once("exit", () => resolve())
        child.stdin!.end("quit\n")
        setTimeout(() => child.kill("SIGKILL"), 3000).unref()
      })
    )
)

describe("Net Queue compatibility with an original (Python) peer", () => {
  it.scopedLive("a Python client under a Troupe node: it consumes dispatched items, and its put reaches the node", () =>
    Effect.gen(function*() {
      const node = yield* NetQueue.node({ listen: { host: "127.0.0.1", port: 0 } })
      const port = String(node.port)
      const consumer = runPython(["client", "127.0.0.1", port, "--count", "3", "--timeout", "10"])
      yield* Effect.promise(async () => {
        const deadline = Date.now() + 10_000
        while (!node.node.clients.some((c) => c.greeted)) {
          if (Date.now() > deadline) throw new Error("the python client never connected")
          await new Promise((resolve) => setTimeout(resolve, 20))
        }
      })
      yield* node.put(["alpha", "beta", "gamma"], { block: true, timeout: "5 seconds" })
      const consumed = yield* Effect.promise(() => consumer)
      assert.strictEqual(consumed.code, 0, consumed.stderr)
      assert.strictEqual(consumed.stdout, "alpha\nbeta\ngamma\n")
      // A Python producer (STATUS "producer") puts items; a Troupe consumer under the same node gets them.
      const troupe = yield* Effect.acquireRelease(
        Effect.promise(async () => {
          const client = new NetQueueClient({ configFile: "" })
          await client.connect("127.0.0.1", node.port)
          return client
        }),
        (client) => Effect.promise(() => client.close())
      )
      const produced = yield* Effect.promise(() => runPython(["client", "127.0.0.1", port, "--status", "producer", "--put", "x", "y"]))
      assert.strictEqual(produced.code, 0, produced.stderr)
      assert.strictEqual(yield* Effect.promise(() => troupe.get(true, 5000)), "x")
      assert.strictEqual(yield* Effect.promise(() => troupe.get(true, 5000)), "y")
    }).pipe(Effect.provide(Supervisor.layer)))

  it.scopedLive("a Troupe node under a Python server: the node takes items down to its consumer, and reports in STATUS", () =>
    Effect.gen(function*() {
      const python = yield* pythonServer
      const node = yield* NetQueue.node({ listen: { host: "127.0.0.1", port: 0 }, parent: { host: "127.0.0.1", port: python.port } })
      const consumer = yield* Effect.acquireRelease(
        Effect.promise(async () => {
          const client = new NetQueueClient({ configFile: "" })
          await client.connect("127.0.0.1", node.port)
          return client
        }),
        (client) => Effect.promise(() => client.close())
      )
      // Wait until the Python server has the node as a client, with the node's STATUS.
      const clients = yield* Effect.promise(async () => {
        for (let i = 0; i < 200; i++) {
          const answer = await python.command("clients")
          if (answer[0] === "clients 1" && answer.some((line) => line.startsWith("status troupe=1"))) return answer
        }
        throw new Error("the node never connected to the python server")
      })
      assert.match(clients.join("\n"), /status troupe=1 full=0 load=\d+/)
      assert.deepStrictEqual(yield* Effect.promise(() => python.command("put one two three")), ["put ok"])
      const got: Array<string> = []
      for (let i = 0; i < 3; i++) got.push(yield* Effect.promise(() => consumer.get(true, 5000)))
      assert.deepStrictEqual(got, ["one", "two", "three"])
      assert.strictEqual(node.node.report().parent?.connected, true)
      // A Troupe producer under the Python server: its put reaches the server's get (plain: written, not acknowledged).
      const producer = yield* Effect.acquireRelease(
        Effect.promise(async () => {
          const client = new NetQueueClient({ configFile: "", producer: true })
          await client.connect("127.0.0.1", python.port)
          return client
        }),
        (client) => Effect.promise(() => client.close())
      )
      assert.isFalse(producer.troupeServer)
      producer.put(["up", "wards"])
      yield* Effect.promise(() => producer.flush(5000))
      assert.deepStrictEqual(yield* Effect.promise(() => python.command("get 2")), ["item up", "item wards", "get ok"])
    }).pipe(Effect.provide(Supervisor.layer)))
})
