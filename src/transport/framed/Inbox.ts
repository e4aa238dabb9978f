import * as Effect from "effect/Effect"

/**
 * A queue from socket callbacks to one consuming fiber. Callbacks append batches without
 * Effect; the fiber takes everything queued at once, so a burst of messages costs one wake-up.
 */
export class Inbox<A> {
  private items: Array<A> = []
  private waiter: ((effect: Effect.Effect<ReadonlyArray<A> | undefined>) => void) | undefined
  private closed = false

  /** Appends messages; wakes the consumer. */
  offerAll(items: ReadonlyArray<A>): void {
    if (this.closed) return
    for (let i = 0; i < items.length; i++) this.items.push(items[i]!)
    this.wake()
  }

  /** Appends one message; wakes the consumer. */
  offer(item: A): void {
    if (this.closed) return
    this.items.push(item)
    this.wake()
  }

  /** No more messages: the consumer gets what is queued, then `undefined`. */
  close(): void {
    this.closed = true
    this.wake()
  }

  /** Everything queued, waiting for at least one message; `undefined` once closed and drained. */
  readonly takeAll: Effect.Effect<ReadonlyArray<A> | undefined> = Effect.async((resume) => {
    if (this.items.length > 0 || this.closed) return resume(Effect.succeed(this.drain()))
    this.waiter = resume
    return Effect.sync(() => {
      this.waiter = undefined
    })
  })

  /** Runs `f` on every message, in order, until the inbox is closed and drained. */
  consume(f: (item: A) => Effect.Effect<void>): Effect.Effect<void> {
    let batch: ReadonlyArray<A> | undefined = []
    let index = 0
    return Effect.whileLoop({
      while: () => batch !== undefined,
      body: () => {
        if (index < batch!.length) return f(batch![index++]!)
        index = 0
        return Effect.map(this.takeAll, (next) => {
          batch = next
        })
      },
      step: () => {}
    })
  }

  // ----- private

  private drain(): ReadonlyArray<A> | undefined {
    if (this.items.length === 0) return undefined
    const items = this.items
    this.items = []
    return items
  }

  private wake(): void {
    const waiter = this.waiter
    if (waiter === undefined) return
    this.waiter = undefined
    waiter(Effect.succeed(this.drain()))
  }
}
