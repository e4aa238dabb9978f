import { assert, describe, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { pathToFileURL } from "node:url"
import * as FolderMailbox from "../../../src/transport/folder/FolderMailbox.js"

const Signal = Schema.Union(
  Schema.TaggedStruct("submit", { command: Schema.String }),
  Schema.TaggedStruct("isalive", {})
)

// Two ends over one shared folder, as with sshfs: each side's outbox is the other's inbox.
const pair = Effect.gen(function*() {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "troupe-folder-"))
  const toRemote = path.join(root, "to-remote")
  const toLocal = path.join(root, "to-local")
  const local = yield* FolderMailbox.make(Signal, { inbox: toLocal, outbox: toRemote, rescanMs: 50 })
  const remote = yield* FolderMailbox.make(Signal, { inbox: toRemote, outbox: toLocal, rescanMs: 50 })
  return { root, toRemote, toLocal, local, remote }
})

describe("FolderMailbox", () => {
  it.scopedLive("sends a message with its files; receive takes it once", () =>
    Effect.gen(function*() {
      const { local, remote, root } = yield* pair
      const input = path.join(root, "input.txt")
      fs.writeFileSync(input, "payload")
      yield* local.send({ _tag: "submit", command: "make" }, "msg-1", { [input]: "data/in.txt" })
      const [delivery] = yield* remote.receive
      assert.strictEqual(delivery!.id, "msg-1")
      assert.deepStrictEqual(delivery!.message, { _tag: "submit", command: "make" })
      assert.strictEqual(fs.readFileSync(delivery!.files.get("data/in.txt")!, "utf8"), "payload")
      assert.deepStrictEqual(yield* remote.receive, [])
    }))

  it.scopedLive("get does not wait, and returns a message only once", () =>
    Effect.gen(function*() {
      const { local, remote } = yield* pair
      assert.isTrue(Option.isNone(yield* remote.get("msg-2")))
      yield* local.send({ _tag: "isalive" }, "msg-2")
      assert.strictEqual(Option.getOrThrow(yield* remote.get("msg-2")).message._tag, "isalive")
      assert.isTrue(Option.isNone(yield* remote.get("msg-2")))
    }))

  it.scopedLive("a repeated id is delivered once", () =>
    Effect.gen(function*() {
      const { local, remote } = yield* pair
      yield* local.send({ _tag: "isalive" }, "dup")
      assert.strictEqual((yield* remote.receive).length, 1)
      yield* local.send({ _tag: "isalive" }, "dup")
      assert.strictEqual((yield* remote.receive).length, 0)
    }))

  it.scopedLive("with a delivered-ids log, a repeated id is dropped after a restart too", () =>
    Effect.gen(function*() {
      const { local, root, toRemote, toLocal } = yield* pair
      const deliveredLog = path.join(root, "delivered.ids")
      const options = { inbox: toRemote, outbox: toLocal, rescanMs: 50, deliveredLog }
      const first = yield* Effect.scoped(Effect.gen(function*() {
        const remote = yield* FolderMailbox.make(Signal, options)
        yield* local.send({ _tag: "isalive" }, "before-restart")
        return yield* remote.receive
      }))
      assert.strictEqual(first.length, 1)
      const restarted = yield* FolderMailbox.make(Signal, options)
      yield* local.send({ _tag: "isalive" }, "before-restart")
      yield* local.send({ _tag: "isalive" }, "after-restart")
      assert.deepStrictEqual((yield* restarted.receive).map((d) => d.id), ["after-restart"])
    }))

  it.scopedLive("garbage, torn, unknown-version and stray files go to quarantine with a reason", () =>
    Effect.gen(function*() {
      const { local, remote, toRemote } = yield* pair
      fs.writeFileSync(path.join(toRemote, "garbage.msg"), "\u0000\u0001 not json")
      fs.writeFileSync(path.join(toRemote, "torn.msg"), "{\"troupe\": 1, \"id\": \"torn\", \"bo")
      fs.writeFileSync(path.join(toRemote, "future.msg"), JSON.stringify({ troupe: 99, id: "future", files: [], body: {} }))
      fs.writeFileSync(path.join(toRemote, "wrong.msg"), JSON.stringify({ troupe: 1, id: "wrong", files: [], body: { _tag: "nope" } }))
      fs.writeFileSync(path.join(toRemote, "escape.msg"), JSON.stringify({ troupe: 1, id: "escape", files: ["../x"], body: { _tag: "isalive" } }))
      fs.writeFileSync(path.join(toRemote, "notes.txt"), "hello")
      fs.writeFileSync(path.join(toRemote, ".in-flight.msg.XyZ123"), "partial rsync temp file")
      yield* local.send({ _tag: "isalive" }, "good")
      const delivered = yield* remote.receive
      assert.deepStrictEqual(delivered.map((d) => d.id), ["good"])
      const quarantined = fs.readdirSync(path.join(toRemote, "quarantine"))
      assert.strictEqual(quarantined.filter((f) => f.endsWith(".reason")).length, 6)
      const reasons = quarantined.filter((f) => f.endsWith(".reason")).map((f) => fs.readFileSync(path.join(toRemote, "quarantine", f), "utf8"))
      assert.isTrue(reasons.some((r) => r.includes("unknown format version 99")))
      assert.isTrue(reasons.some((r) => r.includes("does not match the message schema")))
      assert.isTrue(fs.existsSync(path.join(toRemote, ".in-flight.msg.XyZ123")))
    }))

  it.scopedLive("rejects ids and file paths that could escape the folder", () =>
    Effect.gen(function*() {
      const { local, root } = yield* pair
      const input = path.join(root, "a.txt")
      fs.writeFileSync(input, "x")
      const badId = yield* Effect.flip(local.send({ _tag: "isalive" }, "../evil"))
      assert.strictEqual(badId.reason, "invalid-id")
      for (const remotePath of ["../outside.txt", "/etc/passwd", "a/../../b"]) {
        const error = yield* Effect.flip(local.send({ _tag: "isalive" }, "m1", { [input]: remotePath }))
        assert.strictEqual(error.reason, "path-escapes-root")
      }
      // A set of paths keeps each relative path; an absolute one would escape, so it needs the map form.
      assert.strictEqual((yield* Effect.flip(local.send({ _tag: "isalive" }, "m2", [input]))).reason, "path-escapes-root")
      const missing = yield* Effect.flip(local.send({ _tag: "isalive" }, "m3", { [path.join(root, "nope.txt")]: "nope.txt" }))
      assert.strictEqual(missing.reason, "file-missing")
    }))

  it.scopedLive("a message waits for its attached files (rsync copies them after it), and holds back later ones", () =>
    Effect.gen(function*() {
      const { remote, toRemote } = yield* pair
      // As rsync leaves it mid-run: the message is there, its files folder not yet.
      const envelope = (id: string, seq: number, files: Array<string>) =>
        JSON.stringify({ troupe: 1, id, sentAt: 1000, seq, files, body: { _tag: "isalive" } })
      fs.writeFileSync(path.join(toRemote, "early.msg"), envelope("early", 0, ["data/in.txt"]))
      fs.writeFileSync(path.join(toRemote, "later.msg"), envelope("later", 1, []))
      assert.deepStrictEqual(yield* remote.receive, [])
      assert.isTrue(Option.isNone(yield* remote.get("early")))
      fs.mkdirSync(path.join(toRemote, "early.files", "data"), { recursive: true })
      fs.writeFileSync(path.join(toRemote, "early.files", "data", "in.txt"), "arrived")
      const delivered = yield* remote.receive
      assert.deepStrictEqual(delivered.map((d) => d.id), ["early", "later"])
      assert.strictEqual(fs.readFileSync(delivered[0]!.files.get("data/in.txt")!, "utf8"), "arrived")
    }))

  it.scopedLive("a message whose files never arrive is quarantined after the wait", () =>
    Effect.gen(function*() {
      const root = fs.mkdtempSync(path.join(os.tmpdir(), "troupe-folder-"))
      const inbox = path.join(root, "in")
      const box = yield* FolderMailbox.make(Signal, { inbox, outbox: path.join(root, "out"), filesWaitMs: 0 })
      fs.writeFileSync(path.join(inbox, "lost.msg"), JSON.stringify({ troupe: 1, id: "lost", sentAt: 1, seq: 0, files: ["gone.txt"], body: { _tag: "isalive" } }))
      assert.deepStrictEqual(yield* box.receive, [])
      const reasons = fs.readdirSync(path.join(inbox, "quarantine")).filter((f) => f.endsWith(".reason"))
      assert.include(fs.readFileSync(path.join(inbox, "quarantine", reasons[0]!), "utf8"), "gone.txt did not arrive")
    }))

  it.scopedLive("an attached file that is a symbolic link out of the message's folder is quarantined", () =>
    Effect.gen(function*() {
      const { remote, toRemote, root } = yield* pair
      fs.writeFileSync(path.join(root, "secret.txt"), "not yours")
      fs.mkdirSync(path.join(toRemote, "sneaky.files"))
      fs.symlinkSync(path.join(root, "secret.txt"), path.join(toRemote, "sneaky.files", "data.txt"))
      fs.writeFileSync(path.join(toRemote, "sneaky.msg"), JSON.stringify({ troupe: 1, id: "sneaky", sentAt: 1, seq: 0, files: ["data.txt"], body: { _tag: "isalive" } }))
      assert.deepStrictEqual(yield* remote.receive, [])
      const reasons = fs.readdirSync(path.join(toRemote, "quarantine")).filter((f) => f.endsWith(".reason"))
      assert.include(fs.readFileSync(path.join(toRemote, "quarantine", reasons[0]!), "utf8"), "symbolic link out")
    }))

  it.scopedLive("the messages stream delivers what arrives later, in order", () =>
    Effect.gen(function*() {
      const { local, remote } = yield* pair
      const collected = yield* remote.messages.pipe(Stream.take(3), Stream.runCollect, Effect.fork)
      for (const id of ["s1", "s2", "s3"]) yield* local.send({ _tag: "submit", command: id }, id)
      const got = Chunk.toArray(yield* collected.await.pipe(Effect.flatten))
      assert.deepStrictEqual(got.map((d) => d.id), ["s1", "s2", "s3"])
    }))
})

