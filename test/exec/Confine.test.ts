import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Fs from "node:fs"
import * as Path from "node:path"
import * as Confine from "../../src/exec/Confine.js"
import { tempDir } from "../integration/harness.js"

describe("Confine.resolve", () => {
  const root = Fs.realpathSync(tempDir("troupe-confine-"))
  Fs.mkdirSync(Path.join(root, "a/b"), { recursive: true })
  Fs.symlinkSync(Path.join(root, "a"), Path.join(root, "inside-link"))
  Fs.symlinkSync("/etc", Path.join(root, "a/out-link"))
  Fs.symlinkSync(Path.join(root, "missing-target"), Path.join(root, "dangling"))
  const outside = Fs.realpathSync(tempDir("troupe-confine-outside-"))
  Fs.symlinkSync(outside, Path.join(root, "a/b/to-outside-dir"))

  const inside = (cwd: string, path: string, expected: string) =>
    Effect.map(Effect.either(Confine.resolve(root, cwd, path)), (result) => {
      assert.isTrue(Either.isRight(result), `${path} from ${cwd}`)
      assert.strictEqual(Either.getOrThrow(result), expected)
    })
  const escapes = (cwd: string, path: string) =>
    Effect.map(Effect.either(Confine.resolve(root, cwd, path)), (result) => {
      assert.isTrue(Either.isLeft(result), `${path} from ${cwd} should escape`)
      if (Either.isLeft(result)) assert.strictEqual(result.left.reason, "path-escape")
    })

  it.live("accepts paths that stay inside, `..` within the root and absolute paths inside it", () =>
    Effect.all([
      inside(root, ".", root),
      inside(root, "a/b", Path.join(root, "a/b")),
      inside(Path.join(root, "a/b"), "..", Path.join(root, "a")),
      inside(Path.join(root, "a/b"), "../../a", Path.join(root, "a")),
      inside(root, Path.join(root, "a/b/new/file"), Path.join(root, "a/b/new/file")),
      inside(root, "inside-link/b", Path.join(root, "a/b")),
      inside(root, "not/yet/there", Path.join(root, "not/yet/there"))
    ]))

  it.live("refuses `..` above the root, absolute paths elsewhere, links out, dangling links and NUL bytes", () =>
    Effect.all([
      escapes(root, ".."),
      escapes(Path.join(root, "a"), "../.."),
      escapes(root, "a/b/../../../etc"),
      escapes(root, "/etc/passwd"),
      escapes(root, root + "-sibling"),
      escapes(root, "a/out-link"),
      escapes(root, "a/out-link/hostname"),
      escapes(root, "a/b/to-outside-dir/new-file"),
      escapes(root, "dangling"),
      escapes(root, "dangling/child"),
      escapes(root, "a\0b")
    ]))
})
