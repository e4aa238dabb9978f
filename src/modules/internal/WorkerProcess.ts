/**
 * The server's side of one worker process: spawning it, loading a module in it, sending calls and
 * matching their answers, its console output, and its end. Plain callbacks rather than Effects:
 * every call of the module passes through here.
 */
import { spawn } from "node:child_process"
import type { ChildProcess } from "node:child_process"
import type * as Net from "node:net"
import { fileURLToPath } from "node:url"
import type { ModuleFailure } from "../Errors.js"
import { adoptedTag, adoptTag, openTag } from "./DirectWire.js"
import { FrameReader, FrameWriter, FromWorker, type FromWorkerMessage, type LoadSpec, type ReadyInfo, ToWorker, type ToWorkerMessage } from "./Wire.js"

/** How a call ended. */
export type CallResult =
  | { readonly ok: true; readonly value: unknown }
  | { readonly ok: false; readonly reason: ModuleFailure; readonly message: string; readonly traceback: string }

/** A call on its way to a worker, with the callback that receives its result (exactly once). */
export interface Call {
  readonly fn: string | null
  readonly args: ReadonlyArray<unknown>
  readonly clientIp: string
  readonly done: (result: CallResult) => void
}

/** Why a worker did not become ready. */
export interface LoadFailure {
  readonly reason: "import-failed" | "import-timeout"
  readonly message: string
  readonly traceback: string
  /** The local files the worker had loaded before it failed (to watch for a fix). */
  readonly files: ReadonlyArray<string>
}

/** What a worker process reports to its owner. */
export interface WorkerEvents {
  /** A line of the module's output: a console record (level, text) or a raw line of stdout/stderr. */
  readonly onLog: (level: string, message: string) => void
  /** The module loaded more local files after it was ready. */
  readonly onFiles: (files: ReadonlyArray<string>) => void
  /** The process ended (after every call in flight was failed with worker-crashed). */
  readonly onExit: (code: number | null, signal: NodeJS.Signals | null) => void
  /** A retiring worker reported the calls it still runs, or that one more ended (see `held`). */
  readonly onSlots?: (() => void) | undefined
}

/** One worker process and the calls in flight in it. */
export class WorkerProcess {
  private readonly child: ChildProcess
  private readonly writer: FrameWriter<ToWorkerMessage>
  private readonly pending = new Map<number, Call>()
  private nextId = 0
  private nextHandover = 0
  private hello = false
  private loadWaiter: ((message: FromWorkerMessage | "hello" | "exit") => void) | undefined
  private exitWaiters: Array<() => void> = []
  private stopTimer: NodeJS.Timeout | undefined
  private limitSent = 0
  private retiring = false
  private retiredWaiters: Array<() => void> = []
  /**
   * The calls this worker may be running (its own count, the server's and the direct routes'): the
   * limit it was given until, once retired, it reports the real number; 0 once it has exited.
   */
  held = 0
  /** False once the process has exited. */
  alive = true

  private events: WorkerEvents

  /**
   * Spawns a worker process. With `typescript`, it registers the TypeScript loader as it starts,
   * so that a spare worker (see Standby) is ready for a TypeScript module before one is asked for.
   */
  constructor(events: WorkerEvents, options: { readonly typescript?: boolean } = {}) {
    this.events = events
    const script = workerScript()
    const fromSource = script.endsWith(".ts")
    const args = [...(fromSource ? ["--import", "tsx"] : []), script, ...(options.typescript === true ? ["--typescript"] : [])]
    this.child = spawn(process.execPath, args, {
      // fd 3 is the worker's channel; the IPC channel (fd 4) carries the sockets of direct routes.
      stdio: ["ignore", "pipe", "pipe", "pipe", "ipc"],
      env: fromSource ? { ...process.env, TROUPE_WORKER_TSX: "preloaded" } : process.env
    })
    const channel = this.child.stdio[3] as Net.Socket
    this.writer = new FrameWriter<ToWorkerMessage>(channel)
    const reader = new FrameReader<FromWorkerMessage>((message) => this.receive(message), (error) => {
      this.events.onLog("error", `bad message from the worker: ${error.message}`)
      this.kill()
    })
    channel.on("data", (chunk: Buffer) => reader.push(chunk))
    channel.on("error", () => {})
    lines(this.child.stdout!, (line) => this.output(line, "info"))
    lines(this.child.stderr!, (line) => this.output(line, "error"))
    this.child.on("error", (error) => this.events.onLog("error", `worker process error: ${error.message}`))
    this.child.on("exit", (code, signal) => this.exited(code, signal))
    // A handed-over socket is closed here by now (DirectWire.ts): the worker may open the route.
    this.child.on("message", (message: unknown) => {
      if (Array.isArray(message) && message[0] === adoptedTag && this.child.connected) this.child.send([openTag, message[1]])
    })
    this.child.channel?.unref()
  }

