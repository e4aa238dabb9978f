import { assert, describe, it } from "@effect/vitest"
import { fuzzServer } from "../../fuzz/FrameFuzz.js"

describe("Framed server fuzz (a slice of npm run fuzz)", () => {
  it("keeps answering a well-behaved client through 300 garbage connections", async () => {
    const report = await fuzzServer(300, 42)
    assert.strictEqual(report.connections, 300)
    assert.isTrue(Object.values(report.kinds).every((n) => n > 50), JSON.stringify(report.kinds))
    assert.isAbove(report.goodCalls, 0)
  })
})
