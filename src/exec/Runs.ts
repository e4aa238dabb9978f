import * as Chunk from "effect/Chunk"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as ChildProcess from "node:child_process"
import { randomUUID } from "node:crypto"
import * as Os from "node:os"
import type { ExecEvent, ExecSpec } from "../protocol/ExecRpc.js"
import { ExecId, Exited, RunInfo, Started } from "../protocol/ExecRpc.js"
import { ExecError } from "./Errors.js"
import { OutputLog, spawnFailed } from "./OutputLog.js"

/** Limits of the command runner. */
export interface RunsOptions {
  /** Output bytes held per command while a client reads it; above this the command is paused. Default 1 MiB. */
  readonly highWater?: number
  /** Output bytes held for a kept command nobody reads; above this it is paused. Default 16 MiB. */
  readonly keptHighWater?: number
  /** How long a kept command that ended stays for `attach`; default 10 minutes. */
  readonly keepFinishedMs?: number
  /** Time between TERM and KILL when a command is stopped because its client went away; default 2 s. */
  readonly killGraceMs?: number
}

/** The default credit window of an output stream. */
export const defaultWindow = 4 * 1024 * 1024

/**
 * The exec server's commands: each runs in its own process group with piped stdin, stdout and
 * stderr, and its output streams to one reader at a time, in order, labelled, under credit.
 * A command whose reader goes away is killed (its whole group), unless it was started with
 * `keepRunning`: then it runs on and its output waits for `attach`.
 */
export class Runs extends Context.Tag("troupe/exec/Runs")<Runs, {
  /** Starts a command in `cwd` (already confined) and streams Started, Output..., Exited. */
  readonly exec: (spec: ExecSpec, cwd: string) => Stream.Stream<ExecEvent, ExecError>
  /** Reads a kept command's output from where the last reader stopped. */
  readonly attach: (id: ExecId, window: number | undefined) => Stream.Stream<ExecEvent, ExecError>
  /** More credit for the reader of a command. */
  readonly grant: (id: ExecId, bytes: number) => Effect.Effect<void>
  /** Writes to a command's stdin; with `eof`, closes it afterwards. */
  readonly sendInput: (id: ExecId, data: Uint8Array, eof: boolean) => Effect.Effect<void, ExecError>
  /** Sends a signal (default SIGTERM) to a command's process group; false when it had already ended. */
  readonly kill: (id: ExecId, signal: string | undefined) => Effect.Effect<boolean, ExecError>
  /** The commands running or kept, oldest first. */
  readonly list: Effect.Effect<ReadonlyArray<RunInfo>>
  /** True while the command's process runs. */
  readonly isAlive: (id: ExecId) => Effect.Effect<boolean>
}>() {}

/** The command runner; closing the scope kills every command's process group. */
export const make = (options: RunsOptions = {}): Effect.Effect<Runs["Type"], never, Scope.Scope> =>
  Effect.gen(function*() {
    const runs = new Map<string, Run>()
    const settings = {
      highWater: options.highWater ?? 1024 * 1024,
      keptHighWater: options.keptHighWater ?? 16 * 1024 * 1024,
      keepFinishedMs: options.keepFinishedMs ?? 600_000,
      killGraceMs: options.killGraceMs ?? 2000
    }
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        for (const run of runs.values()) {
          if (run.running) signal(run.pid, "SIGKILL")
          clearTimeout(run.expiry)
        }
        runs.clear()
      })
    )
    const find = (id: string): Effect.Effect<Run, ExecError> => {
      const run = runs.get(id)
      return run === undefined
        ? Effect.fail(new ExecError({ reason: "not-found", message: `no command with id ${id} on this server` }))
        : Effect.succeed(run)
    }
    // A command nobody will read any more leaves the table; a kept one only after its grace.
    const settle = (run: Run): void => {
      if (run.log.isAttached || run.running) return
      if (run.delivered || !run.keepRunning) {
        runs.delete(run.id)
        return
      }
      clearTimeout(run.expiry)
      run.expiry = setTimeout(() => {
        if (!run.log.isAttached) runs.delete(run.id)
      }, settings.keepFinishedMs)
      run.expiry.unref()
    }
    // Makes the caller the command's reader for the scope: Started, then its output under credit.
    const reader = (
      run: Run,
      window: number | undefined
    ): Effect.Effect<Stream.Stream<ExecEvent>, ExecError, Scope.Scope> =>
      Effect.gen(function*() {
        const token = yield* run.log.attach(window ?? defaultWindow)
        clearTimeout(run.expiry)
        yield* Effect.addFinalizer(() =>
          Effect.sync(() => {
            run.log.detach(token)
            if (!run.delivered && !run.keepRunning && run.running) stop(run, settings.killGraceMs)
            settle(run)
          })
        )
        const events = Stream.repeatEffectChunkOption(
          Effect.flatMap(run.log.take(token), (taken) => {
            if (taken.length === 0) return Effect.fail(Option.none())
            if (taken[taken.length - 1]!._tag === "Exited") {
              // The reader has the end: the command leaves the table before the reader hears of it.
              run.delivered = true
              runs.delete(run.id)
            }
            return Effect.succeed(Chunk.unsafeFromArray<ExecEvent>(taken as Array<ExecEvent>))
          })
        )
        return Stream.concat(Stream.succeed(new Started({ id: run.id, pid: run.pid })), events)
      })

    return Runs.of({
      // Spawning and becoming the reader are one uninterruptible step, so no command is left without
      // a reader that would kill it.
      exec: (spec, cwd) =>
        Stream.unwrapScoped(Effect.uninterruptible(
          Effect.flatMap(spawn(spec, cwd, settings, (run) => settle(run)), (run) => {
            runs.set(run.id, run)
            return reader(run, spec.window)
          })
        )),
      attach: (id, window) => Stream.unwrapScoped(Effect.flatMap(find(id), (run) => reader(run, window))),
      grant: (id, bytes) => Effect.sync(() => runs.get(id)?.log.grant(bytes)),
      sendInput: (id, data, eof) =>
        Effect.flatMap(find(id), (run) =>
          Effect.async<void, ExecError>((resume) => {
            const stdin = run.child.stdin
            if (stdin === null || stdin.writableEnded || stdin.destroyed || !run.running) {
              resume(Effect.fail(new ExecError({ reason: "invalid", message: `the stdin of ${id} is closed` })))
              return
            }
            const done = () => {
              if (eof) stdin.end()
              resume(Effect.void)
            }
            if (data.length === 0) done()
            else stdin.write(data, () => done())
          })),
      kill: (id, name) =>
        Effect.flatMap(find(id), (run) => {
          const chosen = name ?? "SIGTERM"
          const normalized = chosen.startsWith("SIG") ? chosen : `SIG${chosen}`
          if (!(normalized in Os.constants.signals)) {
            return Effect.fail(new ExecError({ reason: "invalid", message: `unknown signal ${chosen}` }))
          }
          return Effect.sync(() => run.running && signal(run.pid, normalized as NodeJS.Signals))
        }),
      list: Effect.sync(() =>
        Array.from(runs.values(), (run) =>
          new RunInfo({
            id: run.id,
            pid: run.pid,
            command: run.display,
            cwd: run.cwd,
            startedAt: run.startedAt,
            running: run.running,
            attached: run.log.isAttached,
            keepRunning: run.keepRunning
          }))
      ),
      isAlive: (id) => Effect.sync(() => runs.get(id)?.running ?? false)
    })
  })

