import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Fiber from "effect/Fiber"
import * as Fs from "node:fs"
import * as Path from "node:path"
import type { ModuleError } from "../../src/modules/Errors.js"
import { config, events, project, server, until, write } from "./support.js"

const sleep = `const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))\n`

const failure = (either: Either.Either<unknown, ModuleError>): ModuleError => {
  assert.isTrue(Either.isLeft(either), `expected a failure, got ${JSON.stringify(either)}`)
  return (either as Either.Left<ModuleError, unknown>).left
}

describe("module shapes, calls and help", () => {
  it.scopedLive("a class (async init, one instance), a function, an object of functions, the namespace, and a dispatch method with the client's ip", () =>
    Effect.gen(function*() {
      const dir = project({
        "counter.mjs": `${sleep}
export class Counter {
  async init() { await sleep(20); this.count = 0 }
  add(n) { this.count += n; return this.count }
  fail(message) { throw new Error(message) }
  _private() { return "hidden" }
}`,
        "fns.mjs": `export function square(x) { return x * x }
export const tools = { upper: (s) => s.toUpperCase(), async later(x, y = 2) { return [x, y] } }
export const answer = 42`,
        "router.mjs": `export class Router { route(ip, fn, ...args) { return { ip, fn, args } } }`,
        "helped.mjs": `export const help = "my own help"\nexport class Thing { ping() { return "pong" } }`
      })
      const modules = yield* server(config(dir, {
        counter: ["./counter.mjs", "Counter", null],
        square: ["./fns.mjs", "square", null],
        tools: ["./fns.mjs", "tools", null],
        all: ["./fns", "*", null],
        router: ["./router.mjs", "Router", "route"],
        helped: ["./helped.mjs", "Thing", null]
      }))
      assert.deepStrictEqual(modules.getModules(), ["counter", "square", "tools", "all", "router", "helped"])
      assert.deepStrictEqual(modules.getModules("t"), ["tools"])
      assert.strictEqual(yield* modules.com("counter", "add", [2]), 2)
      assert.strictEqual(yield* modules.com("counter", "add", [3]), 5)
      assert.strictEqual(yield* modules.com("square", "square", [7]), 49)
      assert.strictEqual(yield* modules.com("tools", "upper", ["abc"]), "ABC")
      assert.deepStrictEqual(yield* modules.com("tools", "later", [1]), [1, 2])
      assert.strictEqual(yield* modules.com("all", "square", [3]), 9)
      assert.deepStrictEqual(yield* modules.com("router", "anything", [1, "two"], "10.1.2.3"), { ip: "10.1.2.3", fn: "anything", args: [1, "two"] })
      assert.deepStrictEqual(modules.status("counter")[0]!.functions, ["add", "fail"])
      assert.strictEqual(modules.status("counter")[0]!.kind, "class")
      assert.strictEqual(modules.status("square")[0]!.kind, "function")

      // Help: generated from the functions, the module's own, a note for a dispatching module, and the server's.
      const generated = yield* modules.help("counter")
      assert.include(generated, "add(n)")
      assert.include(generated, "fail(message)")
      assert.notInclude(generated, "_private")
      assert.include(yield* modules.help("tools"), "later(x, y = 2)")
      assert.strictEqual(yield* modules.help("helped"), "my own help")
      assert.strictEqual(yield* modules.com("helped", "_help", []), "my own help")
      assert.include(yield* modules.help("router"), "route(clientIp, fn, ...args)")
      assert.include(yield* modules.help(), "Available modules: counter, square, tools, all, router, helped")

      // Errors: unknown function, a throwing function (with its stack), an unknown module.
      const unknown = failure(yield* Effect.either(modules.com("counter", "nope", [])))
      assert.strictEqual(unknown.reason, "unknown-function")
      assert.strictEqual(failure(yield* Effect.either(modules.com("counter", "_private", []))).reason, "unknown-function")
      const thrown = failure(yield* Effect.either(modules.com("counter", "fail", ["boom"])))
      assert.strictEqual(thrown.reason, "call-failed")
      assert.include(thrown.message, "Error: boom")
      assert.include(thrown.traceback, "counter.mjs")
      assert.strictEqual(failure(yield* Effect.either(modules.com("missing", "f", []))).reason, "not-found")
      // The module keeps serving after errors.
      assert.strictEqual(yield* modules.com("counter", "add", [1]), 6)
    }))

  it.scopedLive("calls run one at a time by default, and N at once with the concurrency option", () =>
    Effect.gen(function*() {
      const gate = `${sleep}let running = 0, most = 0
export class Gate { async hold(ms) { running++; most = Math.max(most, running); await sleep(ms); running--; return most } }`
      const dir = project({ "gate.mjs": gate })
      const modules = yield* server(config(dir, {
        one: ["./gate.mjs", "Gate", null],
        four: ["./gate.mjs", "Gate", null, { concurrency: 4 }]
      }))
      const most = (module: string) =>
        Effect.map(
          Effect.all(Array.from({ length: 8 }, () => modules.com(module, "hold", [60])), { concurrency: "unbounded" }),
          (results) => Math.max(...(results as Array<number>))
        )
      assert.strictEqual(yield* most("one"), 1)
      assert.strictEqual(yield* most("four"), 4)
    }))
})

