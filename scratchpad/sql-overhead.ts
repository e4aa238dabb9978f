import * as Effect from "effect/Effect"
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import * as SqlClient from "@effect/sql/SqlClient"

const program = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const N = 20000
  for (let r = 0; r < 3; r++) {
    let t0 = performance.now()
    for (let i = 0; i < N; i++) yield* sql`SELECT 1`
    console.log(`select 1: ${((performance.now() - t0) / N * 1000).toFixed(1)} us`)
    t0 = performance.now()
    for (let i = 0; i < N; i++) yield* sql.unsafe("SELECT 1").raw
    console.log(`unsafe raw select 1: ${((performance.now() - t0) / N * 1000).toFixed(1)} us`)
  }
})
Effect.runPromise(program.pipe(Effect.provide(SqliteClient.layer({ filename: "/tmp/so.db" })))).catch((e) => { console.error(e); process.exit(1) })
