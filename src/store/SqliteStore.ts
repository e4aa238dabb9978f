import * as SqlClient from "@effect/sql/SqlClient"
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Reactivity from "@effect/experimental/Reactivity"
import * as fs from "node:fs"
import * as path from "node:path"
import { IncompatibleDatabase, StoreError } from "../domain/Errors.js"
import * as IdleCheckpoint from "./IdleCheckpoint.js"
import { JobStore } from "./JobStore.js"
import * as Migrations from "./Migrations.js"
import * as SqlJobStore from "./SqlJobStore.js"

/** Options for the embedded SQLite store. */
export interface SqliteStoreOptions {
  /** The database file; its folder is created when missing. */
  readonly filename: string
  /** The sampling interval of the idle checkpoint: the log is copied into the file after one whole interval without writes; default 250 ms. */
  readonly idleCheckpointMs?: number
}

/**
 * Opens (or creates) a Troupe SQLite database in WAL mode, refuses files that are not Troupe's
 * or come from a newer version, takes the writer lock, and applies migrations.
 */
export const layerClient = (
  options: SqliteStoreOptions
): Layer.Layer<SqliteClient.SqliteClient | SqlClient.SqlClient, IncompatibleDatabase | StoreError> =>
  Layer.scopedContext(Effect.gen(function*() {
    const filename = path.resolve(options.filename)
    yield* checkHeader(filename)
    // WAL is switched on below, after the exclusive locking mode, so that the lock covers the WAL too.
    const client = yield* SqliteClient.make({ filename, disableWAL: true }).pipe(
      Effect.mapError((cause) => new StoreError({ message: `cannot open ${filename}`, cause }))
    )
    yield* prepare(client, filename)
    yield* Effect.acquireRelease(
      IdleCheckpoint.start(client, options.idleCheckpointMs),
      (stop) => Effect.sync(stop)
    )
    return Context.make(SqliteClient.SqliteClient, client).pipe(Context.add(SqlClient.SqlClient, client))
  })).pipe(Layer.provide(Reactivity.layer))

/** The JobStore over an embedded SQLite file. */
export const layer = (
  options: SqliteStoreOptions
): Layer.Layer<JobStore | SqliteClient.SqliteClient | SqlClient.SqlClient, IncompatibleDatabase | StoreError> =>
  SqlJobStore.layer.pipe(Layer.provideMerge(layerClient(options)))

const sqliteMagic = "SQLite format 3\u0000"

const checkHeader = (filename: string) =>
  Effect.gen(function*() {
    yield* Effect.try({
      try: () => fs.mkdirSync(path.dirname(filename), { recursive: true }),
      catch: (cause) => new StoreError({ message: `cannot create the folder for ${filename}`, cause })
    })
    const header = yield* Effect.try({
      try: () => readHeader(filename),
      catch: (cause) => new StoreError({ message: `cannot read ${filename}`, cause })
    })
    if (header !== undefined && header.length > 0 && header !== sqliteMagic) {
      return yield* new IncompatibleDatabase({
        reason: "not-sqlite",
        path: filename,
        message: `${filename} is not a SQLite database; refusing to touch it`
      })
    }
  })

const readHeader = (filename: string): string | undefined => {
  let fd: number
  try {
    fd = fs.openSync(filename, "r")
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined
    throw error
  }
  try {
    const buffer = Buffer.alloc(16)
    const read = fs.readSync(fd, buffer, 0, 16, 0)
    return buffer.subarray(0, read).toString("latin1")
  } finally {
    fs.closeSync(fd)
  }
}

// Settles the connection: durability level, the single-writer lock, then identity and migrations.
const prepare = (client: SqliteClient.SqliteClient, filename: string) =>
  Effect.gen(function*() {
    const sql = client
    // NORMAL in WAL mode survives a process crash; only a power loss may drop the last commits.
    yield* sql`PRAGMA busy_timeout = 100`
    // One process writes one database file: hold the lock for the life of the connection.
    yield* sql`PRAGMA locking_mode = EXCLUSIVE`
    yield* sql`PRAGMA journal_mode = WAL`.pipe(Effect.mapError((cause) => inUse(filename, cause)))
    yield* sql`PRAGMA synchronous = NORMAL`
    // Keep the hot index pages in memory: list queries over a million jobs stay fast.
    yield* sql`PRAGMA cache_size = -65536`
    yield* sql`PRAGMA temp_store = MEMORY`
    // Checkpoint less often: hot pages are then written back once per many commits.
    yield* sql`PRAGMA wal_autocheckpoint = 8192`
    yield* sql`BEGIN IMMEDIATE`.pipe(Effect.zipRight(sql`COMMIT`), Effect.mapError((cause) => inUse(filename, cause)))
    yield* checkIdentity(client, filename)
    yield* Migrations.run.pipe(
      Effect.provideService(SqlClient.SqlClient, client),
      Effect.mapError((cause) => new StoreError({ message: `cannot migrate ${filename}: ${cause.message}`, cause }))
    )
  }).pipe(
    Effect.catchTag("SqlError", (cause) =>
      new IncompatibleDatabase({
        reason: "not-sqlite",
        path: filename,
        message: `${filename} cannot be used as a database: ${describe(cause)}`
      }))
  )

const checkIdentity = (sql: SqliteClient.SqliteClient, filename: string) =>
  Effect.gen(function*() {
    const tables = yield* sql<{ name: string }>`SELECT name FROM sqlite_master WHERE type = 'table'`
    if (tables.length === 0) return
    const names = new Set(tables.map((t) => t.name))
    if (!names.has("troupe_meta") || !names.has(Migrations.migrationsTable)) {
      return yield* new IncompatibleDatabase({
        reason: "not-troupe",
        path: filename,
        message: `${filename} is a SQLite database that Troupe did not create; refusing to touch it`
      })
    }
    const applied = yield* sql<{ latest: number | null }>`SELECT max(migration_id) AS latest FROM ${
      sql(Migrations.migrationsTable)
    }`
    const latest = applied[0]?.latest ?? 0
    if (latest > Migrations.schemaVersion) {
      return yield* new IncompatibleDatabase({
        reason: "newer-version",
        path: filename,
        message: `${filename} has schema version ${latest}, newer than this Troupe (${Migrations.schemaVersion}); ` +
          `upgrade Troupe to use it`
      })
    }
  })

const inUse = (filename: string, cause: unknown) =>
  new StoreError({
    message: `${filename} is in use by another Troupe process (one process owns a database; ` +
      `talk to it with --server, or use another --db)`,
    cause
  })

const describe = (cause: { readonly cause?: unknown; readonly message: string }): string =>
  cause.cause instanceof Error ? cause.cause.message : cause.message
