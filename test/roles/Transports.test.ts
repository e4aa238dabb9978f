import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import * as Fs from "node:fs"
import * as Path from "node:path"
import type { LocalServer } from "../integration/harness.js"
import { freePort, runCli, startLocal, tempDir } from "../integration/harness.js"

const idPattern = /^[0-9a-z][0-9a-z_-]{0,63}$/

describe("--role=local listening on every transport at once", () => {
  let server: LocalServer
  const urls: Record<string, string> = {}

  beforeAll(async () => {
    const dir = tempDir()
    urls["unix"] = `unix://${Path.join(dir, "troupe.sock")}`
    urls["framed"] = `framed://127.0.0.1:${await freePort()}`
    urls["folder"] = `folder://${Path.join(dir, "mail")}`
    server = await startLocal({ dir, extraArgs: ["--listen", urls["unix"], "--listen", urls["framed"], "--listen", urls["folder"]] })
    urls["tcp"] = server.url
  })
  afterAll(async () => {
    await server?.stop("SIGKILL")
  })

  for (const scheme of ["tcp", "unix", "framed", "folder"]) {
    it(`submit --wait, status and logs work over ${scheme}://`, async () => {
      const url = urls[scheme]!
      const submitted = await runCli(["submit", "--server", url, "--wait", "--", "sh", "-c", `echo via-${scheme}; exit 3`])
      assert.strictEqual(submitted.code, 3, submitted.stderr)
      const id = submitted.stdout.trim()
      assert.match(id, idPattern)
      const status = await runCli(["status", "--server", url, "--json", id])
      assert.strictEqual(status.code, 0, status.stderr)
      const [record] = JSON.parse(status.stdout) as ReadonlyArray<{ readonly state: string; readonly exitCode: number }>
      assert.strictEqual(record!.state, "failed")
      assert.strictEqual(record!.exitCode, 3)
      const logs = await runCli(["logs", "--server", url, id])
      assert.strictEqual(logs.stdout, `via-${scheme}\n`)
    })
  }

  it("the log line names every endpoint", () => {
    const line = server.stderr().split("\n").find((l) => l.includes("listening on"))!
    for (const url of Object.values(urls)) assert.include(line, url)
  })
})

describe("the shared-secret handshake from the CLI", () => {
  let server: LocalServer
  let secretFile: string
  let wrongFile: string

  beforeAll(async () => {
    const dir = tempDir()
    secretFile = Path.join(dir, "secret")
    wrongFile = Path.join(dir, "wrong")
    Fs.writeFileSync(secretFile, "correct horse battery staple\n", { mode: 0o600 })
    Fs.writeFileSync(wrongFile, "incorrect donkey battery stapler\n", { mode: 0o600 })
    const framed = `framed://127.0.0.1:${await freePort()}`
    server = await startLocal({ dir, extraArgs: ["--secret-file", secretFile, "--listen", framed] })
    ;(server as { framed?: string }).framed = framed
  })
  afterAll(async () => {
    await server?.stop("SIGKILL")
  })

  const endpoints = () => [server.url, (server as { framed?: string }).framed!]

  it("a client with the secret is served, by flag or by TROUPE_SECRET_FILE", async () => {
    for (const url of endpoints()) {
      const byFlag = await runCli(["queue", "--server", url, "--secret-file", secretFile])
      assert.strictEqual(byFlag.code, 0, byFlag.stderr)
      const byEnv = await runCli(["queue", "--server", url], { env: { TROUPE_SECRET_FILE: secretFile } })
      assert.strictEqual(byEnv.code, 0, byEnv.stderr)
    }
  })

  it("a client with the wrong secret gets one clear line and exit code 2", async () => {
    for (const url of endpoints()) {
      const result = await runCli(["queue", "--server", url, "--secret-file", wrongFile])
      assert.strictEqual(result.code, 2)
      assert.match(result.stderr, /authentication failed/i)
      assert.strictEqual(result.stderr.trim().split("\n").length, 1, result.stderr)
    }
  })

  it("a client without a secret is told the server needs one", async () => {
    for (const url of endpoints()) {
      const result = await runCli(["queue", "--server", url])
      assert.strictEqual(result.code, 2)
      assert.match(result.stderr, /secret/i)
    }
  })

  it("a missing secret file is a clear error", async () => {
    const result = await runCli(["queue", "--server", server.url, "--secret-file", "/nonexistent/secret"])
    assert.strictEqual(result.code, 2)
    assert.include(result.stderr, "secret file /nonexistent/secret does not exist")
  })
})

describe("listening beyond loopback", () => {
  it("is refused without a secret, with a message that says what to do", async () => {
    const port = await freePort()
    const result = await runCli(["--role=local", "--db", Path.join(tempDir(), "x.db"), "--listen", `tcp://0.0.0.0:${port}`])
    assert.notStrictEqual(result.code, 0)
    assert.include(result.stderr, "without a shared secret")
    assert.include(result.stderr, "--secret-file")
  })
})
