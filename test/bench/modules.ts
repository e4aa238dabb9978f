/**
 * The module server (`node dist/node.js --role=module`, a child process; its module runs in a
 * worker process of its own):
 *  - `com()` round trips of a tiny echo, through the typed client (Effect, and the Promise facade)
 *    over framed:// and tcp:// (over its direct route to the worker: one hop), the same client
 *    through the server (`direct: false`: two hops), and through the original line protocol
 *    (keep_alive); sequential (p50, p99, calls/s) and 16 clients, each its own connection. In the
 *    same run: Piscina 5 (a worker-thread pool) and raw child-process IPC (`process.send`, the
 *    limit), and the module server in this process (its server → worker hop alone, no client hop);
 *  - reload: 20 saves of the module file, from the save to the first call answered by the new
 *    code, under a steady load of 4 callers, counting failed calls;
 *  - crash: `kill -9` of the worker, until a call is answered again.
 */
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import { spawn } from "node:child_process"
import type { ChildProcess } from "node:child_process"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Path from "node:path"
import { Piscina } from "piscina"
import { connectModules, ModulesClient } from "../../src/client/index.js"
import * as ModuleServer from "../../src/modules/ModuleServer.js"
import { compatConnection } from "../modules/compatConnection.js"
import { holdCoresAwake } from "./awake.js"
import type { Bench, Latency } from "./lib.js"
import { freePort, latency, ms, notes, now, progress, rate, ratio, table, tempDir, verdict } from "./lib.js"

const name = "modules"
const env = (key: string, fallback: number) => Number(process.env[key] ?? fallback)
const sequentialCalls = env("BENCH_MODULES_CALLS", 3000)
const concurrentCalls = env("BENCH_MODULES_CONCURRENT_CALLS", 10_000)
const clients = 16
const reloads = env("BENCH_MODULES_RELOADS", 20)
const crashes = env("BENCH_MODULES_CRASHES", 5)
/** Which parts to run: `roundtrips`, `reload`, `crash` (comma-separated); default all. */
const parts = (process.env["BENCH_MODULES_PARTS"] ?? "roundtrips,reload,crash").split(",")

const repoRoot = Path.resolve(import.meta.dirname, "..", "..", "..")
const cli = Path.join(repoRoot, "dist", "node.js")

const echoModule = `export const echo = (x) => x\nexport const version = () => 0\n`

export const bench: Bench = {
  name,
  description: "com() round trips (typed client, compat) against Piscina and raw IPC; reload and crash recovery",
  run: async () => {
    const scratch = tempDir("modules")
    let server: ChildProcess | undefined
    try {
      Fs.writeFileSync(Path.join(scratch.dir, "echo.mjs"), echoModule)
      Fs.writeFileSync(Path.join(scratch.dir, "versioned.mjs"), versioned(0))
      const configFile = Path.join(scratch.dir, "server.config.json")
      Fs.writeFileSync(configFile, JSON.stringify({
        echo: ["./echo.mjs", "*", null],
        echo16: ["./echo.mjs", "*", null, { concurrency: 16 }],
        versioned: ["./versioned.mjs", "*", null, { concurrency: 4 }]
      }))
      const [framedPort, tcpPort, compatPort] = [await freePort(), await freePort(), await freePort()]
      const framed = `framed://127.0.0.1:${framedPort}`
      const tcp = `tcp://127.0.0.1:${tcpPort}`
      server = await startServer(configFile, [framed, tcp], compatPort)
      if (parts.includes("roundtrips")) await roundTrips(framed, tcp, compatPort, scratch.dir)
      if (parts.includes("reload")) await reloading(framed, scratch.dir)
      if (parts.includes("crash")) await crashing(framed)
    } finally {
      if (server !== undefined) await stop(server)
      scratch.remove()
    }
  }
}

// ---------------------------------------------------------------------------------------------
// com() round trips

interface Measured {
  readonly sequential: Latency
  readonly sequentialRate: number
  readonly concurrent: Latency
  readonly concurrentRate: number
}

