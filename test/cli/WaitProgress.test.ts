import { assert, describe, it } from "@effect/vitest"
import { spawn } from "node:child_process"
import { cli, runCli, startLocal } from "../integration/harness.js"

// Runs a command under `script`, which gives it a pseudo-terminal, and collects what it printed.
const onTerminal = (command: string) =>
  new Promise<{ code: number | null; output: string }>((resolve, reject) => {
    const child = spawn("script", ["-qec", command, "/dev/null"], { stdio: ["ignore", "pipe", "pipe"] })
    let output = ""
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (output += chunk))
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (output += chunk))
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
    try {
      const ids: Array<string> = []
      for (const seconds of ["0.1", "3"]) {
        const submitted = await runCli(["submit", "--server", server.url, "--", "sleep", seconds])
        ids.push(submitted.stdout.trim())
      }
      const result = await onTerminal(`${process.execPath} ${cli} wait --server ${server.url} ${ids.join(" ")}`)
      assert.strictEqual(result.code, 0)
      assert.match(result.output, /1\/2 done/)
      assert.match(result.output, /2\/2 done/)
    } finally {
      await server.stop("SIGTERM")
    }
  })
})
