import { assert, describe, it } from "@effect/vitest"
import type { JobId } from "../../src/domain/JobId.js"
import type { JobRecord } from "../../src/domain/JobRecord.js"
import { Completions } from "../../src/jobs/Completions.js"

const record = (id: string) => ({ id, state: "completed" }) as unknown as JobRecord
const a = "a0000000000000000" as JobId

describe("Completions", () => {
  it("resumes every waiter of a job once, except those that left; a job's end forgets its waiters", () => {
    const completions = new Completions()
    const calls: Array<string> = []
    const first = () => calls.push("first")
    const second = () => calls.push("second")
    const third = () => calls.push("third")
    completions.register(a, first)
    completions.register(a, second)
    completions.register(a, third)
    completions.unregister(a, second)
    assert.isTrue(completions.has(a))
    completions.complete(record(a))
    assert.deepStrictEqual(calls, ["first", "third"])
    // Ended: nobody waits any more, a second end resumes nobody, and a late unregister is a no-op.
    assert.isFalse(completions.has(a))
    completions.complete(record(a))
    completions.unregister(a, first)
    assert.deepStrictEqual(calls, ["first", "third"])
  })

  it("a lone waiter that leaves is forgotten, and one that was not registered changes nothing", () => {
    const completions = new Completions()
    const calls: Array<string> = []
    const only = () => calls.push("only")
    completions.register(a, only)
    completions.unregister(a, () => calls.push("stranger"))
    assert.isTrue(completions.has(a))
    completions.unregister(a, only)
    assert.isFalse(completions.has(a))
    completions.complete(record(a))
    assert.deepStrictEqual(calls, [])
    // Two waiters, both leaving: the job is no longer waited on.
    const x = () => calls.push("x")
    const y = () => calls.push("y")
    completions.register(a, x)
    completions.register(a, y)
    completions.unregister(a, x)
    completions.unregister(a, y)
    assert.isFalse(completions.has(a))
  })
})
