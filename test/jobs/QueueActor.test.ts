import { assert, describe, it } from "@effect/vitest"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import * as path from "node:path"
import * as Supervisor from "../../src/actors/Supervisor.js"
import * as Functions from "../../src/executor/Functions.js"
import * as LocalExecutor from "../../src/executor/LocalExecutor.js"
import { Jobs } from "../../src/jobs/Jobs.js"
import * as JobsLive from "../../src/jobs/JobsLive.js"
import { JobStore } from "../../src/store/JobStore.js"
import * as SqliteStore from "../../src/store/SqliteStore.js"
import { tempDir } from "./support.js"

// A runtime on a real SQLite file whose store counts its commits.
const withCountingRuntime = <A, E>(
  effect: (commits: () => number) => Effect.Effect<A, E, Jobs>,
  functions: Readonly<Record<string, Functions.FunctionDefinition>>,
  queues: JobsLive.RuntimeOptions["queues"]
) => {
  const dir = tempDir("troupe-queue-")
  let commits = 0
  const counting = Layer.effect(
    JobStore,
    Effect.map(JobStore, (store) =>
      JobStore.of({
        ...store,
        commit: (inserts, transitions, progress) =>
          Effect.zipRight(Effect.sync(() => commits++), store.commit(inserts, transitions, progress))
      }))
  ).pipe(Layer.provide(SqliteStore.layer({ filename: path.join(dir, "troupe.db") })))
  const layer = JobsLive.layer({ dataDir: dir, cores: 1, shutdownGraceMs: 100, ...(queues === undefined ? {} : { queues }) }).pipe(
    Layer.provide(Layer.mergeAll(LocalExecutor.layer().pipe(Layer.provide(Functions.layer(functions))), Supervisor.layer, counting)),
    Layer.provide(NodeContext.layer)
  )
  return effect(() => commits).pipe(Effect.provide(layer), Effect.scoped)
}

describe("queues", () => {
  it.live("starts synchronous function jobs back to back: a burst on one core takes a few commits, not one per job", () => {
    const noop = Functions.define({ args: Schema.Unknown, success: Schema.Unknown, run: () => null })
    return withCountingRuntime((commits) =>
      Effect.gen(function*() {
        const jobs = yield* Jobs
        // The first call shows that the function answers synchronously.
        yield* jobs.wait([yield* jobs.submit({ fn: "noop", queue: "one" })])
        const before = commits()
        const ids = yield* jobs.submitMany(Array.from({ length: 200 }, () => ({ fn: "noop", queue: "one" })))
        const records = yield* jobs.wait(ids)
        assert.isTrue(records.every((r) => r.state === "completed" && r.attempts === 1))
        assert.isAtMost(commits() - before, 20)
      }), { noop }, { one: { concurrency: 1 } })
  })

  it.live("a function that stops answering synchronously still runs within its queue's concurrency; kill reaches jobs waiting for a core", () => {
    let active = 0
    let most = 0
    // 0: answers at once; 1: takes a few milliseconds, asynchronously.
    const gate = Functions.define({
      args: Schema.Number,
      success: Schema.Null,
      run: (mode: number) => {
        if (mode === 0) return null
        active++
        most = Math.max(most, active)
        return new Promise<null>((resolve) =>
          setTimeout(() => {
            active--
            resolve(null)
          }, 30)
        )
      }
    })
    return withCountingRuntime(() =>
      Effect.gen(function*() {
        const jobs = yield* Jobs
        yield* jobs.wait([yield* jobs.submit({ fn: "gate", args: 0, queue: "one" })])
        const ids = yield* jobs.submitMany(Array.from({ length: 6 }, () => ({ fn: "gate", args: 1, queue: "one" })))
        const last = ids[ids.length - 1]!
        assert.deepStrictEqual(yield* jobs.kill([last]), [last])
        const records = yield* jobs.wait(ids)
        assert.strictEqual(most, 1)
        assert.deepStrictEqual(records.map((r) => r.state), ["completed", "completed", "completed", "completed", "completed", "killed"])
      }), { gate }, { one: { concurrency: 1 } })
  })
})
