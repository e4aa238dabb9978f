import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Supervisor from "../src/actors/Supervisor.js"
import { Executor, RunOutcome } from "../src/executor/Executor.js"
import { Jobs } from "../src/jobs/Jobs.js"
import * as JobsLive from "../src/jobs/JobsLive.js"
import * as SqliteStore from "../src/store/SqliteStore.js"

const FakeExecutor = Layer.succeed(Executor, {
  validate: () => Effect.void,
  run: () => Effect.succeed(new RunOutcome({ state: "completed", exitCode: null, reason: null, result: 1, outputs: [] }, true))
})

const program = Effect.gen(function*() {
  const jobs = yield* Jobs
  const id = yield* jobs.submit({ fn: "noop" })
  const [rec] = yield* jobs.wait([id])
  console.log(rec?.state, rec?.attempts)
  const N = Number(process.env.N ?? 40000)
  const submitters = Number(process.env.SUBMITTERS ?? 1000)
  let next = 0
  const t0 = performance.now()
  yield* Effect.forEach(Array.from({ length: submitters }), () =>
    Effect.gen(function*() {
      while (next < N) {
        next++
        const id = yield* jobs.submit({ fn: "noop" })
        yield* jobs.wait([id])
      }
    }), { concurrency: "unbounded", discard: true })
  const dt = performance.now() - t0
  console.log(`${N} jobs in ${dt.toFixed(0)} ms -> ${(N / dt * 1000).toFixed(0)} jobs/s`)
  console.log((globalThis as any).__b)
})
const file = process.argv[2] ?? "/tmp/rsmoke/t.db"
const layer = JobsLive.layer({ dataDir: "/tmp/rsmoke", cores: 256 }).pipe(
  Layer.provide(Layer.mergeAll(FakeExecutor, Supervisor.layer)),
  Layer.provide(SqliteStore.layer({ filename: file }))
)
Effect.runPromise(program.pipe(Effect.provide(layer), Effect.scoped)).catch((e) => { console.error(e); process.exit(1) })