const roundTrips = async (framed: string, tcp: string, compatPort: number, dir: string) => {
  const rows: Array<Array<string>> = []
  const results = new Map<string, Measured>()
  const record = (label: string, sequential: Timed, concurrent: Timed) => {
    const m: Measured = {
      sequential: sequential.latency,
      sequentialRate: sequential.perSecond,
      concurrent: concurrent.latency,
      concurrentRate: concurrent.perSecond
    }
    results.set(label, m)
    rows.push([label, ms(m.sequential.p50), ms(m.sequential.p99), rate(m.sequentialRate), rate(m.concurrentRate), ms(m.concurrent.p50), ms(m.concurrent.p99)])
  }
  const measure = async (label: string, call: () => Promise<unknown>, concurrentCall: Array<() => Promise<unknown>>) => {
    const until = now() + warmupMs
    for (let i = 0; i < 500 || now() < until; i++) await call()
    progress(name, `${label}: ${sequentialCalls} sequential`)
    const sequential = await timed(sequentialCalls, [call])
    progress(name, `${label}: ${concurrentCalls} over ${concurrentCall.length} callers`)
    record(label, sequential, await timed(concurrentCalls, concurrentCall))
  }

  // The limit: a child process echoing over Node's IPC channel.
  const ipc = await ipcEcho()
  await measure("raw child-process IPC, process.send (the limit)", () => ipc.call("x"), Array.from({ length: clients }, () => () => ipc.call("x")))
  ipc.close()

  // Piscina 5: a pool of worker threads in this process (its default size).
  const task = Path.join(dir, "piscina-echo.mjs")
  Fs.writeFileSync(task, "export default (x) => x\n")
  const pool = new Piscina({ filename: task })
  await measure("Piscina 5 worker threads", () => pool.run("x"), Array.from({ length: clients }, () => () => pool.run("x")))
  await pool.destroy()

  // The server → worker hop alone: a module server in this process.
  await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
    const local = yield* ModuleServer.make({ configFile: Path.join(dir, "server.config.json"), watchConfig: false, logDir: Path.join(dir, "local-logs") })
    const call = (module: string) => () => Effect.runPromise(local.com(module, "echo", ["x"]))
    yield* Effect.promise(() => measure("module server in this process (no client hop), concurrency 1", call("echo"), Array.from({ length: clients }, () => call("echo"))))
    yield* Effect.promise(() => measure("module server in this process, concurrency 16", call("echo16"), Array.from({ length: clients }, () => call("echo16"))))
  })))

  // The typed client, Effect API: calls made inside Effect, one connection per client; over its
  // direct routes (the default), and through the server (two hops) for comparison.
  const typedPaths = [
    [framed, "framed://", true],
    [tcp, "tcp://", true],
    [framed, "framed:// through the server (direct: false)", false]
  ] as const
  for (const [url, label, direct] of typedPaths) {
    await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const connections = yield* Effect.all(Array.from({ length: clients }, () => ModulesClient.make(url, { direct })))
      for (const module of ["echo", "echo16"]) {
        const what = `typed client (Effect) over ${label}, ${module === "echo" ? "concurrency 1" : "concurrency 16"}`
        // The loops run inside Effect, as an Effect program's would.
        const calls = connections.map((c) => c.com(module, "echo", "x"))
        // The warm-up opens every client's direct route too.
        yield* Effect.forEach(calls, (call) => call, { discard: true })
        yield* warmEffect(calls[0]!)
        progress(name, `${what}: ${sequentialCalls} sequential`)
        const sequential = yield* timedEffect(sequentialCalls, [calls[0]!])
        progress(name, `${what}: ${concurrentCalls} over ${clients} clients`)
        record(what, sequential, yield* timedEffect(concurrentCalls, calls))
      }
    })))
  }

  // The typed client, Promise facade.
  const facades = await Promise.all(Array.from({ length: clients }, () => connectModules(framed)))
  await measure("typed client (Promise) over framed://, concurrency 16", () => facades[0]!.com("echo16", "echo", "x"), facades.map((f) => () => f.com("echo16", "echo", "x")))
  await Promise.all(facades.map((f) => f.close()))

  // The original line protocol, one keep-alive connection per client.
  const compat = await Promise.all(Array.from({ length: clients }, () => compatConnection(compatPort, "echo16")))
  await measure("original line protocol (keep_alive), concurrency 16", () => compat[0]!.call("echo", ["x"]), compat.map((c) => () => c.call("echo", ["x"])))
  for (const c of compat) c.close()

  table(
    "com() round trip of a tiny echo",
    ["path", "p50", "p99", "sequential/s", `${clients} clients/s`, `p50 at ${clients}`, `p99 at ${clients}`],
    rows
  )
  const typed = results.get("typed client (Effect) over framed://, concurrency 1")!
  const typed16 = results.get("typed client (Effect) over framed://, concurrency 16")!
  const raw = results.get("raw child-process IPC, process.send (the limit)")!
  const piscina = results.get("Piscina 5 worker threads")!
  const local = results.get("module server in this process (no client hop), concurrency 1")!
  const twoHops = results.get("typed client (Effect) over framed:// through the server (direct: false), concurrency 1")!
  notes([
    `bar: com() p50 ≤ 100 µs through the typed client: ${ms(typed.sequential.p50)} over framed:// → ${verdict(typed.sequential.p50 <= 0.1)}`,
    `typed client over framed:// against raw IPC: p50 ${ratio(typed.sequential.p50, raw.sequential.p50)}, sequential rate ` +
    `${ratio(typed.sequentialRate, raw.sequentialRate)}, ${clients} clients ${ratio(typed16.concurrentRate, raw.concurrentRate)}`,
    `typed client over framed:// against Piscina: p50 ${ratio(typed.sequential.p50, piscina.sequential.p50)}, ` +
    `${clients} clients ${ratio(typed16.concurrentRate, piscina.concurrentRate)}`,
    `the typed client's direct route (client → worker) against its path through the server (client → server → worker): ` +
    `p50 ${ms(typed.sequential.p50)} against ${ms(twoHops.sequential.p50)}`,
    `the server → worker hop alone (in-process server): p50 ${ms(local.sequential.p50)}`
  ])
  await awakeRoundTrips(framed, dir, typed.sequential.p50, raw.sequential.p50)
}

