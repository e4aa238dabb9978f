import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import { WaitTimeout } from "../domain/Errors.js"
import type { JobNotFound, StoreError } from "../domain/Errors.js"
import type { JobId } from "../domain/JobId.js"
import type { JobRecord } from "../domain/JobRecord.js"
import type { Deadlines } from "../internal/Deadlines.js"
import type { Completions } from "./Completions.js"

/** What waiting on one job needs from the runtime. */
export interface WaitOneDeps {
  readonly completions: Completions
  readonly deadlines: Deadlines
  /** True while the ledger holds the job unfinished. */
  readonly isLive: (id: JobId) => boolean
  /** The general wait, for a job that is not live (finished, or unknown). */
  readonly fallback: (
    id: JobId,
    timeout: Duration.DurationInput | undefined
  ) => Effect.Effect<ReadonlyArray<JobRecord>, JobNotFound | WaitTimeout | StoreError>
}

/**
 * Waits on one unfinished job, the common case: a callback from the ledger and, with a timeout, a
 * deadline on the timer that all such waits share. An interrupted wait is forgotten when its fiber
 * exits (interruption always ends the fiber), through a fiber observer: much cheaper than a canceler
 * on the async, which wraps every wait in an interruption handler.
 */
export const make = (deps: WaitOneDeps) =>
(
  id: JobId,
  timeout: Duration.DurationInput | undefined
): Effect.Effect<ReadonlyArray<JobRecord>, JobNotFound | WaitTimeout | StoreError> =>
  Effect.withFiberRuntime((fiber) =>
    Effect.async<ReadonlyArray<JobRecord>, JobNotFound | WaitTimeout | StoreError>((resume) => {
      if (!deps.isLive(id)) return resume(deps.fallback(id, timeout))
      let cancelTimeout: (() => void) | undefined
      const forget = () => {
        cancelTimeout?.()
        deps.completions.unregister(id, waiter)
      }
      const waiter = (record: JobRecord) => {
        cancelTimeout?.()
        fiber.removeObserver(forget)
        resume(Exit.succeed([record]))
      }
      deps.completions.register(id, waiter)
      if (timeout !== undefined) {
        const duration = decodeDuration(timeout)
        cancelTimeout = deps.deadlines.add(Duration.toMillis(duration), () => {
          deps.completions.unregister(id, waiter)
          fiber.removeObserver(forget)
          resume(Effect.fail(new WaitTimeout({ pending: [id], message: `1 job still unfinished after ${Duration.format(duration)}` })))
        })
      }
      fiber.addObserver(forget)
    })
  )

// Timeouts are usually the same few strings ("120 seconds"): parse each once.
const parsedDurations = new Map<string, Duration.Duration>()
const decodeDuration = (input: Duration.DurationInput): Duration.Duration => {
  if (typeof input !== "string") return Duration.decode(input)
  let duration = parsedDurations.get(input)
  if (duration === undefined) {
    duration = Duration.decode(input)
    if (parsedDurations.size >= 64) parsedDurations.clear()
    parsedDurations.set(input, duration)
  }
  return duration
}
