import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Path from "node:path"
import { connectModules, ModulesClient } from "../../src/client/index.js"
import * as Compat from "../../src/modules/Compat.js"
import { eventually, freePort, runCli, runCommand, spawnRole, waitForListening } from "../integration/harness.js"
import type { RoleProcess } from "../integration/harness.js"
import { config, project, write } from "./support.js"

// The Python client, written from the description of the original protocol.
const python = Path.join(import.meta.dirname, "module_client.py")

interface PythonResult {
  readonly replies: ReadonlyArray<{ readonly response: unknown; readonly error: boolean; readonly traceback: string } | null>
  readonly closed: boolean
  readonly seconds: number
}

const modules = {
  "math.mjs": `export const add = (a, b) => a + b
export const fail = (message) => { throw new Error(message) }
export const help = "math: add(a, b), fail(message)"`,
  "router.mjs": `export class Router { route(ip, fn, ...args) { return { ip, fn, args } } }`,
  "counter.ts": `export class Counter {
  private count = 0
  add(n: number): number { this.count += n; return this.count }
}`,
  // Crashes on request; its restart takes 3 s while a marker file exists (a window to call it while it restarts).
  "fragile.mjs": `import { existsSync, appendFileSync } from "node:fs"
if (existsSync(new URL("./slow-restart", import.meta.url))) await new Promise((r) => setTimeout(r, 3000))
export class Fragile {
  ok() { return "fine" }
  crash() { process.kill(process.pid, "SIGKILL") }
  dispose() { appendFileSync(new URL("./disposed.txt", import.meta.url), "fragile disposed\\n") }
}`
}

