import * as Effect from "effect/Effect"
import * as SqliteStore from "../src/store/SqliteStore.js"
import { JobStore } from "../src/store/JobStore.js"
import { makeJobId } from "../src/domain/JobId.js"
import { JobSpec } from "../src/domain/JobSpec.js"
import * as SqlClient from "@effect/sql/SqlClient"

const program = Effect.gen(function*() {
  const store = yield* JobStore
  const sql = yield* SqlClient.SqlClient
  console.log(yield* sql`PRAGMA synchronous`, yield* sql`PRAGMA journal_mode`, yield* sql`PRAGMA locking_mode`)
  const spec = new JobSpec({ fn: "noop", args: {} })
  const N = 2000
  let t0 = performance.now()
  for (let i = 0; i < N; i++) {
    const r = { id: makeJobId(), name: null, queue: "default", state: "queued" as const, priority: 0, spec, key: null, reason: null, submittedAt: Date.now() }
    yield* store.commit([r], [{ id: r.id, from: null, to: "queued" as const, at: r.submittedAt, attempt: 0, exitCode: null, reason: null }])
  }
  console.log(`commit 1 row: ${((performance.now() - t0) / N * 1000).toFixed(0)} us`)
  t0 = performance.now()
  for (let i = 0; i < N; i++) yield* sql`SELECT 1`
  console.log(`select 1: ${((performance.now() - t0) / N * 1000).toFixed(0)} us`)
  t0 = performance.now()
  for (let i = 0; i < N; i++) yield* sql.withTransaction(sql`SELECT 1`)
  console.log(`tx select 1: ${((performance.now() - t0) / N * 1000).toFixed(0)} us`)
})
Effect.runPromise(program.pipe(Effect.withTracerEnabled(false), Effect.provide(SqliteStore.layer({ filename: "/tmp/cl/t.db" })), Effect.scoped)).catch((e) => { console.error(e); process.exit(1) })
