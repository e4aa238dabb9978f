import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as fs from "node:fs"
import * as path from "node:path"
import { glob } from "tinyglobby"
import { RunOutcome, type RunRequest } from "./Executor.js"
import * as HelperSpawner from "./internal/HelperSpawner.js"
import { completed, failed, timedOut } from "./internal/outcome.js"
import { groupAlive, signalGroup } from "./internal/processGroup.js"
import { inProcess, type SpawnedProcess, type Spawner } from "./internal/Spawner.js"

/** Runs the attempts of shell jobs as detached process groups, with output captured to files. */
export class ShellRunner extends Context.Tag("troupe/ShellRunner")<ShellRunner, {
  /** Run one attempt to the end; never fails, and interruption kills the process group and waits for it. */
  readonly run: (request: RunRequest) => Effect.Effect<RunOutcome>
}>() {}

/** Tuning for the shell runner. */
export interface ShellRunnerOptions {
  /** How long a killed group gets between SIGTERM and SIGKILL; default 2000 ms. */
  readonly killGraceMs?: number
  /** The most bytes kept per output stream; default 64 MiB. */
  readonly outputCapBytes?: number
  /**
   * Where processes are forked: `helper` (default) uses a small helper process, so that `fork`
   * runs on another core and stays cheap however large the runtime grows; `in-process` forks here.
   */
  readonly spawner?: "helper" | "in-process"
  /** How many helper processes fork side by side; default 2 (each is a small Node process). */
  readonly spawnHelpers?: number
}

/** Two helpers: measured 76% → 82% of raw spawn for `true` jobs at concurrency 2 (docs/BENCHMARKS.md). */
export const defaultSpawnHelpers = 2

/** The default cap on each of stdout and stderr: 64 MiB. */
export const defaultOutputCapBytes = 64 * 1024 * 1024

/** The default grace between SIGTERM and SIGKILL: 2 s. */
export const defaultKillGraceMs = 2000

/** Builds a shell runner; `close` stops its helper process, if it started one. */
export const make = (options: ShellRunnerOptions = {}): ShellRunner["Type"] & { readonly close: () => void } => {
  const spawner: Spawner = options.spawner === "in-process"
    ? inProcess
    : HelperSpawner.makePool(options.spawnHelpers ?? defaultSpawnHelpers)
  const config: AttemptConfig = {
    killGraceMs: options.killGraceMs ?? defaultKillGraceMs,
    outputCapBytes: options.outputCapBytes ?? defaultOutputCapBytes
  }
  return {
    run: (request) =>
      Effect.async<RunOutcome>((resume) => {
        const attempt = new ShellAttempt(request, config, spawner, resume)
        attempt.start()
        return Effect.async<void>((resumeCancel) => attempt.cancel(() => resumeCancel(Effect.void)))
      }),
    close: () => spawner.close()
  }
}

/** Provides a shell runner; its helper process stops with the layer. */
export const layer = (options: ShellRunnerOptions = {}): Layer.Layer<ShellRunner> =>
  Layer.scoped(
    ShellRunner,
    Effect.acquireRelease(Effect.sync(() => make(options)), (runner) => Effect.sync(() => runner.close()))
  )

// ---------------------------------------------------------------------------------------------
// Private: one attempt is a small state machine driven by child-process callbacks, so a spawn
// costs no fibers, no timers (unless there is a time limit) and no polling.

interface AttemptConfig {
  readonly killGraceMs: number
  readonly outputCapBytes: number
}

// How often a dying group is probed, and how long after SIGKILL we wait at most.
const probeIntervalMs = 25
const afterKillMaxWaitMs = 2000
// Once the group is gone, pipes still held by escaped processes are closed after this delay.
const strayPipeGraceMs = 200

class ShellAttempt {
  private process: SpawnedProcess | undefined
  private pid: number | undefined
  private streamsDone = false
  private exit: { readonly code: number | null; readonly signal: string | null } | undefined
  private spawnError: { readonly code: string | undefined; readonly message: string } | undefined
  private timedOut = false
  private killing = false
  private groupGone = false
  private settled = false
  private onSettled: (() => void) | undefined
  private timeLimitTimer: NodeJS.Timeout | undefined
  private killTimer: NodeJS.Timeout | undefined
  private probeTimer: NodeJS.Timeout | undefined
  private strayTimer: NodeJS.Timeout | undefined
  private readonly cwd: string