describe("supervised workers", () => {
  it.scopedLive("a worker killed with SIGKILL fails its calls at once, refuses calls while restarting, and serves again after the restart", () =>
    Effect.gen(function*() {
      const dir = project({
        "w.mjs": `${sleep}export class W { pid() { return process.pid } async slow(ms) { await sleep(ms); return "done" } }`
      })
      const modules = yield* server(config(dir, { w: ["./w.mjs", "W", null, { concurrency: 2 }] }))
      const seen = yield* events(modules)
      const first = (yield* modules.com("w", "pid", [])) as number
      const inFlight = yield* Effect.fork(Effect.either(modules.com("w", "slow", [30_000])))
      yield* until(() => (modules.status("w")[0]!.running === 1 ? true : undefined), 5000, "the slow call to run")
      const killedAt = Date.now()
      process.kill(first, "SIGKILL")
      const crashed = failure(yield* Fiber.join(inFlight))
      assert.strictEqual(crashed.reason, "worker-crashed")
      assert.isBelow(Date.now() - killedAt, 1000)
      yield* seen.next((e) => e.kind === "crashed")
      const refused = yield* Effect.either(modules.com("w", "pid", []))
      // The restart may already be done on a fast machine; if not, the call is refused at once.
      if (Either.isLeft(refused)) assert.strictEqual(refused.left.reason, "restarting")
      yield* seen.next((e) => e.kind === "restarted")
      const second = (yield* modules.com("w", "pid", [])) as number
      assert.notStrictEqual(second, first)
      const info = modules.status("w")[0]!
      assert.strictEqual(info.status, "ready")
      assert.strictEqual(info.restarts, 1)
      assert.strictEqual(info.generation, 2)
    }))

  it.scopedLive("past the restart intensity the module is left failed, and a fix to its file brings it back", () =>
    Effect.gen(function*() {
      const dir = project({ "dies.mjs": `setTimeout(() => process.exit(7), 200)\nexport const f = () => "alive"` })
      // Two restarts allowed within a minute (a window wide enough for a slow machine): the third crash escalates.
      const policy = { maxRestarts: 2, within: "1 minute", baseDelay: "10 millis", maxDelay: "100 millis" } as const
      const modules = yield* server(config(dir, { dies: ["./dies.mjs", "f", null] }), { policy })
      const seen = yield* events(modules)
      const escalated = yield* seen.next((e) => e.kind === "escalated", 60_000)
      assert.include(escalated.message, "crashed too often")
      assert.strictEqual(modules.status("dies")[0]!.restarts, 2)
      assert.strictEqual(modules.status("dies")[0]!.status, "failed")
      assert.strictEqual(failure(yield* Effect.either(modules.com("dies", "f", []))).reason, "failed")
      write(dir, { "dies.mjs": `export const f = () => "fixed"` })
      yield* seen.next((e) => e.kind === "loaded")
      assert.strictEqual(yield* modules.com("dies", "f", []), "fixed")
    }))

  it.scopedLive("an import that does not finish within the timeout is killed and reported; calls fail instead of hanging", () =>
    Effect.gen(function*() {
      const dir = project({ "hangs.mjs": `await new Promise(() => {})\nexport const f = () => 1`, "empty.mjs": "" })
      const modules = yield* server(config(dir, {
        hangs: ["./hangs.mjs", "f", null, { importTimeoutMs: 300 }],
        empty: ["./empty.mjs", "*", null]
      }))
      // A module with nothing to call does not load either.
      assert.strictEqual(modules.status("empty")[0]!.status, "failed")
      assert.include(modules.status("empty")[0]!.lastError, "has no functions to call")
      const info = modules.status("hangs")[0]!
      assert.strictEqual(info.status, "failed")
      assert.include(info.lastError, "did not finish within 300 ms")
      assert.strictEqual(failure(yield* Effect.either(modules.com("hangs", "f", []))).reason, "failed")
      const log = Path.join(dir, "logs", "hangs.log")
      yield* until(() => (Fs.existsSync(log) && Fs.readFileSync(log, "utf8").includes("did not finish within 300 ms") ? true : undefined), 5000, "the log line")
    }))
})