describe("the module role (node dist/node.js --role=module)", () => {
  let dir = ""
  let role: RoleProcess
  let framed = ""
  let tcp = ""
  let unix = ""
  let compatPort = 0

  const py = async (...args: ReadonlyArray<string | number>): Promise<PythonResult> => {
    const result = await runCommand("python3", [python, "127.0.0.1", String(compatPort), ...args.map(String)])
    if (result.code !== 0) throw new Error(`python ${args.join(" ")} exited ${result.code}: ${result.stderr}`)
    return JSON.parse(result.stdout) as PythonResult
  }

  beforeAll(async () => {
    dir = project(modules)
    config(dir, {
      math: ["./math.mjs", "*", null],
      "my mod": ["./math.mjs", "*", null],
      router: ["./router.mjs", "Router", "route"],
      counter: ["./counter.ts", "Counter", null],
      fragile: ["./fragile.mjs", "Fragile", null]
    })
    const [framedPort, tcpPort] = [await freePort(), await freePort()]
    compatPort = await freePort()
    framed = `framed://127.0.0.1:${framedPort}`
    tcp = `tcp://127.0.0.1:${tcpPort}`
    unix = `unix://${Path.join(dir, "modules.sock")}`
    role = await spawnRole([
      "--role=module",
      "--config", Path.join(dir, "server.config.json"),
      "--listen", framed,
      "--listen", tcp,
      "--listen", unix,
      "--compat", `127.0.0.1:${compatPort}`,
      "--log-dir", Path.join(dir, "logs")
    ], { port: tcpPort, cwd: dir })
    await waitForListening({ port: compatPort })
    await waitForListening({ port: framedPort })
  })

  afterAll(async () => {
    await role?.stop("SIGTERM")
  })

  for (const transport of ["framed", "tcp"] as const) {
    it.scopedLive(`serves the typed client over ${transport}://: ping, com, help, getModules, status, reload, reloadConfig, typed errors`, () =>
      Effect.gen(function*() {
        const client = yield* ModulesClient.make(transport === "framed" ? framed : tcp)
        const peer = yield* client.ping
        assert.strictEqual(peer.ip, "127.0.0.1")
        assert.isAbove(peer.port, 0)
        // Each connection is told its own address, the same on every call.
        const other = yield* ModulesClient.make(transport === "framed" ? framed : tcp)
        assert.notStrictEqual((yield* other.ping).port, peer.port)
        assert.strictEqual((yield* client.ping).port, peer.port)
        assert.strictEqual(yield* client.com("math", "add", 2, 3), 5)
        assert.deepStrictEqual(yield* client.com("router", "where", "x"), { ip: "127.0.0.1", fn: "where", args: ["x"] })
        assert.isNumber(yield* client.com("counter", "add", 1))
        assert.strictEqual(yield* client.help("math"), "math: add(a, b), fail(message)")
        assert.include(yield* client.help(), "Available modules: math, my mod, router, counter, fragile")
        assert.deepStrictEqual(yield* client.getModules("m"), ["math", "my mod"])
        const status = yield* client.status("counter")
        assert.strictEqual(status[0]!.status, "ready")
        assert.strictEqual(status[0]!.kind, "class")
        const unknown = yield* Effect.either(client.com("math", "nope"))
        assert.isTrue(Either.isLeft(unknown) && unknown.left._tag === "ModuleError" && unknown.left.reason === "unknown-function")
        const thrown = yield* Effect.either(client.com("math", "fail", "bad"))
        assert.isTrue(Either.isLeft(thrown) && thrown.left._tag === "ModuleError" && thrown.left.reason === "call-failed")
        const missing = yield* Effect.either(client.reload("nope"))
        assert.isTrue(Either.isLeft(missing) && missing.left._tag === "ModuleError" && missing.left.reason === "not-found")
        const before = status[0]!.generation
        const outcome = yield* client.reload("counter")
        assert.strictEqual(outcome.generation, before + 1)
        // Events: a subscriber hears of reloads (reloading until one comes after its subscription started).
        const heard = yield* Effect.fork(
          Stream.runHead(Stream.filter(client.events, (e) => e.kind === "reloaded" && e.module === "counter"))
        )
        for (let i = 0; i < 5 && Option.isNone(yield* Fiber.poll(heard)); i++) {
          yield* client.reload("counter")
          yield* Effect.sleep("100 millis")
        }
        const event = yield* Fiber.join(heard).pipe(Effect.timeout("10 seconds"))
        assert.isTrue(Option.isSome(event) && event.value.generation > outcome.generation)
        const report = yield* client.reloadConfig
        assert.deepStrictEqual(report.unchanged, ["math", "my mod", "router", "counter", "fragile"])
      }))
  }

  it("serves the Promise client over unix://, where the caller's address is the socket", async () => {
    await using client = await connectModules(unix)
    assert.deepStrictEqual({ ...(await client.ping()) }, { ip: "unix", port: 0 })
    assert.strictEqual(await client.com("math", "add", 40, 2), 42)
    const error = await client.com("math", "nope").catch((e: unknown) => e)
    assert.strictEqual((error as { _tag: string; reason: string })._tag, "ModuleError")
    assert.strictEqual((error as { reason: string }).reason, "unknown-function")
  })

  it("has CLI commands: com, modules, reload, module-help", async () => {
    const env = { TROUPE_MODULE_SERVER: tcp }
    const [added, routed, failed, table, help] = await Promise.all([
      runCli(["com", "math", "add", "2", "40"], { env }),
      runCli(["com", "--server", framed, "router", "f", "text", "[1,2]", "{\"a\":null}"]),
      runCli(["com", "math", "fail", "\"oops\""], { env }),
      runCli(["modules"], { env }),
      runCli(["module-help", "math"], { env })
    ])
    assert.strictEqual(added.code, 0, added.stderr)
    assert.strictEqual(added.stdout, "42\n")
    assert.deepStrictEqual(JSON.parse(routed.stdout), { ip: "127.0.0.1", fn: "f", args: ["text", [1, 2], { a: null }] })
    assert.strictEqual(failed.code, 1)
    assert.include(failed.stderr, "oops")
    assert.strictEqual(table.code, 0, table.stderr)
    assert.match(table.stdout, /^NAME\s+STATUS/)
    assert.match(table.stdout, /\ncounter\s+ready\s+\d+/)
    assert.strictEqual(help.stdout, "math: add(a, b), fail(message)\n")
    const [reloaded, config] = await Promise.all([runCli(["reload", "counter"], { env }), runCli(["reload"], { env })])
    assert.match(reloaded.stdout, /^Reloaded "counter" \(generation \d+/)
    assert.match(config.stdout, /^Reloaded config: 0 loaded, 0 reloaded, 0 unloaded, 0 failed, 5 unchanged/)
  })

  it("serves the original Python client: hello step (ping, help, get_modules, reload) and call step (keep_alive false and true, errors, _help)", async () => {
    const [ping, nullName, help, all, some, reload, reloadConfig, reloadMissing, unknown] = await Promise.all([
      py("ping"),
      py("hello", "null"),
      py("help"),
      py("get_modules", ""),
      py("get_modules", "m"),
      py("reload", "my mod"),
      py("reload", ""),
      py("reload", "nope"),
      py("hello", "\"nope\"")
    ])
    assert.strictEqual(ping.replies[0]!.error, false)
    const [ip, port] = ping.replies[0]!.response as [string, number]
    assert.strictEqual(ip, "127.0.0.1")
    assert.isAbove(port, 0)
    assert.isTrue(ping.closed)
    assert.strictEqual((nullName.replies[0]!.response as Array<unknown>)[0], "127.0.0.1")
    assert.include(help.replies[0]!.response as string, "Available modules: math, my mod, router, counter, fragile")
    assert.isTrue(help.closed)
    assert.deepStrictEqual(all.replies[0]!.response, ["math", "my mod", "router", "counter", "fragile"])
    assert.deepStrictEqual(some.replies[0]!.response, ["math", "my mod"])
    assert.isTrue(some.closed)
    assert.deepStrictEqual(reload.replies[0], { response: "Reloaded \"my mod\"", error: false, traceback: "" })
    assert.isTrue(reload.closed)
    assert.strictEqual(reloadConfig.replies[0]!.response, "Reloaded config")
    assert.strictEqual(reloadMissing.replies[0]!.response, "Failed to find module \"nope\"")
    assert.deepStrictEqual([unknown.replies[0]!.response, unknown.replies[0]!.error], ["", true])
    assert.include(unknown.replies[0]!.traceback, "nope")
    assert.isTrue(unknown.closed)

    // Step 2: one call with keep_alive false; the server closes after the reply.
    const once = await py("com", "math", "add", "1", "2")
    assert.deepStrictEqual(once.replies, [
      { response: "ack", error: false, traceback: "" },
      { response: 3, error: false, traceback: "" }
    ])
    assert.isTrue(once.closed)
    // keep_alive true: several calls on one connection, _help, then a polite goodbye (no reply).
    const session = await py("session", "router", JSON.stringify([
      ["a", [1], true],
      ["b", ["x", null, { k: [1.5] }], true],
      ["_help", [], true],
      [null, [], false]
    ]))
    assert.strictEqual(session.replies.length, 4)
    assert.deepStrictEqual(session.replies[1]!.response, { ip: "127.0.0.1", fn: "a", args: [1] })
    assert.deepStrictEqual(session.replies[2]!.response, { ip: "127.0.0.1", fn: "b", args: ["x", null, { k: [1.5] }] })
    assert.include(session.replies[3]!.response as string, "dispatch method route")
    assert.isTrue(session.closed)
    // A keep-alive connection stays open after a reply, until the client leaves.
    const open = await py("session", "math", JSON.stringify([["add", [1, 1], true]]))
    assert.strictEqual(open.replies[1]!.response, 2)
    assert.isFalse(open.closed)
    // An error in the function closes the connection whatever keep_alive says.
    const error = await py("session", "math", JSON.stringify([["fail", ["boom"], true], ["add", [1, 1], true]]))
    assert.strictEqual(error.replies.length, 3)
    assert.strictEqual(error.replies[1]!.error, true)
    assert.include(error.replies[1]!.traceback, "Error: boom")
    assert.isNull(error.replies[2])
    assert.isTrue(error.closed)
  })

  it("answers bad input with an error reply and keeps serving everyone else", async () => {
    const keepAlive = Net.connect(compatPort, "127.0.0.1")
    const ask = lineReader(keepAlive)
    keepAlive.write(Compat.encode({ name: "math" }))
    assert.strictEqual((await ask()).response, "ack")

    const garbage = await py("raw", Buffer.from([0xff, 0xfe, 0x00, 0x80, 0x0a]).toString("hex"))
    assert.strictEqual(garbage.replies[0]!.error, true)
    assert.isTrue(garbage.closed)
    const notJson = await py("raw", Buffer.from("this+is+not+json\n").toString("hex"), "math")
    assert.strictEqual(notJson.replies[1]!.error, true)
    assert.include(notJson.replies[1]!.traceback, "not JSON")
    const noFields = await py("raw", Buffer.from(Compat.quotePlus(JSON.stringify({ function: "add" })) + "\n").toString("hex"), "math")
    assert.include(noFields.replies[1]!.traceback, "\"args\" missing")
    const overlong = await py("flood", 17 * 1024 * 1024)
    assert.strictEqual(overlong.replies[0]!.error, true)
    assert.include(overlong.replies[0]!.traceback, "longer than")
    const unknownFn = await py("com", "math", "nope")
    assert.strictEqual(unknownFn.replies[1]!.error, true)
    assert.include(unknownFn.replies[1]!.traceback, "unknown-function")
    const slow = await py("partial", "math")
    assert.strictEqual(slow.replies[1]!.error, true)
    assert.include(slow.replies[1]!.traceback, "within 1 s")
    assert.isAbove(slow.seconds, 0.9)

    // A module whose worker is restarting: its calls get an error at once.
    write(dir, { "slow-restart": "" })
    const crash = await py("com", "fragile", "crash")
    assert.include(crash.replies[1]!.traceback, "worker-crashed")
    const restarting = await py("com", "fragile", "ok")
    assert.strictEqual(restarting.replies[1]!.error, true)
    assert.include(restarting.replies[1]!.traceback, "restarting")
    Fs.rmSync(Path.join(dir, "slow-restart"))

    // Everyone else was served throughout: the keep-alive connection opened first still works.
    keepAlive.write(Compat.encode({ function: "add", args: [20, 22], keep_alive: true }))
    assert.deepStrictEqual(await ask(), { response: 42, error: false, traceback: "" })
    keepAlive.destroy()
    assert.strictEqual((await py("com", "math", "add", "1", "1")).replies[1]!.response, 2)
  })

  it("decodes a message split across TCP writes anywhere, inside a %XX escape too", async () => {
    const socket = Net.connect(compatPort, "127.0.0.1")
    socket.setNoDelay(true)
    const ask = lineReader(socket)
    const hello = Compat.encode({ name: "my mod" })
    const cut = hello.indexOf("%22") + 1 // between "%" and "22"
    socket.write(hello.subarray(0, cut))
    await new Promise((resolve) => setTimeout(resolve, 150))
    socket.write(hello.subarray(cut))
    assert.strictEqual((await ask()).response, "ack")
    const call = Compat.encode({ function: "add", args: [0.5, 0.25], keep_alive: false })
    const at = call.indexOf("%2C") + 2 // between "%2" and "C"
    for (const piece of [call.subarray(0, 3), call.subarray(3, at), call.subarray(at)]) {
      socket.write(piece)
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
    assert.deepStrictEqual(await ask(), { response: 0.75, error: false, traceback: "" })
    socket.destroy()
  })

  it("stops on SIGTERM: modules are disposed, and the exit code is 0", async () => {
    // fragile was restarting (slowly) in an earlier test: wait until it serves, so that it has an instance to dispose.
    await using client = await connectModules(tcp)
    await eventually(async () => ((await client.status("fragile"))[0]!.status === "ready" ? true : undefined), 20_000, "fragile ready")
    const code = await role.stop("SIGTERM")
    assert.strictEqual(code, 0)
    assert.include(Fs.readFileSync(Path.join(dir, "disposed.txt"), "utf8"), "fragile disposed")
    const logs = Fs.readFileSync(Path.join(dir, "logs", "fragile.log"), "utf8").trim().split("\n").map((l) => JSON.parse(l))
    assert.isTrue(logs.some((r: { msg: string }) => r.msg.includes("stopped (shutting-down)")))
  })
})

// Reads reply envelopes off a raw socket, one per call.
const lineReader = (socket: Net.Socket) => {
  const decoder = new Compat.LineDecoder(1 << 20)
  const lines: Array<Buffer> = []
  const waiters: Array<() => void> = []
  socket.on("data", (chunk: Buffer) => {
    lines.push(...(decoder.push(chunk) as Array<Buffer>))
    for (const wake of waiters.splice(0)) wake()
  })
  return async (): Promise<{ response: unknown; error: boolean; traceback: string }> => {
    const deadline = Date.now() + 10_000
    while (lines.length === 0) {
      if (Date.now() > deadline) throw new Error("no reply")
      await new Promise<void>((resolve) => {
        waiters.push(resolve)
        setTimeout(resolve, 200)
      })
    }
    const decoded = Compat.decode(lines.shift()!)
    if (decoded._tag !== "Message") throw new Error(decoded.message)
    return decoded.value as { response: unknown; error: boolean; traceback: string }
  }
}
