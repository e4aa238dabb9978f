import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import { createHash } from "node:crypto"
import * as Fs from "node:fs"
import * as Path from "node:path"
import type { PromiseExecConnection } from "../../src/client/index.js"
import { ClientError, connectExec, ExecClientPool, ExecError } from "../../src/client/index.js"
import { cli, eventually, freePort, tempDir } from "../integration/harness.js"
import type { ExecServer } from "./support.js"
import { processAlive, randomFile, rssOf, startExec, startProxy } from "./support.js"

const sha256 = (file: string) => createHash("sha256").update(Fs.readFileSync(file)).digest("hex")

const rejection = async (promise: Promise<unknown>): Promise<unknown> => {
  try {
    await promise
  } catch (error) {
    return error
  }
  assert.fail("expected a rejection")
}

describe("exec role and client, against a spawned --role=exec", () => {
  let server: ExecServer
  let pool: ExecClientPool
  let conn: PromiseExecConnection

  beforeAll(async () => {
    server = await startExec(["--allow-close"])
    pool = new ExecClientPool()
    conn = await pool.add(server.url).connect({ timeout: 10_000 })
  })
  afterAll(async () => {
    await pool?.closeAll()
    await server?.stop("SIGKILL")
  })

  it("runs a command: labelled stdout and stderr, then the exit code", async () => {
    const result = await conn.exec("echo one; echo two >&2; echo three; exit 3")
    assert.strictEqual(result.exitCode, 3)
    assert.strictEqual(result.stdout, "one\nthree\n")
    assert.strictEqual(result.stderr, "two\n")
    const echoed: Array<string> = []
    const live = await conn.exec("echo live", { echoResponse: (chunk) => echoed.push(chunk.text) })
    assert.deepStrictEqual(echoed, ["live\n"])
    assert.strictEqual(live.stdout, "live\n")
    const argv = await conn.exec(["printf", "%s|", "a b", "$HOME"])
    assert.strictEqual(argv.stdout, "a b|$HOME|")
    assert.strictEqual((await conn.exec("echo $TROUPE_T", { env: { TROUPE_T: "env ok" } })).stdout, "env ok\n")
  })

  it("keeps stdout and stderr chunks in the order they were written", async () => {
    // The command waits for a line before each write, so each write is read before the next one.
    const listener = await conn.exec("for i in 1 2 3; do read x; echo out$i; read x; echo err$i >&2; done", {
      complete: false
    })
    const seen: Array<string> = []
    for (let i = 0; i < 6; i++) {
      await listener.sendInput("\n")
      const chunk = (await listener.next())!
      seen.push(`${chunk.channel}:${chunk.text.trim()}`)
    }
    assert.deepStrictEqual(seen, ["stdout:out1", "stderr:err1", "stdout:out2", "stderr:err2", "stdout:out3", "stderr:err3"])
    assert.isNull(await listener.next())
    assert.strictEqual(listener.exitCode, 0)
  })

  it("keeps a cwd per connection, confined to the root", async () => {
    await conn.mkdir("a/b/c", { parents: true })
    const other = await pool.add(`tcp://localhost:${server.port}`).connect()
    try {
      assert.strictEqual(await conn.cd("a/b"), Path.join(server.root, "a/b"))
      assert.strictEqual(await other.cwd(), server.root)
      assert.strictEqual((await conn.exec("pwd")).stdout, Path.join(server.root, "a/b") + "\n")
      assert.strictEqual((await other.exec("pwd")).stdout, server.root + "\n")
      assert.strictEqual((await conn.exec("pwd", { cwd: "c" })).stdout, Path.join(server.root, "a/b/c") + "\n")
      assert.strictEqual(await conn.cd(".."), Path.join(server.root, "a"))
    } finally {
      await conn.cd(server.root)
      await other.close()
    }
  })

  it("file commands: mkdir, touch, writeFile (append), readFile, ls, stat, rm, osInfo", async () => {
    await conn.mkdir("files/deep/er", { parents: true })
    await conn.mkdir("files/deep/er", { parents: true })
    const exists = await rejection(conn.mkdir("files/deep"))
    assert.instanceOf(exists, ExecError)
    assert.strictEqual((exists as ExecError).reason, "exists")
    await conn.touch("files/empty")
    assert.strictEqual(await conn.writeFile("files/t.txt", "hello "), 6)
    assert.strictEqual(await conn.writeFile("files/t.txt", "world", { append: true }), 11)
    const chunks: Array<Uint8Array> = []
    for await (const chunk of conn.readFile("files/t.txt", { chunkSize: 4 })) chunks.push(chunk)
    assert.strictEqual(Buffer.concat(chunks).toString(), "hello world")
    assert.strictEqual(chunks.length, 3)
    const names = (await conn.ls("files")).map((entry) => `${entry.name}:${entry.type}`)
    assert.deepStrictEqual(names, ["deep:directory", "empty:file", "t.txt:file"])
    assert.strictEqual((await conn.stat("files/t.txt")).size, 11)
    const notEmpty = await rejection(conn.rm("files/deep"))
    assert.strictEqual((notEmpty as ExecError).reason, "exists")
    await conn.rm("files", { recursive: true })
    const gone = await rejection(conn.stat("files"))
    assert.strictEqual((gone as ExecError).reason, "no-such-file")
    const info = await conn.osInfo()
    assert.strictEqual(info.root, server.root)
    assert.isAbove(info.cpus, 0)
  })

  it("refuses a path escape in every file command with a typed error, and keeps serving", async () => {
    Fs.symlinkSync("/etc", Path.join(server.root, "out-link"))
    Fs.symlinkSync("/tmp/troupe-no-such-target-" + process.pid, Path.join(server.root, "dangling"))
    const attempts: ReadonlyArray<readonly [string, () => Promise<unknown>]> = [
      ["cd ..", () => conn.cd("..")],
      ["cd /etc", () => conn.cd("/etc")],
      ["cd symlink", () => conn.cd("out-link")],
      ["ls ../", () => conn.ls("../")],
      ["ls symlink", () => conn.ls("out-link")],
      ["stat", () => conn.stat("a/../../x")],
      ["mkdir", () => conn.mkdir("../evil", { parents: true })],
      ["rm", () => conn.rm("/etc/hostname")],
      ["touch", () => conn.touch("/tmp/evil-" + process.pid)],
      ["readFile", async () => {
        for await (const _ of conn.readFile("out-link/hostname")) void _
      }],
      ["writeFile", () => conn.writeFile("../evil", "x")],
      ["writeFile dangling", () => conn.writeFile("dangling", "x")],
      ["transfer", () => conn.transfer(randomFile(10), "../evil")],
      ["exec cwd", () => conn.exec("pwd", { cwd: "..", raiseError: true })]
    ]
    for (const [what, attempt] of attempts) {
      const error = await rejection(attempt())
      assert.instanceOf(error, ExecError, what)
      assert.strictEqual((error as ExecError).reason, "path-escape", what)
    }
    assert.isFalse(Fs.existsSync("/tmp/evil-" + process.pid))
    assert.isFalse(Fs.existsSync("/tmp/troupe-no-such-target-" + process.pid))
    assert.isTrue(await conn.heartbeat())
    assert.strictEqual((await conn.exec("echo still")).stdout, "still\n")
  })

  it("runs 50 commands at once on one connection and across ten", async () => {
    const one = await Promise.all(
      Array.from({ length: 50 }, (_, i) => conn.exec(`sleep 0.0${i % 10}; echo ${i}; echo e${i} >&2; exit ${i % 7}`))
    )
    one.forEach((result, i) => {
      assert.strictEqual(result.stdout, `${i}\n`)
      assert.strictEqual(result.stderr, `e${i}\n`)
      assert.strictEqual(result.exitCode, i % 7)
    })
    const others = await Promise.all(Array.from({ length: 10 }, () => new ExecClientPool().add(server.url).connect()))
    try {
      const across = await Promise.all(
        Array.from({ length: 50 }, (_, i) => others[i % 10]!.exec(["sh", "-c", `echo ${i}`]))
      )
      across.forEach((result, i) => assert.strictEqual(result.stdout, `${i}\n`))
    } finally {
      await Promise.all(others.map((other) => other.close()))
    }
  })

  it("50 listeners on one connection, read one after another, never block each other", async () => {
    // Each command writes 1 MiB, more than its window: unread output waits on the server, not in the connection.
    const listeners = await Promise.all(
      Array.from({ length: 50 }, () => conn.exec("head -c 1048576 /dev/zero", { complete: false, window: 256 * 1024 }))
    )
    for (const listener of listeners) {
      let bytes = 0
      for await (const chunk of listener) bytes += chunk.data.length
      assert.strictEqual(bytes, 1048576)
      assert.strictEqual(listener.exitCode, 0)
      assert.isTrue(listener.done)
    }
  })

  it("streams 100 MB of output with bounded memory on both sides", async () => {
    const serverBefore = rssOf(server.child.pid!)!
    const clientBefore = process.memoryUsage().rss
    let serverPeak = serverBefore
    let clientPeak = clientBefore
    const listener = await conn.exec("head -c 100000000 /dev/zero", { complete: false })
    let bytes = 0
    let chunks = 0
    for await (const chunk of listener) {
      bytes += chunk.data.length
      if (++chunks % 16 === 0) {
        serverPeak = Math.max(serverPeak, rssOf(server.child.pid!) ?? 0)
        clientPeak = Math.max(clientPeak, process.memoryUsage().rss)
      }
    }
    assert.strictEqual(bytes, 100_000_000)
    assert.strictEqual(listener.exitCode, 0)
    assert.isBelow(serverPeak - serverBefore, 64 * 1024 * 1024, "server memory growth")
    assert.isBelow(clientPeak - clientBefore, 64 * 1024 * 1024, "client memory growth")
  })

  it("talks to an interactive command through sendInput", async () => {
    const listener = await conn.exec("read a; echo got $a; read b; echo got $b >&2; cat", { complete: false })
    assert.isString(listener.id)
    assert.isTrue(await conn.isAlive(listener.id!))
    await listener.sendInput("one\n")
    assert.strictEqual((await listener.next())!.text, "got one\n")
    await conn.sendInput(listener.id!, "two\n")
    const second = (await listener.next())!
    assert.deepStrictEqual([second.channel, second.text], ["stderr", "got two\n"])
    await listener.sendInput("to cat", { eof: true })
    assert.strictEqual((await listener.next())!.text, "to cat")
    assert.isNull(await listener.next())
    assert.strictEqual(listener.exitCode, 0)
    assert.isFalse(await conn.isAlive(listener.id!))
  })

  it("kills a command's whole process group, and lists running commands", async () => {
    const listener = await conn.exec("sleep 30 & echo $!; sleep 30; wait", { complete: false })
    const child = Number((await listener.next())!.text.trim())
    const running = await conn.jobs()
    assert.isTrue(running.some((run) => run.id === listener.id && run.running && run.attached))
    assert.isTrue(await conn.kill(listener.id!, "SIGKILL"))
    assert.isNull(await listener.next())
    assert.strictEqual(listener.signal, "SIGKILL")
    assert.isNull(listener.exitCode)
    await eventually(() => (processAlive(child) ? undefined : true), 5000, "the background sleep to die")
    assert.isFalse((await conn.jobs()).some((run) => run.id === listener.id))
    const unknown = await rejection(conn.kill(listener.id!))
    assert.strictEqual((unknown as ExecError).reason, "not-found")
    const badSignal = await rejection(conn.exec("sleep 1", { complete: false }).then((l) => l.kill("SIGNOPE")))
    assert.strictEqual((badSignal as ExecError).reason, "invalid")
  })

  it("maxInterval and timeout: a silent or slow command fails the call with ClientError, and a listener can wait again", async () => {
    const started = Date.now()
    const error = await rejection(conn.exec("echo hi; sleep 30", { maxInterval: 300 }))
    assert.instanceOf(error, ClientError)
    assert.strictEqual((error as ClientError).reason, "max-interval")
    assert.isBelow(Date.now() - started, 5000)
    // The call ended, so the command was killed.
    await eventually(async () => ((await conn.jobs()).some((run) => run.command === "echo hi; sleep 30") ? undefined : true), 5000)

    const timedOut = await rejection(conn.exec("sleep 30", { timeout: 300 }))
    assert.strictEqual((timedOut as ClientError).reason, "timeout")

    const listener = await conn.exec("read line; echo $line", { complete: false, maxInterval: 100 })
    const silent = await rejection(listener.next())
    assert.strictEqual((silent as ClientError).reason, "max-interval")
    listener.maxInterval = 10_000
    await listener.sendInput("answer\n")
    assert.strictEqual((await listener.next())!.text, "answer\n")
    assert.isNull(await listener.next())
  })

  it("raiseError: a command that cannot start fails the call, or is reported as output and exit code 127", async () => {
    const raised = await rejection(conn.exec(["troupe-no-such-program"], { raiseError: true }))
    assert.instanceOf(raised, ExecError)
    assert.strictEqual((raised as ExecError).reason, "spawn-failed")
    const reported = await conn.exec(["troupe-no-such-program"])
    assert.strictEqual(reported.exitCode, 127)
    assert.strictEqual(reported.error?.reason, "spawn-failed")
    assert.include(reported.stderr, "troupe-no-such-program")
    const listener = await conn.exec("true", { cwd: "no-such-dir", complete: false })
    assert.include((await listener.next())!.text, "no-such-dir")
    assert.isNull(await listener.next())
    assert.strictEqual(listener.exitCode, 127)
    const raisedCwd = await rejection(conn.exec("true", { cwd: "no-such-dir", raiseError: true }))
    assert.strictEqual((raisedCwd as ExecError).reason, "no-such-file")
  })

  it("kills a command whose client vanishes mid-stream", async () => {
    const pidFile = Path.join(server.root, "vanish.pid")
    const client = (await import("node:child_process")).spawn(
      process.execPath,
      [cli, "exec", "--server", server.url, "--stream", "--", `echo $$ > ${pidFile}; exec sleep 60`],
      { stdio: "ignore" }
    )
    const pid = await eventually(() => {
      const content = Fs.existsSync(pidFile) ? Fs.readFileSync(pidFile, "utf8").trim() : ""
      return content === "" ? undefined : Number(content)
    }, 10_000, "the remote command to start")
    assert.isTrue(processAlive(pid))
    client.kill("SIGKILL")
    await eventually(() => (processAlive(pid) ? undefined : true), 10_000, "the remote command to be killed")
  })

  it("keeps a command running after a disconnect when asked, and attaches to it on the same connection object", async () => {
    const kept = pool.add(server.url)
    await kept.connect()
    const listener = await kept.exec("read go; for i in $(seq 1 100); do echo $i; done", {
      complete: false,
      keepRunning: true
    })
    const id = listener.id!
    await kept.disconnect()
    assert.isFalse(kept.connected)
    const notConnected = await rejection(kept.exec("true"))
    assert.strictEqual((notConnected as ClientError).reason, "not-connected")
    await kept.connect()
    assert.isTrue(await kept.isAlive(id))
    const listed = (await kept.jobs()).find((run) => run.id === id)!
    assert.isTrue(listed.keepRunning)
    assert.isFalse(listed.attached)
    await kept.sendInput(id, "\n")
    const result = await kept.attach(id)
    assert.strictEqual(result.exitCode, 0)
    assert.strictEqual(result.stdout, Array.from({ length: 100 }, (_, i) => `${i + 1}\n`).join(""))
    const gone = await rejection(kept.attach(id, { raiseError: true }))
    assert.strictEqual((gone as ExecError).reason, "not-found")
  })

  it("resumes a transfer after the connection is cut, and checks the checksum", async () => {
    const source = randomFile(24 * 1024 * 1024)
    let proxy: Awaited<ReturnType<typeof startProxy>> | undefined = undefined
    let cutDone = false
    proxy = await startProxy(server.port, (total) => {
      if (!cutDone && total > 8 * 1024 * 1024) {
        cutDone = true
        proxy!.cut()
      }
    })
    const through = new ExecClientPool().add("127.0.0.1", { port: proxy.port })
    try {
      await through.connect()
      const sent = await through.transfer(source, "received.bin", { chunkSize: 256 * 1024 })
      assert.isTrue(cutDone)
      assert.strictEqual(sent.resumedFrom.length, 1)
      assert.isAbove(sent.resumedFrom[0]!, 0)
      assert.strictEqual(sent.sha256, sha256(source))
      assert.strictEqual(sha256(Path.join(server.root, "received.bin")), sent.sha256)
      assert.isFalse(Fs.existsSync(Path.join(server.root, "received.bin.troupe-partial")))
      const back = Path.join(tempDir(), "back.bin")
      assert.strictEqual(await through.download("received.bin", back), 24 * 1024 * 1024)
      assert.strictEqual(sha256(back), sent.sha256)
    } finally {
      await through.close()
      await proxy.close()
    }
  })

  it("pool: one connection per server, connect timeout, await using, heartbeat and closeServer", async () => {
    const mine = new ExecClientPool()
    assert.strictEqual(mine.add("127.0.0.1", { port: server.port }), mine.add(`tcp://127.0.0.1:${server.port}`))
    const nobody = mine.add("127.0.0.1", { port: await freePort() })
    const started = Date.now()
    const refused = await rejection(nobody.connect({ timeout: 400 }))
    assert.instanceOf(refused, ClientError)
    assert.strictEqual((refused as ClientError).reason, "unreachable")
    assert.isAtLeast(Date.now() - started, 350)
    assert.isFalse(await nobody.heartbeat())

    let inside: PromiseExecConnection | undefined
    {
      await using scoped = await mine.add(server.url).connect()
      inside = scoped
      assert.isTrue(await scoped.heartbeat())
    }
    assert.isFalse(inside.connected)

    await mine.closeAll()
  })
})

