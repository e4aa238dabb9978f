import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Fiber from "effect/Fiber"
import * as Schedule from "effect/Schedule"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Path from "node:path"
import { ModulesClient } from "../../src/client/index.js"
import type { ModuleError } from "../../src/modules/Errors.js"
import { Direct } from "../../src/modules/internal/DirectWire.js"
import { FrameReader } from "../../src/modules/internal/Wire.js"
import { ModulesRpc } from "../../src/protocol/ModulesRpc.js"
import * as Endpoint from "../../src/transport/Endpoint.js"
import * as Handshake from "../../src/transport/Handshake.js"
import * as Secret from "../../src/transport/Secret.js"
import * as Transport from "../../src/transport/Transport.js"
import { eventually, freePort, runCli, spawnRole, waitForListening } from "../integration/harness.js"
import type { RoleProcess } from "../integration/harness.js"
import { compatConnection } from "./compatConnection.js"
import { config, project, write } from "./support.js"

// Direct routes: a typed client over framed:// or tcp:// calls a module's worker process itself.
// That a call took the route is shown by stopping the server process (SIGSTOP): the worker still
// answers, while a call through the server would wait.

const sleep = `const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))\n`

const modules = {
  "math.mjs": `export const add = (a, b) => a + b
export const fail = (message) => { throw new Error(message) }
export const pid = () => process.pid`,
  "router.mjs": `export class Router { route(ip, fn, ...args) { return { ip, fn, args } } }`,
  "versioned.mjs": `export const version = () => 0`,
  // Writes a marker when a slow call starts, so a test knows it is running in the worker.
  "slow.mjs": `${sleep}import { writeFileSync } from "node:fs"
export const pid = () => process.pid
export const slow = async (ms, marker) => { writeFileSync(marker, "started"); await sleep(ms); return "done" }`,
  // A lock directory shared by every worker generation: a call that finds it taken ran alongside another.
  "gate.mjs": gate(0)
}

function gate(version: number): string {
  return `${sleep}import { mkdirSync, rmdirSync } from "node:fs"
const lock = new URL("./gate.lock", import.meta.url)
export const version = () => ${version}
export const hold = async (ms) => {
  try { mkdirSync(lock) } catch { return "overlap" }
  await sleep(ms)
  rmdirSync(lock)
  return "ok"
}`
}

const failure = (either: Either.Either<unknown, unknown>): ModuleError => {
  assert.isTrue(Either.isLeft(either), `expected a failure, got ${JSON.stringify(either)}`)
  const error = (either as Either.Left<ModuleError, unknown>).left
  assert.strictEqual(error._tag, "ModuleError")
  return error
}

