import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { config, project, server } from "./support.js"

describe("smoke", () => {
  it.scopedLive("calls a JS class", () =>
    Effect.gen(function*() {
      const dir = project({
        "mods/greeter.mjs": `export class Greeter { async init() { this.n = 0 } hello(name) { return "hello " + name + " " + (++this.n) } }`
      })
      const file = config(dir, { greeter: ["./mods/greeter.mjs", "Greeter", null] })
      const modules = yield* server(file)
      const t0 = Date.now()
      const r = yield* modules.com("greeter", "hello", ["bob"])
      console.log(r, Date.now() - t0, modules.status())
      assert.strictEqual(r, "hello bob 1")
      console.log(yield* modules.help("greeter"))
    }))
})