describe("the exec role on every transport", () => {
  it("runs commands, file commands and a transfer over framed://, unix:// and folder:// at once", async () => {
    const dir = tempDir("troupe-exec-transports-")
    const framed = `framed://127.0.0.1:${await freePort()}`
    const unix = `unix://${Path.join(dir, "exec.sock")}`
    const folder = `folder://${Path.join(dir, "mail")}`
    const server = await startExec(["--listen", framed, "--listen", unix, "--listen", folder])
    const pool = new ExecClientPool()
    try {
      const source = randomFile(3 * 1024 * 1024 + 5)
      await Promise.all([framed, unix, folder].map(async (url, i) => {
        const connection = await pool.add(url).connect({ timeout: 20_000 })
        const result = await connection.exec(`echo ${i}; echo e >&2`)
        assert.strictEqual(result.stdout, `${i}\n`, url)
        assert.strictEqual(result.stderr, "e\n", url)
        await connection.mkdir(`t${i}`)
        assert.strictEqual(await connection.cd(`t${i}`), Path.join(server.root, `t${i}`))
        const sent = await connection.transfer(source, "copy.bin")
        assert.strictEqual(sha256(Path.join(server.root, `t${i}`, "copy.bin")), sent.sha256, url)
        const escape = await rejection(connection.ls("../.."))
        assert.strictEqual((escape as ExecError).reason, "path-escape", url)
      }))
    } finally {
      await pool.closeAll()
      await server.stop("SIGKILL")
    }
  })
})