describe("hot reload", () => {
  it.scopedLive("a change to the module or to a local file it imports loads the new code; calls in flight finish on the old", () =>
    Effect.gen(function*() {
      const dir = project({
        "dep.mjs": `export const suffix = "-a"`,
        "v.mjs": `${sleep}import { suffix } from "./dep.mjs"
export class V { version() { return "v1" + suffix } async slow(ms) { await sleep(ms); return "v1" } }`
      })
      const modules = yield* server(config(dir, { v: ["./v.mjs", "V", null] }))
      const seen = yield* events(modules)
      assert.strictEqual(yield* modules.com("v", "version", []), "v1-a")
      assert.deepStrictEqual(modules.status("v")[0]!.files, [Path.join(dir, "v.mjs"), Path.join(dir, "dep.mjs")])
      const slow = yield* Effect.fork(modules.com("v", "slow", [1500]))
      yield* until(() => (modules.status("v")[0]!.running === 1 ? true : undefined), 5000, "the slow call to run")
      write(dir, { "v.mjs": `import { suffix } from "./dep.mjs"\nexport class V { version() { return "v2" + suffix } }` })
      yield* seen.next((e) => e.kind === "reloaded")
      assert.strictEqual(yield* Fiber.join(slow), "v1")
      assert.strictEqual(yield* modules.com("v", "version", []), "v2-a")
      write(dir, { "dep.mjs": `export const suffix = "-b"` })
      yield* seen.next((e) => e.kind === "reloaded")
      assert.strictEqual(yield* modules.com("v", "version", []), "v2-b")
      assert.strictEqual(modules.status("v")[0]!.generation, 3)
    }))

  it.scopedLive("new code that fails to import leaves the old code serving, and the error is reported", () =>
    Effect.gen(function*() {
      const dir = project({ "m.mjs": `export const f = () => "good"` })
      const modules = yield* server(config(dir, { m: ["./m.mjs", "f", null] }))
      const seen = yield* events(modules)
      write(dir, { "m.mjs": `export const f = () => { syntax error here` })
      const failed = yield* seen.next((e) => e.kind === "reload-failed")
      assert.include(failed.message, "SyntaxError")
      assert.strictEqual(yield* modules.com("m", "f", []), "good")
      assert.strictEqual(modules.status("m")[0]!.status, "ready")
      const manual = failure(yield* Effect.either(modules.reload("m")))
      assert.strictEqual(manual.reason, "import-failed")
      assert.include(manual.traceback, "SyntaxError")
      assert.strictEqual(yield* modules.com("m", "f", []), "good")
      // An empty file (a save caught half way, say) has nothing to call: it does not replace the old code either.
      write(dir, { "m.mjs": "" })
      yield* seen.next((e) => e.kind === "reload-failed" && e.message.includes(`has no export "f"`))
      assert.strictEqual(yield* modules.com("m", "f", []), "good")
      write(dir, { "m.mjs": `export const f = () => "better"` })
      yield* seen.next((e) => e.kind === "reloaded")
      assert.strictEqual(yield* modules.com("m", "f", []), "better")
    }))

  it.scopedLive("under a steady load of calls, reloads fail no call", () =>
    Effect.gen(function*() {
      const dir = project({ "m.mjs": `export class M { version() { return 0 } }` })
      const modules = yield* server(config(dir, { m: ["./m.mjs", "M", null, { concurrency: 2, watch: false }] }))
      let failures = 0
      let calls = 0
      const versions = new Set<unknown>()
      let running = true
      const caller = Effect.gen(function*() {
        while (running) {
          const result = yield* Effect.either(modules.com("m", "version", []))
          calls++
          if (Either.isLeft(result)) failures++
          else versions.add(result.right)
        }
      })
      const callers = yield* Effect.fork(Effect.all(Array.from({ length: 4 }, () => caller), { concurrency: "unbounded" }))
      for (let version = 1; version <= 3; version++) {
        write(dir, { "m.mjs": `export class M { version() { return ${version} } }` })
        yield* modules.reload("m")
      }
      const before = calls
      yield* until(() => (calls > before + 20 ? true : undefined), 5000, "calls after the last reload")
      running = false
      yield* Fiber.join(callers)
      assert.strictEqual(failures, 0)
      assert.isTrue(versions.has(0) && versions.has(3), `versions seen: ${Array.from(versions).join(",")}`)
      assert.strictEqual(yield* modules.com("m", "version", []), 3)
    }))

  it.scopedLive("a TypeScript module and the TypeScript files it imports load with no build step, and reload when they change", () =>
    Effect.gen(function*() {
      const dir = project({
        "ts/shapes.ts": `import { scale } from "./scale"
export interface Point { readonly x: number; readonly y: number }
export class Shapes {
  private readonly origin: Point = { x: 0, y: 0 }
  distance(p: Point): number { return scale * Math.hypot(p.x - this.origin.x, p.y - this.origin.y) }
}`,
        "ts/scale.ts": `export const scale: number = 1`
      })
      const modules = yield* server(config(dir, { shapes: ["./ts/shapes.ts", "Shapes", null] }))
      const seen = yield* events(modules)
      assert.strictEqual(yield* modules.com("shapes", "distance", [{ x: 3, y: 4 }]), 5)
      write(dir, { "ts/scale.ts": `export const scale: number = 10` })
      yield* seen.next((e) => e.kind === "reloaded")
      assert.strictEqual(yield* modules.com("shapes", "distance", [{ x: 3, y: 4 }]), 50)
    }))
})