  /** Sends what the process reports from now on to `events` (a spare worker gets its owner). */
  attach(events: WorkerEvents): this {
    this.events = events
    return this
  }

  /** The process id (undefined if it could not be spawned). */
  get pid(): number | undefined {
    return this.child.pid
  }

  /** Calls sent to this worker and not answered yet. */
  get inFlight(): number {
    return this.pending.size
  }

  /**
   * Loads the module: resolves with what the worker reports once the import (and a class's `init`)
   * finished, or rejects with a LoadFailure. The import gets `timeoutMs` from the moment the worker
   * is up (Node's own start-up is not counted; it gets `startupMs`); past it the process is killed.
   */
  load(spec: LoadSpec, timeoutMs: number, startupMs = 30_000): Promise<ReadyInfo> {
    return new Promise<ReadyInfo>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined
      const expire = (ms: number, message: string) => {
        if (timer !== undefined) clearTimeout(timer)
        timer = setTimeout(() => {
          this.loadWaiter = undefined
          this.kill()
          reject(failure("import-timeout", message, "", []))
        }, ms)
      }
      const send = () => {
        expire(timeoutMs, `the import did not finish within ${timeoutMs} ms; the worker was killed`)
        this.writer.write([ToWorker.Load, spec])
      }
      this.loadWaiter = (message) => {
        if (message === "hello") return send()
        clearTimeout(timer)
        this.loadWaiter = undefined
        if (message === "exit") {
          const end = this.child.signalCode !== null ? `signal ${this.child.signalCode}` : `exit code ${this.child.exitCode}`
          reject(failure("import-failed", `the worker exited while importing (${end})`, "", []))
        } else if (message[0] === FromWorker.Ready) resolve(message[1])
        else if (message[0] === FromWorker.LoadFailed) reject(failure("import-failed", message[1], message[2] ?? "", message[3] ?? []))
      }
      if (this.hello) send()
      else expire(startupMs, `the worker process did not start within ${startupMs} ms; it was killed`)
      if (!this.alive) this.loadWaiter("exit")
    })
  }

  /** Sends a call; its `done` runs with the answer, or with worker-crashed if the process ends first. */
  call(call: Call): void {
    if (!this.alive) return call.done(crashed)
    const id = this.nextId++
    try {
      this.writer.write([ToWorker.Call, id, call.fn, call.args, call.clientIp])
    } catch (error) {
      return call.done({
        ok: false,
        reason: "call-failed",
        message: `the arguments cannot be sent to the worker: ${error instanceof Error ? error.message : String(error)}`,
        traceback: ""
      })
    }
    this.pending.set(id, call)
  }

  /** Sets how many calls the worker may run at once (the server's and the direct routes' together). */
  setLimit(calls: number): void {
    if (!this.alive || this.retiring || calls === this.limitSent) return
    this.limitSent = calls
    this.held = calls
    this.writer.write([ToWorker.Limit, calls])
  }

  /**
   * Tells the worker to take no new direct calls (they are answered Moved); resolves once it has said
   * how many calls it still runs (`held` from then on), or it has exited.
   */
  retire(): Promise<void> {
    if (!this.alive) return Promise.resolve()
    const reported = new Promise<void>((resolve) => this.retiredWaiters.push(resolve))
    if (!this.retiring) {
      this.retiring = true
      this.writer.write([ToWorker.Retire])
    }
    return reported
  }

  /** True once `retire` was called. */
  get isRetiring(): boolean {
    return this.retiring
  }

  /**
   * Hands a client's socket to the worker as a direct route (its calls then bypass the server).
   * The socket must be paused, with nothing unread in it; `clientIp` is what a dispatch method gets.
   */
  adopt(socket: Net.Socket, clientIp: string): boolean {
    if (!this.alive || this.retiring || this.child.connected !== true) return false
    this.child.send([adoptTag, clientIp, this.nextHandover++], socket, (error) => {
      if (error !== null && error !== undefined) socket.destroy()
    })
    return true
  }

  /**
   * Asks the worker to stop (it runs the module's `dispose`) and resolves once the process is gone;
   * after `graceMs` it is killed.
   */
  stop(graceMs: number): Promise<void> {
    if (!this.alive) return Promise.resolve()
    const gone = new Promise<void>((resolve) => this.exitWaiters.push(resolve))
    try {
      this.writer.write([ToWorker.Stop])
      this.writer.flush()
    } catch {
      this.kill()
    }
    if (this.stopTimer === undefined) {
      this.stopTimer = setTimeout(() => this.kill(), graceMs)
      this.stopTimer.unref()
    }
    return gone
  }

  /** Kills the process at once (SIGKILL). */
  kill(): void {
    if (this.alive) this.child.kill("SIGKILL")
  }

  private receive(message: FromWorkerMessage): void {
    switch (message[0]) {
      case FromWorker.Ok:
        return this.answer(message[1], { ok: true, value: message[2] })
      case FromWorker.Err:
        return this.answer(message[1], { ok: false, reason: message[2], message: message[3], traceback: message[4] ?? "" })
      case FromWorker.Hello:
        this.hello = true
        return this.loadWaiter?.("hello")
      case FromWorker.Ready:
      case FromWorker.LoadFailed:
        return this.loadWaiter?.(message)
      case FromWorker.Files:
        return this.events.onFiles(message[1])
      case FromWorker.Retired:
        this.held = message[1]
        for (const resolve of this.retiredWaiters.splice(0)) resolve()
        return this.events.onSlots?.()
      case FromWorker.Freed:
        this.held = Math.max(0, this.held - 1)
        return this.events.onSlots?.()
    }
  }

  private answer(id: number, result: CallResult): void {
    const call = this.pending.get(id)
    if (call === undefined) return
    this.pending.delete(id)
    call.done(result)
  }

  private output(line: string, level: string): void {
    if (line.charCodeAt(0) === 0x1e) {
      try {
        const record = JSON.parse(line.slice(1)) as { level: string; msg: string }
        return this.events.onLog(record.level, record.msg)
      } catch {
        // not one of ours after all: log the raw line
      }
    }
    this.events.onLog(level, line)
  }

  private exited(code: number | null, signal: NodeJS.Signals | null): void {
    this.alive = false
    this.held = 0
    for (const resolve of this.retiredWaiters.splice(0)) resolve()
    if (this.stopTimer !== undefined) clearTimeout(this.stopTimer)
    const calls = Array.from(this.pending.values())
    this.pending.clear()
    for (const call of calls) call.done(crashed)
    this.loadWaiter?.("exit")
    for (const resolve of this.exitWaiters.splice(0)) resolve()
    this.events.onExit(code, signal)
  }
}