describe("direct routes (a typed client calls the module's worker process itself)", () => {
  let dir = ""
  let role: RoleProcess
  let framed = ""
  let tcp = ""
  let compatPort = 0

  beforeAll(async () => {
    dir = project(modules)
    config(dir, {
      math: ["./math.mjs", "*", null],
      router: ["./router.mjs", "Router", "route"],
      versioned: ["./versioned.mjs", "*", null, { concurrency: 4 }],
      slow: ["./slow.mjs", "*", null, { concurrency: 2 }],
      gate: ["./gate.mjs", "*", null]
    })
    const [framedPort, tcpPort] = [await freePort(), await freePort()]
    compatPort = await freePort()
    framed = `framed://127.0.0.1:${framedPort}`
    tcp = `tcp://127.0.0.1:${tcpPort}`
    role = await spawnRole([
      "--role=module",
      "--config", Path.join(dir, "server.config.json"),
      "--listen", framed,
      "--listen", tcp,
      "--compat", `127.0.0.1:${compatPort}`,
      "--log-dir", Path.join(dir, "logs")
    ], { port: framedPort, cwd: dir })
    await waitForListening({ port: compatPort })
    await waitForListening({ port: tcpPort })
  })

  afterAll(async () => {
    await role?.stop("SIGKILL")
  })

  /** Runs `call` until a run succeeds while the server process is stopped: it then took a direct route. */
  const direct = <A, E>(call: Effect.Effect<A, E>): Effect.Effect<A> => viaRoute(role, call)

  for (const transport of ["framed", "tcp"] as const) {
    it.scopedLive(`over ${transport}://, com() takes the direct route once it is open: results, the caller's address and typed errors as through the server`, () =>
      Effect.gen(function*() {
        const client = yield* ModulesClient.make(transport === "framed" ? framed : tcp)
        // The first call goes through the server while the route opens.
        assert.strictEqual(yield* client.com("math", "add", 2, 3), 5)
        assert.strictEqual(yield* direct(client.com("math", "add", 40, 2)), 42)
        const routed = yield* direct(client.com("router", "where", "x", [1, { a: null }]))
        assert.deepStrictEqual(routed, { ip: "127.0.0.1", fn: "where", args: ["x", [1, { a: null }]] })
        const unknown = failure(yield* direct(Effect.either(client.com("math", "nope"))))
        assert.strictEqual(unknown.reason, "unknown-function")
        assert.strictEqual(unknown.module, "math")
        const thrown = failure(yield* direct(Effect.either(client.com("math", "fail", "boom"))))
        assert.strictEqual(thrown.reason, "call-failed")
        assert.include(thrown.message, "Error: boom")
        assert.include(thrown.traceback, "math.mjs")
        // A client that asks for no direct route keeps calling through the server.
        const twoHops = yield* ModulesClient.make(framed, { direct: false })
        assert.strictEqual(yield* twoHops.com("math", "add", 1, 1), 2)
        process.kill(role.child.pid!, "SIGSTOP")
        const stalled = yield* Effect.either(Effect.timeout(twoHops.com("math", "add", 1, 1), "300 millis")).pipe(
          Effect.ensuring(Effect.sync(() => process.kill(role.child.pid!, "SIGCONT")))
        )
        assert.isTrue(Either.isLeft(stalled))
      }))
  }

  it.scopedLive("routes opened while the server keeps stopping and starting carry every call: none is lost in the handover", () =>
    Effect.gen(function*() {
      // The server is stopped and started every few milliseconds, so that routes are handed over
      // while it cannot run: the first calls on a new route used to be lost there, and hang.
      const pid = role.child.pid!
      let toggling = true
      const toggler = yield* Effect.fork(Effect.gen(function*() {
        while (toggling) {
          process.kill(pid, "SIGSTOP")
          yield* Effect.sleep("3 millis")
          process.kill(pid, "SIGCONT")
          yield* Effect.sleep("2 millis")
        }
      }).pipe(Effect.ensuring(Effect.sync(() => process.kill(pid, "SIGCONT")))))
      const lost: Array<string> = []
      for (let client = 0; client < 30; client++) {
        yield* Effect.scoped(Effect.gen(function*() {
          const modules = yield* ModulesClient.make(framed)
          for (let call = 0; call < 4; call++) {
            const result = yield* Effect.either(Effect.timeout(modules.com("math", "pid"), "10 seconds"))
            if (Either.isLeft(result)) lost.push(`client ${client}, call ${call}: ${result.left._tag}`)
            yield* Effect.sleep("5 millis")
          }
        }))
      }
      toggling = false
      yield* Fiber.join(toggler)
      assert.deepStrictEqual(lost, [])
      // Routes still open and serve once the server runs undisturbed.
      const after = yield* ModulesClient.make(framed)
      assert.isNumber(yield* direct(after.com("math", "pid")))
    }))

  it.scopedLive("reloads under a steady load of calls on direct routes fail no call, and the next call after each is served by the new code", () =>
    Effect.gen(function*() {
      const client = yield* ModulesClient.make(framed)
      assert.strictEqual(yield* direct(client.com("versioned", "version")), 0)
      let running = true
      let calls = 0
      const failures: Array<string> = []
      let latest = 0
      const caller = Effect.gen(function*() {
        while (running) {
          const result = yield* Effect.either(client.com("versioned", "version"))
          calls++
          if (Either.isLeft(result)) failures.push(`${result.left._tag}: ${result.left.message}`)
          else latest = Math.max(latest, result.right as number)
        }
      })
      const load = yield* Effect.fork(Effect.all([caller, caller, caller, caller], { concurrency: "unbounded" }))
      for (let version = 1; version <= 5; version++) {
        write(dir, { "versioned.mjs": `export const version = () => ${version}` })
        yield* Effect.promise(() => eventually(() => (latest >= version ? true : undefined), 20_000, `version ${version} serving`))
        // The reload is complete once the new code answers: from then on no call reaches the old code.
        const seen = yield* client.com("versioned", "version")
        assert.strictEqual(seen, version)
      }
      running = false
      yield* Fiber.join(load)
      assert.deepStrictEqual(failures, [])
      assert.isAbove(calls, 100)
      // The client took a route to the new worker.
      assert.strictEqual(yield* direct(client.com("versioned", "version")), 5)
    }))

  it.scopedLive("kill -9 of the worker with calls in flight on a direct route: they fail at once with worker-crashed, and the next call is served after the restart", () =>
    Effect.gen(function*() {
      const client = yield* ModulesClient.make(framed)
      const first = (yield* direct(client.com("slow", "pid"))) as number
      const markers = [Path.join(dir, "slow-1"), Path.join(dir, "slow-2")]
      const inFlight = yield* Effect.fork(
        Effect.all(markers.map((marker) => Effect.either(client.com("slow", "slow", 30_000, marker))), { concurrency: "unbounded" })
      )
      yield* Effect.promise(() => eventually(() => (markers.every((m) => Fs.existsSync(m)) ? true : undefined), 10_000, "the slow calls to run"))
      // Both calls run in the worker, sent over the route: the server process is not involved.
      const killedAt = Date.now()
      process.kill(first, "SIGKILL")
      const results = yield* Fiber.join(inFlight)
      const tookMs = Date.now() - killedAt
      for (const result of results) assert.strictEqual(failure(result).reason, "worker-crashed")
      assert.isBelow(tookMs, 1000)
      // Served again after the restart (calls meanwhile are refused with restarting, through the server).
      const second = yield* Effect.promise(() =>
        eventually(async () => {
          const pid = await Effect.runPromise(Effect.either(client.com("slow", "pid")))
          return Either.isRight(pid) && pid.right !== first ? pid.right : undefined
        }, 20_000, "the restarted worker to serve")
      )
      assert.notStrictEqual(second, first)
      assert.strictEqual(yield* direct(client.com("slow", "pid")), second)
    }))

  it.scopedLive("concurrency 1 holds across two clients on direct routes, a compat client, and reloads in the middle", () =>
    Effect.gen(function*() {
      const one = yield* ModulesClient.make(framed)
      const two = yield* ModulesClient.make(tcp)
      assert.strictEqual(yield* direct(one.com("gate", "version")), 0)
      assert.strictEqual(yield* direct(two.com("gate", "version")), 0)
      const compat = yield* Effect.acquireRelease(Effect.promise(() => compatConnection(compatPort, "gate")), (c) => Effect.sync(c.close))
      let running = true
      const results: Array<unknown> = []
      // Callers that keep calling, some with long calls: a reload often finds a long call, direct or
      // through the server, running in the old worker while the others' calls move to the new one.
      const caller = (client: ModulesClient["Type"], ms: number) =>
        Effect.gen(function*() {
          while (running) results.push(yield* Effect.either(client.com("gate", "hold", ms)).pipe(Effect.map(Either.getOrElse((e) => e.message))))
        })
      const compatCaller = Effect.promise(async () => {
        while (running) results.push(await compat.call("hold", [60]))
      })
      const callers = [caller(one, 120), caller(one, 5), caller(two, 5), caller(two, 5), compatCaller]
      const load = yield* Effect.fork(Effect.all(callers, { concurrency: "unbounded" }))
      for (let version = 1; version <= 4; version++) {
        yield* Effect.sleep("300 millis")
        write(dir, { "gate.mjs": gate(version) })
        yield* Effect.promise(() =>
          eventually(async () => ((await Effect.runPromise(one.com("gate", "version"))) === version ? true : undefined), 20_000, "the new code")
        )
      }
      yield* Effect.sleep("300 millis")
      running = false
      yield* Fiber.join(load)
      assert.isAbove(results.length, 30)
      assert.deepStrictEqual(results.filter((r) => r !== "ok"), [])
    }))
})

