import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import type { IncompatibleDatabase, JobsError, StoreError } from "../domain/Errors.js"
import type { JobSpecInput } from "../jobs/Jobs.js"
import { Jobs } from "../jobs/Jobs.js"
import * as Troupe from "../Troupe.js"
import * as Args from "./Args.js"
import { compact } from "./ClientCommands.js"
import * as Format from "./Format.js"
import * as Output from "./Output.js"

/** The `run` command's option table. */
export const options: Args.Options = {
  db: { type: "string" },
  "data-dir": { type: "string" },
  time: { type: "string" },
  name: { type: "string" }
}

/**
 * `run [--db PATH] -- CMD [ARGS...]`: runs one command on the embedded runtime with no server,
 * streams its stdout and stderr live to this process's, and returns its exit code.
 */
export const run = Effect.fnUntraced(function*(parsed: Args.Parsed) {
  const argv = parsed.rest ?? parsed.positionals
  const [first, ...others] = argv
  if (first === undefined) {
    return yield* new Args.UsageError({ command: "run", message: "missing the command to run (after --)" })
  }
  const timeLimitMs = yield* Args.duration("run", parsed, "time")
  const spec = compact<SpecFields>({
    command: others.length === 0 ? first : [first, ...others] as const,
    cwd: process.cwd(),
    env: currentEnv(),
    name: Args.string(parsed, "name"),
    timeLimitMs
  })
  // Ctrl-C on `run` means "stop the command now": no shutdown grace period.
  const runtime = Troupe.layer(compact<Troupe.TroupeOptions>({
    database: Args.string(parsed, "db"),
    dataDir: Args.string(parsed, "data-dir"),
    shutdownGraceMs: 100
  }))
  return yield* runOne(spec).pipe(Effect.provide(runtime))
})

// ---------------------------------------------------------------------------------------------
// private

type SpecFields = Exclude<JobSpecInput, void | undefined>

const runOne = (spec: JobSpecInput): Effect.Effect<number, JobsError | StoreError | IncompatibleDatabase, Jobs> =>
  Effect.gen(function*() {
    const jobs = yield* Jobs
    const id = yield* jobs.submit(spec)
    yield* Effect.all([
      Stream.runForEach(jobs.output(id, "stdout", { follow: true }), Output.out),
      Stream.runForEach(jobs.output(id, "stderr", { follow: true }), Output.err)
    ], { concurrency: 2, discard: true })
    const [record] = yield* jobs.wait([id])
    return Format.exitCodeOf(record!)
  })

const currentEnv = (): Record<string, string> =>
  Object.fromEntries(
    Object.entries(process.env).filter((entry): entry is [string, string] => entry[1] !== undefined)
  )