// ---------------------------------------------------------------------------------------------
// private

// The worker's entry beside this module: JavaScript in the build; under the test runner this module
// is TypeScript, and the worker then needs tsx too, unless TROUPE_MODULE_WORKER names a built worker
// (the module tests do, after `npm run build`, because tsx costs each worker a second on this machine).
const workerScript = (): string => {
  const override = process.env["TROUPE_MODULE_WORKER"]
  if (override !== undefined && override !== "") return override
  return fileURLToPath(new URL(import.meta.url.endsWith(".ts") ? "./WorkerMain.ts" : "./WorkerMain.js", import.meta.url))
}

const crashed: CallResult = {
  ok: false,
  reason: "worker-crashed",
  message: "the worker process died while running this call",
  traceback: ""
}

const failure = (
  reason: LoadFailure["reason"],
  message: string,
  traceback: string,
  files: ReadonlyArray<string>
): LoadFailure => ({ reason, message, traceback, files })

// Splits a stream into lines (a last line without a newline is delivered at the end; a line longer
// than 64 KiB is delivered in pieces).
const lines = (stream: NodeJS.ReadableStream, onLine: (line: string) => void): void => {
  let rest = ""
  stream.setEncoding("utf8")
  stream.on("data", (chunk: string) => {
    const parts = (rest + chunk).split("\n")
    rest = parts.pop()!
    for (const line of parts) onLine(line)
    while (rest.length > 65536) {
      onLine(rest.slice(0, 65536))
      rest = rest.slice(65536)
    }
  })
  stream.on("end", () => {
    if (rest !== "") onLine(rest)
    rest = ""
  })
}
