// Helpers for the module server tests: module files and configs in temp dirs, servers in a scope, waiting on events.
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Stream from "effect/Stream"
import * as Fs from "node:fs"
import * as Path from "node:path"
import type * as Scope from "effect/Scope"
import { eventually, root, tempDir } from "../integration/harness.js"
import type { ConfigError } from "../../src/modules/Errors.js"
import * as ModuleServer from "../../src/modules/ModuleServer.js"
import type { ModuleEvent } from "../../src/modules/ModuleInfo.js"

// Workers run from the build (`npm test` builds first): under tsx each one would take a second more
// on this machine. `npx vitest run test/modules` after a change to src/modules/internal needs `npm run build`.
const builtWorker = Path.join(root, "dist", "modules", "internal", "WorkerMain.js")
if (Fs.existsSync(builtWorker)) process.env["TROUPE_MODULE_WORKER"] ??= builtWorker

/** A temp dir with the given files (relative path → content). */
export const project = (files: Record<string, string>): string => {
  const dir = tempDir("troupe-modules-")
  write(dir, files)
  return dir
}

/** Writes files (relative path → content) into `dir`. */
export const write = (dir: string, files: Record<string, string>): void => {
  for (const [name, content] of Object.entries(files)) {
    Fs.mkdirSync(Path.dirname(Path.join(dir, name)), { recursive: true })
    Fs.writeFileSync(Path.join(dir, name), content)
  }
}

/** Writes `server.config.json` into `dir` and returns its path. */
export const config = (dir: string, modules: Record<string, unknown>): string => {
  const file = Path.join(dir, "server.config.json")
  Fs.writeFileSync(file, JSON.stringify(modules, null, 2))
  return file
}

/** A fast restart policy for tests. */
export const testPolicy = { maxRestarts: 3, within: "5 seconds", baseDelay: "10 millis", maxDelay: "200 millis" } as const

/** Starts a module server on `configFile` for the scope. */
export const server = (
  configFile: string,
  options: Partial<ModuleServer.ModuleServerOptions> = {}
): Effect.Effect<ModuleServer.ModuleServer["Type"], ConfigError, Scope.Scope> =>
  ModuleServer.make({ configFile, policy: testPolicy, rescanMs: 500, ...options })

/**
 * Starts collecting the server's events now; `next(pred)` waits (at most `timeoutMs`) for the
 * first collected event matching `pred` that was not returned before.
 */
export const events = (
  modules: ModuleServer.ModuleServer["Type"]
): Effect.Effect<{ readonly next: (pred: (e: ModuleEvent) => boolean, timeoutMs?: number) => Effect.Effect<ModuleEvent> ; readonly all: () => ReadonlyArray<ModuleEvent> }, never, Scope.Scope> =>
  Effect.gen(function*() {
    const seen: Array<ModuleEvent> = []
    let taken = new Set<ModuleEvent>()
    const fiber = yield* Effect.forkScoped(Stream.runForEach(modules.events, (e) => Effect.sync(() => seen.push(e))))
    yield* Effect.addFinalizer(() => Fiber.interrupt(fiber))
    // Let the subscription start before the caller acts.
    yield* Effect.sleep("10 millis")
    const next = (pred: (e: ModuleEvent) => boolean, timeoutMs = 20_000) =>
      Effect.promise(async () => {
        const deadline = Date.now() + timeoutMs
        for (;;) {
          const found = seen.find((e) => !taken.has(e) && pred(e))
          if (found !== undefined) {
            taken.add(found)
            return found
          }
          if (Date.now() > deadline) {
            throw new Error(`no matching event within ${timeoutMs} ms; saw: ${seen.map((e) => `${e.module}:${e.kind}`).join(", ")}`)
          }
          await new Promise((resolve) => setTimeout(resolve, 10))
        }
      })
    return { next, all: () => seen }
  })

/** Polls `check` until it returns something other than undefined (at most `timeoutMs`). */
export const until = <A>(check: () => A | undefined, timeoutMs = 20_000, what = "condition"): Effect.Effect<A> =>
  Effect.promise(() => eventually(check, timeoutMs, what))

