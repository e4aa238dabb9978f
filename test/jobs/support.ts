import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import type { Jobs } from "../../src/jobs/Jobs.js"
import * as Troupe from "../../src/Troupe.js"

/** A fresh temp folder for one test. */
export const tempDir = (prefix = "troupe-jobs-") => fs.mkdtempSync(path.join(os.tmpdir(), prefix))

/** Functions the runtime tests register. */
export const testFunctions = (state: { flaky: number } = { flaky: 0 }) => ({
  add: Troupe.defineFunction({
    args: Schema.Tuple(Schema.Number, Schema.Number),
    success: Schema.Number,
    run: ([a, b]) => a + b
  }),
  fail: Troupe.defineFunction({
    args: Schema.Unknown,
    success: Schema.Unknown,
    run: () => Promise.reject(new Error("boom"))
  }),
  // Fails until it has been called `args` times.
  flaky: Troupe.defineFunction({
    args: Schema.Number,
    success: Schema.String,
    run: (times) => {
      state.flaky++
      if (state.flaky < times) throw new Error(`flaky call ${state.flaky}`)
      return "ok"
    }
  }),
  noop: Troupe.defineFunction({ args: Schema.Unknown, success: Schema.Unknown, run: () => null })
})

/** Runs an effect against an embedded runtime on a fresh database, closing it afterwards. */
export const withRuntime = <A, E>(
  effect: Effect.Effect<A, E, Jobs | Troupe.TroupeLayerOut>,
  options: Troupe.TroupeOptions = {}
) => {
  const dir = options.database === undefined ? tempDir() : path.dirname(options.database)
  return effect.pipe(
    Effect.provide(Troupe.layer({ database: path.join(dir, "troupe.db"), functions: testFunctions(), shutdownGraceMs: 100, ...options })),
    Effect.scoped
  )
}
