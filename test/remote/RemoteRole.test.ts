import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import { spawn } from "node:child_process"
import type { ChildProcess } from "node:child_process"
import * as Crypto from "node:crypto"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { connectJobs } from "../../src/client/index.js"
import type { JobsConnection } from "../../src/client/index.js"
import { cli, eventually, freePort, runCli, startLocal, tempDir } from "../integration/harness.js"
import type { LocalServer } from "../integration/harness.js"

/** A `--role=remote` process started by a test. */
interface RemoteProcess {
  readonly url: string
  readonly workdir: string
  readonly child: ChildProcess
  readonly stderr: () => string
  readonly stop: (signal?: NodeJS.Signals) => Promise<void>
}

const startRemote = async (url: string, workdir: string, extraArgs: ReadonlyArray<string> = []): Promise<RemoteProcess> => {
  const child = spawn(process.execPath, [cli, "--role=remote", "--listen", url, "--workdir", workdir, "--cores", "2", ...extraArgs], {
    cwd: workdir,
    stdio: ["ignore", "ignore", "pipe"]
  })
  let stderr = ""
  child.stderr!.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk))
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()))
  await eventually(() => (stderr.includes("listening on") ? true : child.exitCode !== null ? false : undefined), 20_000, "the remote")
  if (child.exitCode !== null) throw new Error(`the remote exited: ${stderr}`)
  return {
    url,
    workdir,
    child,
    stderr: () => stderr,
    stop: async (signal = "SIGTERM") => {
      if (child.exitCode === null) child.kill(signal)
      await exited
    }
  }
}

const endpointFor = async (scheme: string, dir: string): Promise<string> =>
  scheme === "unix"
    ? `unix://${Path.join(dir, "remote.sock")}`
    : scheme === "folder"
    ? `folder://${Path.join(dir, "shared")}`
    : `${scheme}://127.0.0.1:${await freePort()}`

interface Pair {
  readonly local: LocalServer
  readonly remote: RemoteProcess
  readonly jobs: JobsConnection
  readonly dir: string
}

const startPair = async (
  scheme: string,
  extraLocalArgs: ReadonlyArray<string> = [],
  extraRemoteArgs: ReadonlyArray<string> = []
): Promise<Pair> => {
  const dir = tempDir("troupe-remote-")
  const url = await endpointFor(scheme, dir)
  const workdir = Path.join(dir, "remote")
  Fs.mkdirSync(workdir, { recursive: true })
  const remote = await startRemote(url, workdir, extraRemoteArgs)
  const local = await startLocal({ dir, extraArgs: ["--remote", `box=${url}`, ...extraLocalArgs] })
  const jobs = await connectJobs(local.url)
  return { local, remote, jobs, dir }
}

const stopPair = async (pair: Pair | undefined) => {
  await pair?.jobs.close()
  await pair?.local.stop("SIGKILL")
  await pair?.remote.stop("SIGKILL")
}

/** The ends a remote has journaled, by `<id>-<attempt>` (a last line without its newline is not finished). */
const journaled = (workdir: string) => {
  const text = Fs.existsSync(Path.join(workdir, "ended.log")) ? Fs.readFileSync(Path.join(workdir, "ended.log"), "utf8") : ""
  return new Map(text.split("\n").slice(0, -1).filter((line) => line.length > 0).map((line) => {
    const entry = JSON.parse(line) as { readonly key: string; readonly state: string; readonly exitCode: number | null }
    return [entry.key, entry] as const
  }))
}

const counts = (records: ReadonlyArray<{ readonly state: string }>) => {
  const out: Record<string, number> = {}
  for (const record of records) out[record.state] = (out[record.state] ?? 0) + 1
  return out
}

