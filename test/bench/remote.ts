/**
 * Remote jobs: a `--role=local` and a `--role=remote` as separate processes on 127.0.0.1.
 *  - `true` jobs per second sent to the remote over framed TCP, against the same jobs on the
 *    local server's own executor in the same run (bar: at least 0.8× local);
 *  - submit → completed latency (p50, p99) of one remote `true` job at a time, over each transport;
 *  - a 1 GiB output file shipped back over framed TCP, against a raw TCP copy of the same bytes
 *    between two processes in the same run (MB/s).
 */
import { spawn } from "node:child_process"
import * as Fs from "node:fs"
import type { ChildProcess } from "node:child_process"
import * as Net from "node:net"
import * as Path from "node:path"
import { connectJobs } from "../../src/client/index.js"
import type { SubmitInput } from "../../src/client/index.js"
import type { Bench } from "./lib.js"
import { freePort, latency, ms, notes, now, progress, rate, ratio, table, tempDir, verdict } from "./lib.js"

const name = "remote"
const env = (key: string, fallback: number) => Number(process.env[key] ?? fallback)
const throughputJobs = env("BENCH_REMOTE_JOBS", 1000)
const bigFileMiB = env("BENCH_REMOTE_BIG_MIB", 1024)
const sequentialJobs = env("BENCH_REMOTE_SEQUENTIAL", 100)

const cli = Path.resolve(import.meta.dirname, "..", "..", "..", "dist", "node.js")

// Starts a role and resolves once it logs that it listens.
const startRole = (args: ReadonlyArray<string>, cwd: string): Promise<ChildProcess> =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cli, ...args], { cwd, stdio: ["ignore", "ignore", "pipe"] })
    let seen = ""
    child.stderr!.on("data", (chunk: Buffer) => {
      seen += chunk.toString()
      if (seen.includes("listening on")) resolve(child)
    })
    child.once("exit", (code) => reject(new Error(`${args.join(" ")} exited with ${code}: ${seen}`)))
  })

const stop = (child: ChildProcess) =>
  new Promise<void>((resolve) => {
    child.removeAllListeners("exit")
    if (child.exitCode !== null) return resolve()
    child.once("exit", () => resolve())
    child.kill("SIGKILL")
  })

const withPair = async <A>(scheme: string, body: (url: string, workdir: string) => Promise<A>): Promise<A> => {
  const dir = tempDir(`troupe-bench-remote-${scheme}-`)
  const remoteUrl = scheme === "unix"
    ? `unix://${Path.join(dir.dir, "remote.sock")}`
    : scheme === "folder"
    ? `folder://${Path.join(dir.dir, "shared")}`
    : `${scheme}://127.0.0.1:${await freePort()}`
  const localUrl = `tcp://127.0.0.1:${await freePort()}`
  const remote = await startRole(["--role=remote", "--listen", remoteUrl, "--workdir", Path.join(dir.dir, "remote")], dir.dir)
  const local = await startRole(
    ["--role=local", "--db", Path.join(dir.dir, "t.db"), "--listen", localUrl, "--remote", `box=${remoteUrl}`],
    dir.dir
  )
  try {
    return await body(localUrl, Path.join(dir.dir, "remote"))
  } finally {
    await stop(local)
    await stop(remote)
    dir.remove()
  }
}

const throughput = (url: string, on: string | undefined) =>
  (async () => {
    const jobs = await connectJobs(url)
    try {
      const spec: SubmitInput = on === undefined ? { command: ["true"] } : { command: ["true"], on }
      const warm = await jobs.submitMany(Array.from({ length: 50 }, () => spec))
      await jobs.wait(warm)
      const t0 = now()
      const ids = await jobs.submitMany(Array.from({ length: throughputJobs }, () => spec))
      const records = await jobs.wait(ids, { timeout: "600 seconds" })
      const seconds = (now() - t0) / 1000
      const bad = records.filter((r) => r.state !== "completed").length
      if (bad > 0) throw new Error(`${bad} jobs did not complete`)
      return throughputJobs / seconds
    } finally {
      await jobs.close()
    }
  })()

const sequential = async (url: string) => {
  const jobs = await connectJobs(url)
  try {
    const samples: Array<number> = []
    for (let i = 0; i < sequentialJobs + 5; i++) {
      const t0 = now()
      const id = await jobs.submit({ command: ["true"], on: "box" })
      await jobs.wait([id])
      if (i >= 5) samples.push(now() - t0)
    }
    return latency(samples)
  } finally {
    await jobs.close()
  }
}

// The remote writes the file; the clock runs from the remote's end of the job (its journal) to the
// local record of completion, which is the shipping: spool, transport, spool, checksum, move.
const bigOutput = (url: string, workdir: string) =>
  (async () => {
    const jobs = await connectJobs(url)
    try {
      const id = await jobs.submit({
        command: ["sh", "-c", `head -c ${bigFileMiB * 1024 * 1024} /dev/urandom > big.bin`],
        on: "box",
        outputs: ["big.bin"]
      })
      const [record] = await jobs.wait([id], { timeout: "1200 seconds" })
      if (record!.state !== "completed" || record!.outputs.length !== 1) throw new Error(`big job ended ${record!.state}`)
      const end = Fs.readFileSync(Path.join(workdir, "ended.log"), "utf8").split("\n")
        .filter((line) => line.length > 0)
        .map((line) => JSON.parse(line) as { readonly key: string; readonly at: number })
        .find((entry) => entry.key === `${id}-1`)!
      const seconds = (record!.finishedAt! - end.at) / 1000
      return (bigFileMiB * 1024 * 1024) / 1e6 / seconds
    } finally {
      await jobs.close()
    }
  })()

