import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Schema from "effect/Schema"
import * as fs from "node:fs"
import * as path from "node:path"
import { JobSpec } from "../../src/domain/JobSpec.js"
import { Executor } from "../../src/executor/Executor.js"
import * as Functions from "../../src/executor/Functions.js"
import * as LocalExecutor from "../../src/executor/LocalExecutor.js"
import { readText, requestFor, tempDir } from "./support.js"

const fixture = new URL("./fixtures/threadFunctions.mjs", import.meta.url).href

const registry = {
  greet: Functions.define({ args: Schema.String, success: Schema.String, run: (name) => `hello ${name}` }),
  double: Functions.define({
    args: Schema.Struct({ n: Schema.Number }),
    success: Schema.Struct({ value: Schema.Number, threadId: Schema.Number }),
    run: ({ n }) => ({ value: n * 2, threadId: 0 }),
    module: { url: fixture, export: "double" }
  })
}

const provideExecutor = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  effect.pipe(Effect.provide(LocalExecutor.layer({ killGraceMs: 300 })), Effect.provide(Functions.layer(registry)))

// Every check runs through both forms, `validate` and the synchronous `check`, which must agree.
const validate = (spec: ConstructorParameters<typeof JobSpec>[0]) =>
  Effect.flatMap(Executor, (executor) =>
    Effect.map(Effect.either(executor.validate(new JobSpec(spec))), (result) => {
      const now = executor.check!(new JobSpec(spec))
      assert.strictEqual(now === undefined ? "ok" : `${now.reason}: ${now.message}`, reasonOf(result))
      return result
    }))

const reasonOf = (result: Either.Either<void, { readonly reason: string; readonly message: string }>) =>
  Either.isLeft(result) ? `${result.left.reason}: ${result.left.message}` : "ok"

describe("LocalExecutor", () => {
  it.scopedLive("validate accepts commands found on PATH, relative paths and shell strings", () =>
    provideExecutor(Effect.gen(function*() {
      const root = yield* tempDir
      const script = path.join(root, "run.sh")
      fs.writeFileSync(script, "#!/bin/sh\necho from script\n", { mode: 0o755 })
      assert.strictEqual(reasonOf(yield* validate({ command: ["sh", "-c", "true"] })), "ok")
      assert.strictEqual(reasonOf(yield* validate({ command: ["./run.sh"], cwd: root })), "ok")
      assert.strictEqual(reasonOf(yield* validate({ command: [script] })), "ok")
      assert.strictEqual(reasonOf(yield* validate({ command: ["run.sh"], env: { PATH: root } })), "ok")
      // A shell string is resolved by the shell at run time, not here.
      assert.strictEqual(reasonOf(yield* validate({ command: "troupe-no-such-command --flag" })), "ok")
    })))

  it.scopedLive("validate rejects missing or non-executable commands", () =>
    provideExecutor(Effect.gen(function*() {
      const root = yield* tempDir
      fs.writeFileSync(path.join(root, "plain.txt"), "not executable")
      assert.strictEqual(
        reasonOf(yield* validate({ command: ["troupe-no-such-command"] })),
        "command-not-found: command not found: troupe-no-such-command"
      )
      assert.strictEqual(
        reasonOf(yield* validate({ command: ["./plain.txt"], cwd: root })),
        "command-not-found: command not found: ./plain.txt"
      )
      assert.strictEqual(
        reasonOf(yield* validate({ command: ["sh"], env: { PATH: path.join(root, "empty") } })),
        "command-not-found: command not found: sh"
      )
    })))

  it.scopedLive("validate rejects a missing cwd, and sees a fix at once", () =>
    provideExecutor(Effect.gen(function*() {
      const root = yield* tempDir
      const cwd = path.join(root, "later")
      assert.strictEqual(reasonOf(yield* validate({ command: ["true"], cwd })), `cwd-not-found: cwd does not exist: ${cwd}`)
      fs.writeFileSync(cwd, "a file, not a directory")
      assert.strictEqual(reasonOf(yield* validate({ command: "true", cwd })), `cwd-not-found: cwd does not exist: ${cwd}`)
      fs.rmSync(cwd)
      fs.mkdirSync(cwd)
      assert.strictEqual(reasonOf(yield* validate({ command: ["true"], cwd })), "ok")
    })))

  it.scopedLive("validate checks that a function is registered and can run where asked", () =>
    provideExecutor(Effect.gen(function*() {
      assert.strictEqual(reasonOf(yield* validate({ fn: "greet", args: "you" })), "ok")
      assert.strictEqual(reasonOf(yield* validate({ fn: "double", placement: "thread" })), "ok")
      assert.strictEqual(
        reasonOf(yield* validate({ fn: "nope" })),
        "unknown-function: unknown function: nope (registered: greet, double)"
      )
      assert.match(reasonOf(yield* validate({ fn: "greet", placement: "thread" })), /^malformed: .*cannot run on a thread/)
    })))

  it.scopedLive("run dispatches shell and function jobs", () =>
    provideExecutor(Effect.gen(function*() {
      const root = yield* tempDir
      const executor = yield* Executor
      const shell = requestFor(root, { command: ["echo", "hi"] })
      const shellOutcome = yield* executor.run(shell)
      assert.strictEqual(shellOutcome.state, "completed")
      assert.strictEqual(readText(path.join(shell.jobDir, "stdout")), "hi\n")
      const fn = yield* executor.run(requestFor(root, { fn: "greet", args: "you" }))
      assert.strictEqual(fn.state, "completed")
      assert.strictEqual(fn.result, "hello you")
      const thread = yield* executor.run(requestFor(root, { fn: "double", args: { n: 4 }, placement: "thread" }))
      assert.strictEqual((thread.result as { value: number }).value, 8)
    })))

  it.scopedLive("run reports a missing command, a missing cwd and a timeout as outcomes", () =>
    provideExecutor(Effect.gen(function*() {
      const root = yield* tempDir
      const executor = yield* Executor
      const missing = yield* executor.run(requestFor(root, { command: ["troupe-no-such-command"] }))
      assert.strictEqual(missing.reason, "command not found: troupe-no-such-command")
      const cwd = path.join(root, "gone")
      const noCwd = yield* executor.run(requestFor(root, { command: "true", cwd }))
      assert.strictEqual(noCwd.reason, `cwd does not exist: ${cwd}`)
      const slow = yield* executor.run(requestFor(root, { command: ["sleep", "30"], timeLimitMs: 100 }))
      assert.strictEqual(slow.state, "timeout")
    })))
})
