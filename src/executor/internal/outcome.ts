import { RunOutcome } from "../Executor.js"

const noOutputs: ReadonlyArray<string> = []

/** A completed outcome; validation is skipped because every field is built here. */
export const completed = (exitCode: number | null, outputs = noOutputs, result?: unknown): RunOutcome => {
  if (outputs === noOutputs) {
    // The common bare outcomes are shared: outcomes are immutable values.
    if (result === undefined && exitCode === 0) return completedZero
    if (result === undefined && exitCode === null) return completedNull
    if (result === null && exitCode === null) return completedNullResult
  }
  return new RunOutcome(
    result === undefined
      ? { state: "completed", exitCode, reason: null, outputs }
      : { state: "completed", exitCode, reason: null, outputs, result },
    true
  )
}

const completedZero = new RunOutcome({ state: "completed", exitCode: 0, reason: null, outputs: noOutputs }, true)
const completedNull = new RunOutcome({ state: "completed", exitCode: null, reason: null, outputs: noOutputs }, true)
const completedNullResult = new RunOutcome(
  { state: "completed", exitCode: null, reason: null, outputs: noOutputs, result: null },
  true
)

/** A failed outcome with a human-readable reason. */
export const failed = (reason: string, exitCode: number | null = null, outputs = noOutputs): RunOutcome =>
  new RunOutcome({ state: "failed", exitCode, reason, outputs }, true)

/** A timeout outcome for a time limit given in milliseconds. */
export const timedOut = (timeLimitMs: number, outputs = noOutputs): RunOutcome =>
  new RunOutcome({ state: "timeout", exitCode: null, reason: timeLimitReason(timeLimitMs), outputs }, true)

/** The reason recorded when a time limit is exceeded: `time limit of Ns exceeded`. */
export const timeLimitReason = (timeLimitMs: number): string => `time limit of ${timeLimitMs / 1000}s exceeded`

/** The message of anything thrown or failed with: an Error's message, a `message` field, or its string form. */
export const messageOf = (error: unknown): string => {
  if (error instanceof Error) return error.message || error.name
  if (typeof error === "object" && error !== null) {
    const record = error as { readonly message?: unknown; readonly _tag?: unknown }
    if (typeof record.message === "string" && record.message.length > 0) return record.message
    if (typeof record._tag === "string") return record._tag
    try {
      return JSON.stringify(error)
    } catch {
      return String(error)
    }
  }
  return String(error)
}
