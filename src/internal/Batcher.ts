import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"

/** Gathers what many fibers offer into batches for one writer; see `make`. */
export interface Batcher<A, E> {
  /** Adds an item to the next batch; resumes once that batch is flushed, with its outcome. */
  readonly offer: (item: A) => Effect.Effect<void, E>
  /** Adds an item to the next batch now; the effect returned waits for that batch's flush. */
  readonly push: (item: A) => Effect.Effect<Effect.Effect<void, E>>
}

/**
 * A batcher: one fiber flushes what was offered, in offer order, at most `max` items at a time.
 * A lone item is flushed at once, and what arrives during a flush forms the next batch, so
 * batches grow when the writer is the bottleneck. With `lingerMs`, an item that comes soon after
 * the last flush (the writer is busy with a stream of them) waits that long for company; given
 * as a function, it is asked at each batch (a caller that knows more items are coming says so).
 */
export const make = <A, E>(
  flush: (items: ReadonlyArray<A>) => Effect.Effect<void, E>,
  max: number,
  lingerMs: number | (() => number) = 0
): Effect.Effect<Batcher<A, E>, never, Scope.Scope> =>
  Effect.gen(function*() {
    const queue = yield* Effect.acquireRelease(
      Queue.unbounded<readonly [A, Deferred.Deferred<void, E>]>(),
      Queue.shutdown
    )
    yield* Effect.gen(function*() {
      let lastFlush = 0
      while (true) {
        const first = yield* Queue.take(queue)
        const linger = typeof lingerMs === "number" ? lingerMs : lingerMs()
        if (linger > 0 && Date.now() - lastFlush < 4 * linger) yield* Effect.sleep(linger)
        const rest = yield* Queue.takeUpTo(queue, max - 1)
        const batch = [first, ...rest]
        const exit = yield* Effect.exit(flush(batch.map(([item]) => item)))
        lastFlush = Date.now()
        for (const [, done] of batch) yield* Deferred.done(done, Exit.isSuccess(exit) ? Exit.void : exit)
      }
    }).pipe(Effect.forkScoped)
    const push = (item: A) =>
      Effect.flatMap(Deferred.make<void, E>(), (done) => Effect.as(Queue.offer(queue, [item, done] as const), Deferred.await(done)))
    return { push, offer: (item) => Effect.flatten(push(item)) }
  })