describe("closing an exec server", () => {
  it("closeServer is refused without --allow-close and stops a server that allows it", async () => {
    const strict = await startExec()
    const open = await startExec(["--allow-close"])
    const pool = new ExecClientPool()
    try {
      const a = await pool.add(strict.url).connect()
      const refused = await rejection(a.closeServer())
      assert.strictEqual((refused as ExecError).reason, "forbidden")
      assert.isTrue(await a.heartbeat())
      const b = await pool.add(open.url).connect()
      const sleeper = await b.exec("sleep 60", { complete: false })
      await b.closeServer()
      assert.strictEqual(await open.exited, 0)
      assert.isFalse(processAlive(sleeper.pid))
      assert.isFalse(await b.heartbeat({ timeout: 500 }))
    } finally {
      await pool.closeAll()
      await strict.stop("SIGKILL")
      await open.stop("SIGKILL")
    }
  })

  it.scopedLive("Effect API: a scoped connection, a listener's Stream", () =>
    Effect.gen(function*() {
      const server = yield* Effect.acquireRelease(
        Effect.promise(() => startExec()),
        (server) => Effect.promise(() => server.stop("SIGKILL"))
      )
      const connection = yield* connectExec(server.url)
      const listener = yield* connection.exec("printf 'a\\nb\\n'; printf c >&2", { complete: false })
      const chunks = yield* Stream.runCollect(listener.stream)
      assert.strictEqual(Array.from(chunks).map((chunk) => chunk.text).join(""), "a\nb\nc")
      assert.strictEqual(listener.exitCode, 0)
      const result = yield* connection.exec(["sh", "-c", "exit 5"])
      assert.strictEqual(result.exitCode, 5)
    }))
})