for (const scheme of ["tcp", "unix", "framed", "folder"]) {
  describe(`remote jobs over ${scheme}://`, () => {
    let pair: Pair
    beforeAll(async () => {
      pair = await startPair(scheme)
    })
    afterAll(() => stopPair(pair))

    const many = scheme === "tcp" ? 1000 : 100
    it(`${many} short jobs all complete, each once, and the records say where they ran`, async () => {
      const ids = await pair.jobs.submitMany(
        Array.from({ length: many }, (_, i) => ({ command: ["sh", "-c", `echo job-${i}`], on: "box" }))
      )
      const records = await pair.jobs.wait(ids, { timeout: "120 seconds" })
      assert.deepStrictEqual(counts(records), { completed: many }, JSON.stringify(records.filter((r) => r.state !== "completed")))
      assert.isTrue(records.every((r) => r.location === "box" && r.attempts === 1))
      // The remote ran each attempt exactly once: one folder per attempt.
      const folders = Fs.readdirSync(Path.join(pair.remote.workdir, "jobs"))
      assert.strictEqual(folders.length, many)
      const sample = records[many - 1]!
      const logs = await runCli(["logs", "--server", pair.local.url, sample.id])
      assert.match(logs.stdout, /^job-\d+\n$/)
    }, 180_000)

    it("files go in, outputs come back checked, and the exit code is the remote's", async () => {
      const input = Path.join(pair.dir, "input.bin")
      const data = Crypto.randomBytes(3 * 1024 * 1024)
      Fs.writeFileSync(input, data)
      const result = await runCli([
        "submit", "--server", pair.local.url, "--on", "box", "--in", `${input}:data/in.bin`, "--out", "out/*.bin",
        "--wait", "--", "sh", "-c", "mkdir -p out && cp data/in.bin out/copy.bin && exit 7"
      ], { cwd: pair.dir })
      assert.strictEqual(result.code, 7, result.stderr)
      const [record] = await pair.jobs.wait([result.stdout.trim()])
      assert.strictEqual(record!.outputs.length, 1)
      assert.isTrue(record!.outputs[0]!.endsWith(Path.join("outputs", "out", "copy.bin")))
      assert.isTrue(Fs.readFileSync(record!.outputs[0]!).equals(data))
    }, 60_000)
  })
}

describe("retention on the remote (--keep)", () => {
  let pair: Pair
  beforeAll(async () => {
    pair = await startPair("framed", [], ["--keep", "1s"])
  })
  afterAll(() => stopPair(pair))

  it("an ended attempt's folder and journal line go after --keep; its outputs and logs stay on the local server", async () => {
    const result = await runCli([
      "submit", "--server", pair.local.url, "--on", "box", "--out", "out/*.txt", "--wait", "--",
      "sh", "-c", "mkdir -p out && echo kept > out/result.txt && echo said"
    ], { cwd: pair.dir })
    assert.strictEqual(result.code, 0, result.stderr)
    const id = result.stdout.trim()
    const folder = Path.join(pair.remote.workdir, "jobs", `${id}-1`)
    await eventually(() => (!Fs.existsSync(folder) && !journaled(pair.remote.workdir).has(`${id}-1`)) || undefined, 20_000, "the folder to go")
    const [record] = await pair.jobs.wait([id])
    assert.strictEqual(record!.state, "completed")
    assert.strictEqual(Fs.readFileSync(record!.outputs[0]!, "utf8"), "kept\n")
    assert.strictEqual((await runCli(["logs", "--server", pair.local.url, id])).stdout, "said\n")
  }, 60_000)

  it("an attempt that runs longer than --keep is left alone until it has ended", async () => {
    const id = await pair.jobs.submit({ command: ["sh", "-c", "echo start; sleep 3; echo end"], on: "box" })
    const [record] = await pair.jobs.wait([id], { timeout: "30 seconds" })
    assert.strictEqual(record!.state, "completed")
    assert.strictEqual((await runCli(["logs", "--server", pair.local.url, id])).stdout, "start\nend\n")
    await eventually(() => !Fs.existsSync(Path.join(pair.remote.workdir, "jobs", `${id}-1`)) || undefined, 20_000, "the folder to go")
  }, 60_000)

  it("a bad --keep is a usage error", async () => {
    const bad = await runCli(["--role=remote", "--listen", `tcp://127.0.0.1:${await freePort()}`, "--keep", "soon"])
    assert.strictEqual(bad.code, 2)
    assert.include(bad.stderr, "--keep")
  })
})

