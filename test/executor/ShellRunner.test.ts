import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as fs from "node:fs"
import * as path from "node:path"
import * as ShellRunner from "../../src/executor/ShellRunner.js"
import { eventually, groupGone, groupHasNoLiveMember, readText, requestFor, tempDir } from "./support.js"

const runner = ShellRunner.make({ killGraceMs: 300 })

const marker = (cap: number) => `\n[troupe: output truncated at ${cap} bytes]\n`

describe("ShellRunner", () => {
  it.scopedLive("records exit code 0 as completed and a non-zero code as failed", () =>
    Effect.gen(function*() {
      const root = yield* tempDir
      const ok = yield* runner.run(requestFor(root, { command: ["true"] }))
      assert.strictEqual(ok.state, "completed")
      assert.strictEqual(ok.exitCode, 0)
      assert.strictEqual(ok.reason, null)
      const bad = yield* runner.run(requestFor(root, { command: "exit 3" }))
      assert.strictEqual(bad.state, "failed")
      assert.strictEqual(bad.exitCode, 3)
      assert.strictEqual(bad.reason, "exit code 3")
    }))

  it.scopedLive("runs an argv array without a shell and a string through /bin/sh", () =>
    Effect.gen(function*() {
      const root = yield* tempDir
      const argv = requestFor(root, { command: ["echo", "a  b", "$HOME", "*"] })
      assert.strictEqual((yield* runner.run(argv)).state, "completed")
      assert.strictEqual(readText(path.join(argv.jobDir, "stdout")), "a  b $HOME *\n")
      const shell = requestFor(root, { command: "echo $((1 + 2)) && echo oops >&2" })
      assert.strictEqual((yield* runner.run(shell)).state, "completed")
      assert.strictEqual(readText(path.join(shell.jobDir, "stdout")), "3\n")
      assert.strictEqual(readText(path.join(shell.jobDir, "stderr")), "oops\n")
    }))

  it.scopedLive("applies cwd, env over the parent's environment, and stdin", () =>
    Effect.gen(function*() {
      const root = yield* tempDir
      const cwd = path.join(root, "work")
      fs.mkdirSync(cwd)
      const request = requestFor(root, {
        command: "pwd; echo \"$TROUPE_TEST_VAR:${PATH:+has-path}\"; cat",
        cwd,
        env: { TROUPE_TEST_VAR: "hello" },
        stdin: "from stdin\n"
      })
      assert.strictEqual((yield* runner.run(request)).state, "completed")
      assert.strictEqual(
        readText(path.join(request.jobDir, "stdout")),
        `${fs.realpathSync(cwd)}\nhello:has-path\nfrom stdin\n`
      )
      // Without stdin the child reads end-of-file at once instead of hanging.
      const noStdin = requestFor(root, { command: ["cat"] })
      assert.strictEqual((yield* runner.run(noStdin)).state, "completed")
    }))

  it.scopedLive("reports a signal that killed the job", () =>
    Effect.gen(function*() {
      const root = yield* tempDir
      const outcome = yield* runner.run(requestFor(root, { command: "kill -9 $$" }))
      assert.strictEqual(outcome.state, "failed")
      assert.strictEqual(outcome.reason, "killed by signal SIGKILL")
    }))

  it.scopedLive("reports a missing command and a missing cwd as failures", () =>
    Effect.gen(function*() {
      const root = yield* tempDir
      const missing = yield* runner.run(requestFor(root, { command: ["troupe-no-such-command"] }))
      assert.strictEqual(missing.state, "failed")
      assert.strictEqual(missing.reason, "command not found: troupe-no-such-command")
      const cwd = path.join(root, "nope")
      const noCwd = yield* runner.run(requestFor(root, { command: ["true"], cwd }))
      assert.strictEqual(noCwd.state, "failed")
      assert.strictEqual(noCwd.reason, `cwd does not exist: ${cwd}`)
    }))

  it.scopedLive("a time limit ends the whole process group and records timeout", () =>
    Effect.gen(function*() {
      const root = yield* tempDir
      const request = requestFor(root, { command: "echo $$; sleep 30 & sleep 30", timeLimitMs: 300 })
      const started = Date.now()
      const outcome = yield* runner.run(request)
      assert.strictEqual(outcome.state, "timeout")
      assert.strictEqual(outcome.reason, "time limit of 0.3s exceeded")
      assert.isBelow(Date.now() - started, 5000)
      const pgid = Number(readText(path.join(request.jobDir, "stdout")).trim())
      assert.isAbove(pgid, 1)
      // When run returns, nothing of the group is still running ...
      assert.isTrue(groupHasNoLiveMember(pgid))
      // ... and once the orphans are reaped, the group is gone for good.
      yield* eventually("the process group to disappear", () => groupGone(pgid))
    }))

  it.scopedLive("escalates to SIGKILL after the grace when the group ignores SIGTERM", () =>
    Effect.gen(function*() {
      const root = yield* tempDir
      const request = requestFor(root, { command: "trap '' TERM; echo $$; sleep 30", timeLimitMs: 200 })
      const started = Date.now()
      const outcome = yield* runner.run(request)
      assert.strictEqual(outcome.state, "timeout")
      assert.isAtLeast(Date.now() - started, 200 + 300)
      const pgid = Number(readText(path.join(request.jobDir, "stdout")).trim())
      assert.isTrue(groupHasNoLiveMember(pgid))
    }))

  it.scopedLive("interruption kills the whole group and waits for it", () =>
    Effect.gen(function*() {
      const root = yield* tempDir
      const request = requestFor(root, { command: "echo $$; sleep 30 & sleep 30" })
      const stdout = path.join(request.jobDir, "stdout")
      const fiber = yield* Effect.fork(runner.run(request))
      yield* eventually("the job to print its pid", () => readText(stdout).endsWith("\n"))
      const pgid = Number(readText(stdout).trim())
      assert.isFalse(groupGone(pgid))
      yield* Fiber.interrupt(fiber)
      assert.isTrue(groupHasNoLiveMember(pgid))
      yield* eventually("the process group to disappear", () => groupGone(pgid))
    }))

  it.scopedLive("caps each output stream and appends the truncation marker once", () =>
    Effect.gen(function*() {
      const root = yield* tempDir
      const small = ShellRunner.make({ outputCapBytes: 1000 })
      const request = requestFor(root, { command: "head -c 300000 /dev/zero | tr '\\0' x; head -c 10 /dev/zero >&2" })
      assert.strictEqual((yield* small.run(request)).state, "completed")
      const stdout = readText(path.join(request.jobDir, "stdout"))
      assert.strictEqual(stdout, "x".repeat(1000) + marker(1000))
      assert.strictEqual(fs.statSync(path.join(request.jobDir, "stderr")).size, 10)
    }))

  it.scopedLive("keeps large output intact under the cap", () =>
    Effect.gen(function*() {
      const root = yield* tempDir
      const request = requestFor(root, { command: ["seq", "1", "1000000"] })
      assert.strictEqual((yield* runner.run(request)).state, "completed")
      const expected = Array.from({ length: 1000000 }, (_, i) => `${i + 1}\n`).join("")
      assert.isTrue(readText(path.join(request.jobDir, "stdout")) === expected)
    }))

  it.scopedLive("a retry does not show the output of an earlier attempt", () =>
    Effect.gen(function*() {
      const root = yield* tempDir
      const first = requestFor(root, { command: "echo first" })
      yield* runner.run(first)
      assert.strictEqual(readText(path.join(first.jobDir, "stdout")), "first\n")
      yield* runner.run({ ...first, attempt: 2, spec: requestFor(root, { command: ["true"] }).spec })
      assert.isFalse(fs.existsSync(path.join(first.jobDir, "stdout")))
    }))

  it.scopedLive("collects output files matched by globs, confined to cwd", () =>
    Effect.gen(function*() {
      const root = yield* tempDir
      const cwd = path.join(root, "work")
      fs.mkdirSync(cwd)
      fs.writeFileSync(path.join(root, "secret.txt"), "outside")
      const request = requestFor(root, {
        command: "mkdir -p out && touch out/a.txt out/b.txt c.log skip.bin && ln -s ../secret.txt out/escape.txt",
        cwd,
        outputs: ["out/*.txt", "*.log", "../*.txt", path.join(root, "*.txt"), "missing/**"]
      })
      const outcome = yield* runner.run(request)
      assert.strictEqual(outcome.state, "completed")
      assert.deepStrictEqual(outcome.outputs, [
        path.join(cwd, "c.log"),
        path.join(cwd, "out", "a.txt"),
        path.join(cwd, "out", "b.txt")
      ])
    }))

  it.scopedLive("the in-process spawner runs the same jobs, for hosts that cannot start a helper", () =>
    Effect.gen(function*() {
      const root = yield* tempDir
      const local = ShellRunner.make({ spawner: "in-process" })
      const request = requestFor(root, { command: "echo here; exit 5" })
      const outcome = yield* local.run(request)
      assert.strictEqual(outcome.state, "failed")
      assert.strictEqual(outcome.exitCode, 5)
      assert.strictEqual(readText(path.join(request.jobDir, "stdout")), "here\n")
    }))

  it.scopedLive("jobs see the runtime's environment as it is when they start, not when the helper started", () =>
    Effect.gen(function*() {
      const root = yield* tempDir
      const runner = ShellRunner.make()
      yield* runner.run(requestFor(root, { command: ["true"] }))
      process.env.TROUPE_TEST_LATE_VARIABLE = "set later"
      try {
        const request = requestFor(root, { command: "echo $TROUPE_TEST_LATE_VARIABLE" })
        yield* runner.run(request)
        assert.strictEqual(readText(path.join(request.jobDir, "stdout")), "set later\n")
      } finally {
        delete process.env.TROUPE_TEST_LATE_VARIABLE
        runner.close()
      }
    }))
})
