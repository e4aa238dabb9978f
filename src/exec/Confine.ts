import * as Effect from "effect/Effect"
import * as Fs from "node:fs/promises"
import * as Path from "node:path"
import { ExecError } from "./Errors.js"

/**
 * Resolves a path a client sent, relative to its cwd, and proves it stays inside `root`: `..` may
 * move within the root but not above it, an absolute path must lie inside it, and every symbolic
 * link on the way (a dangling one included) must lead inside it too. `root` and `cwd` are real
 * absolute paths. The answer is the real path (links resolved) of what the client named.
 */
export const resolve = (root: string, cwd: string, path: string): Effect.Effect<string, ExecError> =>
  Effect.suspend(() => {
    if (path.includes("\0")) return Effect.fail(escape(path, "contains a NUL byte"))
    const lexical = Path.resolve(cwd, path)
    if (!isWithin(root, lexical)) return Effect.fail(escape(path, `leaves the root ${root}`))
    return Effect.flatMap(
      Effect.promise(() => realpathOfExisting(lexical)),
      (real) =>
        real === undefined
          ? Effect.fail(escape(path, "goes through a symbolic link that leads nowhere"))
          : isWithin(root, real)
          ? Effect.succeed(real)
          : Effect.fail(escape(path, "follows a symbolic link out of the root"))
    )
  })

/** True when `path` is `root` itself or lies beneath it (both absolute and normalized). */
export const isWithin = (root: string, path: string): boolean => {
  const relative = Path.relative(root, path)
  return relative === "" || (!relative.startsWith("..") && !Path.isAbsolute(relative))
}

/** Resolves the real path of a directory given on the command line (the server's --root). */
export const realRoot = (root: string): Effect.Effect<string, ExecError> =>
  Effect.tryPromise({
    try: async () => {
      const real = await Fs.realpath(Path.resolve(root))
      if (!(await Fs.stat(real)).isDirectory()) throw new Error("not a directory")
      return real
    },
    catch: (cause) =>
      new ExecError({
        reason: "not-a-directory",
        path: root,
        message: `root ${root} is not a directory (${cause instanceof Error ? cause.message : String(cause)})`
      })
  })

// ---------------------------------------------------------------------------------------------
// private

const escape = (path: string, why: string): ExecError =>
  new ExecError({ reason: "path-escape", path, message: `path ${JSON.stringify(path)} ${why}` })

// The real path of the deepest existing ancestor, with the missing tail appended; undefined when a
// component exists but cannot be resolved (a dangling or looping symbolic link).
const realpathOfExisting = async (path: string): Promise<string | undefined> => {
  const tail: Array<string> = []
  let current = path
  for (;;) {
    try {
      const real = await Fs.realpath(current)
      return tail.length === 0 ? real : Path.join(real, ...tail.reverse())
    } catch {
      const exists = await Fs.lstat(current).then(() => true, () => false)
      if (exists) return undefined
      const parent = Path.dirname(current)
      if (parent === current) return undefined
      tail.push(Path.basename(current))
      current = parent
    }
  }
}
