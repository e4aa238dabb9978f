/**
 * The exec role, client and server in two processes (`node dist/node.js --role=exec`):
 *  - `exec` of `true`: round trips/s and p50/p99, sequential and 10 in flight, over framed:// and
 *    tcp://, against a local child_process.spawn of `true` in this process (the limit);
 *  - output streaming: MB/s of a large `cat` read through an exec listener, against a local
 *    `cat FILE > /dev/null` and a local `cat` piped into this process;
 *  - `transfer`: MB/s of a file sent in checksummed chunks, against a raw TCP copy of the same
 *    file to a child process that writes it to disk.
 */
import { spawn } from "node:child_process"
import type { ChildProcess } from "node:child_process"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Path from "node:path"
import { ExecClientPool } from "../../src/client/ExecPromiseClient.js"
import type { PromiseExecConnection } from "../../src/client/ExecPromiseClient.js"
import type { Bench, Latency } from "./lib.js"
import { bytes, freePort, latency, ms, notes, now, progress, rate, ratio, table, tempDir } from "./lib.js"

const name = "exec"
const env = (key: string, fallback: number) => Number(process.env[key] ?? fallback)
const sequentialCalls = env("BENCH_EXEC_CALLS", 300)
const concurrentCalls = env("BENCH_EXEC_CONCURRENT_CALLS", 600)
const inFlight = 10
const streamBytes = env("BENCH_EXEC_STREAM_MB", 256) * 1024 * 1024
const transferBytes = env("BENCH_EXEC_TRANSFER_MB", 128) * 1024 * 1024
const repeats = env("BENCH_EXEC_REPEATS", 3)

const repoRoot = Path.resolve(import.meta.dirname, "..", "..", "..")
const cli = Path.join(repoRoot, "dist", "node.js")

export const bench: Bench = {
  name,
  description: "exec of true, output streaming and transfer, against local spawn, local cat and a raw TCP copy",
  run: async () => {
    const scratch = tempDir("exec")
    const servers: Array<ChildProcess> = []
    const pool = new ExecClientPool()
    try {
      const framedPort = await freePort()
      const tcpPort = await freePort()
      servers.push(await startServer(scratch.dir, [`framed://127.0.0.1:${framedPort}`, `tcp://127.0.0.1:${tcpPort}`]))
      const framed = await pool.add(`framed://127.0.0.1:${framedPort}`).connect({ timeout: 20_000 })
      const tcp = await pool.add(`tcp://127.0.0.1:${tcpPort}`).connect({ timeout: 20_000 })
      await roundTrips(framed, tcp)
      const file = Path.join(scratch.dir, "big.bin")
      writeFile(file, Math.max(streamBytes, transferBytes))
      await streaming(framed, tcp, file)
      await transfers(framed, tcp, file, scratch.dir)
    } finally {
      await pool.closeAll()
      for (const server of servers) await stop(server)
      scratch.remove()
    }
  }
}

// ---------------------------------------------------------------------------------------------
// exec of `true`

const roundTrips = async (framed: PromiseExecConnection, tcp: PromiseExecConnection) => {
  const rows: Array<Array<string>> = []
  const measure = async (label: string, call: () => Promise<unknown>) => {
    for (let i = 0; i < 20; i++) await call()
    progress(name, `true: ${label}, ${sequentialCalls} sequential`)
    const sequential = await timed(sequentialCalls, 1, call)
    progress(name, `true: ${label}, ${concurrentCalls} with ${inFlight} in flight`)
    const concurrent = await timed(concurrentCalls, inFlight, call)
    rows.push(row(label, sequential, concurrent))
    return { sequential, concurrent }
  }
  const local = await measure("local child_process.spawn (the limit)", spawnTrue)
  const overFramed = await measure("exec over framed://", () => expectZero(framed.exec(["true"])))
  await measure("exec over tcp://", () => expectZero(tcp.exec(["true"])))
  await measure("exec over framed://, via /bin/sh -c", () => expectZero(framed.exec("true")))
  table(
    "exec of `true`: round trips",
    ["path", "p50", "p99", "sequential/s", `${inFlight} in flight/s`, `p50 at ${inFlight}`],
    rows
  )
  notes([
    `exec over framed:// against local spawn: ${ratio(overFramed.sequential.perSecond, local.sequential.perSecond)} sequential, ` +
    `${ratio(overFramed.concurrent.perSecond, local.concurrent.perSecond)} with ${inFlight} in flight`,
    "each exec: a stream RPC (Started, Exited), a fork+exec of the program in its own process group on the server"
  ])
}

