// Where the time of a no-op job goes: the full runtime against variants with parts stubbed out.
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import * as Supervisor from "../src/actors/Supervisor.js"
import { Executor, RunOutcome } from "../src/executor/Executor.js"
import * as Functions from "../src/executor/Functions.js"
import * as LocalExecutor from "../src/executor/LocalExecutor.js"
import { Jobs } from "../src/jobs/Jobs.js"
import * as JobsLive from "../src/jobs/JobsLive.js"
import { JobStore } from "../src/store/JobStore.js"
import * as SqliteStore from "../src/store/SqliteStore.js"
import * as NodeContext from "@effect/platform-node/NodeContext"

const submitters = 1000
const total = 30000
const run = Effect.gen(function*() {
  const jobs = yield* Jobs
  let next = 0
  const t0 = performance.now()
  yield* Effect.forEach(Array.from({ length: submitters }), () =>
    Effect.gen(function*() {
      while (next < total) {
        next++
        const id = yield* jobs.submit({ fn: "noop" })
        yield* jobs.wait([id], { timeout: "120 seconds" })
      }
    }), { concurrency: "unbounded", discard: true })
  return total / (performance.now() - t0) * 1000
})
const FakeExecutor = Layer.succeed(Executor, {
  validate: () => Effect.void,
  run: () => Effect.succeed(new RunOutcome({ state: "completed", exitCode: null, reason: null, result: null, outputs: [] }, true))
})
const NullStore = Layer.succeed(JobStore, {
  commit: () => Effect.void, states: () => Effect.succeed(new Map()), idsByKey: () => Effect.succeed(new Map()),
  get: () => Effect.succeed([]), list: () => Effect.succeed([]), attempts: () => Effect.succeed([]), active: Effect.succeed([]),
  clean: () => Effect.succeed([])
})
const functions = Functions.layer({ noop: Functions.define({ args: Schema.Unknown, success: Schema.Unknown, run: () => null }) })
const realExecutor = LocalExecutor.layer().pipe(Layer.provide(functions), Layer.provide(NodeContext.layer))
const variant = (name: string, executor: Layer.Layer<Executor>, store: Layer.Layer<JobStore, unknown>) =>
  run.pipe(
    Effect.provide(JobsLive.layer({ dataDir: `/tmp/nv-${process.pid}`, cores: 256 }).pipe(Layer.provide(Layer.mergeAll(executor, Supervisor.layer, store)))),
    Effect.scoped,
    Effect.map((rate) => console.log(`${name}: ${rate.toFixed(0)} jobs/s`))
  )
const sqlite = (n: number) => SqliteStore.layer({ filename: `/tmp/nv-${process.pid}/${n}.db` })
Effect.runPromise(Effect.gen(function*() {
  const only = process.env.VARIANT
  if (!only || only === "full") yield* variant("full", realExecutor, sqlite(1))
  if (!only || only === "fake") yield* variant("fake executor", FakeExecutor, sqlite(2))
  if (!only || only === "null") yield* variant("null store", realExecutor, NullStore)
  if (!only || only === "both") yield* variant("fake executor + null store", FakeExecutor, NullStore)
})).catch((e) => {
  console.error(e)
  process.exit(1)
})
