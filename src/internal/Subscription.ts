import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"

/** A live subscription for Promise callers: iterate it; it ends with the iteration or with `close`. */
export interface PromiseSubscription<A> extends AsyncIterable<A> {
  /** Ends the subscription; an iteration under way then ends too. */
  readonly close: () => Promise<void>
}

/**
 * Runs a scoped `subscribe` in a scope of its own, so that the subscription exists when the promise
 * resolves and lasts until the iteration ends or `close` is called; a failed subscribe closes it.
 */
export const open = async <A, E, R>(
  subscribe: Effect.Effect<Stream.Stream<A, E>, unknown, R>,
  run: (effect: Effect.Effect<Stream.Stream<A, E>, unknown, Exclude<R, Scope.Scope>>) => Promise<Stream.Stream<A, E>>,
  iterate: (stream: Stream.Stream<A, E>) => AsyncIterable<A>
): Promise<PromiseSubscription<A>> => {
  const scope = Effect.runSync(Scope.make())
  const close = () => Effect.runPromise(Scope.close(scope, Exit.void))
  const stream = await run(Scope.extend(subscribe, scope)).catch(async (error: unknown) => {
    await close()
    throw error
  })
  const events = iterate(Stream.ensuring(stream, Scope.close(scope, Exit.void)))
  return { [Symbol.asyncIterator]: () => events[Symbol.asyncIterator](), close }
}
