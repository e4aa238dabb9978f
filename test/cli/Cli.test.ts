import { assert, describe, it } from "@effect/vitest"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { freePort, runCli, tempDir } from "../integration/harness.js"

// These run the real built binary (`npm test` builds dist/ first) without any server.
describe("troupe CLI without a server", () => {
  it("--help, -h, help CMD and CMD --help print usage on stdout and exit 0", async () => {
    const argss = [["--help"], ["-h"], ["help"]]
    const results = await Promise.all(argss.map((args) => runCli(args)))
    for (const [i, args] of argss.entries()) {
      const result = results[i]!
      assert.strictEqual(result.code, 0, args.join(" "))
      assert.include(result.stdout, "Usage: troupe <command>")
      assert.strictEqual(result.stderr, "")
    }
    const submit = await runCli(["help", "submit"])
    assert.strictEqual(submit.code, 0)
    assert.include(submit.stdout, "Usage: troupe submit")
    const status = await runCli(["status", "--help"])
    assert.strictEqual(status.code, 0)
    assert.include(status.stdout, "most recent 100 jobs")
    const role = await runCli(["--role=local", "--help"])
    assert.strictEqual(role.code, 0)
    assert.include(role.stdout, "--listen URL")
  })

  it("bad or unknown flags, commands and values print usage on stderr and exit 2", async () => {
    const cases: ReadonlyArray<[ReadonlyArray<string>, string]> = [
      [["status", "--bogus"], "Usage: troupe status"],
      [["submit", "--time", "90", "--", "true"], "invalid duration"],
      [["submit", "--cores", "zero", "--", "true"], "--cores"],
      [["submit"], "missing the command"],
      [["frobnicate"], "unknown command \"frobnicate\""],
      [[], "missing a command"],
      [["wait"], "missing job ids"],
      [["status", "--state", "sleeping"], "unknown state"],
      [["--role=banana"], "role \"banana\""]
    ]
    const results = await Promise.all(cases.map(([args]) => runCli(args)))
    for (const [i, [args, expected]] of cases.entries()) {
      const result = results[i]!
      assert.strictEqual(result.code, 2, `${args.join(" ")}: ${result.stderr}`)
      assert.include(result.stderr, expected, args.join(" "))
      assert.strictEqual(result.stdout, "", args.join(" "))
      assert.notInclude(result.stderr, "    at ", "no stack trace")
    }
  })

  it("an unreachable server is exactly one stderr line and exit 2", async () => {
    const port = await freePort()
    const url = `tcp://127.0.0.1:${port}`
    for (const args of [["status", "--server", url], ["submit", "--server", url, "--", "true"], ["queue"]]) {
      const result = await runCli(args, { env: { TROUPE_SERVER: url } })
      assert.strictEqual(result.code, 2, args.join(" "))
      assert.strictEqual(result.stdout, "")
      assert.strictEqual(result.stderr, `troupe: cannot reach server ${url} (connection refused)\n`)
    }
    const socket = Path.join(tempDir(), "none.sock")
    const unix = await runCli(["status", "--server", `unix://${socket}`])
    assert.strictEqual(unix.code, 2)
    assert.strictEqual(unix.stderr, `troupe: cannot reach server unix://${socket} (no such socket)\n`)
  })

  it("an unsupported server scheme is a usage error naming the supported schemes", async () => {
    const result = await runCli(["status", "--server", "http://127.0.0.1:80"])
    assert.strictEqual(result.code, 2)
    assert.strictEqual(result.stderr.split("\n").filter((line) => line.length > 0).length, 1)
    assert.include(result.stderr, "tcp://, unix://")
  })

  it("run streams the command's output and exits with its exit code, with no server", async () => {
    const dir = tempDir()
    const db = Path.join(dir, "run.db")
    const result = await runCli(["run", "--db", db, "--", "sh", "-c", "echo hi; echo oops >&2; exit 3"], { cwd: dir })
    assert.strictEqual(result.code, 3, result.stderr)
    assert.strictEqual(result.stdout, "hi\n")
    assert.strictEqual(result.stderr, "oops\n")
    assert.isTrue(Fs.existsSync(db))
    const ok = await runCli(["run", "--db", db, "--", "echo hello; pwd"], { cwd: dir })
    assert.strictEqual(ok.code, 0, ok.stderr)
    assert.strictEqual(ok.stdout, `hello\n${Fs.realpathSync(dir)}\n`)
  })

  it("run uses .troupe/troupe.db under the working directory by default", async () => {
    const dir = tempDir()
    const result = await runCli(["run", "--", "true"], { cwd: dir })
    assert.strictEqual(result.code, 0, result.stderr)
    assert.isTrue(Fs.existsSync(Path.join(dir, ".troupe", "troupe.db")))
  })
})
