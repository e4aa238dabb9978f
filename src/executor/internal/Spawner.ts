import { spawn, type SpawnOptions } from "node:child_process"
import { CappedFile } from "./CappedFile.js"

/** What to start: one process, detached in its own group, with output captured to files. */
export interface SpawnRequest {
  readonly file: string
  readonly args: ReadonlyArray<string>
  readonly cwd: string
  /** The whole environment of the process; absent means the spawner's own. */
  readonly env?: Readonly<Record<string, string>>
  readonly stdin?: string
  readonly stdoutPath: string
  readonly stderrPath: string
  readonly outputCapBytes: number
}

/** How a started process reports back. Each callback runs at most once. */
export interface SpawnEvents {
  /** The process could not be started (`code` is the errno name, such as ENOENT). */
  readonly onError: (code: string | undefined, message: string) => void
  /** The process started; its group id is its pid. */
  readonly onSpawn: (pid: number) => void
  /** The group leader exited. */
  readonly onExit: (code: number | null, signal: string | null) => void
  /** Both output streams have closed and their files are flushed and closed. */
  readonly onStreamsDone: () => void
}

/** A started (or failed) process, from the caller's side. */
export interface SpawnedProcess {
  /** Stop reading output: a process that left the group may hold the pipes open forever. */
  readonly releaseStreams: () => void
}

/** Starts job processes. */
export interface Spawner {
  readonly spawn: (request: SpawnRequest, events: SpawnEvents) => SpawnedProcess
  /** Stop the spawner itself (a helper process); running jobs are not touched. */
  readonly close: () => void
}

/** Spawns from this process: simple, but `fork` costs this process's main thread, more as it grows. */
export const inProcess: Spawner = {
  spawn: (request, events) => {
    let streams = 2
    const done = () => {
      if (--streams === 0) events.onStreamsDone()
    }
    const out = new CappedFile(request.stdoutPath, request.outputCapBytes, done)
    const err = new CappedFile(request.stderrPath, request.outputCapBytes, done)
    const options: SpawnOptions = {
      cwd: request.cwd,
      detached: true,
      stdio: [request.stdin === undefined ? "ignore" : "pipe", "pipe", "pipe"]
    }
    if (request.env !== undefined) options.env = request.env
    let child: ReturnType<typeof spawn>
    try {
      child = spawn(request.file, request.args as Array<string>, options)
    } catch (error) {
      out.closeEmpty()
      err.closeEmpty()
      const e = error as NodeJS.ErrnoException
      events.onError(e.code, e.message)
      return { releaseStreams: () => {} }
    }
    child.on("error", (error: NodeJS.ErrnoException) => {
      if (child.pid === undefined) events.onError(error.code, error.message)
    })
    child.on("exit", (code, signal) => events.onExit(code, signal))
    if (child.stdout) out.attach(child.stdout)
    else out.closeEmpty()
    if (child.stderr) err.attach(child.stderr)
    else err.closeEmpty()
    if (child.stdin) {
      child.stdin.on("error", () => {})
      child.stdin.end(request.stdin)
    }
    if (child.pid !== undefined) events.onSpawn(child.pid)
    return {
      releaseStreams: () => {
        child.stdout?.destroy()
        child.stderr?.destroy()
      }
    }
  },
  close: () => {}
}