  constructor(
    private readonly request: RunRequest,
    private readonly config: AttemptConfig,
    private readonly spawner: Spawner,
    private readonly resume: (outcome: Effect.Effect<RunOutcome>) => void
  ) {
    this.cwd = request.spec.cwd === undefined ? process.cwd() : path.resolve(request.spec.cwd)
  }

  start(): void {
    const { jobDir, spec } = this.request
    const stdoutPath = path.join(jobDir, "stdout")
    const stderrPath = path.join(jobDir, "stderr")
    // A retry must not show the output of an earlier attempt; the files are recreated on first byte.
    if (this.request.attempt > 1) {
      removeQuietly(stdoutPath)
      removeQuietly(stderrPath)
    }
    const command = spec.command ?? []
    this.process = this.spawner.spawn({
      file: typeof command === "string" ? "/bin/sh" : command[0]!,
      args: typeof command === "string" ? ["-c", command] : command.slice(1),
      cwd: this.cwd,
      // Always the runtime's environment as it is now: a helper's own was fixed when it started.
      env: spec.env === undefined ? stringEnv(process.env) : { ...stringEnv(process.env), ...spec.env },
      ...(spec.stdin === undefined ? {} : { stdin: spec.stdin }),
      stdoutPath,
      stderrPath,
      outputCapBytes: this.config.outputCapBytes
    }, {
      onError: (code, message) => {
        this.spawnError = { code, message }
        this.exit ??= { code: null, signal: null }
        this.check()
      },
      onSpawn: (pid) => {
        this.pid = pid
        if (spec.timeLimitMs !== undefined) {
          this.timeLimitTimer = setTimeout(() => {
            this.timedOut = true
            this.kill()
          }, spec.timeLimitMs)
        }
        // A kill asked for before the process existed is carried out now.
        if (this.killing) this.signalStarted(pid)
      },
      onExit: (code, signal) => {
        this.exit = { code, signal }
        // While killing, the rest of the group is watched once the leader is gone.
        if (this.killing && !this.groupGone && this.pid !== undefined) this.probe(this.pid)
        this.check()
      },
      onStreamsDone: () => {
        this.streamsDone = true
        this.check()
      }
    })
  }

  /** Called by the interruption: kill the group, and call `done` once everything is gone. */
  cancel(done: () => void): void {
    if (this.settled) return done()
    this.onSettled = done
    this.kill()
  }

  private kill(): void {
    if (this.killing || this.settled) return
    this.killing = true
    if (this.pid === undefined) {
      // Not started (yet): a failed start settles by itself, a late start is killed in onSpawn.
      if (this.exit !== undefined) {
        this.groupGone = true
        this.check()
      }
      return
    }
    this.signalStarted(this.pid)
  }

  private signalStarted(pid: number): void {
    signalGroup(pid, "SIGTERM")
    this.killTimer = setTimeout(() => this.forceKill(pid), this.config.killGraceMs)
    if (this.exit !== undefined) this.probe(pid)
  }

  private forceKill(pid: number): void {
    signalGroup(pid, "SIGKILL")
    // SIGKILL cannot be caught; whatever is left is on its way out. Stop waiting after a bound.
    this.killTimer = setTimeout(() => this.markGroupGone(), afterKillMaxWaitMs)
  }

  // Polls the group (only on the kill path, after the leader has exited) until no live member is left.
  private probe(pid: number): void {
    clearTimeout(this.probeTimer)
    if (!groupAlive(pid)) return this.markGroupGone()
    this.probeTimer = setTimeout(() => this.probe(pid), probeIntervalMs)
  }

  private markGroupGone(): void {
    if (this.groupGone) return
    this.groupGone = true
    clearTimeout(this.probeTimer)
    clearTimeout(this.killTimer)
    // A process that left the group (setsid) may still hold our pipes: stop reading them soon.
    this.strayTimer = setTimeout(() => this.process?.releaseStreams(), strayPipeGraceMs)
    this.check()
  }


  private check(): void {
    if (this.settled || this.exit === undefined || !this.streamsDone) return
    if (this.killing && !this.groupGone) return
    this.finish()
  }