describe("the config file", () => {
  it.scopedLive("is watched: added, removed and changed entries load, unload and reload, and the others are not disturbed", () =>
    Effect.gen(function*() {
      const dir = project({
        "a.mjs": `export const one = () => "a1"\nexport const two = () => "a2"`,
        "pid.mjs": `export const pid = () => process.pid`
      })
      const file = config(dir, { a: ["./a.mjs", "one", null], gone: ["./pid.mjs", "pid", null], stays: ["./pid.mjs", "pid", null] })
      const modules = yield* server(file)
      const seen = yield* events(modules)
      const pid = yield* modules.com("stays", "pid", [])
      config(dir, {
        a: ["./a.mjs", "two", null],
        stays: ["./pid.mjs", "pid", null],
        added: ["./pid.mjs", "pid", null],
        broken: ["./a.mjs"]
      })
      yield* seen.next((e) => e.kind === "unloaded" && e.module === "gone")
      yield* seen.next((e) => e.kind === "loaded" && e.module === "added")
      yield* seen.next((e) => e.kind === "reloaded" && e.module === "a")
      yield* until(() => (modules.getModules().length === 3 ? true : undefined), 5000, "the new config")
      assert.deepStrictEqual(modules.getModules(), ["a", "stays", "added"])
      assert.strictEqual(yield* modules.com("a", "two", []), "a2")
      assert.strictEqual(failure(yield* Effect.either(modules.com("gone", "pid", []))).reason, "not-found")
      assert.strictEqual(yield* modules.com("stays", "pid", []), pid)
      // A file that is not JSON is reported and changes nothing.
      Fs.writeFileSync(file, "{ half a config")
      const report = yield* Effect.either(modules.reloadConfig)
      assert.isTrue(Either.isLeft(report) && report.left.reason === "invalid-json")
      assert.deepStrictEqual(modules.getModules(), ["a", "stays", "added"])
    }))
})