const spawnTrue = (): Promise<void> =>
  new Promise((resolve, reject) => {
    const child = spawn("true", [], { stdio: "ignore", detached: true })
    child.once("error", reject)
    child.once("exit", (code) => (code === 0 ? resolve() : reject(new Error(`true exited ${code}`))))
  })

const expectZero = async (result: Promise<{ readonly exitCode: number | null }>): Promise<void> => {
  const { exitCode } = await result
  if (exitCode !== 0) throw new Error(`exit code ${exitCode}`)
}

// ---------------------------------------------------------------------------------------------
// output streaming

const streaming = async (framed: PromiseExecConnection, tcp: PromiseExecConnection, file: string) => {
  const size = streamBytes
  const command = `head -c ${size} ${file}`
  const rows: Array<Array<string>> = []
  const measure = async (label: string, once: () => Promise<number>) => {
    const samples: Array<number> = []
    for (let i = 0; i < repeats; i++) {
      progress(name, `stream: ${label} (${i + 1}/${repeats})`)
      const start = now()
      const got = await once()
      if (got !== size) throw new Error(`${label}: read ${got} bytes, expected ${size}`)
      samples.push(now() - start)
    }
    const l = latency(samples)
    rows.push([label, ms(l.p50), ms(l.max), `${(size / 1024 / 1024 / (l.p50 / 1000)).toFixed(0)} MB/s`])
    return size / (l.p50 / 1000)
  }
  const throughExec = (conn: PromiseExecConnection) => async () => {
    let got = 0
    for await (const chunk of await conn.exec(command, { complete: false })) got += chunk.data.length
    return got
  }
  const localNull = await measure("local `head … > /dev/null` (the limit)", () =>
    new Promise((resolve, reject) => {
      const child = spawn("sh", ["-c", `${command} > /dev/null`], { stdio: "ignore" })
      child.once("error", reject)
      child.once("exit", () => resolve(size))
    }))
  const localPipe = await measure("local `head` piped into this process", () =>
    new Promise((resolve, reject) => {
      const child = spawn("sh", ["-c", command], { stdio: ["ignore", "pipe", "ignore"] })
      let got = 0
      child.stdout!.on("data", (data: Buffer) => (got += data.length))
      child.once("error", reject)
      child.once("close", () => resolve(got))
    }))
  const overFramed = await measure("exec over framed://, read by a listener", throughExec(framed))
  await measure("exec over tcp://, read by a listener", throughExec(tcp))
  table(`output streaming: ${bytes(size)} of \`head -c\` of a file`, ["path", "p50", "max", "MB/s (p50)"], rows)
  notes([
    `exec over framed:// against a local pipe: ${ratio(overFramed, localPipe)}; against /dev/null: ${ratio(overFramed, localNull)}`,
    "the server holds at most 1 MiB per command and the client its 4 MiB credit window"
  ])
}

// ---------------------------------------------------------------------------------------------
// transfer

const transfers = async (framed: PromiseExecConnection, tcp: PromiseExecConnection, file: string, dir: string) => {
  const size = transferBytes
  const source = Path.join(dir, "transfer.bin")
  Fs.copyFileSync(file, source)
  Fs.truncateSync(source, size)
  const rows: Array<Array<string>> = []
  const measure = async (label: string, once: (i: number) => Promise<void>) => {
    const samples: Array<number> = []
    for (let i = 0; i < repeats; i++) {
      progress(name, `transfer: ${label} (${i + 1}/${repeats})`)
      const start = now()
      await once(i)
      samples.push(now() - start)
    }
    const l = latency(samples)
    rows.push([label, ms(l.p50), ms(l.max), `${(size / 1024 / 1024 / (l.p50 / 1000)).toFixed(0)} MB/s`])
    return size / (l.p50 / 1000)
  }
  const sinkPort = await freePort()
  const sink = await startSink(sinkPort, Path.join(dir, "raw-copy.bin"))
  try {
    const raw = await measure("raw TCP copy to a child process writing the file (the limit)", () => rawCopy(sinkPort, source, size))
    const overFramed = await measure("transfer over framed:// (1 MiB chunks, SHA-256)", async (i) => {
      await framed.transfer(source, `framed-${i}.bin`)
    })
    await measure("transfer over tcp:// (1 MiB chunks, SHA-256)", async (i) => {
      await tcp.transfer(source, `tcp-${i}.bin`)
    })
    table(`transfer: ${bytes(size)} file`, ["path", "p50", "max", "MB/s (p50)"], rows)
    notes([
      `transfer over framed:// against a raw TCP copy: ${ratio(overFramed, raw)}`,
      "a transfer is one call per chunk (up to 4 in flight), each written at its offset and acknowledged, plus the SHA-256 of the file on both ends"
    ])
  } finally {
    await stop(sink)
  }
}

