import { assert, describe, it } from "@effect/vitest"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as HelperSpawner from "../../src/executor/internal/HelperSpawner.js"
import type { SpawnRequest } from "../../src/executor/internal/Spawner.js"
import { groupAlive } from "../../src/executor/internal/processGroup.js"

interface Seen {
  pid?: number
  exit?: { code: number | null; signal: string | null }
  error?: string
  done: boolean
}

const run = (spawner: ReturnType<typeof HelperSpawner.make>, request: SpawnRequest) => {
  const seen: Seen = { done: false }
  const ended = new Promise<Seen>((resolve) => {
    const check = () => {
      if ((seen.exit !== undefined || seen.error !== undefined) && seen.done) resolve(seen)
    }
    spawner.spawn(request, {
      onError: (_code, message) => {
        seen.error = message
        check()
      },
      onSpawn: (pid) => {
        seen.pid = pid
      },
      onExit: (code, signal) => {
        seen.exit = { code, signal }
        check()
      },
      onStreamsDone: () => {
        seen.done = true
        check()
      }
    })
  })
  return { seen, ended }
}

const until = async (condition: () => boolean, what: string) => {
  for (let i = 0; i < 500; i++) {
    if (condition()) return
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  throw new Error(`timed out waiting for ${what}`)
}

describe("HelperSpawner", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "troupe-helper-"))
  const request = (name: string, file: string, args: Array<string>): SpawnRequest => ({
    file,
    args,
    cwd: dir,
    stdoutPath: path.join(dir, name, "stdout"),
    stderrPath: path.join(dir, name, "stderr"),
    outputCapBytes: 1024
  })

  it("runs processes in their own group, captures output and reports the exit", async () => {
    const spawner = HelperSpawner.make()
    try {
      const { ended } = run(spawner, request("a", "sh", ["-c", "echo out; echo err >&2; exit 4"]))
      const seen = await ended
      assert.deepStrictEqual(seen.exit, { code: 4, signal: null })
      assert.strictEqual(fs.readFileSync(path.join(dir, "a", "stdout"), "utf8"), "out\n")
      assert.strictEqual(fs.readFileSync(path.join(dir, "a", "stderr"), "utf8"), "err\n")
      const missing = await run(spawner, request("b", "no-such-command-troupe", [])).ended
      assert.isDefined(missing.error)
    } finally {
      spawner.close()
    }
  })

  it("a dead helper ends the jobs it was watching, and the next spawn starts a new helper", async () => {
    const spawner = HelperSpawner.make()
    try {
      const { seen, ended } = run(spawner, request("c", "sleep", ["30"]))
      await until(() => seen.pid !== undefined, "the job to start")
      const first = spawner.helperPid()!
      process.kill(first, "SIGKILL")
      const result = await ended
      assert.deepStrictEqual(result.exit, { code: null, signal: "SIGKILL" })
      await until(() => !groupAlive(seen.pid!), "the orphaned job's group to be gone")
      const again = await run(spawner, request("d", "true", [])).ended
      assert.deepStrictEqual(again.exit, { code: 0, signal: null })
      assert.notStrictEqual(spawner.helperPid(), first)
    } finally {
      spawner.close()
    }
  })
})