describe("logs", () => {
  it.scopedLive("each module logs JSON lines of its console output and the server's notes, rotated by size", () =>
    Effect.gen(function*() {
      const dir = project({
        "chatty.mjs": `export function talk(n) {
  for (let i = 0; i < n; i++) console.log("line", i, { i })
  console.error("an error line")
  process.stdout.write("raw stdout\\n")
  return n
}`
      })
      const modules = yield* server(config(dir, { chatty: ["./chatty.mjs", "talk", null] }), { logMaxBytes: 4000, logFiles: 2 })
      assert.strictEqual(yield* modules.com("chatty", "talk", [200]), 200)
      const logs = Path.join(dir, "logs")
      const read = () =>
        Fs.readdirSync(logs).sort().flatMap((f) => Fs.readFileSync(Path.join(logs, f), "utf8").split("\n").filter((l) => l !== ""))
          .map((line) => JSON.parse(line) as Record<string, unknown>)
      // 200 lines of ~130 bytes in 4,000-byte files: the current one and two rotated ones are kept, no more.
      const rotated = () => Fs.readdirSync(logs).filter((f) => f !== "chatty.log").sort().join(" ")
      const records = yield* until(() => {
        const all = read()
        return all.some((r) => r["msg"] === "raw stdout") && rotated() === "chatty.log.1 chatty.log.2" ? all : undefined
      }, 10_000, "the last lines in the logs, rotation done")
      for (const f of Fs.readdirSync(logs)) assert.isAtMost(Fs.statSync(Path.join(logs, f)).size, 4000 + 200)
      assert.isTrue(records.some((r) => r["level"] === "error" && r["msg"] === "an error line" && r["source"] === "module"))
      assert.isTrue(records.some((r) => r["level"] === "info" && r["msg"] === "raw stdout"))
      assert.isTrue(records.every((r) => r["module"] === "chatty" && typeof r["time"] === "string"))
      assert.isTrue(records.some((r) => r["msg"] === "line 199 { i: 199 }"))
    }))

  it.scopedLive("a class's dispose runs when its module is unloaded", () =>
    Effect.gen(function*() {
      const dir = project({
        "d.mjs": `import { appendFileSync } from "node:fs"
export class D { ping() { return "pong" } async dispose() { appendFileSync(new URL("./disposed.txt", import.meta.url), "disposed\\n") } }`
      })
      const file = config(dir, { d: ["./d.mjs", "D", null] })
      const modules = yield* server(file)
      assert.strictEqual(yield* modules.com("d", "ping", []), "pong")
      config(dir, {})
      const report = yield* modules.reloadConfig
      assert.deepStrictEqual(report.unloaded, ["d"])
      assert.strictEqual(Fs.readFileSync(Path.join(dir, "disposed.txt"), "utf8"), "disposed\n")
    }))
})
