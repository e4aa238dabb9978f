import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as fs from "node:fs"
import * as path from "node:path"
import { InvalidSpec } from "../domain/Errors.js"
import type { JobSpec } from "../domain/JobSpec.js"
import { Executor } from "./Executor.js"
import * as FunctionRunner from "./FunctionRunner.js"
import { Functions } from "./Functions.js"
import * as ShellRunner from "./ShellRunner.js"

/** Tuning for the local executor: the shell runner's kill grace and output cap, the thread pool's size. */
export interface LocalExecutorOptions extends ShellRunner.ShellRunnerOptions, FunctionRunner.FunctionRunnerOptions {}

/** Builds the executor over a shell runner, a function runner and the function registry. */
export const make: Effect.Effect<
  Executor["Type"],
  never,
  ShellRunner.ShellRunner | FunctionRunner.FunctionRunner | Functions
> = Effect.gen(function*() {
  const shell = yield* ShellRunner.ShellRunner
  const functions = yield* FunctionRunner.FunctionRunner
  const registry = yield* Functions
  const checker = new SpecChecker(registry)
  return Executor.of({
    validate: (spec) =>
      Effect.suspend(() => {
        const problem = checker.check(spec)
        return problem === undefined ? Effect.void : Effect.fail(problem)
      }),
    check: (spec) => checker.check(spec),
    run: (request) => request.spec.fn === undefined ? shell.run(request) : functions.run(request),
    runNow: (request) => request.spec.fn === undefined ? undefined : functions.runNow(request),
    isSynchronous: (spec) => spec.fn !== undefined && functions.isSynchronous(spec)
  })
})

/** Provides the executor that runs shell and function jobs on this machine. */
export const layer = (options: LocalExecutorOptions = {}): Layer.Layer<Executor, never, Functions> =>
  Layer.effect(Executor, make).pipe(
    Layer.provide(Layer.merge(ShellRunner.layer(options), FunctionRunner.layer(options)))
  )

// ---------------------------------------------------------------------------------------------
// Private: the checks behind `validate`. Successful file system lookups are cached for a few
// seconds because validate runs on every submit; failures are not cached, so a fix shows at once.

const cacheTtlMs = 3000
const cacheMaxEntries = 4096

class SpecChecker {
  private readonly found = new Map<string, number>()

  constructor(private readonly registry: Functions["Type"]) {}

  check(spec: JobSpec): InvalidSpec | undefined {
    if (spec.fn !== undefined) return this.checkFunction(spec.fn, spec.placement === "thread")
    const cwd = spec.cwd === undefined ? process.cwd() : path.resolve(spec.cwd)
    if (spec.cwd !== undefined && !this.cached(`d\0${cwd}`, () => isDirectory(cwd))) {
      return new InvalidSpec({ reason: "cwd-not-found", message: `cwd does not exist: ${cwd}` })
    }
    if (spec.command === undefined || typeof spec.command === "string") return undefined
    const name = spec.command[0]
    const searchPath = spec.env?.PATH ?? process.env.PATH ?? ""
    const key = name.includes("/") ? `c\0${path.resolve(cwd, name)}` : `p\0${searchPath}\0${cwd}\0${name}`
    if (!this.cached(key, () => resolvesTo(name, cwd, searchPath))) {
      return new InvalidSpec({ reason: "command-not-found", message: `command not found: ${name}` })
    }
    return undefined
  }

  private checkFunction(name: string, onThread: boolean): InvalidSpec | undefined {
    const definition = this.registry.lookup(name)
    if (definition === undefined) {
      const names = this.registry.names()
      return new InvalidSpec({
        reason: "unknown-function",
        message: `unknown function: ${name} (registered: ${names.length === 0 ? "none" : names.join(", ")})`
      })
    }
    if (onThread && definition.module === undefined) {
      return new InvalidSpec({
        reason: "malformed",
        message: `function ${name} cannot run on a thread: its definition has no module { url, export }`
      })
    }
    return undefined
  }

  // True when the lookup succeeded within the TTL, or succeeds now.
  private cached(key: string, lookup: () => boolean): boolean {
    const now = Date.now()
    const expires = this.found.get(key)
    if (expires !== undefined && expires > now) return true
    if (!lookup()) {
      this.found.delete(key)
      return false
    }
    if (this.found.size >= cacheMaxEntries) this.found.clear()
    this.found.set(key, now + cacheTtlMs)
    return true
  }
}

// argv[0] with a slash is a path relative to cwd; without one it is searched on PATH.
const resolvesTo = (name: string, cwd: string, searchPath: string): boolean => {
  if (name.includes("/")) return isExecutableFile(path.resolve(cwd, name))
  for (const dir of searchPath.split(path.delimiter)) {
    if (isExecutableFile(path.resolve(cwd, dir === "" ? "." : dir, name))) return true
  }
  return false
}

const isExecutableFile = (file: string): boolean => {
  try {
    if (!fs.statSync(file).isFile()) return false
    fs.accessSync(file, fs.constants.X_OK)
    return true
  } catch {
    return false
  }
}

const isDirectory = (dir: string): boolean => {
  try {
    return fs.statSync(dir).isDirectory()
  } catch {
    return false
  }
}
