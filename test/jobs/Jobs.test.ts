import { assert, describe, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import * as fs from "node:fs"
import * as path from "node:path"
import type { JobId } from "../../src/domain/JobId.js"
import { Jobs } from "../../src/jobs/Jobs.js"
import * as Troupe from "../../src/Troupe.js"
import { tempDir, testFunctions, withRuntime } from "./support.js"

const waitUntil = <A, E, R>(check: Effect.Effect<A, E, R>, done: (a: A) => boolean, what: string) =>
  Effect.gen(function*() {
    for (let i = 0; i < 500; i++) {
      const value = yield* check
      if (done(value)) return value
      yield* Effect.sleep("10 millis")
    }
    return yield* Effect.dieMessage(`timed out waiting for ${what}`)
  })

const groupAlive = (pgid: number) => {
  try {
    process.kill(-pgid, 0)
    return true
  } catch {
    return false
  }
}

const text = (stream: Stream.Stream<Uint8Array, unknown>) =>
  Stream.runCollect(stream).pipe(Effect.map((chunks) => Buffer.concat(Chunk.toArray(chunks)).toString()))

describe("Jobs (embedded runtime)", () => {
  it.live("runs a function job and stores its encoded result", () =>
    withRuntime(Effect.gen(function*() {
      const jobs = yield* Jobs
      const id = yield* jobs.submit({ fn: "add", args: [2, 3] })
      const [record] = yield* jobs.wait([id])
      assert.strictEqual(record!.state, "completed")
      assert.strictEqual(record!.result, 5)
      const stored = yield* jobs.get(id)
      assert.strictEqual(stored.result, 5)
      assert.strictEqual(stored.attempts, 1)
      assert.isNotNull(stored.startedAt)
      assert.isNotNull(stored.finishedAt)
    })))

  it.live("a submitted job is in the database as soon as submit returns", () =>
    withRuntime(Effect.gen(function*() {
      const jobs = yield* Jobs
      const id = yield* jobs.submit({ command: ["sleep", "5"], name: "sleeper", tags: ["slow"] })
      const record = yield* jobs.get(id)
      assert.include(["queued", "running"], record.state)
      assert.strictEqual(record.name, "sleeper")
      const byTag = yield* jobs.list({ tag: "slow" })
      assert.deepStrictEqual(byTag.map((r) => r.id), [id])
      yield* jobs.kill([id])
    })))

  it.live("captures a shell job's exit code, stdout and stderr", () =>
    withRuntime(Effect.gen(function*() {
      const jobs = yield* Jobs
      const id = yield* jobs.submit({ command: "echo out; echo err >&2; exit 7", env: { A: "1" } })
      const [record] = yield* jobs.wait([id])
      assert.strictEqual(record!.state, "failed")
      assert.strictEqual(record!.exitCode, 7)
      assert.strictEqual(yield* text(jobs.output(id, "stdout")), "out\n")
      assert.strictEqual(yield* text(jobs.output(id, "stderr")), "err\n")
    })))

  it.live("honours cwd, env and stdin, and collects output files by glob", () => {
    const work = tempDir("troupe-cwd-")
    return withRuntime(Effect.gen(function*() {
      const jobs = yield* Jobs
      const id = yield* jobs.submit({
        command: ["sh", "-c", "cat > in.txt; echo $GREETING > out.txt; pwd"],
        cwd: work,
        env: { GREETING: "hello" },
        stdin: "from stdin",
        outputs: ["*.txt"]
      })
      const [record] = yield* jobs.wait([id])
      assert.strictEqual(record!.state, "completed")
      assert.strictEqual(fs.readFileSync(path.join(work, "in.txt"), "utf8"), "from stdin")
      assert.strictEqual(fs.readFileSync(path.join(work, "out.txt"), "utf8"), "hello\n")
      assert.deepStrictEqual([...record!.outputs].sort(), [path.join(work, "in.txt"), path.join(work, "out.txt")])
      assert.strictEqual((yield* text(jobs.output(id, "stdout"))).trim(), fs.realpathSync(work))
    }))
  })

  it.live("follows the output of a running job until it ends", () =>
    withRuntime(Effect.gen(function*() {
      const jobs = yield* Jobs
      const id = yield* jobs.submit({ command: "for i in 1 2 3; do echo line$i; sleep 0.1; done" })
      const followed = yield* text(jobs.output(id, "stdout", { follow: true }))
      assert.strictEqual(followed, "line1\nline2\nline3\n")
      assert.strictEqual((yield* jobs.get(id)).state, "completed")
    })))

  it.live("a time limit ends the job as timeout", () =>
    withRuntime(Effect.gen(function*() {
      const jobs = yield* Jobs
      const id = yield* jobs.submit({ command: ["sleep", "30"], timeLimitMs: 200 })
      const [record] = yield* jobs.wait([id], { timeout: "10 seconds" })
      assert.strictEqual(record!.state, "timeout")
    })))

  it.live("kill ends a running job's whole process group and records killed", () =>
    withRuntime(Effect.gen(function*() {
      const jobs = yield* Jobs
      const id = yield* jobs.submit({ command: "sleep 30 & sleep 30 & echo $$; wait" })
      const pid = Number((yield* waitUntil(text(jobs.output(id, "stdout")), (s) => s.includes("\n"), "the job to start")).trim())
      const killed = yield* jobs.kill([id])
      assert.deepStrictEqual(killed, [id])
      assert.strictEqual((yield* jobs.get(id)).state, "killed")
      // The leader is gone at once; its orphaned children are reaped a moment later.
      yield* waitUntil(Effect.sync(() => groupAlive(pid)), (alive) => !alive, "the process group to vanish")
      // Killing a finished job is not an error and kills nothing.
      assert.deepStrictEqual(yield* jobs.kill([id]), [])
    })))

  it.live("holds a job until its dependency completes", () =>
    withRuntime(Effect.gen(function*() {
      const jobs = yield* Jobs
      const first = yield* jobs.submit({ command: ["sleep", "0.3"] })
      const second = yield* jobs.submit({ fn: "add", args: [1, 1], after: [first] })
      assert.strictEqual((yield* jobs.get(second)).state, "held")
      const [a, b] = yield* jobs.wait([first, second])
      assert.strictEqual(a!.state, "completed")
      assert.strictEqual(b!.state, "completed")
      assert.isTrue(b!.startedAt! >= a!.finishedAt!)
    })))

  it.live("fails a job whose dependency fails, naming the dependency", () =>
    withRuntime(Effect.gen(function*() {
      const jobs = yield* Jobs
      const first = yield* jobs.submit({ fn: "fail" })
      const second = yield* jobs.submit({ fn: "noop", after: [first] })
      const third = yield* jobs.submit({ fn: "noop", after: [second] })
      const [, b, c] = yield* jobs.wait([first, second, third])
      assert.strictEqual(b!.state, "failed")
      assert.include(b!.reason!, first)
      assert.strictEqual(c!.state, "failed")
      assert.include(c!.reason!, second)
      // A dependency that already failed fails the new job at once.
      const late = yield* jobs.submit({ fn: "noop", after: [first] })
      assert.strictEqual((yield* jobs.get(late)).state, "failed")
    })))

  it.live("rejects missing dependencies and dependency cycles", () =>
    withRuntime(Effect.gen(function*() {
      const jobs = yield* Jobs
      const missing = yield* Effect.flip(jobs.submit({ fn: "noop", after: ["nosuchjob" as JobId] }))
      assert.strictEqual(missing._tag, "InvalidSpec")
      assert.strictEqual(missing._tag === "InvalidSpec" && missing.reason, "missing-dependency")
      const cycle = yield* Effect.flip(jobs.submitMany([
        { id: "job-a" as JobId, fn: "noop", after: ["job-b" as JobId] },
        { id: "job-b" as JobId, fn: "noop", after: ["job-a" as JobId] }
      ]))
      assert.strictEqual(cycle._tag === "InvalidSpec" && cycle.reason, "dependency-cycle")
      const self = yield* Effect.flip(jobs.submit({ id: "job-c" as JobId, fn: "noop", after: ["job-c" as JobId] }))
      assert.strictEqual(self._tag === "InvalidSpec" && self.reason, "dependency-cycle")
      // Nothing of a rejected request was stored.
      assert.strictEqual((yield* Effect.flip(jobs.get("job-a" as JobId)))._tag, "JobNotFound")
      // A batch may depend on itself in any order.
      const ids = yield* jobs.submitMany([
        { id: "job-e" as JobId, fn: "noop", after: ["job-d" as JobId] },
        { id: "job-d" as JobId, fn: "noop" }
      ])
      const records = yield* jobs.wait(ids)
      assert.deepStrictEqual(records.map((r) => r.state), ["completed", "completed"])
    })))

  it.live("retries with backoff and records every attempt", () =>
    withRuntime(Effect.gen(function*() {
      const jobs = yield* Jobs
      const id = yield* jobs.submit({ fn: "flaky", args: 3, retries: 3, retryDelayMs: 20 })
      const [record] = yield* jobs.wait([id])
      assert.strictEqual(record!.state, "completed")
      assert.strictEqual(record!.attempts, 3)
      const attempts = yield* jobs.attempts(id)
      assert.deepStrictEqual(attempts.map((a) => a.state), ["failed", "failed", "completed"])
      assert.include(attempts[0]!.reason!, "flaky call 1")
      // Backoff doubles: the second retry waited at least 40 ms after the second failure.
      assert.isTrue(attempts[2]!.startedAt - attempts[1]!.finishedAt >= 40)
    })))

  it.live("an idempotency key or a repeated id returns the existing job", () =>
    withRuntime(Effect.gen(function*() {
      const jobs = yield* Jobs
      const a = yield* jobs.submit({ fn: "noop", key: "nightly-2026-11-22" })
      const b = yield* jobs.submit({ fn: "noop", key: "nightly-2026-11-22" })
      assert.strictEqual(a, b)
      const [c, d] = yield* jobs.submitMany([{ fn: "noop", key: "k2" }, { fn: "noop", key: "k2" }])
      assert.strictEqual(c, d)
      const e = yield* jobs.submit({ id: "my-uuid-1" as JobId, fn: "noop" })
      const f = yield* jobs.submit({ id: "my-uuid-1" as JobId, fn: "noop" })
      assert.strictEqual(e, f)
      assert.strictEqual((yield* jobs.list({ states: ["queued", "running", "completed"] })).length, 3)
    })))

  it.live("runs by priority, then first in first out", () =>
    withRuntime(Effect.gen(function*() {
      const jobs = yield* Jobs
      const blocker = yield* jobs.submit({ command: ["sleep", "0.5"] })
      // Starts in commit order: start times alone can tie within a millisecond.
      const starts = yield* jobs.events.pipe(
        Stream.filter((e) => e.to === "running" && e.id !== blocker),
        Stream.take(3),
        Stream.runCollect,
        Effect.fork
      )
      yield* Effect.yieldNow()
      const low = yield* jobs.submit({ fn: "noop", priority: 0 })
      const high = yield* jobs.submit({ fn: "noop", priority: 10 })
      const low2 = yield* jobs.submit({ fn: "noop", priority: 0 })
      const records = yield* jobs.wait([blocker, low, high, low2])
      assert.isTrue(records.every((r) => r.state === "completed"))
      assert.isTrue(records.slice(1).every((r) => r.startedAt! >= records[0]!.finishedAt!))
      assert.deepStrictEqual(Chunk.toArray(yield* Fiber.join(starts)).map((e) => e.id), [high, low, low2])
    }), { cores: 1 }))

  it.live("a full queue rejects submits with QueueFull and keeps serving", () =>
    withRuntime(Effect.gen(function*() {
      const jobs = yield* Jobs
      const running = yield* jobs.submit({ command: ["sleep", "30"], queue: "tiny" })
      yield* waitUntil(jobs.get(running), (r) => r.state === "running", "the first job to run")
      yield* jobs.submit({ fn: "noop", queue: "tiny" })
      yield* jobs.submit({ fn: "noop", queue: "tiny" })
      const full = yield* Effect.flip(jobs.submit({ fn: "noop", queue: "tiny" }))
      assert.strictEqual(full._tag, "QueueFull")
      const elsewhere = yield* jobs.submit({ fn: "add", args: [1, 2] })
      assert.strictEqual((yield* jobs.wait([elsewhere]))[0]!.result, 3)
      const summary = (yield* jobs.queues).find((q) => q.queue === "tiny")!
      assert.deepStrictEqual([summary.queued, summary.running, summary.capacity], [2, 1, 2])
      yield* jobs.kill([running])
    }), { queues: { tiny: { concurrency: 1, capacity: 2 } } }))

  it.live("single submits made together are each answered on their own: a full queue refuses only those past its capacity", () =>
    withRuntime(Effect.gen(function*() {
      const jobs = yield* Jobs
      const running = yield* jobs.submit({ command: ["sleep", "30"], queue: "tiny" })
      yield* waitUntil(jobs.get(running), (r) => r.state === "running", "the first job to run")
      const answers = yield* Effect.all(
        Array.from({ length: 5 }, () => Effect.either(jobs.submit({ fn: "noop", queue: "tiny" }))),
        { concurrency: "unbounded" }
      )
      assert.deepStrictEqual(answers.map((a) => a._tag === "Right" ? "id" : a.left._tag), ["id", "id", "QueueFull", "QueueFull", "QueueFull"])
      const ids = answers.flatMap((a) => a._tag === "Right" ? [a.right] : [])
      assert.strictEqual(new Set(ids).size, 2)
      assert.deepStrictEqual((yield* jobs.list({ queue: "tiny", states: ["queued"] })).map((r) => r.id).sort(), [...ids].sort())
      yield* jobs.kill([running])
      const records = yield* jobs.wait(ids)
      assert.isTrue(records.every((r) => r.state === "completed"))
    }), { queues: { tiny: { concurrency: 1, capacity: 2 } } }))

  it.live("bad input gets typed errors", () =>
    withRuntime(Effect.gen(function*() {
      const jobs = yield* Jobs
      assert.strictEqual((yield* Effect.flip(jobs.get("unknown" as JobId)))._tag, "JobNotFound")
      assert.strictEqual((yield* Effect.flip(jobs.kill(["unknown" as JobId])))._tag, "JobNotFound")
      assert.strictEqual((yield* Effect.flip(jobs.wait(["unknown" as JobId])))._tag, "JobNotFound")
      const reasons = yield* Effect.forEach([
        { command: ["true"], fn: "noop" },
        { priority: 1.5, fn: "noop" },
        { fn: "nosuchfunction" },
        { command: ["no-such-command-troupe"] },
        { command: ["true"], cwd: "/no/such/dir" },
        { fn: "noop", surprise: true }
      ], (spec) => Effect.flip(jobs.submit(spec as never)).pipe(Effect.map((e) => e._tag === "InvalidSpec" ? e.reason : e._tag)))
      assert.deepStrictEqual(reasons, ["malformed", "malformed", "unknown-function", "command-not-found", "cwd-not-found", "malformed"])
      const timeout = yield* Effect.flip(jobs.wait([yield* jobs.submit({ command: ["sleep", "5"] })], { timeout: "50 millis" }))
      assert.strictEqual(timeout._tag, "WaitTimeout")
    })))

  it.live("subscribe, then submit: every committed transition of the job is in the stream, in order", () =>
    withRuntime(Effect.scoped(Effect.gen(function*() {
      const jobs = yield* Jobs
      const all = yield* jobs.subscribe
      const completions = yield* jobs.subscribe
      const id = yield* jobs.submit({ fn: "noop" })
      const received = Chunk.toArray(yield* all.pipe(Stream.takeUntil((e) => e.id === id && e.to === "completed"), Stream.runCollect))
      const transitions = received.filter((e) => e.id === id)
      assert.deepStrictEqual(transitions.map((e) => `${e.from}->${e.to}`), ["null->queued", "queued->running", "running->completed"])
      // Events are numbered one after another: a subscriber that lost some would see a jump.
      const numbers = received.map((e) => e.seq!)
      assert.deepStrictEqual(numbers, numbers.map((_, i) => numbers[0]! + i))
      const completed = yield* completions.pipe(Stream.filter((e) => e.to === "completed"), Stream.take(1), Stream.runCollect)
      assert.strictEqual(Chunk.toArray(completed)[0]!.id, id)
    }))))

  it.live("events, a stream that subscribes when it starts, carries the transitions committed from then on", () =>
    withRuntime(Effect.gen(function*() {
      const jobs = yield* Jobs
      const first = yield* jobs.events.pipe(Stream.take(1), Stream.runCollect, Effect.fork)
      // The stream subscribes once its fiber runs: probe jobs go in until one is seen.
      let probes = 0
      while (Option.isNone(yield* Fiber.poll(first)) && probes < 1000) {
        yield* jobs.wait([yield* jobs.submit({ fn: "noop" })])
        probes++
      }
      assert.isBelow(probes, 1000)
      assert.strictEqual(Chunk.size(yield* Fiber.join(first)), 1)
    })))

  it.live("clean removes finished jobs older than the cut-off, with their output", () =>
    withRuntime(Effect.gen(function*() {
      const jobs = yield* Jobs
      const done = yield* jobs.submit({ command: ["echo", "x"] })
      yield* jobs.wait([done])
      const active = yield* jobs.submit({ command: ["sleep", "5"] })
      assert.strictEqual(yield* jobs.clean({ olderThanMs: 60_000 }), 0)
      assert.strictEqual(yield* jobs.clean({ olderThanMs: 0 }), 1)
      assert.strictEqual((yield* Effect.flip(jobs.get(done)))._tag, "JobNotFound")
      assert.strictEqual((yield* jobs.get(active)).state !== "completed", true)
      yield* jobs.kill([active])
    })))
})

describe("the Promise facade's subscribe", () => {
  it("resolves once subscribed: a job submitted afterwards is seen to its end; close ends the iteration", async () => {
    const troupe = await Troupe.open({ database: path.join(tempDir(), "troupe.db"), functions: testFunctions() })
    try {
      const subscription = await troupe.subscribe()
      const id = await troupe.submit({ fn: "noop" })
      const seen: Array<string> = []
      for await (const event of subscription) {
        if (event.id === id) seen.push(`${event.from}->${event.to}`)
        if (event.id === id && event.to === "completed") break
      }
      assert.deepStrictEqual(seen, ["null->queued", "queued->running", "running->completed"])

      const second = await troupe.subscribe()
      const iteration = (async () => {
        let count = 0
        for await (const _ of second) count++
        return count
      })()
      await troupe.wait(await troupe.submit({ fn: "noop" }))
      await second.close()
      assert.isAtLeast(await iteration, 0)
    } finally {
      await troupe.close()
    }
  })
})
