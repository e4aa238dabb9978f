/**
 * Why jobs are not one `@effect/cluster` entity each: the rate of entity messages on a
 * SingleRunner over SQLite (persisted and volatile), against Troupe's ledger, in one run.
 *
 * A job needs three persisted state changes (submitted, running, ended). As entities, that is at
 * least three persisted messages per job; the ledger instead commits many jobs' changes at once.
 */
import * as ClusterSchema from "@effect/cluster/ClusterSchema"
import * as Entity from "@effect/cluster/Entity"
import * as SingleRunner from "@effect/cluster/SingleRunner"
import * as Rpc from "@effect/rpc/Rpc"
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Schema from "effect/Schema"
import * as path from "node:path"
import type { Bench } from "./lib.js"
import { latency, ms, notes, progress, rate, ratio, table, tempDir } from "./lib.js"
import { noop, openRuntime, submitWaitLoops } from "./troupe.js"

const callers = Number(process.env.BENCH_CLUSTER_CALLERS ?? 100)
const messages = Number(process.env.BENCH_CLUSTER_MESSAGES ?? 3_000)

const PersistedPing = Rpc.make("PersistedPing", { payload: { n: Schema.Number }, success: Schema.Number })
  .annotate(ClusterSchema.Persisted, true)
const VolatilePing = Rpc.make("VolatilePing", { payload: { n: Schema.Number }, success: Schema.Number })
const Pinger = Entity.make("Pinger", [PersistedPing, VolatilePing])
const PingerLive = Pinger.toLayer({
  PersistedPing: (request) => Effect.succeed(request.payload.n),
  VolatilePing: (request) => Effect.succeed(request.payload.n)
})

interface Row {
  readonly scenario: string
  readonly seconds: number
  readonly samples: ReadonlyArray<number>
}

// `callers` loops, each sending to its own entity, until `messages` round trips are done.
const entityLoops = (kind: "PersistedPing" | "VolatilePing") =>
  Effect.gen(function*() {
    const makeClient = yield* Pinger.client
    const samples: Array<number> = []
    let next = 0
    const loop = (caller: number) =>
      Effect.gen(function*() {
        const client = makeClient(`pinger-${caller}`)
        while (next < messages) {
          const n = next++
          const t0 = performance.now()
          yield* client[kind]({ n })
          samples.push(performance.now() - t0)
        }
      })
    const t0 = performance.now()
    yield* Effect.all(Array.from({ length: callers }, (_, i) => loop(i)), { concurrency: "unbounded", discard: true })
    return { seconds: (performance.now() - t0) / 1000, samples }
  })

const clusterRows = (database: string) =>
  Effect.gen(function*() {
    // Warm-up: every entity is started once before anything is timed.
    const makeClient = yield* Pinger.client
    yield* Effect.forEach(Array.from({ length: callers }, (_, i) => i), (i) => makeClient(`pinger-${i}`).VolatilePing({ n: i }), {
      concurrency: "unbounded",
      discard: true
    })
    const rows: Array<Row> = []
    for (const kind of ["VolatilePing", "PersistedPing"] as const) {
      const result = yield* entityLoops(kind)
      rows.push({ scenario: `@effect/cluster ${kind === "PersistedPing" ? "persisted" : "volatile"} entity round trip`, ...result })
    }
    return rows
  }).pipe(
    Effect.provide(PingerLive.pipe(
      Layer.provideMerge(SingleRunner.layer({ runnerStorage: "memory", shardingConfig: { entityMailboxCapacity: 16_384 } })),
      Layer.provide(SqliteClient.layer({ filename: database })),
      Layer.provide(Logger.minimumLogLevel(LogLevel.Error))
    )),
    Effect.scoped
  )

const run = async () => {
  const { dir, remove } = tempDir("troupe-bench-cluster-")
  try {
    progress("cluster-entity", `${messages} round trips from ${callers} callers, each to its own entity`)
    const cluster = await Effect.runPromise(clusterRows(path.join(dir, "cluster.db")))
    progress("cluster-entity", `troupe: ${messages} no-op jobs from ${callers} submitters`)
    const rt = await openRuntime("troupe-bench-cluster-jobs-", {
      queues: { default: { concurrency: 256 } },
      functions: { noop }
    })
    let troupe: Row
    try {
      const result = await rt.runtime.runPromise(submitWaitLoops({ fn: "noop", args: {} }, callers, messages))
      troupe = { scenario: "Troupe job, submit → completed (3 persisted transitions)", ...result }
    } finally {
      await rt.close()
      rt.remove()
    }
    const rows = [...cluster, troupe]
    table(
      `cluster-entity: ${callers} concurrent callers, ${messages} round trips (SingleRunner on SQLite)`,
      ["scenario", "round trips", "per s", "p50", "p99"],
      rows.map((r) => {
        const l = latency(r.samples)
        return [r.scenario, String(r.samples.length), rate(r.samples.length / r.seconds), ms(l.p50), ms(l.p99)]
      })
    )
    const persisted = cluster.find((r) => r.scenario.includes("persisted"))!
    const perSecond = (r: Row) => r.samples.length / r.seconds
    notes([
      `Troupe jobs/s / persisted entity messages/s: ${ratio(perSecond(troupe), perSecond(persisted))}`,
      `A job as an entity needs at least 3 persisted messages (submitted, running, ended): at most ` +
      `${rate(perSecond(persisted) / 3)} jobs on that path, against ${rate(perSecond(troupe))} through the ledger.`,
      `The entity handler does nothing; each caller talks to its own entity, so entities run in parallel.`
    ])
  } finally {
    remove()
  }
}

/** The benchmark. */
export const bench: Bench = {
  name: "cluster-entity",
  description: "@effect/cluster entity messages (persisted, volatile) vs Troupe jobs",
  run
}
