import * as Migrator from "@effect/sql/Migrator"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"

/** The newest schema version this build knows; a database with a higher one is refused. */
export const schemaVersion = 3

/** The table in which the migrator records applied migrations. */
export const migrationsTable = "troupe_migrations"

const initial = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`CREATE TABLE troupe_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)`
  yield* sql`INSERT INTO troupe_meta (key, value) VALUES ('application', 'troupe')`
  yield* sql`CREATE TABLE jobs (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    name TEXT,
    queue TEXT NOT NULL,
    state TEXT NOT NULL,
    priority INTEGER NOT NULL,
    spec TEXT NOT NULL,
    idem_key TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    exit_code INTEGER,
    result TEXT,
    reason TEXT,
    outputs TEXT,
    run_after INTEGER,
    submitted_at INTEGER NOT NULL,
    started_at INTEGER,
    finished_at INTEGER,
    changed_at INTEGER NOT NULL
  )`
  yield* sql`CREATE UNIQUE INDEX jobs_by_key ON jobs (idem_key) WHERE idem_key IS NOT NULL`
  // Completed jobs, the bulk of any history, stay out of the state index: it stays small and hot.
  yield* sql`CREATE INDEX jobs_by_state ON jobs (state, seq) WHERE state <> 'completed'`
  // A job's queue never changes, so this index costs one insert per job and nothing per transition.
  yield* sql`CREATE INDEX jobs_by_queue ON jobs (queue, seq)`
  yield* sql`CREATE INDEX jobs_by_name ON jobs (name, seq) WHERE name IS NOT NULL`
  yield* sql`CREATE INDEX jobs_by_submitted ON jobs (submitted_at)`
  yield* sql`CREATE TABLE job_tags (tag TEXT NOT NULL, job_id TEXT NOT NULL, PRIMARY KEY (tag, job_id)) WITHOUT ROWID`
  yield* sql`CREATE TABLE job_attempts (
    job_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    state TEXT NOT NULL,
    exit_code INTEGER,
    reason TEXT,
    started_at INTEGER NOT NULL,
    finished_at INTEGER NOT NULL,
    PRIMARY KEY (job_id, attempt)
  ) WITHOUT ROWID`
  // Keyed by job so that one B-tree serves both the append and the per-job history read.
  yield* sql`CREATE TABLE job_transitions (
    job_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    to_state TEXT NOT NULL,
    from_state TEXT,
    at INTEGER NOT NULL,
    reason TEXT,
    PRIMARY KEY (job_id, attempt, to_state)
  ) WITHOUT ROWID`
  // The log and the attempts are written by SQLite itself when a job row is inserted or changes
  // state: one statement per batch carries all three tables, and they cannot disagree.
  yield* sql`CREATE TRIGGER jobs_inserted AFTER INSERT ON jobs BEGIN
    INSERT OR REPLACE INTO job_transitions (job_id, attempt, to_state, from_state, at, reason)
    VALUES (NEW.id, NEW.attempts, NEW.state, NULL, NEW.changed_at, NEW.reason);
  END`
  yield* sql`CREATE TRIGGER jobs_state_changed AFTER UPDATE OF state ON jobs WHEN OLD.state IS NOT NEW.state BEGIN
    INSERT OR REPLACE INTO job_transitions (job_id, attempt, to_state, from_state, at, reason)
    VALUES (NEW.id, NEW.attempts, NEW.state, OLD.state, NEW.changed_at, NEW.reason);
  END`
  yield* sql`CREATE TRIGGER jobs_attempt_ended AFTER UPDATE OF state ON jobs
    WHEN OLD.state = 'running' AND NEW.state <> 'running' BEGIN
    INSERT OR REPLACE INTO job_attempts (job_id, attempt, state, exit_code, reason, started_at, finished_at)
    VALUES (NEW.id, OLD.attempts, NEW.state, NEW.exit_code, NEW.reason, OLD.started_at, NEW.changed_at);
  END`
})

// Jobs sent to remotes: where each attempt runs, and how far the transport has got with it.
const remotes = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`ALTER TABLE jobs ADD COLUMN location TEXT`
  yield* sql`ALTER TABLE jobs ADD COLUMN transport_state TEXT`
  yield* sql`ALTER TABLE job_attempts ADD COLUMN location TEXT`
  yield* sql`DROP TRIGGER jobs_attempt_ended`
  yield* sql`CREATE TRIGGER jobs_attempt_ended AFTER UPDATE OF state ON jobs
    WHEN OLD.state = 'running' AND NEW.state <> 'running' BEGIN
    INSERT OR REPLACE INTO job_attempts (job_id, attempt, state, exit_code, reason, started_at, finished_at, location)
    VALUES (NEW.id, OLD.attempts, NEW.state, NEW.exit_code, NEW.reason, OLD.started_at, NEW.changed_at, OLD.location);
  END`
})

// A job that can start at once is inserted as running (one write instead of queued, then running):
// the insert then logs both transitions, queued at submit time and running as attempt 1.
const startOnInsert = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`DROP TRIGGER jobs_inserted`
  yield* sql`CREATE TRIGGER jobs_inserted AFTER INSERT ON jobs BEGIN
    INSERT OR REPLACE INTO job_transitions (job_id, attempt, to_state, from_state, at, reason)
    SELECT NEW.id, 0, 'queued', NULL, NEW.submitted_at, NULL WHERE NEW.state = 'running';
    INSERT OR REPLACE INTO job_transitions (job_id, attempt, to_state, from_state, at, reason)
    VALUES (NEW.id, NEW.attempts, NEW.state, CASE WHEN NEW.state = 'running' THEN 'queued' END, NEW.changed_at, NEW.reason);
  END`
})

/** Applies every migration this build knows, in order. */
export const run = Migrator.make({})({
  loader: Migrator.fromRecord({ "1_initial": initial, "2_remotes": remotes, "3_start_on_insert": startOnInsert }),
  table: migrationsTable
})
