// How much of a no-op job's time is the store's commit: times every commit of a full run.
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import * as Supervisor from "../src/actors/Supervisor.js"
import * as Functions from "../src/executor/Functions.js"
import * as LocalExecutor from "../src/executor/LocalExecutor.js"
import { Jobs } from "../src/jobs/Jobs.js"
import * as JobsLive from "../src/jobs/JobsLive.js"
import { JobStore } from "../src/store/JobStore.js"
import * as SqliteStore from "../src/store/SqliteStore.js"

let commitMs = 0
let commits = 0
let rows = 0
const TimedStore = Layer.effect(JobStore, Effect.map(JobStore, (store) => JobStore.of({
  ...store,
  commit: (inserts, transitions) => {
    const t0 = performance.now()
    return Effect.ensuring(store.commit(inserts, transitions), Effect.sync(() => {
      commitMs += performance.now() - t0
      commits++
      rows += transitions.length
    }))
  }
}))).pipe(Layer.provide(SqliteStore.layer({ filename: `/tmp/cs-${process.pid}/t.db` })))

const total = 30000
const program = Effect.gen(function*() {
  const jobs = yield* Jobs
  let next = 0
  const t0 = performance.now()
  yield* Effect.forEach(Array.from({ length: 1000 }), () =>
    Effect.gen(function*() {
      while (next < total) {
        next++
        const id = yield* jobs.submit({ fn: "noop" })
        yield* jobs.wait([id])
      }
    }), { concurrency: "unbounded", discard: true })
  const wall = performance.now() - t0
  console.log(`${(total / wall * 1000).toFixed(0)} jobs/s; commits ${commits}, ${(rows / commits).toFixed(0)} transitions each; ` +
    `commit time ${commitMs.toFixed(0)} ms of ${wall.toFixed(0)} ms = ${(commitMs / total * 1000).toFixed(1)} us/job`)
})
const functions = Functions.layer({ noop: Functions.define({ args: Schema.Unknown, success: Schema.Unknown, run: () => null }) })
const layer = JobsLive.layer({ dataDir: `/tmp/cs-${process.pid}`, cores: 256 }).pipe(
  Layer.provide(Layer.mergeAll(LocalExecutor.layer().pipe(Layer.provide(functions)), Supervisor.layer, TimedStore)),
  Layer.provide(NodeContext.layer)
)
Effect.runPromise(program.pipe(Effect.provide(layer), Effect.scoped)).catch((e) => {
  console.error(e)
  process.exit(1)
})
