import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { connectJobs, ServerUnreachable } from "../../src/client/index.js"
import type { LocalServer } from "../integration/harness.js"
import { canConnect, eventually, runCli, startLocal, tempDir } from "../integration/harness.js"

interface StatusJson {
  readonly id: string
  readonly name: string | null
  readonly state: string
  readonly exitCode: number | null
  readonly queue: string
  readonly submittedAt: string | null
  readonly startedAt: string | null
  readonly finishedAt: string | null
  readonly attempts: number
  readonly reason: string | null
  readonly outputs: ReadonlyArray<string>
}

const idPattern = /^[0-9a-z][0-9a-z_-]{0,63}$/

describe("--role=local with the CLI", () => {
  let server: LocalServer
  const cli = (...args: ReadonlyArray<string>) =>
    runCli([...args.slice(0, 1), "--server", server.url, ...args.slice(1)])
  const submit = async (...args: ReadonlyArray<string>): Promise<string> => {
    const result = await cli("submit", ...args)
    assert.strictEqual(result.code, 0, result.stderr)
    const id = result.stdout.trim()
    assert.match(id, idPattern)
    assert.strictEqual(result.stdout, `${id}\n`, "submit prints only the id")
    return id
  }
  const status = async (...ids: ReadonlyArray<string>): Promise<ReadonlyArray<StatusJson>> => {
    const result = await cli("status", "--json", ...ids)
    assert.strictEqual(result.code, 0, result.stderr)
    return JSON.parse(result.stdout) as ReadonlyArray<StatusJson>
  }
  const stateOf = async (id: string) => (await status(id))[0]!.state

  beforeAll(async () => {
    server = await startLocal()
  })
  afterAll(async () => {
    await server?.stop("SIGKILL")
  })

  it("logs one line with the URL when listening", async () => {
    const listening = () => server.stderr().split("\n").filter((line) => line.includes("listening"))
    const lines = await eventually(() => listening().length > 0 ? listening() : undefined, 10_000, "log line")
    assert.strictEqual(lines.length, 1)
    assert.include(lines[0], server.url)
  })

  it("submit --wait exits with the job's exit code", async () => {
    const failed = await cli("submit", "--wait", "--", "sh", "-c", "exit 5")
    assert.strictEqual(failed.code, 5, failed.stderr)
    assert.match(failed.stdout.trim(), idPattern)
    const ok = await cli("submit", "--wait", "--name", "ok", "--", "true")
    assert.strictEqual(ok.code, 0, ok.stderr)
  })

  it("status --json reports every field, timestamps as ISO strings", async () => {
    const id = await submit("--name", "greeting", "--queue", "default", "--", "echo hello")
    assert.strictEqual((await cli("wait", id)).code, 0)
    const [job] = await status(id)
    assert.strictEqual(job!.id, id)
    assert.strictEqual(job!.name, "greeting")
    assert.strictEqual(job!.state, "completed")
    assert.strictEqual(job!.exitCode, 0)
    assert.strictEqual(job!.queue, "default")
    assert.strictEqual(job!.attempts, 1)
    assert.isNull(job!.reason)
    assert.deepStrictEqual(job!.outputs, [])
    for (const field of ["submittedAt", "startedAt", "finishedAt"] as const) {
      const value = job![field]
      assert.isString(value)
      assert.strictEqual(new Date(value!).toISOString(), value)
    }
    const table = await cli("status", id)
    assert.strictEqual(table.code, 0)
    assert.match(table.stdout, /^ID\s+NAME\s+STATE\s+EXIT\s+QUEUE\s+SUBMITTED\s+RUNTIME\n/)
    assert.include(table.stdout, `${id}  greeting`)
    const recent = await status()
    assert.isTrue(recent.some((job) => job.id === id))
  })

  it("wait exits 0 when all succeed, 1 when one fails, 3 on timeout", async () => {
    const a = await submit("--", "true")
    const b = await submit("--", "sh", "-c", "exit 0")
    assert.strictEqual((await cli("wait", a, b)).code, 0)
    const bad = await submit("--", "sh", "-c", "exit 7")
    const mixed = await cli("wait", a, bad)
    assert.strictEqual(mixed.code, 1)
    assert.include(mixed.stderr, `${bad} (failed, exit 7)`)
    const slow = await submit("--", "sleep", "30")
    const timedOut = await cli("wait", "--timeout", "300ms", slow)
    assert.strictEqual(timedOut.code, 3, timedOut.stderr)
    assert.match(timedOut.stderr, /^troupe: .+\n$/)
    assert.strictEqual((await cli("kill", slow)).code, 0)
  })

  it("kill ends a running job, which is recorded as killed", async () => {
    const id = await submit("--", "sleep", "30")
    await eventually(async () => (await stateOf(id)) === "running" || undefined, 20_000, "running")
    const killed = await cli("kill", id)
    assert.strictEqual(killed.code, 0, killed.stderr)
    assert.strictEqual(killed.stdout, `${id}\n`)
    const [job] = await status(id)
    assert.strictEqual(job!.state, "killed")
    assert.isNotNull(job!.finishedAt)
  })

  it("submit --wait of a job killed meanwhile exits 137; wait on it exits 1", async () => {
    const name = `victim-${Date.now()}`
    const submitting = cli("submit", "--wait", "--name", name, "--", "sleep", "30")
    const id = await eventually(async () => {
      const job = (await status()).find((job) => job.name === name)
      return job?.state === "running" ? job.id : undefined
    }, 20_000, "running")
    const waiting = cli("wait", id)
    assert.strictEqual((await cli("kill", id)).code, 0)
    const submitted = await submitting
    assert.strictEqual(submitted.code, 137, submitted.stderr)
    assert.strictEqual(submitted.stdout, `${id}\n`)
    const waited = await waiting
    assert.strictEqual(waited.code, 1)
    assert.include(waited.stderr, `${id} (killed`)
  })

  it("logs prints captured output; logs -f follows until the job ends", async () => {
    const id = await submit("--", "sh", "-c", "echo out1; echo err1 >&2; echo out2")
    assert.strictEqual((await cli("wait", id)).code, 0)
    const out = await cli("logs", id)
    assert.strictEqual(out.code, 0, out.stderr)
    assert.strictEqual(out.stdout, "out1\nout2\n")
    const err = await cli("logs", "--stderr", id)
    assert.strictEqual(err.stdout, "err1\n")
    const live = await submit("--", "sh", "-c", "echo first; sleep 1; echo second")
    const followed = await cli("logs", "-f", live)
    assert.strictEqual(followed.code, 0, followed.stderr)
    assert.strictEqual(followed.stdout, "first\nsecond\n")
    assert.strictEqual(await stateOf(live), "completed")
  })

  it("events ID follows a job to its end and exits with its outcome; --json prints one object per line", async () => {
    // Held behind a running job for 3 s, so that events has subscribed before it ends.
    const first = await submit("--", "sleep", "3")
    const failing = await submit("--after", first, "--", "sh", "-c", "exit 3")
    const followed = await cli("events", "--json", failing)
    assert.strictEqual(followed.code, 1, followed.stderr)
    const lines = followed.stdout.trim().split("\n").map((line) => JSON.parse(line) as { id: string; from: string; to: string; exitCode: number | null; seq: number })
    assert.isTrue(lines.every((line) => line.id === failing))
    // Its transitions from the moment of subscribing (all of them unless the CLI took 3 s to start).
    const all = ["held->queued", "queued->running", "running->failed"]
    const seen = lines.map((line) => `${line.from}->${line.to}`)
    assert.isAbove(seen.length, 0)
    assert.deepStrictEqual(seen, all.slice(all.length - seen.length))
    assert.strictEqual(lines[lines.length - 1]!.exitCode, 3)
    // A job that has already ended: nothing to follow, the exit says how it ended.
    const done = await submit("--wait", "--", "true")
    const ended = await cli("events", done)
    assert.strictEqual(ended.code, 0, ended.stderr)
    assert.strictEqual(ended.stdout, "")
    const unknown = await cli("events", "zzzzzzzzzz")
    assert.strictEqual(unknown.code, 1)
    assert.include(unknown.stderr, "zzzzzzzzzz")
  })

  it("queue --json lists the default queue with its counts", async () => {
    const result = await cli("queue", "--json")
    assert.strictEqual(result.code, 0, result.stderr)
    const queues = JSON.parse(result.stdout) as ReadonlyArray<Record<string, unknown>>
    const main = queues.find((q) => q["queue"] === "default")
    assert.isDefined(main)
    for (const field of ["concurrency", "capacity", "held", "queued", "running"]) {
      assert.isNumber(main![field], field)
    }
    const table = await cli("queue")
    assert.match(table.stdout, /^QUEUE\s+CONCURRENCY/)
  })

  it("clean removes finished jobs older than the cut-off", async () => {
    const id = await submit("--", "true")
    assert.strictEqual((await cli("wait", id)).code, 0)
    const kept = await cli("clean")
    assert.strictEqual(kept.code, 0, kept.stderr)
    assert.strictEqual(kept.stdout, "0\n")
    const removed = await cli("clean", "--older-than", "0s", "--state", "completed")
    assert.strictEqual(removed.code, 0, removed.stderr)
    assert.isAtLeast(Number(removed.stdout.trim()), 1)
    const gone = await cli("status", id)
    assert.strictEqual(gone.code, 1)
  })

  it("an unknown job id is one clear line and exit 1", async () => {
    for (const args of [["status", "zzzzzzzzzz"], ["wait", "zzzzzzzzzz"], ["kill", "zzzzzzzzzz"], ["logs", "zzzz"]]) {
      const result = await cli(...args)
      assert.strictEqual(result.code, 1, args.join(" "))
      assert.strictEqual(result.stderr, `troupe: unknown job id: ${args[1]}\n`, args.join(" "))
      assert.strictEqual(result.stdout, "")
    }
    const malformed = await cli("status", "NOT/AN/ID")
    assert.strictEqual(malformed.code, 1)
    assert.strictEqual(malformed.stderr, "troupe: unknown job id: NOT/AN/ID\n")
  })

  it("a dependency that does not exist is a typed error, exit 1", async () => {
    const result = await cli("submit", "--after", "zzzzzzzzzz", "--", "true")
    assert.strictEqual(result.code, 1)
    assert.match(result.stderr, /^troupe: .+\n$/)
  })
})