// The raw anchor: a child process that writes what one connection sends to a file, then answers "ok".
const sinkScript = `
const net = require("node:net"), fs = require("node:fs")
const [port, file] = process.argv.slice(1)
net.createServer({ allowHalfOpen: true }, (socket) => {
  const out = fs.createWriteStream(file)
  socket.pipe(out)
  out.on("finish", () => socket.end("ok"))
}).listen(Number(port), "127.0.0.1", () => process.stdout.write("ready\\n"))
process.stdin.on("end", () => process.exit(0)).resume()
`

const startSink = (port: number, file: string): Promise<ChildProcess> =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["-e", sinkScript, String(port), file], { stdio: ["pipe", "pipe", "inherit"] })
    child.stdout!.once("data", () => resolve(child))
    child.once("exit", (code) => reject(new Error(`sink exited with ${code}`)))
  })

const rawCopy = (port: number, source: string, size: number): Promise<void> =>
  new Promise((resolve, reject) => {
    const socket = Net.connect(port, "127.0.0.1")
    socket.setNoDelay(true)
    socket.once("error", reject)
    socket.once("connect", () => {
      const input = Fs.createReadStream(source, { highWaterMark: 1 << 20 })
      input.once("end", () => socket.end())
      input.pipe(socket, { end: false })
    })
    let answer = ""
    socket.on("data", (data: Buffer) => (answer += data.toString()))
    socket.once("close", () => (answer === "ok" ? resolve() : reject(new Error(`raw copy of ${size} bytes: ${answer}`))))
  })

// ---------------------------------------------------------------------------------------------
// helpers

interface Timed extends Latency {
  readonly perSecond: number
}

const timed = async (total: number, concurrency: number, call: () => Promise<unknown>): Promise<Timed> => {
  const samples: Array<number> = []
  let next = 0
  const start = now()
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < total) {
      next++
      const t0 = now()
      await call()
      samples.push(now() - t0)
    }
  }))
  const elapsed = now() - start
  return { ...latency(samples), perSecond: total / (elapsed / 1000) }
}

const row = (label: string, sequential: Timed, concurrent: Timed): Array<string> => [
  label,
  ms(sequential.p50),
  ms(sequential.p99),
  rate(sequential.perSecond),
  rate(concurrent.perSecond),
  ms(concurrent.p50)
]

const startServer = (root: string, listen: ReadonlyArray<string>): Promise<ChildProcess> =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cli, "--role=exec", ...listen.flatMap((url) => ["--listen", url]), "--root", root], {
      stdio: ["ignore", "ignore", "pipe"],
      env: { ...process.env, TROUPE_SECRET_FILE: "" }
    })
    let seen = ""
    child.stderr!.on("data", (chunk: Buffer) => {
      seen += chunk.toString()
      if (seen.includes("listening on")) resolve(child)
    })
    child.once("exit", (code) => reject(new Error(`exec server exited with ${code}: ${seen}`)))
  })

const stop = (child: ChildProcess): Promise<void> =>
  new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve()
    child.removeAllListeners("exit")
    child.once("exit", () => resolve())
    if (child.stdin !== null) child.stdin.end()
    child.kill("SIGTERM")
    setTimeout(() => child.kill("SIGKILL"), 3000).unref()
  })

const writeFile = (file: string, size: number): void => {
  const out = Fs.openSync(file, "w")
  const block = Buffer.alloc(1 << 20)
  for (let i = 0; i < block.length; i++) block[i] = (i * 31 + 7) & 0xff
  for (let written = 0; written < size; written += block.length) Fs.writeSync(out, block, 0, Math.min(block.length, size - written))
  Fs.closeSync(out)
}