describe("direct routes when the server restarts", () => {
  it.scopedLive("a client whose server was killed and started again finds the new direct listener and takes a route again", () =>
    Effect.gen(function*() {
      const dir = project(modules)
      config(dir, { math: ["./math.mjs", "*", null] })
      const port = yield* Effect.promise(() => freePort())
      const framed = `framed://127.0.0.1:${port}`
      const start = () =>
        spawnRole(["--role=module", "--config", Path.join(dir, "server.config.json"), "--listen", framed, "--compat", "off"], { port, cwd: dir })
      const first = yield* Effect.acquireRelease(Effect.promise(start), (r) => Effect.promise(() => r.stop("SIGKILL")))
      const client = yield* ModulesClient.make(framed)
      const before = (yield* viaRoute(first, client.com("math", "pid"))) as number
      yield* Effect.promise(() => first.stop("SIGKILL"))
      const second = yield* Effect.acquireRelease(Effect.promise(start), (r) => Effect.promise(() => r.stop("SIGKILL")))
      // The old worker is gone with its server; the client reconnects, and its route goes to the new worker.
      const after = (yield* viaRoute(second, Effect.orDie(Effect.retry(client.com("math", "pid"), { times: 100, schedule: Schedule.spaced("50 millis") })))) as number
      assert.notStrictEqual(after, before)
    }))
})

