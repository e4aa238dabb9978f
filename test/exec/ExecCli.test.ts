import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { runCli, tempDir } from "../integration/harness.js"
import type { ExecServer } from "./support.js"
import { randomFile, startExec } from "./support.js"

describe("troupe exec, put and get against a spawned --role=exec", () => {
  let server: ExecServer

  beforeAll(async () => {
    server = await startExec()
  })
  afterAll(async () => {
    await server?.stop("SIGKILL")
  })

  it("exec prints the remote output and exits with the remote exit code", async () => {
    const [result, streamed, killed] = await Promise.all([
      runCli(["exec", "--server", server.url, "--", "echo out; echo err >&2; exit 7"]),
      runCli(["exec", "--server", server.url, "--stream", "--env", "WHO=troupe", "--", "sh", "-c", "echo hi $WHO"]),
      runCli(["exec", "--server", server.url, "--", "kill -9 $$"])
    ])
    assert.strictEqual(result.code, 7)
    assert.strictEqual(result.stdout, "out\n")
    assert.strictEqual(result.stderr, "err\n")
    assert.strictEqual(streamed.code, 0)
    assert.strictEqual(streamed.stdout, "hi troupe\n")
    assert.strictEqual(killed.code, 137)
  })

  it("exec reports a command that cannot start or a cwd outside the root (127), an unreachable server (2) and usage (2)", async () => {
    const [missing, escape, nobody, usage] = await Promise.all([
      runCli(["exec", "--server", server.url, "--", "troupe-no-such-program", "x"]),
      runCli(["exec", "--server", server.url, "--cwd", "/etc", "--", "pwd"]),
      runCli(["exec", "--server", "tcp://127.0.0.1:1", "--", "true"]),
      runCli(["exec", "--server", server.url])
    ])
    assert.strictEqual(missing.code, 127)
    assert.include(missing.stderr, "troupe-no-such-program")
    assert.strictEqual(escape.code, 127)
    assert.include(escape.stderr, "leaves the root")
    assert.strictEqual(nobody.code, 2)
    assert.match(nobody.stderr, /^troupe: cannot reach exec server tcp:\/\/127\.0\.0\.1:1/)
    assert.strictEqual(usage.code, 2)
    assert.include(usage.stderr, "Usage: troupe exec")
  })

  it("put and get move files, and refuse paths outside the root", async () => {
    const source = randomFile(3 * 1024 * 1024 + 17)
    const put = await runCli(["put", "--server", server.url, source, "copy.bin"])
    assert.strictEqual(put.code, 0, put.stderr)
    assert.isTrue(Fs.readFileSync(Path.join(server.root, "copy.bin")).equals(Fs.readFileSync(source)))
    const target = Path.join(tempDir(), "back.bin")
    const get = await runCli(["get", "--server", server.url, "copy.bin", target])
    assert.strictEqual(get.code, 0, get.stderr)
    assert.isTrue(Fs.readFileSync(target).equals(Fs.readFileSync(source)))
    const [escape, missing] = await Promise.all([
      runCli(["put", "--server", server.url, source, "../copy.bin"]),
      runCli(["get", "--server", server.url, "nothing-here", target])
    ])
    assert.strictEqual(escape.code, 1)
    assert.include(escape.stderr, "leaves the root")
    assert.strictEqual(missing.code, 1)
    assert.include(missing.stderr, "no such file")
  })
})
