import { assert, describe, it } from "@effect/vitest"
import * as Dispatch from "../../src/netqueue/dispatch/Dispatch.js"
import * as RandomPolicy from "../../src/netqueue/dispatch/Random.js"

const children = (loads: ReadonlyArray<number>, weights: ReadonlyArray<number> = loads.map(() => 1)) =>
  loads.map((load, i) => ({ id: i + 1, load, weight: weights[i]! }))

const picks = (policy: Dispatch.DispatchPolicy, ready: ReadonlyArray<Dispatch.Candidate>, n: number) =>
  Array.from({ length: n }, () => policy.choose(ready)?.id)

describe("dispatch policies", () => {
  it("round robin takes turns, in connection order, across changes in who is ready", () => {
    const policy = Dispatch.make("round-robin")
    const all = children([0, 0, 0])
    assert.deepStrictEqual(picks(policy, all, 4), [1, 2, 3, 1])
    assert.deepStrictEqual(picks(policy, [all[0]!, all[2]!], 3), [3, 1, 3])
    assert.isUndefined(policy.choose([]))
  })

  it("least loaded takes the smallest load", () => {
    assert.strictEqual(Dispatch.make("least-loaded").choose(children([5, 2, 9]))?.id, 2)
  })

  it("random picks among the ready ones", () => {
    const values = [0, 0.5, 0.99]
    const policy = RandomPolicy.make(() => values.shift()!)
    assert.deepStrictEqual(picks(policy, children([0, 0, 0]), 3), [1, 2, 3])
  })

  it("weighted gives items in proportion to weight, interleaved", () => {
    const policy = Dispatch.make("weighted")
    const got = picks(policy, children([0, 0], [3, 1]), 8)
    assert.strictEqual(got.filter((id) => id === 1).length, 6)
    assert.deepStrictEqual(got.slice(0, 4).sort(), [1, 1, 1, 2])
  })

  it("a user function is a policy", () => {
    const policy = Dispatch.fromFunction((ready) => ready[ready.length - 1])
    assert.strictEqual(policy.choose(children([0, 0, 0]))?.id, 3)
    assert.isTrue(Dispatch.isName("least-loaded") && !Dispatch.isName("nope"))
  })
})
