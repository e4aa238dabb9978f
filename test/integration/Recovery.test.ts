import { assert, describe, it } from "@effect/vitest"
import { spawn } from "node:child_process"
import { createRequire } from "node:module"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { pathToFileURL } from "node:url"
import * as Troupe from "../../src/Troupe.js"

const dist = pathToFileURL(path.resolve("dist/Troupe.js")).href

// The owner process: submits jobs, reports their ids once two are running, then waits to be killed.
const ownerScript = (database: string, work: string) => `
const Troupe = await import(${JSON.stringify(dist)})
const t = await Troupe.open({ database: ${JSON.stringify(database)}, cores: 2 })
const w = ${JSON.stringify(work)}
const a = await t.submit({ command: ["sh", "-c", "echo $$ > pid.a; sleep 30"], cwd: w, name: "a" })
const b = await t.submit({ command: ["sh", "-c", "if [ -f marker ]; then exit 0; fi; touch marker; echo $$ > pid.b; sleep 30"], cwd: w, name: "b", retries: 1, retryDelayMs: 10 })
const c = await t.submit({ command: ["true"], name: "c" })
const d = await t.submit({ command: ["true"], name: "d", after: [c] })
for (;;) {
  const states = await Promise.all([a, b].map((id) => t.get(id).then((r) => r.state)))
  if (states.every((s) => s === "running") && fs.existsSync(w + "/pid.a") && fs.existsSync(w + "/pid.b")) break
  await new Promise((r) => setTimeout(r, 20))
}
process.stdout.write(JSON.stringify({ a, b, c, d }) + "\\n")
setInterval(() => {}, 1000)
`

describe("crash recovery", () => {
  it("after kill -9 of the owner, running jobs become lost (and retry), queued and held jobs run", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "troupe-recovery-"))
    const database = path.join(dir, "troupe.db")
    const work = path.join(dir, "work")
    fs.mkdirSync(work)
    const script = path.join(dir, "owner.mjs")
    fs.writeFileSync(script, `import * as fs from "node:fs"\n${ownerScript(database, work)}`)
    const owner = spawn(process.execPath, [script], { stdio: ["ignore", "pipe", "inherit"] })
    const ids = await new Promise<Record<string, string>>((resolve, reject) => {
      let out = ""
      owner.stdout.on("data", (chunk) => {
        out += chunk
        if (out.includes("\n")) resolve(JSON.parse(out))
      })
      owner.on("exit", (code) => reject(new Error(`owner exited early with ${code}`)))
    })
    owner.kill("SIGKILL")
    await new Promise((resolve) => owner.on("exit", resolve))
    // The owner's job processes outlive it (they run in their own groups); end them as an operator would.
    for (const name of ["pid.a", "pid.b"]) {
      try {
        process.kill(-Number(fs.readFileSync(path.join(work, name), "utf8")), "SIGKILL")
      } catch {
        // already gone
      }
    }

    const t = await Troupe.open({ database, cores: 2 })
    try {
      const [a, b, c, d] = await t.wait([ids.a!, ids.b!, ids.c!, ids.d!], { timeoutMs: 20_000 })
      assert.strictEqual(a!.state, "lost")
      assert.include(a!.reason!, "stopped")
      assert.strictEqual(b!.state, "completed")
      assert.strictEqual(b!.attempts, 2)
      assert.deepStrictEqual((await t.attempts(ids.b!)).map((x) => x.state), ["lost", "completed"])
      assert.strictEqual(c!.state, "completed")
      assert.strictEqual(d!.state, "completed")
      assert.strictEqual((await t.list({ states: ["running", "queued", "held", "pending"] })).length, 0)
    } finally {
      await t.close()
    }
  })

  it("refuses databases that are not Troupe's or are from a newer version", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "troupe-baddb-"))
    const garbage = path.join(dir, "garbage.db")
    fs.writeFileSync(garbage, "this is not a database at all, just some text")
    const reason = async (database: string) =>
      Troupe.open({ database }).then(
        async (t) => {
          await t.close()
          return "opened"
        },
        (error: { _tag?: string; reason?: string }) => `${error._tag}:${error.reason}`
      )
    assert.strictEqual(await reason(garbage), "IncompatibleDatabase:not-sqlite")
    assert.strictEqual(fs.readFileSync(garbage, "utf8"), "this is not a database at all, just some text")

    const Database = createRequire(import.meta.url)("better-sqlite3") as new(file: string) => {
      exec(sql: string): void
      close(): void
    }
    const foreign = path.join(dir, "foreign.db")
    const db = new Database(foreign)
    db.exec("CREATE TABLE customers (id INTEGER PRIMARY KEY)")
    db.close()
    assert.strictEqual(await reason(foreign), "IncompatibleDatabase:not-troupe")

    const newer = path.join(dir, "newer.db")
    const t = await Troupe.open({ database: newer })
    await t.close()
    const db2 = new Database(newer)
    db2.exec("INSERT INTO troupe_migrations (migration_id, name) VALUES (999, 'future')")
    db2.close()
    assert.strictEqual(await reason(newer), "IncompatibleDatabase:newer-version")
  })

  it("a second process cannot open a database another process owns", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "troupe-lock-"))
    const database = path.join(dir, "troupe.db")
    const script = path.join(dir, "holder.mjs")
    fs.writeFileSync(script, `const Troupe = await import(${JSON.stringify(dist)})
await Troupe.open({ database: ${JSON.stringify(database)} })
process.stdout.write("open\\n")
setInterval(() => {}, 1000)`)
    const holder = spawn(process.execPath, [script], { stdio: ["ignore", "pipe", "inherit"] })
    try {
      await new Promise<void>((resolve) => holder.stdout.on("data", () => resolve()))
      const error = await Troupe.open({ database }).then(() => undefined, (e: { _tag?: string; message?: string }) => e)
      assert.strictEqual(error?._tag, "StoreError")
      assert.include(error?.message, "in use by another Troupe process")
    } finally {
      holder.kill("SIGKILL")
    }
  })
})