describe("direct routes with a shared secret", () => {
  let role: RoleProcess
  let framed = ""
  let secretFile = ""
  let wrongFile = ""

  beforeAll(async () => {
    const dir = project(modules)
    config(dir, { math: ["./math.mjs", "*", null] })
    secretFile = Path.join(dir, "secret")
    wrongFile = Path.join(dir, "wrong")
    Fs.writeFileSync(secretFile, "correct horse battery staple\n", { mode: 0o600 })
    Fs.writeFileSync(wrongFile, "incorrect donkey battery stapler\n", { mode: 0o600 })
    const port = await freePort()
    framed = `framed://127.0.0.1:${port}`
    role = await spawnRole([
      "--role=module",
      "--config", Path.join(dir, "server.config.json"),
      "--listen", framed,
      "--compat", "off",
      "--secret-file", secretFile
    ], { port, cwd: dir })
  })

  afterAll(async () => {
    await role?.stop("SIGKILL")
  })

  it.scopedLive("a client with the secret gets a route; the wrong secret, or none, gets no route to any worker", () =>
    Effect.gen(function*() {
      const secret = yield* Secret.load(secretFile)
      const wrong = yield* Secret.load(wrongFile)
      const client = yield* ModulesClient.make(framed, { secret })
      assert.strictEqual(yield* client.com("math", "add", 1, 2), 3)
      assert.strictEqual(yield* viaRoute(role, client.com("math", "add", 2, 2)), 4)
      // The direct listener's port, as a client learns it.
      const endpoint = yield* Endpoint.parse(framed)
      const rpc = yield* Transport.makeClient(ModulesRpc, endpoint, { secret })
      const port = yield* rpc.Route(undefined)
      assert.isNumber(port)

      // The handshake with the wrong secret fails: the listener never reads a route request.
      const wrongly = yield* Effect.either(Effect.scoped(Effect.gen(function*() {
        const socket = yield* Effect.acquireRelease(connect(port!), (s) => Effect.sync(() => s.destroy()))
        return yield* Handshake.clientHandshake(socket, { secret: wrong })
      })))
      assert.isTrue(Either.isLeft(wrongly) && "reason" in wrongly.left && wrongly.left.reason === "auth-failed")

      // A client that skips the handshake and asks for a route at once is refused and cut off, never routed.
      const replies = yield* Effect.promise(() => skipHandshake(port!, "math"))
      assert.isTrue(replies.closed)
      assert.notInclude(replies.kinds, Direct.Routed)

      // A ModulesClient with the wrong secret cannot connect at all.
      const refused = yield* Effect.either(ModulesClient.make(framed, { secret: wrong }))
      assert.isTrue(Either.isLeft(refused) && refused.left._tag === "ServerUnreachable" && refused.left.reason === "auth-failed")
      // The client with the secret is still served over its route.
      assert.strictEqual(yield* viaRoute(role, client.com("math", "add", 3, 3)), 6)
    }))
})

