/**
 * Helpers to start an embedded Troupe runtime on a fresh SQLite file and to read the file
 * back after the runtime has closed (to check that the metadata really is on disk).
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Schema from "effect/Schema"
import * as path from "node:path"
import { Jobs } from "../../src/jobs/Jobs.js"
import type { JobSpecInput } from "../../src/jobs/Jobs.js"
import * as Troupe from "../../src/Troupe.js"
import { tempDir } from "./lib.js"

/** The no-op function every function benchmark uses: decode `{}`, return null. */
export const noop = Troupe.defineFunction({
  args: Schema.Struct({}),
  success: Schema.Null,
  run: () => null
})

/** A running embedded runtime on its own temp folder. */
export interface BenchRuntime {
  readonly runtime: ManagedRuntime.ManagedRuntime<Jobs, unknown>
  readonly database: string
  readonly dir: string
  /** Closes the runtime; the folder stays until `remove`. */
  readonly close: () => Promise<void>
  readonly remove: () => void
}

/** Opens `Troupe.layer` on `<fresh temp dir>/troupe.db`. Warnings and info logs are silenced. */
export const openRuntime = async (
  prefix: string,
  options: Omit<Troupe.TroupeOptions, "database" | "dataDir"> = {}
): Promise<BenchRuntime> => {
  const { dir, remove } = tempDir(prefix)
  const database = path.join(dir, "troupe.db")
  const layer = Troupe.layer({ ...options, database, dataDir: dir })
  const runtime = ManagedRuntime.make(Layer.merge(layer, Logger.minimumLogLevel(LogLevel.Error)))
  await runtime.runtime()
  return { runtime, database, dir, close: () => runtime.dispose(), remove }
}

/** Counts rows per state in a closed database file, through a fresh read-only connection. */
export const countStates = (database: string): Promise<ReadonlyMap<string, number>> =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql<{ state: string; n: number }>`SELECT state, count(*) AS n FROM jobs GROUP BY state`
    return new Map(rows.map((r) => [r.state, r.n] as const))
  }).pipe(
    Effect.provide(SqliteClient.layer({ filename: database, readonly: true })),
    Effect.runPromise
  )

/** `loops` fibers each doing submit → wait until `total` jobs are done; returns per-job latencies (ms). */
export const submitWaitLoops = (spec: JobSpecInput, loops: number, total: number) =>
  Effect.gen(function*() {
    const jobs = yield* Jobs
    const samples: Array<number> = []
    let next = 0
    const loop = Effect.gen(function*() {
      while (next < total) {
        next++
        const t0 = performance.now()
        const id = yield* jobs.submit(spec)
        const [record] = yield* jobs.wait([id], { timeout: "120 seconds" })
        if (record!.state !== "completed") return yield* Effect.dieMessage(`job ${id} ended ${record!.state}: ${record!.reason}`)
        samples.push(performance.now() - t0)
      }
    })
    const t0 = performance.now()
    yield* Effect.all(Array.from({ length: Math.min(loops, total) }, () => loop), { concurrency: "unbounded", discard: true })
    return { seconds: (performance.now() - t0) / 1000, samples }
  })
