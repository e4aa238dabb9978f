import { assert, describe, it } from "@effect/vitest"
import * as Either from "effect/Either"
import * as Path from "node:path"
import * as Config from "../../src/modules/Config.js"
import { project } from "./support.js"

describe("module server config", () => {
  it("reads entries, resolves import paths against the config's folder, ignores _ names, and skips invalid entries with a reason", () => {
    const dir = project({ "mods/a.js": "", "mods/b.ts": "", "mods/c/index.mjs": "" })
    const file = Path.join(dir, "server.config.json")
    const text = JSON.stringify({
      a: ["./mods/a.js", "A", null],
      b: ["mods/b", "*", "dispatch", { concurrency: 4, importTimeoutMs: 100, maxQueue: 5, watch: false }],
      c: ["./mods/c", "default", null],
      abs: [Path.join(dir, "mods/a.js"), "f", null],
      _comment: ["anything", "at", "all"],
      _off: "not even a list",
      notList: "./mods/a.js",
      short: ["./mods/a.js", "A"],
      long: ["./mods/a.js", "A", null, {}, "extra"],
      emptyPath: ["", "A", null],
      badExport: ["./mods/a.js", 3, null],
      badDispatch: ["./mods/a.js", "A", 5],
      badOption: ["./mods/a.js", "A", null, { concurrency: 0 }],
      typo: ["./mods/a.js", "A", null, { concurency: 2 }]
    })
    const snapshot = Either.getOrThrow(Config.parse(text, file))
    assert.deepStrictEqual(Array.from(snapshot.entries.keys()), ["a", "b", "c", "abs"])
    assert.deepStrictEqual(snapshot.ignored, ["_comment", "_off"])
    const a = snapshot.entries.get("a")!
    assert.strictEqual(a.file, Path.join(dir, "mods/a.js"))
    assert.strictEqual(a.exportName, "A")
    assert.isNull(a.dispatch)
    assert.strictEqual(a.concurrency, 1)
    assert.strictEqual(a.importTimeoutMs, 5000)
    assert.isTrue(a.watch)
    const b = snapshot.entries.get("b")!
    assert.strictEqual(b.file, Path.join(dir, "mods/b.ts"))
    assert.strictEqual(b.dispatch, "dispatch")
    assert.deepStrictEqual([b.concurrency, b.importTimeoutMs, b.maxQueue, b.watch], [4, 100, 5, false])
    assert.strictEqual(snapshot.entries.get("c")!.file, Path.join(dir, "mods/c/index.mjs"))
    assert.strictEqual(snapshot.entries.get("abs")!.file, Path.join(dir, "mods/a.js"))
    const skipped = snapshot.problems.map((p) => p.slice(1, p.indexOf("\"", 1)))
    assert.deepStrictEqual(skipped, ["notList", "short", "long", "emptyPath", "badExport", "badDispatch", "badOption", "typo"])
    for (const problem of snapshot.problems) assert.match(problem, /skipped$/)
    assert.match(snapshot.problems[1]!, /3 entries/)
    assert.match(snapshot.problems[7]!, /concurency/)
  })

  it("fails the whole file when it is not JSON or not an object", () => {
    const bad = Config.parse("{ not json", "/x/server.config.json")
    assert.isTrue(Either.isLeft(bad) && bad.left.reason === "invalid-json")
    const list = Config.parse("[1, 2]", "/x/server.config.json")
    assert.isTrue(Either.isLeft(list) && list.left.reason === "not-an-object")
  })

  it("tells entries that load different code from entries that only change limits", () => {
    const dir = project({ "m.js": "" })
    const file = Path.join(dir, "c.json")
    const parse = (value: unknown) => Either.getOrThrow(Config.parse(JSON.stringify({ m: value }), file)).entries.get("m")!
    const base = parse(["./m.js", "f", null])
    assert.isTrue(base.same(parse(["./m.js", "f", null])))
    assert.isTrue(base.sameCode(parse(["./m.js", "f", null, { concurrency: 3 }])))
    assert.isFalse(base.same(parse(["./m.js", "f", null, { concurrency: 3 }])))
    assert.isFalse(base.sameCode(parse(["./m.js", "g", null])))
    assert.isFalse(base.sameCode(parse(["./m.js", "f", "d"])))
  })
})
