import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { type ChildProcess, spawn, type SpawnOptions } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { glob } from "tinyglobby"
import { RunOutcome, type RunRequest } from "./Executor.js"
import { CappedFile } from "./internal/CappedFile.js"
import { completed, failed, messageOf, timedOut } from "./internal/outcome.js"
import { groupAlive, signalGroup } from "./internal/processGroup.js"

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
}

/** The default cap on each of stdout and stderr: 64 MiB. */
export const defaultOutputCapBytes = 64 * 1024 * 1024

/** The default grace between SIGTERM and SIGKILL: 2 s. */
export const defaultKillGraceMs = 2000

/** Builds a shell runner. */
export const make = (options: ShellRunnerOptions = {}): ShellRunner["Type"] => {
  const config: AttemptConfig = {
    killGraceMs: options.killGraceMs ?? defaultKillGraceMs,
    outputCapBytes: options.outputCapBytes ?? defaultOutputCapBytes
  }
  return {
    run: (request) =>
      Effect.async<RunOutcome>((resume) => {
        const attempt = new ShellAttempt(request, config, resume)
        attempt.start()
        return Effect.async<void>((resumeCancel) => attempt.cancel(() => resumeCancel(Effect.void)))
      })
  }
}

/** Provides a shell runner. */
export const layer = (options: ShellRunnerOptions = {}): Layer.Layer<ShellRunner> =>
  Layer.succeed(ShellRunner, make(options))

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
  private child: ChildProcess | undefined
  private pendingStreams = 2
  private exit: { readonly code: number | null; readonly signal: NodeJS.Signals | null } | undefined
  private spawnError: NodeJS.ErrnoException | undefined
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
    const done = () => this.streamDone()
    const out = new CappedFile(stdoutPath, this.config.outputCapBytes, done)
    const err = new CappedFile(stderrPath, this.config.outputCapBytes, done)
    const options: SpawnOptions = {
      cwd: this.cwd,
      detached: true,
      stdio: [spec.stdin === undefined ? "ignore" : "pipe", "pipe", "pipe"]
    }
    if (spec.env !== undefined) options.env = { ...process.env, ...spec.env }
    const command = spec.command ?? []
    let child: ChildProcess
    try {
      child = typeof command === "string"
        ? spawn("/bin/sh", ["-c", command], options)
        : spawn(command[0]!, command.slice(1), options)
    } catch (error) {
      out.closeEmpty()
      err.closeEmpty()
      return this.finishWith(failed(`cannot start ${describeCommand(command)}: ${messageOf(error)}`))
    }
    this.child = child
    child.on("error", (error) => {
      if (child.pid === undefined) {
        this.spawnError = error
        this.exit ??= { code: null, signal: null }
        this.check()
      }
    })
    child.on("exit", (code, signal) => {
      this.exit = { code, signal }
      // While killing, the rest of the group is watched once the leader is gone.
      if (this.killing && !this.groupGone) this.probe(child.pid!)
      this.check()
    })
    if (child.stdout) out.attach(child.stdout)
    else out.closeEmpty()
    if (child.stderr) err.attach(child.stderr)
    else err.closeEmpty()
    if (child.stdin) {
      child.stdin.on("error", () => {})
      child.stdin.end(spec.stdin)
    }
    if (spec.timeLimitMs !== undefined && child.pid !== undefined) {
      this.timeLimitTimer = setTimeout(() => {
        this.timedOut = true
        this.kill()
      }, spec.timeLimitMs)
    }
  }

  /** Called by the interruption: kill the group, and call `done` once everything is gone. */
  cancel(done: () => void): void {
    if (this.settled) return done()
    this.onSettled = done
    this.kill()
  }

  private kill(): void {
    if (this.killing || this.settled) return
    const pid = this.child?.pid
    this.killing = true
    if (pid === undefined) {
      this.groupGone = true
      return this.check()
    }
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
    this.strayTimer = setTimeout(() => {
      this.child?.stdout?.destroy()
      this.child?.stderr?.destroy()
    }, strayPipeGraceMs)
    this.check()
  }

  private streamDone(): void {
    this.pendingStreams--
    this.check()
  }

  private check(): void {
    if (this.settled || this.exit === undefined || this.pendingStreams > 0) return
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

  private spawnFailure(error: NodeJS.ErrnoException): RunOutcome {
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
