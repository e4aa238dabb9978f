// Cost of each statement kind of a commit, per job, with raw better-sqlite3 on the same schema.
import { createRequire } from "node:module"
import * as Effect from "effect/Effect"
import * as SqliteStore from "../src/store/SqliteStore.js"
import { JobStore } from "../src/store/JobStore.js"

const Database = createRequire(import.meta.url)("better-sqlite3")
const file = `/tmp/sp-${process.pid}/t.db`
await Effect.runPromise(Effect.scoped(Effect.provide(JobStore, SqliteStore.layer({ filename: file }))))
const db = new Database(file)
db.pragma("journal_mode = WAL")
db.pragma("synchronous = NORMAL")
const N = 20000
const spec = JSON.stringify({ fn: "noop", args: {} })
const ids = Array.from({ length: N }, (_, i) => `job${String(i).padStart(10, "0")}`)
const time = (name: string, f: () => void) => {
  const t0 = performance.now()
  f()
  console.log(`${name.padEnd(40)} ${((performance.now() - t0) / N * 1000).toFixed(2)} us/job`)
}
const insJob = db.prepare("INSERT INTO jobs (id, name, queue, state, priority, spec, idem_key, reason, submitted_at, finished_at) VALUES (?,?,?,?,?,?,?,?,?,?)")
const insTr = db.prepare("INSERT OR REPLACE INTO job_transitions (job_id, from_state, to_state, at, attempt, reason) VALUES (?,?,?,?,?,?)")
const upd = db.prepare("UPDATE jobs SET state = ?, attempts = ?, started_at = coalesce(?, started_at), finished_at = ?, exit_code = ?, result = ?, reason = ?, outputs = coalesce(?, outputs), run_after = ? WHERE id = ?")
const insAtt = db.prepare("INSERT OR REPLACE INTO job_attempts (job_id, attempt, state, exit_code, reason, started_at, finished_at) VALUES (?,?,?,?,?,?,?)")
const tx = (f: () => void) => db.transaction(f)()
const now = Date.now()
time("insert jobs", () => tx(() => { for (const id of ids) insJob.run(id, null, "default", "queued", 0, spec, null, null, now, null) }))
time("insert transitions (x1)", () => tx(() => { for (const id of ids) insTr.run(id, null, "queued", now, 0, null) }))
time("update jobs -> running", () => tx(() => { for (const id of ids) upd.run("running", 1, now, null, null, null, null, null, null, id) }))
time("insert transitions (x1)", () => tx(() => { for (const id of ids) insTr.run(id, "queued", "running", now, 1, null) }))
time("update jobs -> completed", () => tx(() => { for (const id of ids) upd.run("completed", 1, null, now, null, "null", null, "[]", null, id) }))
time("insert transitions (x1)", () => tx(() => { for (const id of ids) insTr.run(id, "running", "completed", now, 1, null) }))
time("insert attempts", () => tx(() => { for (const id of ids) insAtt.run(id, 1, "completed", null, null, now, now) }))

// Multi-row forms, as the store issues them (256 rows per statement).
const tuples = (rows: number, cols: number) => Array.from({ length: rows }, () => `(${Array(cols).fill("?").join(",")})`).join(",")
const ids2 = Array.from({ length: N }, (_, i) => `kob${String(i).padStart(10, "0")}`)
const insMany = db.prepare(`INSERT INTO jobs (id, name, queue, state, priority, spec, idem_key, reason, submitted_at, finished_at) VALUES ${tuples(256, 10)}`)
const updMany = db.prepare(`WITH v (id, state, attempts, started_at, finished_at, exit_code, result, reason, outputs, run_after) AS (VALUES ${tuples(256, 10)}) UPDATE jobs SET state = v.state, attempts = v.attempts, started_at = coalesce(v.started_at, jobs.started_at), finished_at = v.finished_at, exit_code = v.exit_code, result = v.result, reason = v.reason, outputs = coalesce(v.outputs, jobs.outputs), run_after = v.run_after FROM v WHERE jobs.id = v.id`)
const trMany = db.prepare(`INSERT OR REPLACE INTO job_transitions (job_id, from_state, to_state, at, attempt, reason) VALUES ${tuples(256, 6)}`)
const M = Math.floor(N / 256) * 256
time("multi-row insert jobs", () => tx(() => { for (let i = 0; i < M; i += 256) insMany.run(ids2.slice(i, i + 256).flatMap((id) => [id, null, "default", "queued", 0, spec, null, null, now, null])) }))
time("multi-row transitions", () => tx(() => { for (let i = 0; i < M; i += 256) trMany.run(ids2.slice(i, i + 256).flatMap((id) => [id, null, "queued", now, 0, null])) }))
time("multi-row CTE update -> running", () => tx(() => { for (let i = 0; i < M; i += 256) updMany.run(ids2.slice(i, i + 256).flatMap((id) => [id, "running", 1, now, null, null, null, null, null, null])) }))