// The sequential round trips again with the cores held awake (awake.ts): a sequential call waits on
// two process wake-ups, and on this VM an idle core's wake-up alone can cost more than the bar.
const awakeRoundTrips = async (framed: string, dir: string, idleTyped: number, idleRaw: number) => {
  const stop = await holdCoresAwake()
  try {
    const rows: Array<Array<string>> = []
    const sequentially = async (label: string, call: () => Promise<unknown>) => {
      const until = now() + warmupMs
      for (let i = 0; i < 500 || now() < until; i++) await call()
      progress(name, `${label}, cores awake: ${sequentialCalls} sequential`)
      const t = await timed(sequentialCalls, [call])
      rows.push([label, ms(t.latency.p50), ms(t.latency.p99), rate(t.perSecond)])
      return t.latency.p50
    }
    const ipc = await ipcEcho()
    const raw = await sequentially("raw child-process IPC, process.send (the limit)", () => ipc.call("x"))
    ipc.close()
    const pool = new Piscina({ filename: Path.join(dir, "piscina-echo.mjs") })
    const piscina = await sequentially("Piscina 5 worker threads", () => pool.run("x"))
    await pool.destroy()
    // The typed client's loops run inside Effect, as in the table above.
    const typedSequentially = (label: string, call: Effect.Effect<unknown, unknown>) =>
      Effect.gen(function*() {
        yield* call
        yield* warmEffect(call)
        progress(name, `${label}, cores awake: ${sequentialCalls} sequential`)
        const t = yield* timedEffect(sequentialCalls, [call])
        rows.push([label, ms(t.latency.p50), ms(t.latency.p99), rate(t.perSecond)])
        return t.latency.p50
      })
    const typed = await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const client = yield* ModulesClient.make(framed)
      const typedP50 = yield* typedSequentially("typed client (Effect) over framed://, concurrency 1", client.com("echo", "echo", "x"))
      const twoHops = yield* ModulesClient.make(framed, { direct: false })
      yield* typedSequentially("typed client (Effect) over framed:// through the server (direct: false)", twoHops.com("echo", "echo", "x"))
      return typedP50
    })))
    table("com() sequential round trip with the cores held awake (one nice-19 spinner per core)", ["path", "p50", "p99", "sequential/s"], rows)
    notes([
      `bar: com() p50 ≤ 100 µs through the typed client, cores awake: ${ms(typed)} over framed:// → ${verdict(typed <= 0.1)}`,
      `typed client against raw IPC, cores awake: p50 ${ratio(typed, raw)}; against Piscina: ${ratio(typed, piscina)}`,
      `from idle (the table above) the same call took ${ms(idleTyped)} and raw IPC, the limit, ${ms(idleRaw)}: ` +
      `an idle core's wake-up is most of it`
    ])
  } finally {
    stop()
  }
}

