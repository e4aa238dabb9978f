import type { RpcClientError } from "@effect/rpc/RpcClientError"
import * as Cause from "effect/Cause"
import * as Chunk from "effect/Chunk"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Mailbox from "effect/Mailbox"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { ClientError, ExecError } from "../exec/Errors.js"
import type { ExecEvent, ExecId } from "../protocol/ExecRpc.js"
import { Exited, Output } from "../protocol/ExecRpc.js"

/** The exit code reported for a command that could not be started (as a shell reports it). */
export const spawnFailedExitCode = 127

/** The whole output of a finished command, in order, with how it ended. */
export class ExecResult {
  constructor(
    /** The command's id on the server; undefined when it could not be started. */
    readonly id: ExecId | undefined,
    /** Every chunk of stdout and stderr, in the order the server read them. */
    readonly output: ReadonlyArray<Output>,
    /** The exit code; null when a signal ended the command. */
    readonly exitCode: number | null,
    /** The signal that ended the command, if one did. */
    readonly signal: string | null,
    /** The server's error, when the command failed there and `raiseError` was false. */
    readonly error: ExecError | undefined
  ) {}

  /** Everything the command wrote to stdout, as UTF-8 text. */
  get stdout(): string {
    return joinText(this.output, "stdout")
  }

  /** Everything the command wrote to stderr, as UTF-8 text. */
  get stderr(): string {
    return joinText(this.output, "stderr")
  }
}

/** What a listener needs from its connection. */
export interface ListenerContext {
  readonly url: string
  readonly id: ExecId | undefined
  readonly pid: number
  readonly mailbox: Mailbox.ReadonlyMailbox<ExecEvent, ExecError | RpcClientError>
  readonly scope: Scope.CloseableScope
  readonly window: number
  readonly raiseError: boolean
  readonly maxInterval: Duration.Duration | undefined
  /** Events that arrived with Started. */
  readonly pending: ReadonlyArray<ExecEvent>
  /** The server's error when the command could not start and it is not raised. */
  readonly startError: ExecError | undefined
  readonly grant: (bytes: number) => Effect.Effect<void>
  readonly sendInput: (data: Uint8Array, eof: boolean) => Effect.Effect<void, ExecError | ClientError>
  readonly kill: (signal: string | undefined) => Effect.Effect<boolean, ExecError | ClientError>
}

/**
 * The seed's listener: one per command, reading its output as it arrives. `next` waits at most
 * `maxInterval` (which can be changed at any time) and answers null once the command has ended;
 * `done`, `exitCode` and `id` say where it stands. Reading grants the server more credit, so a
 * listener that is not read holds at most its window of output and holds up nothing else.
 */
export class ExecListener {
  /** The command's id, for sendInput, kill, isAlive and attach; undefined when it could not start. */
  readonly id: ExecId | undefined
  /** The command's process id on the server (0 when it could not start). */
  readonly pid: number
  /** The longest silence `next` waits through before failing with ClientError "max-interval". */
  maxInterval: Duration.DurationInput | undefined
  /** The exit code once done (null for a signal, or while running). */
  exitCode: number | null = null
  /** The signal that ended the command, once done. */
  signal: string | null = null
  /** The server's error when the command failed there (raiseError false). */
  error: ExecError | undefined = undefined
  private finished = false
  private readonly pending: Array<ExecEvent>
  private consumed = 0
  private readonly lock = Effect.unsafeMakeSemaphore(1)

  constructor(private readonly context: ListenerContext) {
    this.id = context.id
    this.pid = context.pid
    this.maxInterval = context.maxInterval
    this.pending = [...context.pending]
    if (context.startError !== undefined) this.report(context.startError)
  }

  /** True once the command has ended and every chunk was read. */
  get done(): boolean {
    return this.finished
  }

  /** The next chunk of output, or null once the command has ended. */
  get next(): Effect.Effect<Output | null, ClientError | ExecError> {
    return this.lock.withPermits(1)(Effect.suspend(() => this.step()))
  }

  /** The remaining output as a Stream; it ends when the command does. */
  get stream(): Stream.Stream<Output, ClientError | ExecError> {
    return Stream.repeatEffectOption(
      Effect.flatMap(Effect.mapError(this.next, Option.some), (chunk) =>
        chunk === null ? Effect.fail(Option.none()) : Effect.succeed(chunk))
    )
  }

