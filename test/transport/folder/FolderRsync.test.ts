// The folder transport's rsync setup, for real: two roots (side A, the client's machine, and side B,
// the server's), one rsync daemon with a module for each, and push loops that move each side's
// outgoing folder into the other side's module with --remove-source-files.
import * as RpcClient from "@effect/rpc/RpcClient"
import * as RpcServer from "@effect/rpc/RpcServer"
import { assert, describe, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import { spawn, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import * as Endpoint from "../../../src/transport/Endpoint.js"
import * as FolderMailbox from "../../../src/transport/folder/FolderMailbox.js"
import * as FolderRpc from "../../../src/transport/folder/FolderRpc.js"
import { canConnect, freePort, tempDir } from "../../integration/harness.js"
import { handlers, TestRpc } from "./fixtures.js"

const hasRsync = spawnSync("rsync", ["--version"]).status === 0
if (!hasRsync) console.warn("skipping the folder transport's rsync tests: no rsync on PATH")

// Latency here is set by the push loop, not by fs.watch: allow for a few loop periods.
const options = { rescanMs: 50, heartbeatMs: 250, peerTimeoutMs: 5000, connectTimeout: "15 seconds" } as const

/** An rsync daemon on 127.0.0.1 with modules `a` and `b`, stopped with the scope. */
const rsyncDaemon = (base: string, modules: Record<string, string>) =>
  Effect.gen(function*() {
    const port = yield* Effect.promise(freePort)
    const conf = path.join(base, "rsyncd.conf")
    const uid = process.getuid?.() ?? 0
    const gid = process.getgid?.() ?? 0
    fs.writeFileSync(conf, [
      `pid file = ${path.join(base, "rsyncd.pid")}`,
      "use chroot = no",
      // As root the daemon would otherwise run as nobody and could not write our temp folders.
      `uid = ${uid}`,
      `gid = ${gid}`,
      ...Object.entries(modules).flatMap(([name, dir]) => [`[${name}]`, `  path = ${dir}`, "  read only = no"])
    ].join("\n") + "\n")
    const daemon = yield* Effect.acquireRelease(
      Effect.sync(() =>
        spawn("rsync", ["--daemon", "--no-detach", "--config", conf, "--port", String(port), "--address", "127.0.0.1"], {
          stdio: ["ignore", "inherit", "inherit"]
        })
      ),
      (child) => Effect.sync(() => child.kill("SIGKILL"))
    )
    const listening = yield* Effect.promise(async () => {
      for (let i = 0; i < 400 && daemon.exitCode === null; i++) {
        if (await canConnect({ port })) return true
        await new Promise((resolve) => setTimeout(resolve, 25))
      }
      return false
    })
    if (!listening) return yield* Effect.dieMessage(`the rsync daemon did not listen on port ${port}`)
    return `rsync://127.0.0.1:${port}`
  })

/** Runs `rsync -a --remove-source-files` once; a missing source folder is not an error yet. */
const push = (from: string, to: string) =>
  Effect.async<number>((resume) => {
    const child = spawn("rsync", ["-a", "--remove-source-files", "--exclude=.*", `${from}/`, `${to}/`], {
      stdio: ["ignore", "ignore", "ignore"]
    })
    child.once("exit", (code) => resume(Effect.succeed(code ?? -1)))
    return Effect.sync(() => child.kill("SIGKILL"))
  })

/** The push loop of both sides, in the background, a bounded number of rounds; returns the round times. */
const syncLoops = (pairs: ReadonlyArray<readonly [string, string]>) =>
  Effect.gen(function*() {
    const rounds: Array<number> = []
    yield* Effect.forkScoped(Effect.gen(function*() {
      for (let i = 0; i < 3000; i++) {
        const t0 = performance.now()
        yield* Effect.forEach(pairs, ([from, to]) => push(from, to), { concurrency: "unbounded", discard: true })
        rounds.push(performance.now() - t0)
      }
    }))
    return rounds
  })

const median = (values: ReadonlyArray<number>) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? NaN

describe.skipIf(!hasRsync)("FolderRpc over an rsync daemon", () => {
  it.scopedLive("a client on side A talks to a server on side B through push loops", () =>
    Effect.gen(function*() {
      const base = tempDir("troupe-folder-rsync-")
      const sideA = path.join(base, "a")
      const sideB = path.join(base, "b")
      for (const dir of [sideA, sideB]) fs.mkdirSync(dir)
      const daemon = yield* rsyncDaemon(base, { a: sideA, b: sideB })
      // A writes only to-server/, B writes only to-client/; each loop ships one of them across.
      const rounds = yield* syncLoops([
        [path.join(sideA, "to-server"), `${daemon}/b/to-server`],
        [path.join(sideB, "to-client"), `${daemon}/a/to-client`]
      ])
      yield* Layer.build(
        RpcServer.layer(TestRpc, { disableTracing: true }).pipe(
          Layer.provide(FolderRpc.layerServerProtocol(new Endpoint.FolderEndpoint({ path: sideB }), options)),
          Layer.provide(TestRpc.toLayer(handlers))
        )
      )
      const protocol = yield* Layer.build(FolderRpc.layerClientProtocol(new Endpoint.FolderEndpoint({ path: sideA }), options))
      const client = yield* RpcClient.make(TestRpc, { disableTracing: true }).pipe(Effect.provide(protocol))

      assert.strictEqual(yield* client.Echo({ text: "over rsync" }), "OVER RSYNC")
      const latencies: Array<number> = []
      for (let i = 0; i < 10; i++) {
        const t0 = performance.now()
        assert.strictEqual(yield* client.Echo({ text: `n${i}` }), `N${i}`)
        latencies.push(performance.now() - t0)
      }
      assert.deepStrictEqual(Chunk.toArray(yield* Stream.runCollect(client.Count({ n: 50 }))), Array.from({ length: 50 }, (_, i) => i + 1))
      assert.strictEqual((yield* client.Bytes({ size: 4 << 20 })).length, 4 << 20)
      const many = yield* Effect.forEach(Array.from({ length: 100 }, (_, i) => `m${i}`), (text) => client.Echo({ text }), { concurrency: 100 })
      assert.strictEqual(many[99], "M99")
      console.log(
        `folder RPC over rsync loops: round trip p50 ${median(latencies).toFixed(0)} ms, ` +
          `push loop round p50 ${median(rounds).toFixed(0)} ms (${rounds.length} rounds)`
      )
      // Nothing was quarantined on either side, and nothing is left to ship.
      assert.isFalse(fs.existsSync(path.join(sideB, "to-server", "quarantine")))
    }))

  it.scopedLive("a mailbox message shipped by rsync is delivered only with all of its files", () =>
    Effect.gen(function*() {
      const base = tempDir("troupe-folder-rsync-mail-")
      const sideA = path.join(base, "a")
      const sideB = path.join(base, "b")
      for (const dir of [sideA, sideB]) fs.mkdirSync(dir)
      const daemon = yield* rsyncDaemon(base, { a: sideA, b: sideB })
      yield* syncLoops([[path.join(sideA, "outbox"), `${daemon}/b/inbox`]])
      const Message = Schema.Struct({ name: Schema.String })
      const sender = yield* FolderMailbox.make(Message, { inbox: path.join(sideA, "inbox"), outbox: path.join(sideA, "outbox") })
      const receiver = yield* FolderMailbox.make(Message, { inbox: path.join(sideB, "inbox"), outbox: path.join(sideB, "outbox"), rescanMs: 20 })
      const big = path.join(base, "big.bin")
      fs.writeFileSync(big, Buffer.alloc(8 << 20, 3))
      fs.writeFileSync(path.join(base, "small.txt"), "small")
      // rsync sends <id>.msg before the <id>.files/ folder, so the receiver must wait for the files.
      yield* sender.send({ name: "with-files" }, "m1", { [big]: "deep/dir/big.bin", [path.join(base, "small.txt")]: "small.txt" })
      const [delivery] = Chunk.toArray(yield* receiver.messages.pipe(Stream.take(1), Stream.runCollect))
      assert.strictEqual(delivery!.message.name, "with-files")
      assert.strictEqual(fs.statSync(delivery!.files.get("deep/dir/big.bin")!).size, 8 << 20)
      assert.strictEqual(fs.readFileSync(delivery!.files.get("small.txt")!, "utf8"), "small")
    }))
})
