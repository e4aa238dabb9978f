import { assert, describe, it } from "@effect/vitest"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { NetQueueClient } from "../../src/netqueue/Client.js"
import { Closed, Empty, Full, InvalidItem } from "../../src/netqueue/Errors.js"
import { type ClientConn, NetQueueServer, type ServerOptions } from "../../src/netqueue/Server.js"
import { tempDir } from "../integration/harness.js"
import { RawPeer, rejects } from "./support.js"

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString("hex")

const withServer = async <A>(options: ServerOptions, body: (server: NetQueueServer) => Promise<A>) => {
  const server = new NetQueueServer(options)
  await server.bind("127.0.0.1", 0)
  try {
    return await body(server)
  } finally {
    await server.close()
  }
}

const connectClient = async (port: number, options: ConstructorParameters<typeof NetQueueClient>[0] = {}) => {
  const client = new NetQueueClient(options)
  await client.connect("127.0.0.1", port)
  return client
}

describe("Net Queue handshake and control frames (raw bytes)", () => {
  it("answers CONN with CONN, PING with PONG, and a plain client is a consumer by default", async () => {
    await withServer({}, async (server) => {
      const raw = await RawPeer.connect(server.port)
      raw.write(Buffer.from("000000020001", "hex"))
      const connAt = await raw.waitFor(1)
      assert.strictEqual(connAt, 0)
      // The server PINGs a new client and dispatches to it once it has answered (after its STATUS, if any).
      await raw.waitFor(4)
      raw.write(Buffer.from("000000020005", "hex"))
      raw.write(Buffer.from("000000020004", "hex"))
      await raw.waitFor(5)
      await server.put(["a", "bc"], { block: true, timeout: 2000 })
      assert.deepStrictEqual(await raw.waitItems(2), ["a", "bc"])
      // The exact bytes on the wire: CONN first, and the ENQUEUE of "a" and "bc".
      assert.strictEqual(hex(raw.bytes.subarray(0, 6)), "000000020001")
      assert.include(hex(raw.bytes), "000000060006610a6263")
      raw.destroy()
    })
  })

  it("a plain client's put reaches the server's get; DISCONN closes that client", async () => {
    await withServer({}, async (server) => {
      const raw = await RawPeer.connect(server.port)
      raw.send(1)
      raw.send(3, "producer")
      await raw.waitFor(1)
      raw.write(Buffer.from("00000006000661" + "0a6263", "hex"))
      assert.strictEqual(await server.get(true, 2000), "a")
      assert.strictEqual(await server.get(true, 2000), "bc")
      raw.send(2)
      await raw.waitClosed()
      assert.strictEqual(server.clients.length, 0)
    })
  })

  it("a closing server sends DISCONN to every client", async () => {
    const server = new NetQueueServer({})
    await server.bind("127.0.0.1", 0)
    const peers = [await RawPeer.connect(server.port), await RawPeer.connect(server.port)]
    for (const peer of peers) peer.send(1)
    await Promise.all(peers.map((peer) => peer.waitFor(1)))
    assert.strictEqual(await server.acceptConnections(true, 2000), 2)
    const port = server.port
    await server.close()
    for (const peer of peers) {
      await peer.waitFor(2)
      await peer.waitClosed()
    }
    const client = new NetQueueClient({})
    await rejects(client.connect("127.0.0.1", port))
  })
})

