// Per-job SQLite cost of the store's statements (insert as running, then the end), raw better-sqlite3
// on the real schema; VARIANT drops parts to see what each costs.
import { createRequire } from "node:module"
import * as Effect from "effect/Effect"
import * as SqliteStore from "../src/store/SqliteStore.js"
import { JobStore } from "../src/store/JobStore.js"

const Database = createRequire(import.meta.url)("better-sqlite3")
const file = `/tmp/sr-${process.pid}/t.db`
await Effect.runPromise(Effect.scoped(Effect.provide(JobStore, SqliteStore.layer({ filename: file }))))
const db = new Database(file)
for (const p of ["locking_mode = EXCLUSIVE", "journal_mode = WAL", "synchronous = NORMAL", "cache_size = -65536", "temp_store = MEMORY", "wal_autocheckpoint = 8192"]) db.pragma(p)
const variant = process.env.VARIANT ?? ""
if (variant.includes("nosub")) db.exec("DROP INDEX jobs_by_submitted")
if (variant.includes("noqueue")) db.exec("DROP INDEX jobs_by_queue")
if (variant.includes("nostate")) db.exec("DROP INDEX jobs_by_state")
if (variant.includes("notrig")) db.exec("DROP TRIGGER jobs_inserted; DROP TRIGGER jobs_state_changed; DROP TRIGGER jobs_attempt_ended")
const per = 256, rounds = Number(process.env.R ?? 200)
const tuples = (rows: number, cols: number) => Array.from({ length: rows }, () => `(${Array(cols).fill("?").join(", ")})`).join(", ")
const ins = db.prepare(`INSERT INTO jobs (id, name, queue, state, priority, spec, idem_key, reason, submitted_at, started_at, finished_at, changed_at, attempts) VALUES ${tuples(per, 13)}`)
const upd = db.prepare(`WITH v (id, state, attempts, started_at, finished_at, exit_code, result, reason, outputs, run_after, changed_at, starts, location, spec) AS (VALUES ${tuples(per, 14)}) UPDATE jobs SET state = v.state, attempts = v.attempts, started_at = coalesce(v.started_at, jobs.started_at),
        finished_at = v.finished_at, exit_code = v.exit_code, result = v.result, reason = v.reason,
        outputs = coalesce(v.outputs, jobs.outputs), run_after = v.run_after, changed_at = v.changed_at,
        location = CASE WHEN v.starts = 1 THEN v.location ELSE jobs.location END, transport_state = NULL,
        spec = coalesce(v.spec, jobs.spec)
        FROM v WHERE jobs.id = v.id`)
const spec = JSON.stringify({ fn: "noop", args: {} })
let seq = 0
const id = (i: number) => (Date.now().toString(32).padStart(9, "0") + String(i).padStart(7, "0"))
const prev: Array<string> = []
const c0 = process.cpuUsage(); const t0 = performance.now()
for (let r = 0; r < rounds; r++) {
  const now = Date.now()
  const ids = Array.from({ length: per }, () => id(seq++))
  db.transaction(() => {
    ins.run(ids.flatMap((i) => [i, null, "default", "running", 0, spec, null, null, now, now, null, now, 1]))
    if (prev.length) upd.run(prev.flatMap((i) => [i, "completed", 1, null, now, null, "null", null, "[]", null, now, 0, null, null]))
  })()
  prev.splice(0, prev.length, ...ids)
}
const c = process.cpuUsage(c0)
console.log(`${variant || "all"}: ${((c.user + c.system) / (rounds * per)).toFixed(2)} us/job cpu (sys ${(c.system / (rounds * per)).toFixed(2)}), wall ${((performance.now() - t0) * 1000 / (rounds * per)).toFixed(2)}`)
