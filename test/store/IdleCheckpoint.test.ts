import * as SqlClient from "@effect/sql/SqlClient"
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import * as fs from "node:fs"
import * as path from "node:path"
import { Jobs } from "../../src/jobs/Jobs.js"
import * as SqliteStore from "../../src/store/SqliteStore.js"
import { tempDir, withRuntime } from "../jobs/support.js"

// Copies the database file alone, as a backup of just that file would, and counts rows in the copy
// (0 when the table itself has not reached the file yet).
const countInFileAlone = (database: string, query: string) =>
  Effect.suspend(() => {
    const copy = path.join(tempDir("troupe-copy-"), "copy.db")
    fs.copyFileSync(database, copy)
    return Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe<{ n: number }>(query)).pipe(
      Effect.map((rows) => rows[0]!.n),
      Effect.catchIf((error) => /no such table/.test(String(error.cause)), () => Effect.succeed(0)),
      Effect.provide(SqliteClient.layer({ filename: copy }))
    )
  })

describe("idle checkpoints", () => {
  it.live("once the runtime is quiet, the database file alone holds every finished job", () => {
    const database = path.join(tempDir(), "troupe.db")
    return withRuntime(
      Effect.gen(function*() {
        const jobs = yield* Jobs
        const ids = yield* jobs.submitMany(Array.from({ length: 50 }, () => ({ fn: "noop", args: null })))
        yield* jobs.wait(ids, { timeout: "30 seconds" })
        const completed = yield* countInFileAlone(database, "SELECT count(*) AS n FROM jobs WHERE state = 'completed'").pipe(
          Effect.filterOrFail((n) => n === 50, (n) => new Error(`the file alone holds ${n} of 50 completed jobs`)),
          Effect.retry({ schedule: Schedule.spaced("50 millis"), times: 200 })
        )
        expect(completed).toBe(50)
      }),
      { database }
    )
  })

  it.live("without a quiet interval the writes stay in the log (the file alone lacks them)", () => {
    const database = path.join(tempDir(), "troupe.db")
    return Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      yield* sql`INSERT INTO troupe_meta (key, value) VALUES ('probe', 'written')`
      const inFile = yield* countInFileAlone(database, "SELECT count(*) AS n FROM troupe_meta WHERE key = 'probe'")
      expect(inFile).toBe(0)
      // The same row reaches the file once a checkpoint runs.
      yield* sql`PRAGMA wal_checkpoint(PASSIVE)`
      expect(yield* countInFileAlone(database, "SELECT count(*) AS n FROM troupe_meta WHERE key = 'probe'")).toBe(1)
    }).pipe(
      Effect.provide(SqliteStore.layerClient({ filename: database, idleCheckpointMs: 3_600_000 })),
      Effect.scoped
    )
  })
})