  private finish(): void {
    const spec = this.request.spec
    const { code, signal } = this.exit!
    let outcome: RunOutcome
    if (this.spawnError !== undefined) outcome = this.spawnFailure(this.spawnError)
    else if (this.timedOut) outcome = timedOut(spec.timeLimitMs!)
    else if (signal !== null) outcome = failed(`killed by signal ${signal}`)
    else if (code === 0) outcome = completed(0)
    else outcome = failed(`exit code ${code}`, code)
    if (spec.outputs === undefined || spec.outputs.length === 0 || this.spawnError !== undefined) {
      return this.finishWith(outcome)
    }
    this.settle()
    this.resume(Effect.map(collectOutputs(spec.outputs, this.cwd), (outputs) => withOutputs(outcome, outputs)))
  }

  private spawnFailure(error: { readonly code: string | undefined; readonly message: string }): RunOutcome {
    const command = this.request.spec.command ?? []
    if (error.code === "ENOENT" || error.code === "ENOTDIR") {
      if (!isDirectory(this.cwd)) return failed(`cwd does not exist: ${this.cwd}`)
      const name = typeof command === "string" ? "/bin/sh" : command[0]!
      return failed(`command not found: ${name}`)
    }
    if (error.code === "EACCES") return failed(`permission denied: ${describeCommand(command)}`)
    return failed(`cannot start ${describeCommand(command)}: ${error.message}`)
  }

  private finishWith(outcome: RunOutcome): void {
    this.settle()
    this.resume(Effect.succeed(outcome))
  }

  private settle(): void {
    this.settled = true
    clearTimeout(this.timeLimitTimer)
    clearTimeout(this.killTimer)
    clearTimeout(this.probeTimer)
    clearTimeout(this.strayTimer)
    this.onSettled?.()
  }
}

// The environment as strings only (process.env may hold undefined values).
const stringEnv = (env: NodeJS.ProcessEnv): Record<string, string> => {
  const out: Record<string, string> = {}
  for (const [key, value] of Object.entries(env)) if (value !== undefined) out[key] = value
  return out
}

const describeCommand = (command: string | ReadonlyArray<string>): string =>
  typeof command === "string" ? command : command.join(" ")

const removeQuietly = (file: string): void => {
  try {
    fs.rmSync(file, { force: true })
  } catch {
    // a file that cannot be removed is overwritten on the first byte anyway
  }
}

const isDirectory = (dir: string): boolean => {
  try {
    return fs.statSync(dir).isDirectory()
  } catch {
    return false
  }
}

const withOutputs = (outcome: RunOutcome, outputs: ReadonlyArray<string>): RunOutcome =>
  outputs.length === 0 ? outcome : new RunOutcome({ ...outcome, outputs }, true)

// Matches the globs inside cwd; patterns that are absolute or climb with `..` are ignored, and
// matches that resolve (through symlinks) outside cwd are dropped.
const collectOutputs = (patterns: ReadonlyArray<string>, cwd: string): Effect.Effect<ReadonlyArray<string>> =>
  Effect.promise(async () => {
    const safe = patterns.filter(isConfinedPattern)
    if (!safe.some((pattern) => !pattern.startsWith("!"))) return []
    const matches = await glob(safe, {
      cwd,
      absolute: true,
      onlyFiles: true,
      dot: true,
      expandDirectories: false,
      followSymbolicLinks: false
    })
    const root = await fs.promises.realpath(cwd)
    const confined = await Promise.all(matches.map(async (match) => {
      const real = await fs.promises.realpath(match).catch(() => undefined)
      return real !== undefined && isInside(root, real) ? match : undefined
    }))
    return confined.filter((match): match is string => match !== undefined).sort()
  }).pipe(Effect.catchAllDefect(() => Effect.succeed([])))

const isConfinedPattern = (pattern: string): boolean => {
  const body = pattern.startsWith("!") ? pattern.slice(1) : pattern
  return body.length > 0 && !path.isAbsolute(body) && !body.split(/[\\/]/).includes("..")
}

const isInside = (root: string, target: string): boolean => {
  const relative = path.relative(root, target)
  return relative.length > 0 && !relative.startsWith("..") && !path.isAbsolute(relative)
}