describe("terminate and failures", () => {
  let pair: Pair
  beforeAll(async () => {
    pair = await startPair("tcp", ["--remote-heartbeat", "300ms", "--remote-timeout", "3s"])
  })
  afterAll(() => stopPair(pair))

  it("kill ends the remote process group at once", async () => {
    const marker = "remote-sleep-marker"
    const id = await pair.jobs.submit({ command: ["sh", "-c", `echo $$ > pid; exec sleep 60 # ${marker}`], on: "box" })
    const pidFile = await eventually(() => {
      const dir = Path.join(pair.remote.workdir, "jobs", `${id}-1`, "pid")
      return Fs.existsSync(dir) && Fs.readFileSync(dir, "utf8").trim() !== "" ? dir : undefined
    }, 20_000, "the remote job to start")
    const pid = Number(Fs.readFileSync(pidFile, "utf8"))
    assert.deepStrictEqual(await pair.jobs.kill([id]), [id])
    const [record] = await pair.jobs.wait([id], { timeout: "20 seconds" })
    assert.strictEqual(record!.state, "killed")
    await eventually(() => (isRunning(pid) ? undefined : true), 10_000, "the remote process to end")
  }, 60_000)

  it("kill -9 of the remote: its jobs are lost within the timeout, retried, and end after a restart", async () => {
    const ids = await pair.jobs.submitMany(
      Array.from({ length: 4 }, () => ({ command: ["sleep", "30"], on: "box", retries: 3, timeLimitMs: 60_000 }))
    )
    await eventually(async () => {
      const records = await pair.jobs.list({ ids: [...ids] })
      // The remote has two cores: two run, two wait in its queue; all four are in its hands.
      return records.every((r) => r.transportState === "running" || r.transportState === "acknowledged")
        ? true
        : undefined
    }, 20_000, "the jobs to run on the remote")
    await pair.remote.stop("SIGKILL")
    const started = Date.now()
    await eventually(async () => {
      const attempts = await Promise.all(ids.map((id) => pair.jobs.attempts(id)))
      return attempts.every((a) => a.length >= 1 && a[0]!.state === "lost") ? true : undefined
    }, 20_000, "the jobs to be marked lost")
    assert.isBelow(Date.now() - started, 10_000)
    // The retries wait for the remote; once it is back they run there and end.
    const restarted = await startRemote(pair.remote.url, pair.remote.workdir)
    ;(pair as { remote: RemoteProcess }).remote = restarted
    await pair.jobs.kill([...ids])
    const records = await pair.jobs.wait([...ids], { timeout: "30 seconds" })
    assert.deepStrictEqual(counts(records), { killed: 4 })
    for (const id of ids) {
      const attempts = await pair.jobs.attempts(id)
      assert.strictEqual(attempts[0]!.state, "lost")
      assert.strictEqual(attempts[0]!.location, "box")
    }
  }, 90_000)

  it("kill -9 of the local server: the remote finishes, and after a restart the results are recorded", async () => {
    const ids = await pair.jobs.submitMany(
      Array.from({ length: 3 }, (_, i) => ({
        command: ["sh", "-c", `sleep 3; echo result-${i} > out.txt`],
        on: "box",
        outputs: ["out.txt"]
      }))
    )
    await eventually(async () => {
      const records = await pair.jobs.list({ ids: [...ids] })
      return records.every((r) => r.transportState === "running" || r.transportState === "acknowledged") ? true : undefined
    }, 40_000, "the jobs to reach the remote")
    await pair.jobs.close()
    await pair.local.stop("SIGKILL")
    // The remote carries on and finishes while the local server is down.
    await eventually(() => {
      const ended = journaled(pair.remote.workdir)
      return ids.every((id) => ended.get(`${id}-1`)?.state === "completed") ? true : undefined
    }, 30_000, "the remote to finish the jobs")
    const local = await startLocal({
      dir: pair.local.dir,
      extraArgs: ["--remote", `box=${pair.remote.url}`, "--remote-heartbeat", "300ms", "--remote-timeout", "3s"]
    })
    ;(pair as { local: LocalServer }).local = local
    const jobs = await connectJobs(local.url)
    ;(pair as { jobs: JobsConnection }).jobs = jobs
    const records = await jobs.wait([...ids], { timeout: "30 seconds" })
    assert.deepStrictEqual(counts(records), { completed: 3 })
    for (const record of records) {
      assert.strictEqual(record.attempts, 1, "the results of the first attempts are recorded, nothing ran again")
      assert.strictEqual(Fs.readFileSync(record.outputs[0]!, "utf8"), `result-${ids.indexOf(record.id)}\n`)
    }
  }, 120_000)

  it("a remote job's output can be followed while it runs", async () => {
    const id = await pair.jobs.submit({
      command: ["sh", "-c", "echo first; while [ ! -f go ]; do sleep 0.05; done; echo second"],
      on: "box"
    })
    const seen: Array<string> = []
    let firstWhileRunning = false
    for await (const chunk of pair.jobs.output(id, "stdout", { follow: true })) {
      seen.push(Buffer.from(chunk).toString())
      if (seen.join("") === "first\n") {
        firstWhileRunning = (await pair.jobs.get(id)).state === "running"
        // Only now may the job finish: the first line reached us while it ran.
        Fs.writeFileSync(Path.join(pair.remote.workdir, "jobs", `${id}-1`, "go"), "")
      }
    }
    assert.isTrue(firstWhileRunning)
    assert.strictEqual(seen.join(""), "first\nsecond\n")
    const [record] = await pair.jobs.wait([id])
    assert.strictEqual(record!.state, "completed")
  }, 60_000)

  it("a remote job's silent streams leave no log files here, as a local job's do, and read as empty", async () => {
    const [local, remote, loud] = [
      await pair.jobs.submit({ command: ["true"] }),
      await pair.jobs.submit({ command: ["true"], on: "box" }),
      await pair.jobs.submit({ command: ["sh", "-c", "echo out"], on: "box" })
    ]
    assert.deepStrictEqual(counts(await pair.jobs.wait([local, remote, loud])), { completed: 3 })
    const read = async (id: string, channel: "stdout" | "stderr") => {
      let text = ""
      for await (const chunk of pair.jobs.output(id, channel)) text += Buffer.from(chunk).toString()
      return text
    }
    const logsOf = (id: string) =>
      (Fs.readdirSync(pair.dir, { recursive: true }) as Array<string>)
        .filter((file) => file.includes(`${id}${Path.sep}`) && /(stdout|stderr)$/.test(file))
        .map((file) => Path.basename(file))
        .sort()
    for (const id of [local, remote]) {
      assert.deepStrictEqual([await read(id, "stdout"), await read(id, "stderr")], ["", ""])
      assert.deepStrictEqual(logsOf(id), [], `job ${id === local ? "local" : "remote"}`)
    }
    assert.strictEqual(await read(loud, "stdout"), "out\n")
    assert.deepStrictEqual(logsOf(loud), ["stdout"])
    // On the remote, a silent attempt costs its folder and one journal line, nothing more.
    assert.deepStrictEqual(Fs.readdirSync(Path.join(pair.remote.workdir, "jobs", `${remote}-1`)), [])
    assert.deepStrictEqual(
      [journaled(pair.remote.workdir).get(`${remote}-1`)?.state, journaled(pair.remote.workdir).get(`${remote}-1`)?.exitCode],
      ["completed", 0]
    )
  }, 60_000)

  it("a restarted remote reads its journal and older state.json ends, and reports only cut-off attempts", async () => {
    const workdir = Path.join(pair.dir, "old-remote")
    const jobs = Path.join(workdir, "jobs")
    for (const key of ["old-1", "cut-1", "new-1"]) Fs.mkdirSync(Path.join(jobs, key, ".troupe"), { recursive: true })
    Fs.writeFileSync(Path.join(jobs, "old-1", ".troupe", "state.json"), JSON.stringify({ state: "completed", exitCode: 0, reason: null, at: 1 }))
    Fs.writeFileSync(
      Path.join(workdir, "ended.log"),
      [{ key: "new-1", state: "failed", exitCode: 2, reason: "exit code 2", at: 2 }, { key: "gone-1", state: "completed", exitCode: 0, reason: null, at: 3 }]
        .map((entry) => `${JSON.stringify(entry)}\n`).join("") + `{"key":"torn`
    )
    const remote = await startRemote(`tcp://127.0.0.1:${await freePort()}`, workdir)
    try {
      // The cut-off attempt is journaled as lost; the ended ones stay; a folder that is gone leaves the journal.
      const ended = await eventually(() => {
        const now = journaled(workdir)
        return now.has("cut-1") ? now : undefined
      }, 20_000, "the cut-off attempt to be reported")
      assert.deepStrictEqual(Array.from(ended.keys()).sort(), ["cut-1", "new-1"])
      assert.strictEqual(ended.get("cut-1")!.state, "lost")
      assert.strictEqual(ended.get("new-1")!.exitCode, 2)
    } finally {
      await remote.stop("SIGKILL")
    }
  }, 60_000)

  it("resend: a finished job runs again where it ran or on a remote, and every attempt says where", async () => {
    const local = await pair.jobs.submit({ command: ["sh", "-c", "exit 3"] })
    const [first] = await pair.jobs.wait([local])
    assert.strictEqual(first!.state, "failed")
    const result = await runCli(["resend", "--server", pair.local.url, "--on", "box", "--wait", local])
    assert.strictEqual(result.code, 1, result.stderr)
    assert.strictEqual(result.stdout, `${local}\n`)
    const attempts = await pair.jobs.attempts(local)
    assert.deepStrictEqual(attempts.map((a) => [a.location, a.state, a.exitCode]), [[null, "failed", 3], ["box", "failed", 3]])
    assert.strictEqual((await pair.jobs.get(local)).spec.on, "box")
    // Again, where it ran last (the remote), with no --on.
    assert.deepStrictEqual(await pair.jobs.resend([local]), [local])
    await pair.jobs.wait([local])
    assert.deepStrictEqual((await pair.jobs.attempts(local)).map((a) => a.location), [null, "box", "box"])
  }, 60_000)

  it("resend refuses a job that has not finished, an unknown job and an unknown remote", async () => {
    const id = await pair.jobs.submit({ command: ["sleep", "30"], on: "box" })
    const running = await runCli(["resend", "--server", pair.local.url, id])
    assert.strictEqual(running.code, 1)
    assert.include(running.stderr, "has not finished")
    const unknown = await runCli(["resend", "--server", pair.local.url, "0000000000000000"])
    assert.strictEqual(unknown.code, 1)
    assert.include(unknown.stderr, "0000000000000000")
    await pair.jobs.kill([id])
    const nowhere = await runCli(["resend", "--server", pair.local.url, "--on", "nowhere", id])
    assert.strictEqual(nowhere.code, 1)
    assert.include(nowhere.stderr, "unknown remote nowhere")
  }, 60_000)

  it("queue shows one view of where each queue's jobs run, here and on remotes", async () => {
    const ids = await pair.jobs.submitMany([
      { command: ["sleep", "30"], on: "box", queue: "mixed" },
      { command: ["sleep", "30"], on: "box", queue: "mixed" },
      { command: ["sleep", "30"], queue: "mixed" }
    ])
    try {
      const where = await eventually(async () => {
        const result = await runCli(["queue", "--server", pair.local.url, "--json"])
        const queues = JSON.parse(result.stdout) as ReadonlyArray<{
          readonly queue: string
          readonly where: ReadonlyArray<{ readonly location: string | null; readonly running: number }>
        }>
        const mixed = queues.find((q) => q.queue === "mixed")
        const running = (location: string | null) => mixed?.where.find((w) => w.location === location)?.running
        return running("box") === 2 && running(null) === 1 ? mixed!.where : undefined
      }, 20_000, "the merged queue view")
      assert.strictEqual(where.length, 2)
      const table = await runCli(["queue", "--server", pair.local.url])
      assert.include(table.stdout, "box: 2 running, 0 queued")
      assert.include(table.stdout, "local: 1 running, 0 queued")
    } finally {
      await pair.jobs.kill([...ids])
    }
  }, 60_000)

  it("an unknown remote is a clear error", async () => {
    const result = await runCli(["submit", "--server", pair.local.url, "--on", "nowhere", "--", "true"])
    assert.strictEqual(result.code, 1)
    assert.include(result.stderr, "unknown remote nowhere (configured: box)")
  })
})

const isRunning = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}