  /** Reads to the end (echoing each chunk when asked) and gives the whole output. */
  collect(echo?: (chunk: Output) => void): Effect.Effect<ExecResult, ClientError | ExecError> {
    const output: Array<Output> = []
    return Effect.as(
      Stream.runForEach(this.stream, (chunk) =>
        Effect.sync(() => {
          output.push(chunk)
          echo?.(chunk)
        })),
      undefined
    ).pipe(Effect.map(() => new ExecResult(this.id, output, this.exitCode, this.signal, this.error)))
  }

  /** Writes to the command's stdin; with `eof`, closes it afterwards. */
  sendInput(data: Uint8Array | string, options: { readonly eof?: boolean } = {}): Effect.Effect<void, ExecError | ClientError> {
    return this.context.sendInput(typeof data === "string" ? new TextEncoder().encode(data) : data, options.eof ?? false)
  }

  /** Sends a signal (default SIGTERM) to the command's process group. */
  kill(signal?: string): Effect.Effect<boolean, ExecError | ClientError> {
    return this.context.kill(signal)
  }

  /** Stops listening: the command is killed, unless it was started with keepRunning (then attach to it later). */
  get close(): Effect.Effect<void> {
    return Scope.close(this.context.scope, Exit.void)
  }

  // ---------------------------------------------------------------------------------------------
  // private

  private step(): Effect.Effect<Output | null, ClientError | ExecError> {
    if (this.finished) return Effect.succeed(null)
    const event = this.pending.shift()
    if (event !== undefined) return this.handle(event)
    return this.receive().pipe(Effect.flatMap(() => this.step()))
  }

  private handle(event: ExecEvent): Effect.Effect<Output | null, ClientError | ExecError> {
    switch (event._tag) {
      case "Started":
        return this.step()
      case "Exited":
        this.finished = true
        this.exitCode = event.exitCode
        this.signal = event.signal
        return Effect.as(this.close, null)
      case "Output": {
        this.consumed += event.data.length
        if (this.consumed < this.context.window / 4) return Effect.succeed(event)
        const bytes = this.consumed
        this.consumed = 0
        return Effect.as(this.context.grant(bytes), event)
      }
    }
  }

  // Waits for the next batch of events, at most maxInterval.
  private receive(): Effect.Effect<void, ClientError | ExecError> {
    const limit = this.maxInterval === undefined ? undefined : Duration.decode(this.maxInterval)
    const take = this.context.mailbox.takeAll.pipe(
      Effect.flatMap(([events, ended]) => {
        if (Chunk.isNonEmpty(events)) {
          this.pending.push(...events)
          return Effect.void
        }
        return ended ? Effect.fail(this.lost("the server ended the output stream early")) : Effect.void
      }),
      Effect.catchAllCause((cause) => this.failure(cause))
    )
    if (limit === undefined) return take
    return Effect.timeoutFail(take, {
      duration: limit,
      onTimeout: () =>
        new ClientError({
          reason: "max-interval",
          url: this.context.url,
          message: `no output from command ${this.id ?? "?"} on ${this.context.url} for ${Duration.format(limit)}`
        })
    })
  }

  private failure(cause: Cause.Cause<ExecError | RpcClientError | ClientError>): Effect.Effect<void, ClientError | ExecError> {
    if (Cause.isInterruptedOnly(cause)) return Effect.fail(this.lost("the server ended the call (shut down?)"))
    const error = Cause.failureOption(cause)
    if (Option.isNone(error)) return Effect.failCause(cause as Cause.Cause<never>)
    const failure = error.value
    if (failure._tag === "RpcClientError") return Effect.fail(this.lost(failure.message, failure))
    if (failure._tag === "ClientError" || this.context.raiseError) return Effect.fail(failure)
    this.report(failure)
    return Effect.void
  }

  // Not raised: the server's error becomes output and an exit code, as for a command that failed.
  private report(error: ExecError): void {
    this.error = error
    this.pending.push(
      new Output({ channel: "stderr", data: new TextEncoder().encode(error.message + "\n") }),
      new Exited({ exitCode: spawnFailedExitCode, signal: null })
    )
  }

  private lost(detail: string, cause?: unknown): ClientError {
    return new ClientError({
      reason: "connection-lost",
      url: this.context.url,
      message: `lost the output of command ${this.id ?? "?"} on ${this.context.url}: ${detail}`,
      ...(cause !== undefined ? { cause } : {})
    })
  }
}

const joinText = (output: ReadonlyArray<Output>, channel: Output["channel"]): string =>
  Buffer.concat(output.filter((chunk) => chunk.channel === channel).map((chunk) => chunk.data)).toString("utf8")
