import * as Schema from "effect/Schema"

/** Every state a job can be in; see DESIGN.md for the transitions. */
export const JobState = Schema.Literal(
  "pending",
  "held",
  "queued",
  "running",
  "completed",
  "failed",
  "killed",
  "timeout",
  "lost"
)
/** A job's state. */
export type JobState = typeof JobState.Type

/** The states a job never leaves (a `lost` job may be re-queued by a retry, as a new attempt). */
export const terminalStates: ReadonlyArray<JobState> = ["completed", "failed", "killed", "timeout", "lost"]

/** States that still need work: the job is not finished. */
export const activeStates: ReadonlyArray<JobState> = ["pending", "held", "queued", "running"]

/** The states tools report as bad outcomes. */
export const badStates: ReadonlyArray<JobState> = ["failed", "killed", "timeout", "lost"]

/** True when the job has finished, well or badly. */
export const isTerminal = (state: JobState): boolean =>
  state === "completed" || state === "failed" || state === "killed" || state === "timeout" || state === "lost"

/** Groups states the way dashboards and `status` summarise them. */
export const stateGroup = (state: JobState): "good" | "active" | "bad" =>
  state === "completed" ? "good" : isTerminal(state) ? "bad" : "active"