describe("Net Queue API", () => {
  it("put and get with Troupe clients: producers get no dispatches, consumers get items", async () => {
    await withServer({}, async (server) => {
      const consumer = await connectClient(server.port)
      const producer = await connectClient(server.port, { producer: true })
      assert.isTrue(consumer.troupeServer)
      producer.put(["x", "y"])
      await producer.flush(2000)
      assert.strictEqual(await consumer.get(true, 2000), "x")
      assert.strictEqual(await consumer.get(true, 2000), "y")
      await rejects(producer.get(false), Empty)
      assert.throws(() => producer.put("a\nb"), InvalidItem)
      await consumer.close()
      await producer.close()
    })
  })

  it("block semantics: get raises Empty (or null with allowNone), put raises Full, block=true waits", async () => {
    await withServer({ capacity: 2 }, async (server) => {
      assert.isNull(await server.get(false))
      await rejects(server.get(false, undefined, false), Empty)
      const t0 = Date.now()
      assert.isNull(await server.get(true, 50))
      assert.isAtLeast(Date.now() - t0, 40)
      await server.put(["1", "2"])
      const full = await server.put(["3", "4"]).then(() => undefined, (e: unknown) => e)
      assert.instanceOf(full, Full)
      assert.strictEqual((full as Full).accepted, 0)
      await rejects(server.put(["3"], { block: true, timeout: 50 }), Full)
      // A blocked put completes once a get makes room.
      const waiting = server.put(["3"], { block: true, timeout: 2000 })
      assert.strictEqual(await server.get(), "1")
      await waiting
      assert.deepStrictEqual(server.getAll(), ["2", "3"])
      await rejects(server.put(["x"], { sendAll: true }), Full)
    })
  })

  it("a client's get blocks until an item comes, or raises Empty after the timeout", async () => {
    await withServer({}, async (server) => {
      const client = await connectClient(server.port)
      await rejects(client.get(true, 30), Empty)
      await rejects(client.get(false), Empty)
      const waiting = client.get(true, 2000)
      await server.put("late")
      assert.strictEqual(await waiting, "late")
      await server.put(["p", "q"])
      assert.isTrue(await client.poll(true, 2000))
      assert.strictEqual(await client.get(true, 2000), "p")
      assert.deepStrictEqual(client.getAll(), ["q"])
      await client.close()
    })
  })

  it("putTo sends to one client; block=false raises Full on a full window, block=true waits for room", async () => {
    await withServer({ window: 2 }, async (server) => {
      const a = await connectClient(server.port)
      const b = await connectClient(server.port)
      await server.acceptConnections(false)
      const target = server.clients[1]!
      await server.putTo(target, ["1", "2"])
      await rejects(server.putTo(target, ["3"]), Full)
      const waiting = server.putTo(target, ["3"], { block: true, timeout: 2000 })
      assert.strictEqual(await b.get(true, 2000), "1")
      await waiting
      assert.strictEqual(await b.get(true, 2000), "2")
      assert.strictEqual(await b.get(true, 2000), "3")
      await rejects(a.get(false), Empty)
      await a.close()
      await b.close()
    })
  })

  it("sendAll puts each item to every consumer", async () => {
    await withServer({}, async (server) => {
      const clients = [await connectClient(server.port), await connectClient(server.port)]
      await server.put(["all"], { sendAll: true })
      for (const client of clients) assert.strictEqual(await client.get(true, 2000), "all")
      for (const client of clients) await client.close()
    })
  })

  it("per-client state from STATUS, and an overridden chooseDispatch and getStatus", async () => {
    class Weighted extends NetQueueServer {
      override chooseDispatch(ready: ReadonlyArray<ClientConn>) {
        return ready.find((c) => c.fields["name"] === "b") ?? ready[0]
      }
      override getStatus() {
        return "hello=1"
      }
    }
    const server = new Weighted({})
    await server.bind("127.0.0.1", 0)
    class Named extends NetQueueClient {
      seen: Array<string> = []
      constructor(private readonly name: string) {
        super({})
      }
      override getStatus() {
        return `name=${this.name} load=3`
      }
      override handleServerStatus(text: string) {
        this.seen.push(text)
      }
    }
    const a = new Named("a")
    const b = new Named("b")
    await a.connect("127.0.0.1", server.port)
    await b.connect("127.0.0.1", server.port)
    assert.strictEqual(server.clients[0]!.reportedLoad, 3)
    await server.put(["1", "2"])
    assert.strictEqual(await b.get(true, 2000), "1")
    assert.strictEqual(await b.get(true, 2000), "2")
    assert.isTrue(b.seen.some((text) => text.includes("hello=1")))
    await a.close()
    await b.close()
    await server.close()
  })

  it("items not taken by a Troupe client that closes go to another client; a closed client's get raises Closed", async () => {
    await withServer({}, async (server) => {
      const first = await connectClient(server.port, { window: 10 })
      await server.put(["1", "2", "3"])
      assert.strictEqual(await first.get(true, 2000), "1")
      await first.close()
      await rejects(first.get(true, 100), Closed)
      const second = await connectClient(server.port)
      assert.strictEqual(await second.get(true, 2000), "2")
      assert.strictEqual(await second.get(true, 2000), "3")
      await second.close()
    })
  })

  it("loads the config file given, in both forms", async () => {
    const dir = tempDir("troupe-nq-conf-")
    const serverConf = Path.join(dir, "server_conf")
    Fs.writeFileSync(serverConf, "# server\npolicy = least-loaded\ncapacity = 5\nwindow: 7\nmy_key = mine\n")
    const clientConf = Path.join(dir, "client_conf")
    Fs.writeFileSync(clientConf, "{\"producer\": true, \"connect_timeout\": \"2s\"}")
    const server = new NetQueueServer({ configFile: serverConf })
    assert.strictEqual(server.policy.name, "least-loaded")
    assert.strictEqual(server.capacityValue, 5)
    assert.strictEqual(server.windowValue, 7)
    assert.strictEqual(server.config["my_key"], "mine")
    const client = new NetQueueClient({ configFile: clientConf })
    assert.isTrue(client.producer)
    assert.throws(() => new NetQueueServer({ configFile: Path.join(dir, "missing") }))
  })
})
