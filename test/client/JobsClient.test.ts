import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import {
  connectJobs,
  InvalidEndpoint,
  InvalidSpec,
  JobNotFound,
  JobsClient,
  ServerUnreachable,
  WaitTimeout
} from "../../src/client/index.js"
import type { JobEvent, JobsConnection } from "../../src/client/index.js"
import type { LocalServer } from "../integration/harness.js"
import { freePort, startLocal } from "../integration/harness.js"

describe("troupe/client against a spawned --role=local", () => {
  let server: LocalServer
  let jobs: JobsConnection

  beforeAll(async () => {
    server = await startLocal()
    jobs = await connectJobs(server.url)
  })
  afterAll(async () => {
    await jobs?.close()
    await server?.stop("SIGKILL")
  })

  it("submits, waits and reads records and attempts", async () => {
    const id = await jobs.submit({ command: ["sh", "-c", "echo typed; exit 4"], name: "typed" })
    const [record] = await jobs.wait([id])
    assert.strictEqual(record!.id, id)
    assert.strictEqual(record!.state, "failed")
    assert.strictEqual(record!.exitCode, 4)
    assert.strictEqual((await jobs.get(id)).name, "typed")
    const attempts = await jobs.attempts(id)
    assert.strictEqual(attempts.length, 1)
    assert.strictEqual(attempts[0]!.exitCode, 4)
    const listed = await jobs.list({ name: "typed" })
    assert.isTrue(listed.some((job) => job.id === id))
  })

  it("streams output as an async iterable of bytes", async () => {
    const id = await jobs.submit({ command: "echo one; sleep 0.2; echo two" })
    const chunks: Array<Uint8Array> = []
    for await (const chunk of jobs.output(id, "stdout", { follow: true })) chunks.push(chunk)
    assert.strictEqual(Buffer.concat(chunks).toString("utf8"), "one\ntwo\n")
  })

  it("subscribe resolves once the server has subscribed: a job submitted afterwards is seen to its end", async () => {
    for (let round = 0; round < 5; round++) {
      const subscription = await jobs.subscribe()
      const id = await jobs.submit({ command: ["true"] })
      const seen: Array<string> = []
      for await (const event of subscription) {
        if (event.id === id) seen.push(`${event.from}->${event.to}`)
        if (event.id === id && event.to === "completed") break
      }
      assert.strictEqual(seen[0]!.split("->")[0], "null", `round ${round}: the first transition was missed: ${seen.join(", ")}`)
      assert.strictEqual(seen[seen.length - 1], "running->completed")
    }
    // close ends an iteration under way.
    const open = await jobs.subscribe()
    const iteration = (async () => {
      for await (const _ of open) { /* drain */ }
      return "ended"
    })()
    await open.close()
    assert.strictEqual(await iteration, "ended")
  })

  it("streams events for jobs submitted once the subscription is live", async () => {
    const iterator = jobs.events()[Symbol.asyncIterator]()
    const seen: Array<JobEvent> = []
    // The subscription starts with the first `next`, on the server a moment later: it is live once
    // an event arrives. Probe jobs are submitted until one does (a submit can overtake the request).
    const first = iterator.next()
    let live = false
    void first.then(() => (live = true))
    for (let probe = 0; probe < 100 && !live; probe++) {
      await jobs.submit({ command: "true" })
      await Promise.race([first, new Promise((resolve) => setTimeout(resolve, 100))])
    }
    assert.isTrue(live, "no event arrived for 100 probe jobs")
    const id = await jobs.submit({ command: "true" })
    let next = await first
    while (!next.done) {
      if (next.value.id === id) seen.push(next.value)
      if (seen.some((event) => event.to === "completed")) break
      next = await iterator.next()
    }
    await iterator.return?.()
    assert.isTrue(seen.some((event) => event.to === "completed"))
  })

  it("rejects with the typed error classes", async () => {
    const notFound = await jobs.get("zzzzzzzzzz").catch((error: unknown) => error)
    assert.instanceOf(notFound, JobNotFound)
    assert.deepStrictEqual((notFound as JobNotFound).ids, ["zzzzzzzzzz"])
    const invalid = await jobs.submit({ name: "no command" }).catch((error: unknown) => error)
    assert.instanceOf(invalid, InvalidSpec)
    const slow = await jobs.submit({ command: ["sleep", "30"] })
    const timeout = await jobs.wait([slow], { timeout: "200 millis" }).catch((error: unknown) => error)
    assert.instanceOf(timeout, WaitTimeout)
    assert.deepStrictEqual(await jobs.kill([slow]), [slow])
    assert.strictEqual((await jobs.get(slow)).state, "killed")
  })

  it("reports queues and cleans", async () => {
    const queues = await jobs.queues()
    assert.isTrue(queues.some((q) => q.queue === "default"))
    assert.isAtLeast(await jobs.clean({ olderThanMs: 0 }), 0)
  })

  it.live("JobsClient.layer gives the Effect API with typed failures", () =>
    Effect.gen(function*() {
      const client = yield* JobsClient
      const id = yield* client.submit({ command: ["echo", "from effect"] })
      const [record] = yield* client.wait([id])
      assert.strictEqual(record!.state, "completed")
      const bytes = yield* Stream.runCollect(client.output(id, "stdout"))
      assert.strictEqual(Buffer.concat(Array.from(bytes)).toString("utf8"), "from effect\n")
      const missing = yield* Effect.flip(client.get("zzzzzzzzzz"))
      assert.strictEqual(missing._tag, "JobNotFound")
    }).pipe(Effect.provide(JobsClient.layer(server.url))))

  it("an unreachable server rejects quickly with ServerUnreachable naming the URL", async () => {
    const url = `tcp://127.0.0.1:${await freePort()}`
    const started = Date.now()
    const error = await connectJobs(url).catch((error: unknown) => error)
    assert.instanceOf(error, ServerUnreachable)
    assert.strictEqual((error as ServerUnreachable).url, url)
    assert.strictEqual((error as ServerUnreachable).message, `cannot reach server ${url} (connection refused)`)
    assert.isBelow(Date.now() - started, 5_000)
    const bad = await connectJobs("http://127.0.0.1:1").catch((error: unknown) => error)
    assert.instanceOf(bad, InvalidEndpoint)
  })

  it("a connection lost mid-call becomes ServerUnreachable", async () => {
    const own = await startLocal()
    const client = await connectJobs(own.url)
    try {
      const id = await client.submit({ command: ["sleep", "30"] })
      const waiting = client.wait([id]).catch((error: unknown) => error)
      await own.stop("SIGKILL")
      const error = await waiting
      assert.instanceOf(error, ServerUnreachable)
      assert.strictEqual((error as ServerUnreachable).reason, "connection-lost")
    } finally {
      await client.close()
    }
  })
})