/** The command runner as a layer. */
export const layer = (options: RunsOptions = {}): Layer.Layer<Runs> => Layer.scoped(Runs, make(options))

// ---------------------------------------------------------------------------------------------
// private

interface Run {
  readonly id: ExecId
  readonly pid: number
  readonly child: ChildProcess.ChildProcess
  readonly display: string
  readonly cwd: string
  readonly startedAt: number
  readonly keepRunning: boolean
  readonly log: OutputLog
  running: boolean
  /** The reader took the Exited event: nobody needs this command any more. */
  delivered: boolean
  expiry: ReturnType<typeof setTimeout> | undefined
}

const spawn = (
  spec: ExecSpec,
  cwd: string,
  settings: { readonly highWater: number; readonly keptHighWater: number },
  onEnd: (run: Run) => void
): Effect.Effect<Run, ExecError> => {
  const { args, file } = argv(spec)
  const display = typeof spec.command === "string" ? spec.command : spec.command.join(" ")
  return Effect.async<Run, ExecError>((resume) => {
    let child: ChildProcess.ChildProcess
    try {
      child = ChildProcess.spawn(file, args, {
        cwd,
        env: spec.env === undefined ? process.env : { ...process.env, ...spec.env },
        detached: true,
        stdio: ["pipe", "pipe", "pipe"]
      })
    } catch (cause) {
      resume(Effect.fail(spawnFailed(display, cause)))
      return
    }
    child.once("error", (cause) => resume(Effect.fail(spawnFailed(display, cause))))
    child.once("spawn", () => {
      const log = new OutputLog(settings.highWater, settings.keptHighWater, (pause) => {
        if (pause) {
          child.stdout!.pause()
          child.stderr!.pause()
        } else {
          child.stdout!.resume()
          child.stderr!.resume()
        }
      })
      const run: Run = {
        id: ExecId.make(randomUUID()),
        pid: child.pid!,
        child,
        display,
        cwd,
        startedAt: Date.now(),
        keepRunning: spec.keepRunning ?? false,
        log,
        running: true,
        delivered: false,
        expiry: undefined
      }
      child.stdin!.on("error", () => undefined)
      child.stdout!.on("data", (data: Buffer) => log.write("stdout", data))
      child.stderr!.on("data", (data: Buffer) => log.write("stderr", data))
      child.once("close", (exitCode, signalName) => {
        run.running = false
        log.end(new Exited({ exitCode, signal: signalName }))
        onEnd(run)
      })
      resume(Effect.succeed(run))
    })
  })
}

const argv = (spec: ExecSpec): { readonly file: string; readonly args: ReadonlyArray<string> } => {
  const shell = spec.shell ?? typeof spec.command === "string"
  const words = typeof spec.command === "string" ? [spec.command] : spec.command
  return shell ? { file: "/bin/sh", args: ["-c", words.join(" ")] } : { file: words[0]!, args: words.slice(1) }
}

const signal = (pid: number, name: NodeJS.Signals): boolean => {
  try {
    process.kill(-pid, name)
    return true
  } catch {
    return false
  }
}

// TERM the group now, KILL it after the grace if it is still there.
const stop = (run: Run, graceMs: number): void => {
  signal(run.pid, "SIGTERM")
  setTimeout(() => {
    if (run.running) signal(run.pid, "SIGKILL")
  }, graceMs).unref()
}