// The same bytes from one process to another over loopback TCP, written to a file (the limit).
const rawCopy = async (): Promise<number> => {
  const dir = tempDir("troupe-bench-rawcopy-")
  try {
    const source = Path.join(dir.dir, "source.bin")
    await new Promise<void>((resolve, reject) => {
      const child = spawn("sh", ["-c", `head -c ${bigFileMiB * 1024 * 1024} /dev/urandom > ${JSON.stringify(source)}`])
      child.once("exit", (code) => (code === 0 ? resolve() : reject(new Error(`head exited ${code}`))))
    })
    const port = await freePort()
    const target = Path.join(dir.dir, "target.bin")
    const receiver = spawn(process.execPath, ["-e", `
      const net = require("node:net"), fs = require("node:fs")
      const server = net.createServer((socket) => {
        const out = fs.createWriteStream(${JSON.stringify(target)})
        socket.pipe(out)
        out.on("finish", () => { process.stdout.write("done"); server.close() })
      }).listen(${port}, "127.0.0.1", () => process.stdout.write("ready"))
    `], { stdio: ["ignore", "pipe", "inherit"] })
    // One listener from the start: a word said before anyone waits for it must not be lost.
    let said = ""
    const waiters: Array<() => void> = []
    receiver.stdout!.on("data", (chunk: Buffer) => {
      said += chunk.toString()
      waiters.splice(0).forEach((wake) => wake())
    })
    receiver.once("exit", () => waiters.splice(0).forEach((wake) => wake()))
    const heard = (word: string) =>
      new Promise<void>((resolve, reject) => {
        const check = () => {
          if (said.includes(word)) return resolve()
          if (receiver.exitCode !== null) return reject(new Error(`the receiver exited before saying ${word}`))
          waiters.push(check)
        }
        check()
      })
    await heard("ready")
    const t0 = now()
    await new Promise<void>((resolve, reject) => {
      const socket = Net.createConnection({ host: "127.0.0.1", port }, () => {
        Fs.createReadStream(source).pipe(socket)
      })
      socket.once("error", reject)
      socket.once("close", () => resolve())
    })
    await heard("done")
    const seconds = (now() - t0) / 1000
    receiver.kill()
    return (bigFileMiB * 1024 * 1024) / 1e6 / seconds
  } finally {
    dir.remove()
  }
}

const run = async () => {
  const rates = await withPair("framed", async (url) => {
    progress(name, `local executor: ${throughputJobs} true jobs`)
    const local = await throughput(url, undefined)
    progress(name, `remote over framed: ${throughputJobs} true jobs`)
    const remote = await throughput(url, "box")
    return { local, remote }
  })
  table(
    `\`true\` jobs, ${throughputJobs.toLocaleString("en-US")} submitted at once (both servers on this machine, 2 cores each)`,
    ["where", "jobs/s"],
    [["local executor", rate(rates.local)], ["remote over framed://", rate(rates.remote)]]
  )
  const latencies: Array<readonly [string, ReturnType<typeof latency>]> = []
  for (const scheme of ["framed", "tcp", "unix", "folder"]) {
    progress(name, `submit → completed over ${scheme}://`)
    latencies.push([scheme, await withPair(scheme, sequential)])
  }
  table(
    `One remote \`true\` job at a time: submit → completed (${sequentialJobs} jobs)`,
    ["transport", "p50", "p99"],
    latencies.map(([scheme, l]) => [`${scheme}://`, ms(l.p50), ms(l.p99)])
  )
  progress(name, `a ${bigFileMiB} MiB output file shipped back over framed://`)
  const shipped = await withPair("framed", (url, workdir) => bigOutput(url, workdir))
  progress(name, `a raw TCP copy of ${bigFileMiB} MiB`)
  const raw = await rawCopy()
  table(
    `A ${bigFileMiB} MiB output file, remote → local`,
    ["path", "MB/s"],
    [["raw TCP copy between two processes (the limit)", raw.toFixed(0)], ["shipped back over framed://", shipped.toFixed(0)]]
  )
  notes([
    `remote over framed ${rate(rates.remote)} vs local ${rate(rates.local)}: ${ratio(rates.remote, rates.local)} ` +
    `(bar ≥ 0.8×): ${verdict(rates.remote >= 0.8 * rates.local)}`,
    `output shipped back at ${shipped.toFixed(0)} MB/s: ${ratio(shipped, raw)} a raw TCP copy`
  ])
}

export const bench: Bench = {
  name,
  description: "remote true jobs against the local executor, and submit → completed latency per transport",
  run
}
