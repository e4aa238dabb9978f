import * as Schema from "effect/Schema"
import { randomBytes } from "node:crypto"

/** A job's identifier: time-ordered, lower-case, safe in file names and URLs. */
export const JobId = Schema.String.pipe(
  Schema.pattern(/^[0-9a-z][0-9a-z_-]{0,63}$/),
  Schema.brand("JobId"),
  Schema.annotations({ identifier: "JobId", description: "1-64 chars of [0-9a-z_-]" })
)
/** A job's identifier. */
export type JobId = typeof JobId.Type

/** Makes a fresh, time-ordered JobId: 9 base-32 chars of milliseconds, then 7 random ones. */
export const makeJobId = (): JobId => {
  const time = Date.now().toString(32).padStart(9, "0")
  return (time + randomSuffix()) as JobId
}

/** A queue's name. */
export const QueueName = Schema.String.pipe(
  Schema.pattern(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/),
  Schema.annotations({ identifier: "QueueName", description: "1-64 chars of [A-Za-z0-9_.-]" })
)

const alphabet = "0123456789abcdefghijklmnopqrstuv"
let pool = Buffer.alloc(0)
let poolOffset = 0

// Random bytes are drawn in large blocks: one syscall serves thousands of ids on the submit path.
const randomSuffix = (): string => {
  if (poolOffset + 7 > pool.length) {
    pool = randomBytes(7 * 4096)
    poolOffset = 0
  }
  let out = ""
  for (let i = 0; i < 7; i++) out += alphabet[pool[poolOffset++]! & 31]
  return out
}
