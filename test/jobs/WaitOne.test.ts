import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import type { JobId } from "../../src/domain/JobId.js"
import type { JobRecord } from "../../src/domain/JobRecord.js"
import { Deadlines } from "../../src/internal/Deadlines.js"
import { Completions } from "../../src/jobs/Completions.js"
import * as WaitOne from "../../src/jobs/WaitOne.js"

const id = "a0000000000000000" as JobId
const record = { id, state: "completed" } as unknown as JobRecord

const setup = () => {
  const completions = new Completions()
  const deadlines = new Deadlines(20)
  const waitOne = WaitOne.make({
    completions,
    deadlines,
    isLive: () => true,
    fallback: () => Effect.dieMessage("not live")
  })
  return { completions, deadlines, waitOne }
}

describe("WaitOne", () => {
  it.live("an interrupted wait forgets its waiter and its deadline, so nothing is left to fire or hold the process", () =>
    Effect.gen(function*() {
      const { completions, deadlines, waitOne } = setup()
      // Interrupted by a timeout around it, and by interrupting the fiber that waits.
      const timedOut = yield* Effect.timeout(waitOne(id, "1 hour"), "20 millis").pipe(Effect.option)
      assert.isTrue(Option.isNone(timedOut))
      const fiber = yield* Effect.fork(waitOne(id, "1 hour"))
      yield* Effect.yieldNow()
      assert.isTrue(completions.has(id))
      yield* Fiber.interrupt(fiber)
      assert.isFalse(completions.has(id))
      assert.strictEqual(deadlines.size, 0)
      assert.isFalse(deadlines.armed)
    }))

  it.live("a wait ends with the job's record, or with WaitTimeout; either way nothing is left behind", () =>
    Effect.gen(function*() {
      const { completions, deadlines, waitOne } = setup()
      const fiber = yield* Effect.fork(waitOne(id, "1 hour"))
      yield* Effect.yieldNow()
      completions.complete(record)
      assert.deepStrictEqual(yield* Fiber.join(fiber), [record])
      assert.strictEqual(deadlines.size, 0)
      const error = yield* Effect.flip(waitOne(id, "30 millis"))
      assert.strictEqual(error._tag, "WaitTimeout")
      assert.isFalse(completions.has(id))
      assert.isFalse(deadlines.armed)
    }))
})
