import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as TestClock from "effect/TestClock"
import * as Batcher from "../../src/internal/Batcher.js"

describe("Batcher", () => {
  it.scoped("a lone item goes at once; while the linger function says more are coming, items gather", () =>
    Effect.gen(function*() {
      const batches: Array<ReadonlyArray<number>> = []
      let busy = false
      const batcher = yield* Batcher.make(
        (items: ReadonlyArray<number>) => Effect.sync(() => void batches.push(items)),
        100,
        () => (busy ? 50 : 0)
      )
      yield* batcher.offer(1)
      busy = true
      const second = yield* Effect.fork(batcher.offer(2))
      // The writer holds the second item for its linger (test clock), so the next two join it.
      yield* Effect.repeat(Effect.yieldNow(), { times: 20 })
      const more = yield* Effect.fork(Effect.all([batcher.offer(3), batcher.offer(4)], { concurrency: "unbounded" }))
      yield* Effect.repeat(Effect.yieldNow(), { times: 20 })
      assert.deepStrictEqual(batches, [[1]])
      yield* TestClock.adjust("50 millis")
      yield* Fiber.join(second)
      yield* Fiber.join(more)
      // Asked again at the next batch: nothing more is coming, so it goes alone and at once.
      busy = false
      yield* batcher.offer(5)
      assert.deepStrictEqual(batches, [[1], [2, 3, 4], [5]])
    }))
})