describe("FolderMailbox across processes", () => {
  it.scopedLive("a second process on the same host sends 200 messages; all arrive once, in order", () =>
    Effect.gen(function*() {
      const root = fs.mkdtempSync(path.join(os.tmpdir(), "troupe-folder-proc-"))
      const inbox = path.join(root, "to-local")
      const mailbox = yield* FolderMailbox.make(Signal, { inbox, outbox: path.join(root, "to-remote"), rescanMs: 50 })
      const dist = pathToFileURL(path.resolve("dist/transport/folder/FolderMailbox.js")).href
      const script = path.join(root, "sender.mjs")
      fs.writeFileSync(script, `
        const FolderMailbox = await import(${JSON.stringify(dist)})
        const { Effect, Schema } = await import(${JSON.stringify(pathToFileURL(path.resolve("node_modules/effect/dist/esm/index.js")).href)})
        const Signal = Schema.Union(Schema.TaggedStruct("submit", { command: Schema.String }), Schema.TaggedStruct("isalive", {}))
        await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
          const box = yield* FolderMailbox.make(Signal, { inbox: ${JSON.stringify(path.join(root, "to-remote"))}, outbox: ${JSON.stringify(inbox)} })
          // Random ids: the order must come from the send order, not from the file names.
          for (let i = 0; i < 200; i++) yield* box.send({ _tag: "submit", command: String(i) }, crypto.randomUUID())
        })))
      `)
      const child = spawn(process.execPath, [script], { stdio: ["ignore", "inherit", "inherit"] })
      const got = yield* mailbox.messages.pipe(Stream.take(200), Stream.runCollect)
      const deliveries = Chunk.toArray(got)
      assert.strictEqual(new Set(deliveries.map((d) => d.id)).size, 200)
      assert.deepStrictEqual(
        deliveries.map((d) => (d.message._tag === "submit" ? Number(d.message.command) : -1)),
        Array.from({ length: 200 }, (_, i) => i)
      )
      yield* Effect.async<void>((resume) => {
        if (child.exitCode !== null) return resume(Effect.void)
        child.once("exit", () => resume(Effect.void))
      })
      assert.strictEqual(child.exitCode, 0)
    }))
})
