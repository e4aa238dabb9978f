import * as Effect from "effect/Effect"
import type { Channel } from "../protocol/ExecRpc.js"
import { Exited, Output } from "../protocol/ExecRpc.js"
import { ExecError } from "./Errors.js"

/** What the reader of a command's output receives: Output chunks, then one Exited. */
export type LogEvent = Output | Exited

/**
 * The output of one running command between its pipes and the one client reading it. It holds at
 * most about a high-water mark of bytes: above it, it asks the process to pause (the pipes fill and
 * the command blocks on write, as under a slow terminal); below half of it, it resumes it. The
 * reader may only take what it was granted (credit), so a client's memory is bounded as well, and
 * output with no reader at all (a kept command whose client went away) waits here for `attach`.
 */
export class OutputLog {
  private readonly events: Array<LogEvent> = []
  private bytes = 0
  private paused = false
  private credit = 0
  private reader: symbol | undefined
  private wake: (() => void) | undefined
  private ended = false

  constructor(
    /** The bytes held while a reader is attached before the process is paused. */
    private readonly attachedHighWater: number,
    /** The bytes held while nobody reads (a kept command) before the process is paused. */
    private readonly detachedHighWater: number,
    /** Called with true to pause the process's pipes, false to resume them. */
    private readonly pressure: (pause: boolean) => void
  ) {}

  private get highWater(): number {
    return this.reader === undefined ? this.detachedHighWater : this.attachedHighWater
  }

  /** Appends bytes the command wrote. */
  write(channel: Channel, data: Uint8Array): void {
    const last = this.events[this.events.length - 1]
    // Coalesce small writes of the same stream, so a chatty command costs few wire messages.
    if (last !== undefined && last._tag === "Output" && last.channel === channel && last.data.length < 65536) {
      this.events[this.events.length - 1] = new Output({ channel, data: concat(last.data, data) })
    } else {
      this.events.push(new Output({ channel, data }))
    }
    this.bytes += data.length
    if (!this.paused && this.bytes >= this.highWater) {
      this.paused = true
      this.pressure(true)
    }
    this.notify()
  }

  /** Appends the end of the command; nothing is written after it. */
  end(exited: Exited): void {
    this.ended = true
    this.events.push(exited)
    this.notify()
  }

  /** True once the end has been appended. */
  get hasEnded(): boolean {
    return this.ended
  }

  /** True while a reader is attached. */
  get isAttached(): boolean {
    return this.reader !== undefined
  }

  /** Makes the caller the reader, with `window` bytes of credit; fails when another reader is attached. */
  attach(window: number): Effect.Effect<symbol, ExecError> {
    return Effect.suspend(() => {
      if (this.reader !== undefined) {
        return Effect.fail(new ExecError({ reason: "busy", message: "another client is reading this command's output" }))
      }
      const token = Symbol("reader")
      this.reader = token
      this.credit = window
      return Effect.succeed(token)
    })
  }

  /** Lets another reader attach later; the output that was not taken stays. */
  detach(token: symbol): void {
    if (this.reader !== token) return
    this.reader = undefined
    this.credit = 0
    this.relieve()
    this.notify()
  }

  /** Gives the current reader more credit, after its client consumed what it had. */
  grant(bytes: number): void {
    if (this.reader === undefined) return
    this.credit += bytes
    this.notify()
  }

  /**
   * Waits for what the reader may take: output up to its credit (at least one chunk when any credit
   * is left), and the end once everything before it is taken. An empty array means it was all taken.
   */
  take(token: symbol): Effect.Effect<ReadonlyArray<LogEvent>> {
    return Effect.async<ReadonlyArray<LogEvent>>((resume) => {
      const attempt = (): boolean => {
        if (this.reader !== token) {
          resume(Effect.succeed([]))
          return true
        }
        const taken = this.takeNow()
        if (taken === undefined) return false
        resume(Effect.succeed(taken))
        return true
      }
      if (attempt()) return
      this.wake = () => {
        if (attempt()) this.wake = undefined
      }
      return Effect.sync(() => {
        this.wake = undefined
      })
    })
  }

  // ---------------------------------------------------------------------------------------------
  // private

  private takeNow(): ReadonlyArray<LogEvent> | undefined {
    if (this.events.length === 0) return this.ended ? [] : undefined
    const taken: Array<LogEvent> = []
    while (this.events.length > 0) {
      const next = this.events[0]!
      if (next._tag === "Output") {
        if (this.credit <= 0) break
        this.credit -= next.data.length
        this.bytes -= next.data.length
      }
      taken.push(next)
      this.events.shift()
    }
    this.relieve()
    return taken.length > 0 ? taken : undefined
  }

  private relieve(): void {
    if (this.paused && this.bytes < this.highWater / 2) {
      this.paused = false
      this.pressure(false)
    }
  }

  private notify(): void {
    this.wake?.()
  }
}

/** A failure to start a command, as the stream's error. */
export const spawnFailed = (command: string, cause: unknown): ExecError =>
  new ExecError({
    reason: "spawn-failed",
    message: `cannot run ${command}: ${cause instanceof Error ? cause.message : String(cause)}`
  })

const concat = (a: Uint8Array, b: Uint8Array): Uint8Array => {
  const out = new Uint8Array(a.length + b.length)
  out.set(a, 0)
  out.set(b, a.length)
  return out
}
