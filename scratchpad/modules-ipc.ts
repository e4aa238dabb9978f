/**
 * Scratch: which channel between the module server and a worker process is cheapest for one call
 * and its reply? A child process echoes `{ id, fn, args }` as `{ id, value }` over:
 *  - Node's IPC (`process.send`), JSON serialization;
 *  - Node's IPC, `serialization: "advanced"` (structured clone);
 *  - a dedicated pipe (stdio fd 3) with length-prefixed msgpack, writes batched per microtask;
 *  - the same pipe, writes batched per setImmediate.
 * Sequential round trips (p50, p99) and 16 in flight (calls/s). Run: `npx tsx scratchpad/modules-ipc.ts`.
 */
import { spawn } from "node:child_process"
import { createRequire } from "node:module"
import type { ChildProcess } from "node:child_process"
import { Packr, Unpackr } from "msgpackr"
import type { Readable, Writable } from "node:stream"

const quantile = (sorted: ReadonlyArray<number>, q: number) => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!

const ipcChild = `
process.on("message", (m) => { process.send({ id: m.id, value: m.args[0] }) })
`

const pipeChild = (flush: "microtask" | "immediate") => `
const { Packr, Unpackr } = require(${JSON.stringify(createRequire(import.meta.url).resolve("msgpackr"))})
const packr = new Packr({ useRecords: false }), unpackr = new Unpackr({ useRecords: false })
const sock = new (require("node:net").Socket)({ fd: 3, readable: true, writable: true }); sock.setNoDelay?.(true); const input = sock, output = sock
let buf = Buffer.alloc(0), out = [], scheduled = false
const flush = () => { scheduled = false; const b = Buffer.concat(out); out = []; output.write(b) }
input.on("data", (chunk) => {
  buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk])
  let at = 0
  while (buf.length - at >= 4) {
    const n = buf.readUInt32BE(at)
    if (buf.length - at - 4 < n) break
    const m = unpackr.unpack(buf.subarray(at + 4, at + 4 + n)); at += 4 + n
    const body = packr.pack({ id: m.id, value: m.args[0] })
    const head = Buffer.allocUnsafe(4); head.writeUInt32BE(body.length)
    out.push(head, body)
    if (!scheduled) { scheduled = true; ${flush === "microtask" ? "queueMicrotask(flush)" : "setImmediate(flush)"} }
  }
  buf = buf.subarray(at)
})
`

interface Channel {
  readonly call: (id: number, args: ReadonlyArray<unknown>) => Promise<unknown>
  readonly close: () => void
}

const ipcChannel = (serialization: "json" | "advanced"): Channel => {
  const child = spawn(process.execPath, ["-e", ipcChild], { serialization, stdio: ["ignore", "inherit", "inherit", "ipc"] })
  const pending = new Map<number, (v: unknown) => void>()
  child.on("message", (m: any) => {
    pending.get(m.id)!(m.value)
    pending.delete(m.id)
  })
  return {
    call: (id, args) =>
      new Promise((resolve) => {
        pending.set(id, resolve)
        child.send({ id, fn: "echo", args })
      }),
    close: () => child.kill()
  }
}

const pipeChannel = (flush: "microtask" | "immediate"): Channel => {
  const child: ChildProcess = spawn(process.execPath, ["-e", pipeChild(flush)], { stdio: ["ignore", "inherit", "inherit", "pipe"] })
  const pipe = child.stdio[3] as unknown as Readable & Writable
  const packr = new Packr({ useRecords: false })
  const unpackr = new Unpackr({ useRecords: false })
  const pending = new Map<number, (v: unknown) => void>()
  let buf: Buffer = Buffer.alloc(0)
  pipe.on("data", (chunk: Buffer) => {
    buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk])
    let at = 0
    while (buf.length - at >= 4) {
      const n = buf.readUInt32BE(at)
      if (buf.length - at - 4 < n) break
      const m = unpackr.unpack(buf.subarray(at + 4, at + 4 + n)) as { id: number; value: unknown }
      at += 4 + n
      pending.get(m.id)!(m.value)
      pending.delete(m.id)
    }
    buf = buf.subarray(at)
  })
  let out: Array<Buffer> = []
  let scheduled = false
  const doFlush = () => {
    scheduled = false
    const b = Buffer.concat(out)
    out = []
    pipe.write(b)
  }
  return {
    call: (id, args) =>
      new Promise((resolve) => {
        pending.set(id, resolve)
        const body = packr.pack({ id, fn: "echo", args })
        const head = Buffer.allocUnsafe(4)
        head.writeUInt32BE(body.length)
        out.push(head, body)
        if (!scheduled) {
          scheduled = true
          if (flush === "microtask") queueMicrotask(doFlush)
          else setImmediate(doFlush)
        }
      }),
    close: () => child.kill()
  }
}

const measure = async (name: string, channel: Channel) => {
  let id = 0
  const args = ["hello", 42, { a: [1, 2, 3] }]
  for (let i = 0; i < 2000; i++) await channel.call(id++, args)
  const samples: Array<number> = []
  for (let i = 0; i < 5000; i++) {
    const t0 = performance.now()
    await channel.call(id++, args)
    samples.push(performance.now() - t0)
  }
  samples.sort((a, b) => a - b)
  const total = 40_000
  let next = 0
  const t0 = performance.now()
  await Promise.all(Array.from({ length: 16 }, async () => {
    while (next++ < total) await channel.call(id++, args)
  }))
  const seconds = (performance.now() - t0) / 1000
  console.log(
    `| ${name.padEnd(40)} | ${(quantile(samples, 0.5) * 1000).toFixed(0).padStart(5)} µs | ${(quantile(samples, 0.99) * 1000).toFixed(0).padStart(5)} µs | ${Math.round(total / seconds).toLocaleString("en-US").padStart(8)}/s |`
  )
  channel.close()
}

const main = async () => {
  console.log("| channel | p50 | p99 | 16 in flight |")
  for (let round = 0; round < 2; round++) {
    await measure("process.send, json", ipcChannel("json"))
    await measure("process.send, advanced", ipcChannel("advanced"))
    await measure("pipe fd 3, msgpack, microtask batch", pipeChannel("microtask"))
    await measure("pipe fd 3, msgpack, setImmediate batch", pipeChannel("immediate"))
  }
}

void main()
