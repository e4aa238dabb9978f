/**
 * Remote jobs: a `--role=local` and a `--role=remote` as separate processes on 127.0.0.1.
 *  - `true` jobs per second sent to the remote over framed TCP, against the same jobs on the
 *    local server's own executor in the same run (bar: at least 0.8× local);
 *  - submit → completed latency (p50, p99) of one remote `true` job at a time, over each transport.
 */
import { spawn } from "node:child_process"
import type { ChildProcess } from "node:child_process"
import * as Path from "node:path"
import { connectJobs } from "../../src/client/index.js"
import type { SubmitInput } from "../../src/client/index.js"
import type { Bench } from "./lib.js"
import { freePort, latency, ms, notes, now, progress, rate, ratio, table, tempDir, verdict } from "./lib.js"

const name = "remote"
const env = (key: string, fallback: number) => Number(process.env[key] ?? fallback)
const throughputJobs = env("BENCH_REMOTE_JOBS", 1000)
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

const withPair = async <A>(scheme: string, body: (url: string) => Promise<A>): Promise<A> => {
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
    return await body(localUrl)
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
  notes([
    `remote over framed ${rate(rates.remote)} vs local ${rate(rates.local)}: ${ratio(rates.remote, rates.local)} ` +
    `(bar ≥ 0.8×): ${verdict(rates.remote >= 0.8 * rates.local)}`
  ])
}

export const bench: Bench = {
  name,
  description: "remote true jobs against the local executor, and submit → completed latency per transport",
  run
}