interface Timed {
  readonly latency: Latency
  readonly perSecond: number
}

// Every path is warmed up alike, for a while (the JIT needs a few thousand calls), before it is measured.
const warmupMs = Number(process.env.BENCH_MODULES_WARMUP_MS ?? 1500)

const warmEffect = <E>(call: Effect.Effect<unknown, E>): Effect.Effect<void, E> =>
  Effect.suspend(() => {
    const until = now() + warmupMs
    let made = 0
    return Effect.whileLoop({ while: () => made < 500 || now() < until, body: () => call, step: () => void made++ })
  })

// `total` calls shared by the callers, each looping in its own fiber.
const timedEffect = <E>(total: number, callers: ReadonlyArray<Effect.Effect<unknown, E>>): Effect.Effect<Timed, E> =>
  Effect.suspend(() => {
    const samples: Array<number> = []
    let next = 0
    const start = now()
    const loop = (call: Effect.Effect<unknown, E>) =>
      Effect.whileLoop({
        while: () => next < total,
        body: () => {
          next++
          const t0 = now()
          return Effect.map(call, () => samples.push(now() - t0))
        },
        step: () => {}
      })
    return Effect.map(
      Effect.all(callers.map(loop), { concurrency: "unbounded", discard: true }),
      () => ({ latency: latency(samples), perSecond: total / ((now() - start) / 1000) })
    )
  })

const timed = async (total: number, callers: ReadonlyArray<() => Promise<unknown>>): Promise<Timed> => {
  const samples: Array<number> = []
  let next = 0
  const start = now()
  await Promise.all(callers.map(async (call) => {
    while (next < total) {
      next++
      const t0 = now()
      await call()
      samples.push(now() - t0)
    }
  }))
  const seconds = (now() - start) / 1000
  return { latency: latency(samples), perSecond: total / seconds }
}

const ipcEcho = async () => {
  const child = spawn(process.execPath, ["-e", "process.on('message', (m) => process.send(m))"], {
    stdio: ["ignore", "inherit", "inherit", "ipc"],
    serialization: "json"
  })
  const waiting: Array<(value: unknown) => void> = []
  child.on("message", (m) => waiting.shift()!(m))
  await new Promise<void>((resolve) => child.once("spawn", () => resolve()))
  return {
    // Replies come back in order, so a FIFO of waiters matches them.
    call: (value: unknown) =>
      new Promise<unknown>((resolve) => {
        waiting.push(resolve)
        child.send({ fn: "echo", args: [value] })
      }),
    close: () => child.kill()
  }
}

// ---------------------------------------------------------------------------------------------
// reload

const versioned = (version: number) => `export const version = () => ${version}\n`

