import { assert, describe, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Stream from "effect/Stream"
import * as Actor from "../../src/actors/Actor.js"
import * as Supervisor from "../../src/actors/Supervisor.js"

const policy: Supervisor.RestartPolicy = { maxRestarts: 3, within: "10 seconds", baseDelay: "1 millis", maxDelay: "5 millis" }

describe("Supervisor", () => {
  it.scopedLive("restarts a crashing child, reporting each restart, then escalates past the intensity", () =>
    Effect.gen(function*() {
      const supervisor = yield* Supervisor.Supervisor
      const events = yield* supervisor.events.pipe(Stream.take(4), Stream.runCollect, Effect.fork)
      yield* Effect.yieldNow()
      let starts = 0
      const child = Effect.suspend(() => {
        starts++
        return Effect.dieMessage(`crash ${starts}`)
      })
      const fiber = yield* supervisor.supervise("crasher", child, policy)
      const exit = yield* Fiber.await(fiber)
      assert.isTrue(Exit.isFailure(exit))
      assert.strictEqual(starts, 4)
      const kinds = Chunk.toArray(yield* Fiber.join(events)).map((e) => `${e.kind}:${e.restarts}`)
      assert.deepStrictEqual(kinds, ["restarted:1", "restarted:2", "restarted:3", "escalated:4"])
    }).pipe(Effect.provide(Supervisor.layer)))

  it.scopedLive("a child that recovers keeps running", () =>
    Effect.gen(function*() {
      const supervisor = yield* Supervisor.Supervisor
      const healthy = yield* Deferred.make<void>()
      let starts = 0
      const child = Effect.suspend(() => {
        starts++
        return starts < 3 ? Effect.dieMessage("not yet") : Effect.zipRight(Deferred.succeed(healthy, undefined), Effect.never)
      })
      const fiber = yield* supervisor.supervise("recovering", child, policy)
      yield* Deferred.await(healthy)
      assert.strictEqual(starts, 3)
      assert.isTrue(fiber.unsafePoll() === null)
    }).pipe(Effect.provide(Supervisor.layer)))
})

describe("Actor", () => {
  it.scopedLive("handles messages one batch at a time and reports a full mailbox as MailboxFull", () =>
    Effect.gen(function*() {
      const gate = yield* Deferred.make<void>()
      const seen: Array<number> = []
      const actor = yield* Actor.make<number, never>({
        name: "counter",
        capacity: 2,
        maxBatch: 1,
        behavior: Effect.succeed((batch) =>
          Effect.zipRight(Deferred.await(gate), Effect.sync(() => batch.forEach((e) => seen.push(e.message)))))
      })
      yield* actor.tell(1)
      yield* Effect.repeat(actor.pending, { until: (n) => n === 0 })
      yield* actor.tell(2)
      yield* actor.tell(3)
      const full = yield* Effect.flip(actor.tell(4))
      assert.strictEqual(full._tag, "MailboxFull")
      yield* Deferred.succeed(gate, undefined)
      yield* Effect.repeat(Effect.sync(() => seen.length), { until: (n) => n === 3 })
      assert.deepStrictEqual(seen, [1, 2, 3])
    }).pipe(Effect.provide(Supervisor.layer)))

  it.scopedLive("a crash fails the asks of that batch, and the rebuilt actor serves the next ones", () =>
    Effect.gen(function*() {
      let builds = 0
      const actor = yield* Actor.make<{ readonly crash: boolean }, never>({
        name: "fragile",
        capacity: 16,
        behavior: Effect.sync(() => {
          builds++
          return (batch) =>
            Effect.suspend(() => {
              if (batch.some((e) => e.message.crash)) return Effect.dieMessage("bad message")
              for (const e of batch) e.reply(Exit.succeed(builds))
              return Effect.void
            })
        })
      })
      const request = (crash: boolean) => Object.assign({ crash }, { _tag: "R" }) as never
      const failed = yield* Effect.exit(actor.ask(request(true)))
      assert.isTrue(Exit.isFailure(failed))
      const answer = yield* actor.ask(request(false))
      assert.strictEqual(answer, 2)
    }).pipe(Effect.provide(Supervisor.layer)))
})
