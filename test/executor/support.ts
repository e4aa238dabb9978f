import * as Effect from "effect/Effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import type { RunRequest } from "../../src/executor/Executor.js"
import type { JobId } from "../../src/domain/JobId.js"
import { JobSpec } from "../../src/domain/JobSpec.js"

/** A fresh temporary directory, removed when the scope closes. */
export const tempDir = Effect.acquireRelease(
  Effect.promise(() => fs.promises.mkdtemp(path.join(os.tmpdir(), "troupe-executor-"))),
  (dir) => Effect.promise(() => fs.promises.rm(dir, { recursive: true, force: true }))
)

let counter = 0

/** A run request for a spec, with its job directory under `root`. */
export const requestFor = (
  root: string,
  spec: ConstructorParameters<typeof JobSpec>[0],
  attempt = 1
): RunRequest => {
  const id = `job${++counter}` as JobId
  return { id, spec: new JobSpec(spec), attempt, jobDir: path.join(root, "jobs", id) }
}

/** Reads a file as UTF-8, or "" when it does not exist. */
export const readText = (file: string): string => {
  try {
    return fs.readFileSync(file, "utf8")
  } catch {
    return ""
  }
}

/** Waits (polling every 20 ms) until the condition holds; fails after the deadline. */
export const eventually = (what: string, condition: () => boolean, timeoutMs = 10_000): Effect.Effect<void> =>
  Effect.gen(function*() {
    const deadline = Date.now() + timeoutMs
    while (!condition()) {
      if (Date.now() > deadline) return yield* Effect.dieMessage(`timed out waiting for: ${what}`)
      yield* Effect.sleep("20 millis")
    }
  })

/** True when no process of the group exists any more (kill(-pgid, 0) throws ESRCH). */
export const groupGone = (pgid: number): boolean => {
  try {
    process.kill(-pgid, 0)
    return false
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "ESRCH"
  }
}

/** True when the group has no member that is still running (zombies awaiting their reaper excluded). */
export const groupHasNoLiveMember = (pgid: number): boolean => {
  if (groupGone(pgid)) return true
  for (const entry of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue
    let stat: string
    try {
      stat = fs.readFileSync(`/proc/${entry}/stat`, "latin1")
    } catch {
      continue
    }
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
    if (Number(fields[2]) === pgid && fields[0] !== "Z") return false
  }
  return true
}