const reloading = async (url: string, dir: string) => {
  await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
    const client = yield* ModulesClient.make(url)
    let running = true
    let calls = 0
    let failures = 0
    let latest = 0
    const reasons = new Map<string, number>()
    const caller = Effect.gen(function*() {
      while (running) {
        const result = yield* Effect.either(client.com("versioned", "version"))
        calls++
        if (Either.isLeft(result)) {
          failures++
          const error = result.left
          const reason = `${error._tag} ${error.reason}: ${error.message}`
          reasons.set(reason, (reasons.get(reason) ?? 0) + 1)
        } else latest = Math.max(latest, result.right as number)
      }
    })
    const load = yield* Effect.fork(Effect.all([caller, caller, caller, caller], { concurrency: "unbounded" }))
    const samples: Array<number> = []
    for (let version = 1; version <= reloads; version++) {
      progress(name, `reload ${version}/${reloads} under load`)
      // Saves come a second apart, at a person's pace: the spare worker a reload takes is replaced by then.
      yield* Effect.sleep("1 second")
      const saved = now()
      Fs.writeFileSync(Path.join(dir, "versioned.mjs"), versioned(version))
      while (latest < version) {
        if (now() - saved > 10_000) throw new Error(`version ${version} did not serve within 10 s`)
        yield* Effect.sleep("1 millis")
      }
      samples.push(now() - saved)
    }
    running = false
    yield* load.await
    const l = latency(samples)
    table(`reload: save → new code serving, ${reloads} saves, 4 callers calling throughout`, ["saves", "p50", "p99", "max", "calls during", "failed calls"], [
      [String(samples.length), ms(l.p50), ms(l.p99), ms(l.max), calls.toLocaleString("en-US"), String(failures)]
    ])
    notes([
      `bar: save → new code serving under 1 s: max ${ms(l.max)} → ${verdict(l.max < 1000)}`,
      `bar: 0 failed calls during ${reloads} reloads: ${failures} of ${calls.toLocaleString("en-US")} → ${verdict(failures === 0)}`,
      "the time includes the file event, a 25 ms debounce, loading in a spare worker, and the first call answered by it",
      ...Array.from(reasons, ([reason, count]) => `failed: ${count} × ${reason}`)
    ])
  })))
}

// ---------------------------------------------------------------------------------------------
// crash

const crashing = async (url: string) => {
  await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
    const client = yield* ModulesClient.make(url)
    const samples: Array<number> = []
    for (let i = 1; i <= crashes; i++) {
      progress(name, `kill -9 ${i}/${crashes}`)
      // Apart enough that the restart intensity (3 in 5 s) is never reached.
      yield* Effect.sleep("2 seconds")
      const pid = (yield* client.status("echo"))[0]!.pid!
      const killed = now()
      process.kill(pid, "SIGKILL")
      for (;;) {
        const result = yield* Effect.either(client.com("echo", "echo", "x"))
        if (Either.isRight(result)) {
          const info = (yield* client.status("echo"))[0]!
          if (info.pid !== pid) break
        }
        if (now() - killed > 10_000) throw new Error("the module did not serve again within 10 s")
        yield* Effect.sleep("1 millis")
      }
      samples.push(now() - killed)
    }
    const l = latency(samples)
    table(`crash: kill -9 of the worker → serving again, ${crashes} kills`, ["kills", "p50", "max"], [[String(samples.length), ms(l.p50), ms(l.max)]])
    notes([`bar: serving again under 1 s after kill -9: max ${ms(l.max)} → ${verdict(l.max < 1000)}`])
  })))
}

// ---------------------------------------------------------------------------------------------
// the server process

const startServer = async (configFile: string, listen: ReadonlyArray<string>, compatPort: number): Promise<ChildProcess> => {
  const child = spawn(process.execPath, [
    cli,
    "--role=module",
    "--config", configFile,
    ...listen.flatMap((url) => ["--listen", url]),
    "--compat", `127.0.0.1:${compatPort}`
  ], { stdio: ["ignore", "ignore", "pipe"] })
  let stderr = ""
  child.stderr!.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk))
  const deadline = Date.now() + 30_000
  for (const port of [compatPort, ...listen.map((url) => Number(url.split(":").pop()))]) {
    while (!(await canConnect(port))) {
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`the module server did not start: ${stderr}`)
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
  }
  return child
}

const canConnect = (port: number) =>
  new Promise<boolean>((resolve) => {
    const socket = Net.connect(port, "127.0.0.1")
    socket.once("connect", () => {
      socket.destroy()
      resolve(true)
    })
    socket.once("error", () => resolve(false))
  })

const stop = (child: ChildProcess) =>
  new Promise<void>((resolve) => {
    if (child.exitCode !== null) return resolve()
    child.once("exit", () => resolve())
    child.kill("SIGTERM")
    setTimeout(() => child.kill("SIGKILL"), 10_000).unref()
  })
