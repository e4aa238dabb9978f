import { assert, describe, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import * as FunctionRunner from "../../src/executor/FunctionRunner.js"
import * as Functions from "../../src/executor/Functions.js"
import { requestFor } from "./support.js"

const fixture = new URL("./fixtures/threadFunctions.mjs", import.meta.url).href

const Pair = Schema.Struct({ a: Schema.Number, b: Schema.Number })
const ThreadResult = Schema.Struct({ value: Schema.Number, threadId: Schema.Number })

class Boom extends Schema.TaggedError<Boom>()("Boom", { message: Schema.String }) {}

const registry = {
  add: Functions.define({ args: Pair, success: Schema.Number, run: ({ a, b }) => a + b }),
  addAsync: Functions.define({ args: Pair, success: Schema.Number, run: async ({ a, b }) => a + b }),
  addEffect: Functions.define({ args: Pair, success: Schema.Number, run: ({ a, b }) => Effect.succeed(a + b) }),
  today: Functions.define({
    args: Schema.Struct({ ms: Schema.Number }),
    success: Schema.DateFromString,
    run: ({ ms }) => new Date(ms)
  }),
  typedFailure: Functions.define({
    args: Schema.Void,
    success: Schema.Void,
    run: () => Effect.fail(new Boom({ message: "typed boom" }))
  }),
  throws: Functions.define({
    args: Schema.Void,
    success: Schema.Void,
    run: () => {
      throw new Error("thrown boom")
    }
  }),
  rejects: Functions.define({
    args: Schema.Void,
    success: Schema.Void,
    run: () => Promise.reject(new Error("rejected boom"))
  }),
  dies: Functions.define({ args: Schema.Void, success: Schema.Void, run: () => Effect.die(new Error("defect boom")) }),
  badResult: Functions.define({ args: Schema.Void, success: Schema.Number, run: () => "not a number" as unknown as number }),
  forever: Functions.define({ args: Schema.Void, success: Schema.Void, run: () => Effect.never }),
  double: Functions.define({
    args: Schema.Struct({ n: Schema.Number }),
    success: ThreadResult,
    run: ({ n }) => ({ value: n * 2, threadId: 0 }),
    module: { url: fixture, export: "double" }
  }),
  later: Functions.define({
    args: Schema.Struct({ n: Schema.Number }),
    success: ThreadResult,
    run: ({ n }) => ({ value: n + 1, threadId: 0 }),
    module: { url: fixture, export: "later" }
  }),
  explode: Functions.define({
    args: Schema.Unknown,
    success: Schema.Void,
    run: () => undefined,
    module: { url: fixture, export: "explode" }
  }),
  spin: Functions.define({
    args: Schema.Unknown,
    success: Schema.Void,
    run: () => undefined,
    module: { url: fixture, export: "spin" }
  })
}

const TestLayer = FunctionRunner.layer({ maxThreads: 2 }).pipe(Layer.provide(Functions.layer(registry)))

const run = (spec: { fn: string; args?: unknown; placement?: "in-process" | "thread"; timeLimitMs?: number }) =>
  Effect.flatMap(FunctionRunner.FunctionRunner, (runner) => runner.run(requestFor("/tmp/troupe-unused", spec)))

describe("FunctionRunner", () => {
  // Real clock: the layer is shared and the tests run without the TestClock.
  layer(TestLayer, { timeout: 60_000, excludeTestServices: true })((it) => {
    it.effect("returns the encoded result of a value, a Promise or an Effect", () =>
      Effect.gen(function*() {
        for (const fn of ["add", "addAsync", "addEffect"]) {
          const outcome = yield* run({ fn, args: { a: 1, b: 2 } })
          assert.strictEqual(outcome.state, "completed")
          assert.strictEqual(outcome.result, 3)
          assert.strictEqual(outcome.reason, null)
        }
        const date = yield* run({ fn: "today", args: { ms: 0 } })
        assert.strictEqual(date.result, "1970-01-01T00:00:00.000Z")
      }))

    it.effect("says a function runs synchronously once its last in-process call answered synchronously", () =>
      Effect.gen(function*() {
        const runner = yield* FunctionRunner.FunctionRunner
        const spec = (fn: string, extra: { placement?: "thread"; timeLimitMs?: number } = {}) =>
          requestFor("/tmp/troupe-unused", { fn, args: { a: 1, b: 2 }, ...extra })
        assert.isFalse(runner.isSynchronous(spec("add").spec))
        const now = runner.runNow(spec("add"))
        assert.isFalse(now === undefined || Effect.isEffect(now))
        assert.isTrue(runner.isSynchronous(spec("add").spec))
        assert.isFalse(runner.isSynchronous(spec("add", { timeLimitMs: 1000 }).spec))
        assert.isFalse(runner.isSynchronous(spec("add", { placement: "thread" }).spec))
        const later = runner.runNow(spec("addAsync"))
        assert.isTrue(later !== undefined && Effect.isEffect(later))
        if (later !== undefined && Effect.isEffect(later)) yield* later
        assert.isFalse(runner.isSynchronous(spec("addAsync").spec))
        assert.isFalse(runner.isSynchronous(spec("nosuch").spec))
      }))

    it.effect("reports arguments that do not decode", () =>
      Effect.gen(function*() {
        const outcome = yield* run({ fn: "add", args: { a: 1, b: "two" } })
        assert.strictEqual(outcome.state, "failed")
        assert.match(outcome.reason ?? "", /^invalid arguments for add: /)
        assert.include(outcome.reason ?? "", "[\"b\"]")
      }))

    it.effect("turns failures, throws, rejections and defects into failed outcomes with their message", () =>
      Effect.gen(function*() {
        const reasons: Record<string, string> = {
          typedFailure: "typed boom",
          throws: "thrown boom",
          rejects: "rejected boom",
          dies: "defect boom"
        }
        for (const [fn, reason] of Object.entries(reasons)) {
          const outcome = yield* run({ fn })
          assert.strictEqual(outcome.state, "failed", fn)
          assert.strictEqual(outcome.reason, reason, fn)
        }
        const bad = yield* run({ fn: "badResult" })
        assert.strictEqual(bad.state, "failed")
        assert.match(bad.reason ?? "", /^the result of badResult does not match its success schema/)
      }))

    it.effect("reports an unknown function with the registered names", () =>
      Effect.gen(function*() {
        const outcome = yield* run({ fn: "nope" })
        assert.strictEqual(outcome.state, "failed")
        assert.match(outcome.reason ?? "", /^unknown function: nope \(registered: .*add, addAsync/)
      }))

    it.effect("a time limit ends the call with a timeout outcome", () =>
      Effect.gen(function*() {
        const outcome = yield* run({ fn: "forever", timeLimitMs: 100 })
        assert.strictEqual(outcome.state, "timeout")
        assert.strictEqual(outcome.reason, "time limit of 0.1s exceeded")
      }))

    it.effect("runs on a worker thread with the encoded args", () =>
      Effect.gen(function*() {
        const outcome = yield* run({ fn: "double", args: { n: 21 }, placement: "thread" })
        assert.strictEqual(outcome.state, "completed")
        const result = outcome.result as { value: number; threadId: number }
        assert.strictEqual(result.value, 42)
        assert.notStrictEqual(result.threadId, 0)
        const async = yield* run({ fn: "later", args: { n: 1 }, placement: "thread" })
        assert.strictEqual((async.result as { value: number }).value, 2)
        const many = yield* Effect.forEach(
          Array.from({ length: 20 }, (_, n) => n),
          (n) => run({ fn: "double", args: { n }, placement: "thread" }),
          { concurrency: "unbounded" }
        )
        assert.deepStrictEqual(many.map((o) => (o.result as { value: number }).value), many.map((_, n) => n * 2))
      }))

    it.effect("reports thread failures, bad args and missing modules", () =>
      Effect.gen(function*() {
        const thrown = yield* run({ fn: "explode", placement: "thread" })
        assert.strictEqual(thrown.state, "failed")
        assert.strictEqual(thrown.reason, "exploded on a thread")
        const badArgs = yield* run({ fn: "double", args: { n: "x" }, placement: "thread" })
        assert.match(badArgs.reason ?? "", /^invalid arguments for double/)
        const noModule = yield* run({ fn: "add", args: { a: 1, b: 2 }, placement: "thread" })
        assert.strictEqual(noModule.state, "failed")
        assert.match(noModule.reason ?? "", /cannot run on a thread/)
      }))

    it.effect("a time limit terminates a thread stuck in a loop", () =>
      Effect.gen(function*() {
        const outcome = yield* run({ fn: "spin", placement: "thread", timeLimitMs: 200 })
        assert.strictEqual(outcome.state, "timeout")
        // The pool still serves work afterwards.
        const after = yield* run({ fn: "double", args: { n: 2 }, placement: "thread" })
        assert.strictEqual((after.result as { value: number }).value, 4)
      }))
  })
})
