import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { Deadlines } from "../../src/internal/Deadlines.js"

// Resolves with the time `add`'s callback fired, measured from the call.
const firesAfter = (deadlines: Deadlines, ms: number) =>
  Effect.async<number>((resume) => {
    const t0 = performance.now()
    deadlines.add(ms, () => resume(Effect.succeed(performance.now() - t0)))
  })

describe("Deadlines", () => {
  it.live("fires each deadline once, never early and at most a tick late; cancelled ones never fire", () =>
    Effect.gen(function*() {
      const deadlines = new Deadlines(20)
      let cancelledFired = false
      const cancel = deadlines.add(30, () => {
        cancelledFired = true
      })
      assert.isTrue(deadlines.armed)
      cancel()
      // Nothing pending: no timer holds the process.
      assert.isFalse(deadlines.armed)
      const [a, b, c] = yield* Effect.all([firesAfter(deadlines, 60), firesAfter(deadlines, 10), firesAfter(deadlines, 0)], {
        concurrency: "unbounded"
      })
      // Date.now() has millisecond resolution: allow for one millisecond of rounding.
      assert.isAtLeast(a!, 59)
      assert.isAtLeast(b!, 9)
      assert.isBelow(a!, 60 + 20 + 200)
      assert.isAtLeast(c!, 0)
      assert.isFalse(cancelledFired)
      assert.strictEqual(deadlines.size, 0)
      assert.isFalse(deadlines.armed)
      const later = deadlines.add(60_000, () => {})
      assert.isTrue(deadlines.armed)
      later()
      assert.isFalse(deadlines.armed)
    }))
})
