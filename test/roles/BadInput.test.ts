import { assert, describe, it } from "@effect/vitest"
import * as net from "node:net"
import { connectJobs } from "../../src/client/index.js"
import { startLocal } from "../integration/harness.js"

// Sends raw bytes to the server and resolves when the server closes the connection (or after a bound).
const sendRaw = (port: number, chunks: ReadonlyArray<Buffer>, endAfter: boolean) =>
  new Promise<"closed" | "open">((resolve) => {
    const socket = net.connect({ host: "127.0.0.1", port })
    const timer = setTimeout(() => {
      socket.destroy()
      resolve("open")
    }, 2_000)
    socket.on("connect", () => {
      for (const chunk of chunks) socket.write(chunk)
      if (endAfter) socket.end()
    })
    socket.on("data", () => {})
    socket.on("error", () => {})
    socket.on("close", () => {
      clearTimeout(timer)
      resolve("closed")
    })
  })

describe("--role=local under bad input", () => {
  it("garbage bytes, a truncated message and a vanished peer do not stop it serving others", async () => {
    const server = await startLocal()
    try {
      const jobs = await connectJobs(server.url)
      try {
        const before = await jobs.submit({ command: ["sleep", "0.5"] })
        await sendRaw(server.port, [Buffer.from("GET / HTTP/1.1\r\nHost: x\r\n\r\n")], true)
        await sendRaw(server.port, [Buffer.alloc(64 * 1024, 0xc1)], true)
        // A msgpack array header that promises more than ever arrives, then the peer vanishes.
        await sendRaw(server.port, [Buffer.from([0xdd, 0x00, 0x01, 0x00, 0x00, 0x01])], false)
        const [record] = await jobs.wait([before])
        assert.strictEqual(record!.state, "completed")
        const after = await jobs.submit({ command: ["true"] })
        assert.strictEqual((await jobs.wait([after]))[0]!.state, "completed")
        // A new client connects and is served as usual.
        const other = await connectJobs(server.url)
        assert.strictEqual((await other.get(after)).id, after)
        await other.close()
      } finally {
        await jobs.close()
      }
      assert.strictEqual(await server.stop("SIGTERM"), 0)
    } finally {
      if (server.child.exitCode === null) server.child.kill("SIGKILL")
    }
  })
})