describe("the direct-route port (--direct-port)", () => {
  const start = (dir: string, port: number, directPort: string) =>
    spawnRole([
      "--role=module",
      "--config", Path.join(dir, "server.config.json"),
      "--listen", `framed://127.0.0.1:${port}`,
      "--compat", "off",
      "--direct-port", directPort
    ], { port, cwd: dir })

  it.scopedLive("a fixed port is where the direct listener binds and what clients are told; calls take the route", () =>
    Effect.gen(function*() {
      const dir = project(modules)
      config(dir, { math: ["./math.mjs", "*", null] })
      const [port, directPort] = yield* Effect.promise(() => Promise.all([freePort(), freePort()]))
      const role = yield* Effect.acquireRelease(Effect.promise(() => start(dir, port, String(directPort))), (r) =>
        Effect.promise(() => r.stop("SIGKILL")))
      const framed = `framed://127.0.0.1:${port}`
      const rpc = yield* Transport.makeClient(ModulesRpc, yield* Endpoint.parse(framed))
      assert.strictEqual(yield* rpc.Route(undefined), directPort)
      const client = yield* ModulesClient.make(framed)
      assert.strictEqual(yield* viaRoute(role, client.com("math", "add", 20, 22)), 42)
    }))

  it.scopedLive("off: no direct listener, clients are told so, and every call goes through the server", () =>
    Effect.gen(function*() {
      const dir = project(modules)
      config(dir, { math: ["./math.mjs", "*", null] })
      const port = yield* Effect.promise(() => freePort())
      const role = yield* Effect.acquireRelease(Effect.promise(() => start(dir, port, "off")), (r) =>
        Effect.promise(() => r.stop("SIGKILL")))
      const framed = `framed://127.0.0.1:${port}`
      const rpc = yield* Transport.makeClient(ModulesRpc, yield* Endpoint.parse(framed))
      assert.isNull(yield* rpc.Route(undefined))
      const client = yield* ModulesClient.make(framed)
      for (let i = 0; i < 20; i++) assert.strictEqual(yield* client.com("math", "add", i, 1), i + 1)
      // With the server stopped, a call waits: it has no route around the server.
      process.kill(role.child.pid!, "SIGSTOP")
      const stalled = yield* Effect.either(Effect.timeout(client.com("math", "add", 1, 1), "300 millis")).pipe(
        Effect.ensuring(Effect.sync(() => process.kill(role.child.pid!, "SIGCONT")))
      )
      assert.isTrue(Either.isLeft(stalled))
      assert.strictEqual(yield* client.com("math", "add", 2, 2), 4)
    }))

  it("a port in use is one clear line and exit 2; a bad value is a usage error", async () => {
    const dir = project(modules)
    config(dir, { math: ["./math.mjs", "*", null] })
    const [port, taken] = [await freePort(), await freePort()]
    const holder = Net.createServer().listen(taken, "127.0.0.1")
    await new Promise((resolve) => holder.once("listening", resolve))
    try {
      const args = ["--role=module", "--config", Path.join(dir, "server.config.json"), "--listen", `framed://127.0.0.1:${port}`, "--compat", "off"]
      const inUse = await runCli([...args, "--direct-port", String(taken)], { cwd: dir })
      assert.strictEqual(inUse.code, 2)
      assert.strictEqual(inUse.stderr.trim().split("\n").filter((line) => line.includes("troupe:")).length, 1)
      assert.include(inUse.stderr, `cannot listen for direct routes on 127.0.0.1:${taken}: the port is in use`)
      const bad = await runCli([...args, "--direct-port", "70000"], { cwd: dir })
      assert.strictEqual(bad.code, 2)
      assert.include(bad.stderr, "--direct-port 70000: expected a port (1-65535) or off")
    } finally {
      holder.close()
    }
  })
})

// ---------------------------------------------------------------------------------------------
// helpers

/**
 * Runs `call` until a run succeeds while the role's process is stopped (SIGSTOP), for at most 30 s;
 * between tries the server runs undisturbed for a moment, so that a route being opened can finish.
 */
const viaRoute = <A, E>(role: RoleProcess, call: Effect.Effect<A, E>): Effect.Effect<A> =>
  Effect.gen(function*() {
    const pid = role.child.pid!
    const deadline = Date.now() + 30_000
    for (let attempt = 0; Date.now() < deadline; attempt++) {
      // A call first: the first one to a module opens its route.
      yield* Effect.either(call)
      if (attempt > 0) yield* Effect.sleep("200 millis")
      process.kill(pid, "SIGSTOP")
      const result = yield* Effect.either(Effect.timeout(call, "250 millis")).pipe(
        Effect.ensuring(Effect.sync(() => process.kill(pid, "SIGCONT")))
      )
      if (Either.isRight(result)) return result.right
    }
    return yield* Effect.dieMessage("the call never took a direct route")
  })

const connect = (port: number): Effect.Effect<Net.Socket, Error> =>
  Effect.async<Net.Socket, Error>((resume) => {
    const socket = Net.connect(port, "127.0.0.1")
    socket.once("error", (error) => resume(Effect.fail(error)))
    socket.once("connect", () => resume(Effect.succeed(socket)))
  })

// Sends a route request without the handshake; collects what comes back until the server closes.
const skipHandshake = (port: number, module: string): Promise<{ readonly closed: boolean; readonly kinds: ReadonlyArray<unknown> }> =>
  new Promise((resolve) => {
    const socket = Net.connect(port, "127.0.0.1")
    const kinds: Array<unknown> = []
    // Whatever parses as a route message (the handshake's frames do not, or not as Routed).
    const reader = new FrameReader<ReadonlyArray<unknown>>((message) => kinds.push(Array.isArray(message) ? message[0] : message), () => {})
    const timer = setTimeout(() => {
      socket.destroy()
      resolve({ closed: false, kinds })
    }, 10_000)
    socket.on("data", (chunk: Buffer) => {
      try {
        reader.push(chunk)
      } catch {
        // not a route message
      }
    })
    socket.on("error", () => {})
    socket.on("close", () => {
      clearTimeout(timer)
      resolve({ closed: true, kinds })
    })
    socket.once("connect", () => {
      const body = Buffer.from(JSON.stringify([Direct.Route, module]))
      const head = Buffer.alloc(4)
      head.writeUInt32BE(body.length)
      socket.write(Buffer.concat([head, body]))
    })
  })