describe("--role=local lifecycle", () => {
  it("listens on a unix socket and tcp at once", async () => {
    const dir = tempDir()
    const socket = Path.join(dir, "troupe.sock")
    const server = await startLocal({ dir, extraArgs: ["--listen", `unix://${socket}`] })
    try {
      const viaUnix = await runCli(["submit", "--server", `unix://${socket}`, "--wait", "--", "true"])
      assert.strictEqual(viaUnix.code, 0, viaUnix.stderr)
      const id = viaUnix.stdout.trim()
      const viaTcp = await runCli(["status", "--server", server.url, "--json", id])
      assert.strictEqual(viaTcp.code, 0, viaTcp.stderr)
      assert.strictEqual(Fs.statSync(socket).mode & 0o777, 0o600)
      assert.include(server.stderr(), `unix://${socket}`)
    } finally {
      assert.strictEqual(await server.stop("SIGTERM"), 0)
    }
    assert.isFalse(Fs.existsSync(socket))
  })

  it("a port in use is one clear error line and exit 1", async () => {
    const first = await startLocal()
    try {
      const result = await runCli(["--role=local", "--db", Path.join(tempDir(), "x.db"), "--listen", first.url])
      assert.strictEqual(result.code, 1)
      assert.include(result.stderr, `troupe: cannot listen on ${first.url} (address already in use)`)
    } finally {
      await first.stop("SIGKILL")
    }
  })

  const whenRunning = async (server: LocalServer, id: string) =>
    eventually(async () => {
      const result = await runCli(["status", "--server", server.url, "--json", id])
      return (JSON.parse(result.stdout) as ReadonlyArray<StatusJson>)[0]!.state === "running" || undefined
    }, 20_000, "running")

  it("SIGTERM shuts down gracefully and records a running job's final state", async () => {
    const dir = tempDir()
    const server = await startLocal({ dir, extraArgs: ["--grace", "500ms"] })
    const submitted = await runCli(["submit", "--server", server.url, "--", "sh", "-c", "echo started; sleep 30"])
    assert.strictEqual(submitted.code, 0, submitted.stderr)
    const id = submitted.stdout.trim()
    await whenRunning(server, id)
    // Clients attached to the job see the server go away as one clear line, exit 2.
    const waiting = runCli(["wait", "--server", server.url, id])
    const following = runCli(["logs", "-f", "--server", server.url, id])
    const started = Date.now()
    assert.strictEqual(await server.stop("SIGTERM"), 0)
    assert.isBelow(Date.now() - started, 15_000)
    assert.isFalse(await canConnect({ port: server.port }))
    for (const client of [await waiting, await following]) {
      assert.strictEqual(client.code, 2, client.stderr)
      assert.match(client.stderr, /^troupe: .*server tcp:\/\/127\.0\.0\.1:\d+.*\n$/)
    }
    // Restart on the same database: the job must have a final state, not "running".
    const again = await startLocal({ dir })
    try {
      const result = await runCli(["status", "--server", again.url, "--json", id])
      assert.strictEqual(result.code, 0, result.stderr)
      const [job] = JSON.parse(result.stdout) as ReadonlyArray<StatusJson>
      assert.include(["killed", "lost", "timeout", "failed"], job!.state)
      assert.isNotNull(job!.finishedAt)
    } finally {
      await again.stop("SIGKILL")
    }
  })

  it("SIGTERM is not held up by a client following a job that has printed nothing yet", async () => {
    const server = await startLocal({ extraArgs: ["--grace", "200ms"] })
    const submitted = await runCli(["submit", "--server", server.url, "--", "sleep", "30"])
    const id = submitted.stdout.trim()
    await whenRunning(server, id)
    const client = await connectJobs(server.url)
    try {
      const following = client.output(id, "stdout", { follow: true })[Symbol.asyncIterator]().next()
        .catch((error: unknown) => error)
      // Requests on one connection are read in order: once Get answers, the Output follow is being served.
      await client.get(id)
      const started = Date.now()
      assert.strictEqual(await server.stop("SIGTERM"), 0)
      assert.isBelow(Date.now() - started, 10_000)
      assert.instanceOf(await following, ServerUnreachable)
    } finally {
      await client.close()
    }
  })

  it("an unknown --listen scheme is a usage error", async () => {
    const result = await runCli(["--role=local", "--db", Path.join(tempDir(), "x.db"), "--listen", "ftp://example.com/q"])
    assert.strictEqual(result.code, 2)
    assert.include(result.stderr, "unsupported scheme \"ftp\"")
  })
})
