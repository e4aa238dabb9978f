import * as Effect from "effect/Effect"
import * as SqliteStore from "../src/store/SqliteStore.js"
import { JobStore } from "../src/store/JobStore.js"
import { makeJobId } from "../src/domain/JobId.js"
import { JobSpec } from "../src/domain/JobSpec.js"

const program = Effect.gen(function*() {
  const store = yield* JobStore
  const spec = new JobSpec({ fn: "noop", args: {} })
  const N = 20000
  const t0 = performance.now()
  for (let b = 0; b < N / 500; b++) {
    const rows = Array.from({ length: 500 }, () => ({ id: makeJobId(), name: null, queue: "default", state: "queued" as const, priority: 0, spec, key: null, reason: null, submittedAt: Date.now() }))
    yield* store.commit(rows, rows.map((r) => ({ id: r.id, from: null, to: "queued" as const, at: r.submittedAt, attempt: 0, exitCode: null, reason: null })))
    yield* store.commit([], rows.map((r) => ({ id: r.id, from: "queued" as const, to: "running" as const, at: r.submittedAt, attempt: 1, exitCode: null, reason: null })))
    yield* store.commit([], rows.map((r) => ({ id: r.id, from: "running" as const, to: "completed" as const, at: r.submittedAt, attempt: 1, exitCode: null, reason: null, result: 1, attemptStartedAt: 1 })))
  }
  const dt = performance.now() - t0
  console.log(`${N} jobs x 3 commits in ${dt.toFixed(0)} ms -> ${(N / dt * 1000).toFixed(0)} jobs/s`)
  const list = yield* store.list({ limit: 3 } as any)
  console.log(list[0])
})
const file = process.argv[2] ?? "/tmp/smoke/t.db"
Effect.runPromise(program.pipe(Effect.provide(SqliteStore.layer({ filename: file })), Effect.scoped)).catch((e) => { console.error(e); process.exit(1) })
