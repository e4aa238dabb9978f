import { assert, describe, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Queue from "effect/Queue"
import * as Stream from "effect/Stream"
import * as fs from "node:fs"
import * as path from "node:path"
import * as OutputFollower from "../../src/executor/OutputFollower.js"
import * as ShellRunner from "../../src/executor/ShellRunner.js"
import { eventually, requestFor, tempDir } from "./support.js"

const decoder = new TextDecoder()

const collectText = (stream: Stream.Stream<Uint8Array>) =>
  Effect.map(Stream.runCollect(stream), (chunks) =>
    Buffer.concat(Chunk.toReadonlyArray(chunks).map((chunk) => Buffer.from(chunk))).toString("utf8"))

describe("OutputFollower", () => {
  it.scopedLive("reads a whole file in bounded chunks when not following", () =>
    Effect.gen(function*() {
      const root = yield* tempDir
      const file = path.join(root, "out")
      const content = "0123456789abcdef".repeat(20_000)
      fs.writeFileSync(file, content)
      const chunks = yield* Stream.runCollect(
        OutputFollower.follow(file, { follow: false, isDone: Effect.succeed(false), chunkBytes: 64 * 1024 })
      )
      assert.isTrue(Chunk.size(chunks) >= 5)
      assert.isTrue(Chunk.every(chunks, (chunk) => chunk.length <= 64 * 1024))
      assert.strictEqual(decoder.decode(Buffer.concat(Chunk.toReadonlyArray(chunks))), content)
    }))

  it.scopedLive("a missing file is an empty stream, when not following or when the job is done", () =>
    Effect.gen(function*() {
      const root = yield* tempDir
      const file = path.join(root, "no", "such", "file")
      assert.strictEqual(yield* collectText(OutputFollower.follow(file, { follow: false, isDone: Effect.succeed(false) })), "")
      assert.strictEqual(yield* collectText(OutputFollower.follow(file, { follow: true, isDone: Effect.succeed(true) })), "")
    }))

  it.scopedLive("follows a file that appears later until the writer is done", () =>
    Effect.gen(function*() {
      const root = yield* tempDir
      const file = path.join(root, "later", "stdout")
      let done = false
      let checks = 0
      const isDone = Effect.sync(() => {
        checks++
        return done
      })
      const received = yield* Queue.unbounded<string>()
      const follower = yield* Effect.fork(
        OutputFollower.follow(file, { follow: true, isDone, pollIntervalMs: 50 }).pipe(
          Stream.runForEach((chunk) => Queue.offer(received, decoder.decode(chunk)))
        )
      )
      yield* eventually("the follower to wait for the file", () => checks > 0)
      fs.mkdirSync(path.dirname(file))
      fs.writeFileSync(file, "one\n")
      assert.strictEqual(yield* Queue.take(received), "one\n")
      fs.appendFileSync(file, "two\n")
      assert.strictEqual(yield* Queue.take(received), "two\n")
      fs.appendFileSync(file, "three\n")
      done = true
      yield* Fiber.join(follower)
      assert.strictEqual(Chunk.join(yield* Queue.takeAll(received), ""), "three\n")
    }))

  it.scopedLive("streams a running job's output before the job ends", () =>
    Effect.gen(function*() {
      const root = yield* tempDir
      const cwd = path.join(root, "work")
      fs.mkdirSync(cwd)
      const runner = ShellRunner.make()
      // The job prints, then waits for a file that the test creates only after it has seen the output.
      const request = requestFor(root, {
        command: "echo ready; while [ ! -f go ]; do sleep 0.02; done; echo finished",
        cwd,
        timeLimitMs: 20_000
      })
      const ended = yield* Deferred.make<void>()
      const job = yield* Effect.fork(Effect.ensuring(runner.run(request), Deferred.succeed(ended, undefined)))
      const received = yield* Queue.unbounded<string>()
      const follower = yield* Effect.fork(
        OutputFollower.follow(path.join(request.jobDir, "stdout"), {
          follow: true,
          isDone: Deferred.isDone(ended)
        }).pipe(Stream.runForEach((chunk) => Queue.offer(received, decoder.decode(chunk))))
      )
      assert.strictEqual(yield* Queue.take(received), "ready\n")
      assert.isFalse(yield* Deferred.isDone(ended))
      fs.writeFileSync(path.join(cwd, "go"), "")
      assert.strictEqual((yield* Fiber.join(job)).state, "completed")
      yield* Fiber.join(follower)
      const rest = Chunk.join(yield* Queue.takeAll(received), "")
      assert.strictEqual(rest, "finished\n")
    }))
})
