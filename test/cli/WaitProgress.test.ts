import { assert, describe, it } from "@effect/vitest"
import { spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { cli, runCli, startLocal } from "../integration/harness.js"

// Runs a command under `script`, which gives it a pseudo-terminal; `onOutput` sees what it has printed so far.
const onTerminal = (command: string, onOutput: (output: string) => void) =>
  new Promise<{ code: number | null; output: string }>((resolve, reject) => {
    const child = spawn("script", ["-qec", command, "/dev/null"], { stdio: ["ignore", "pipe", "pipe"] })
    let output = ""
    const seen = (chunk: string) => {
      output += chunk
      onOutput(output)
    }
    child.stdout.setEncoding("utf8").on("data", seen)
    child.stderr.setEncoding("utf8").on("data", seen)
    const timer = setTimeout(() => {
      child.kill("SIGKILL")
      reject(new Error(`did not finish: ${output}`))
    }, 30_000)
    child.once("close", (code) => {
      clearTimeout(timer)
      resolve({ code, output })
    })
  })

describe("wait on a terminal", () => {
  it("shows n/m progress while waiting on several jobs, and the final count", async () => {
    const server = await startLocal()
    const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "troupe-wait-progress-"))
    const release = Path.join(dir, "release")
    try {
      const quick = await runCli(["submit", "--server", server.url, "--", "true"])
      // The second job runs until the test has seen "1/2 done", however slow the machine is.
      const held = await runCli([
        "submit", "--server", server.url, "--", "sh", "-c", `while [ ! -e '${release}' ]; do sleep 0.02; done`
      ])
      const ids = [quick.stdout.trim(), held.stdout.trim()]
      const result = await onTerminal(`${process.execPath} ${cli} wait --server ${server.url} ${ids.join(" ")}`, (output) => {
        if (/1\/2 done/.test(output) && !Fs.existsSync(release)) Fs.writeFileSync(release, "")
      })
      assert.strictEqual(result.code, 0)
      assert.match(result.output, /1\/2 done/)
      assert.match(result.output, /2\/2 done/)
    } finally {
      Fs.writeFileSync(release, "")
      await server.stop("SIGTERM")
      Fs.rmSync(dir, { recursive: true, force: true })
    }
  })
})
