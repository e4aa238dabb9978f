import * as RpcClient from "@effect/rpc/RpcClient"
import type { RpcClientError } from "@effect/rpc/RpcClientError"
import type * as RpcGroup from "@effect/rpc/RpcGroup"
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as ExecutionStrategy from "effect/ExecutionStrategy"
import * as Exit from "effect/Exit"
import * as FiberId from "effect/FiberId"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { createHash } from "node:crypto"
import * as Fs from "node:fs/promises"
import { ClientError, ExecError } from "../exec/Errors.js"
import type { ExecEvent, ExecId, FileInfo, Output, OsInfo, RunInfo } from "../protocol/ExecRpc.js"
import { ExecRpc, ExecSpec } from "../protocol/ExecRpc.js"
import * as Endpoint from "../transport/Endpoint.js"
import type { ConnectFailed, InvalidEndpoint } from "../transport/Errors.js"
import * as Secret from "../transport/Secret.js"
import type { SecretError } from "../transport/Secret.js"
import * as Transport from "../transport/Transport.js"
import { ExecListener, ExecResult } from "./ExecListener.js"

export { ExecListener, ExecResult } from "./ExecListener.js"

/** How to reach an exec server. */
export interface ExecClientOptions extends Transport.ClientOptions {
  /** A file holding the shared secret; default the TROUPE_SECRET_FILE environment variable. */
  readonly secretFile?: string | undefined
}

/** How `ExecClients.add` names a server without a URL: a host and a port (and the transport, tcp by default). */
export interface AddOptions extends ExecClientOptions {
  readonly port?: number | undefined
  readonly transport?: "tcp" | "framed" | undefined
}

/** How `connect` waits. */
export interface ConnectOptions {
  /** How long to keep trying; default the client's connectTimeout, else 5 s. */
  readonly timeout?: Duration.DurationInput | undefined
  /** Try again while the server refuses connections (not started yet), until the timeout; default true. */
  readonly retryRefused?: boolean | undefined
}

/** The seed's per-call option shared by every server command: how long to wait for it to go through. */
export interface CallOptions {
  /** How long to wait; with `complete` the whole command, else until it has started. Default: no limit. */
  readonly timeout?: Duration.DurationInput | undefined
}

/** The seed's per-call options of a command, with where and how to run it. */
export interface ExecOptions extends CallOptions {
  /** Wait for the end and return the output (default true); false returns a listener at once. */
  readonly complete?: boolean | undefined
  /** Print the output live while waiting (`complete`); or a function called with each chunk. */
  readonly echoResponse?: boolean | ((chunk: Output) => void) | undefined
  /** The longest silence between messages before ClientError "max-interval". Default: no limit. */
  readonly maxInterval?: Duration.DurationInput | undefined
  /** Fail with the server's ExecError (default false: report it as output and exit code 127). */
  readonly raiseError?: boolean | undefined
  /** Working directory, relative to the connection's cwd on the server. */
  readonly cwd?: string | undefined
  /** Variables added to the server's environment. */
  readonly env?: Readonly<Record<string, string>> | undefined
  /** Run through /bin/sh -c (default: true for a string, false for an argv). */
  readonly shell?: boolean | undefined
  /** Let the command run on if this client goes away; its output waits for `attach`. */
  readonly keepRunning?: boolean | undefined
  /** Output bytes the server may send ahead of reading; default 4 MiB. */
  readonly window?: number | undefined
}

/** What a finished transfer did. */
export interface TransferResult {
  readonly bytes: number
  readonly sha256: string
  /** The offsets the transfer resumed from after a broken connection, in order. */
  readonly resumedFrom: ReadonlyArray<number>
}

/** Options of `transfer` and `download`. */
export interface TransferOptions {
  /** Bytes per call; default 1 MiB. */
  readonly chunkSize?: number | undefined
  /** How many broken connections to survive; default 5. */
  readonly attempts?: number | undefined
  /** How long each reconnect may take; default 10 s. */
  readonly reconnectTimeout?: Duration.DurationInput | undefined
}

/** Every error of a server command. */
export type ExecClientError = ExecError | ClientError

/**
 * A connection to one exec server, created unconnected (the seed's `add`): call `connect` first,
 * `disconnect` and `connect` again as needed, and `close` to leave the pool. Server commands are
 * its methods. With `complete` (the default) `exec` waits and returns the output; with
 * `complete: false` it returns an ExecListener.
 */
export class ExecConnection {
  private live: Live | undefined
  private readonly gate = Effect.unsafeMakeSemaphore(1)

  constructor(
    /** The server's endpoint URL. */
    readonly url: string,
    private readonly endpoint: Endpoint.Endpoint,
    private readonly options: ExecClientOptions,
    private readonly onClose: (connection: ExecConnection) => void = () => undefined
  ) {}

  /** True between a successful `connect` and `disconnect` (a broken link shows in calls, not here). */
  get connected(): boolean {
    return this.live !== undefined
  }

  /**
   * Connects, retrying a server that is not listening yet until `timeout` (default 5 s) passes; then
   * fails with ClientError "unreachable" (or "timeout"). A refused secret fails at once.
   */
  connect(options: ConnectOptions = {}): Effect.Effect<void, ClientError | SecretError> {
    return this.gate.withPermits(1)(Effect.suspend(() => this.live !== undefined ? Effect.void : this.open(options)))
  }

  /** Closes the connection; running commands of it are killed unless kept. `connect` may be called again. */
  get disconnect(): Effect.Effect<void> {
    return this.gate.withPermits(1)(Effect.suspend(() => {
      const live = this.live
      this.live = undefined
      return live === undefined ? Effect.void : Scope.close(live.scope, Exit.void)
    }))
  }

  /** Disconnects and removes the connection from its pool. */
  get close(): Effect.Effect<void> {
    return Effect.zipRight(this.disconnect, Effect.sync(() => this.onClose(this)))
  }

  /** Runs a command; with `complete: false`, answers a listener as soon as the command has started. */
  exec(command: string | ReadonlyArray<string>, options: ExecOptions & { readonly complete: false }): Effect.Effect<ExecListener, ExecClientError>
  exec(command: string | ReadonlyArray<string>, options?: ExecOptions): Effect.Effect<ExecResult, ExecClientError>
  exec(command: string | ReadonlyArray<string>, options: ExecOptions = {}): Effect.Effect<ExecResult | ExecListener, ExecClientError> {
    return Effect.flatMap(this.spec(command, options), (spec) =>
      this.run(options, spec.window, (rpc) => rpc.Exec({ spec }, streamOptions)))
  }

  /** Reads a kept command's output (its own or another client's) from where the last reader stopped. */
  attach(id: string, options: ExecOptions & { readonly complete: false }): Effect.Effect<ExecListener, ExecClientError>
  attach(id: string, options?: ExecOptions): Effect.Effect<ExecResult, ExecClientError>
  attach(id: string, options: ExecOptions = {}): Effect.Effect<ExecResult | ExecListener, ExecClientError> {
    const window = options.window
    return this.run(options, window, (rpc) =>
      rpc.Attach(window === undefined ? { id: id as ExecId } : { id: id as ExecId, window }, streamOptions))
  }

  /** Writes to a command's stdin; with `eof`, closes it afterwards. */
  sendInput(
    id: string,
    data: Uint8Array | string,
    options: CallOptions & { readonly eof?: boolean } = {}
  ): Effect.Effect<void, ExecClientError> {
    const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data
    return this.call(options, (rpc) => rpc.SendInput({ id: id as ExecId, data: bytes, eof: options.eof ?? false }))
  }

  /** Sends a signal (default SIGTERM) to a command's process group; false when it had already ended. */
  kill(id: string, signal?: string, options: CallOptions = {}): Effect.Effect<boolean, ExecClientError> {
    return this.call(options, (rpc) => rpc.Kill(signal === undefined ? { id: id as ExecId } : { id: id as ExecId, signal }))
  }

  /** The commands the server is running (or keeping for attach), with their ids. */
  jobs(options: CallOptions = {}): Effect.Effect<ReadonlyArray<RunInfo>, ClientError> {
    return this.call(options, (rpc) => rpc.Jobs())
  }

  /** True while the command runs. */
  isAlive(id: string, options: CallOptions = {}): Effect.Effect<boolean, ClientError> {
    return this.call(options, (rpc) => rpc.IsAlive({ id: id as ExecId }))
  }

  /** Changes this connection's cwd on the server; answers the new one. */
  cd(path: string, options: CallOptions = {}): Effect.Effect<string, ExecClientError> {
    return this.call(options, (rpc) => rpc.Cd({ path }))
  }

  /** This connection's cwd on the server. */
  cwd(options: CallOptions = {}): Effect.Effect<string, ClientError> {
    return this.call(options, (rpc) => rpc.Cwd())
  }

  /** A directory's entries (default the cwd), or a file's own entry. */
  ls(path?: string, options: CallOptions = {}): Effect.Effect<ReadonlyArray<FileInfo>, ExecClientError> {
    return this.call(options, (rpc) => rpc.Ls(path === undefined ? {} : { path }))
  }

  /** One entry, without following a final symbolic link. */
  stat(path: string, options: CallOptions = {}): Effect.Effect<FileInfo, ExecClientError> {
    return this.call(options, (rpc) => rpc.Stat({ path }))
  }

  /** Makes a directory (with `parents`, its missing parents too). */
  mkdir(path: string, options: CallOptions & { readonly parents?: boolean } = {}): Effect.Effect<void, ExecClientError> {
    return this.call(options, (rpc) => rpc.Mkdir({ path, parents: options.parents ?? false }))
  }

  /** Removes a file or an empty directory (with `recursive`, a tree). */
  rm(path: string, options: CallOptions & { readonly recursive?: boolean } = {}): Effect.Effect<void, ExecClientError> {
    return this.call(options, (rpc) => rpc.Rm({ path, recursive: options.recursive ?? false }))
  }

  /** Creates an empty file, or updates an existing one's times. */
  touch(path: string, options: CallOptions = {}): Effect.Effect<void, ExecClientError> {
    return this.call(options, (rpc) => rpc.Touch({ path }))
  }

  /** A remote file's bytes as a stream, read in slices of `chunkSize` (default 1 MiB). */
  readFile(path: string, options: { readonly chunkSize?: number } = {}): Stream.Stream<Uint8Array, ExecClientError> {
    const length = options.chunkSize ?? defaultChunk
    return Stream.paginateEffect(0, (offset) =>
      Effect.map(this.call({}, (rpc) => rpc.ReadFile({ path, offset, length })), (slice) => {
        const next = offset + slice.data.length
        return [slice.data, slice.data.length > 0 && next < slice.size ? Option.some(next) : Option.none()] as const
      })).pipe(Stream.filter((data) => data.length > 0))
  }

  /** Writes a remote file from bytes, text or a stream of bytes; with `append`, at its end. Answers its size. */
  writeFile(
    path: string,
    data: Uint8Array | string | Stream.Stream<Uint8Array, ExecClientError>,
    options: CallOptions & { readonly append?: boolean } = {}
  ): Effect.Effect<number, ExecClientError> {
    const source: Stream.Stream<Uint8Array, ExecClientError> = typeof data === "string"
      ? Stream.succeed(new TextEncoder().encode(data))
      : data instanceof Uint8Array
      ? Stream.succeed(data)
      : data
    const append = options.append ?? false
    return Effect.suspend(() => {
      // The first call truncates or appends; later ones write at known offsets, so a retry is harmless.
      let base: number | undefined
      let written = 0
      let size = 0
      const put = (bytes: Uint8Array) =>
        Effect.map(
          this.call(options, (rpc) =>
            rpc.WriteFile(
              base === undefined
                ? (append ? { path, data: bytes } : { path, data: bytes, offset: 0, truncate: true })
                : { path, data: bytes, offset: base + written }
            )),
          (answer) => {
            if (base === undefined) base = append ? answer - bytes.length : 0
            written += bytes.length
            size = answer
          }
        )
      return source.pipe(
        Stream.mapConcat((bytes) => slices(bytes, defaultChunk)),
        Stream.runForEach(put),
        Effect.zipRight(Effect.suspend(() => base === undefined ? put(new Uint8Array(0)) : Effect.void)),
        Effect.map(() => size)
      )
    })
  }

  /** The server machine. */
  osInfo(options: CallOptions = {}): Effect.Effect<OsInfo, ClientError> {
    return this.call(options, (rpc) => rpc.OsInfo())
  }

  /** Stops the server (only when it runs with --allow-close). */
  closeServer(options: CallOptions = {}): Effect.Effect<void, ExecClientError> {
    return this.call(options, (rpc) => rpc.CloseServer()).pipe(
      // The server may go before its answer reaches us; that is what was asked.
      Effect.catchIf((error): error is ClientError => error._tag === "ClientError" && error.reason === "connection-lost", () => Effect.void)
    )
  }

  /** Whether the server answers within `timeout` (default 5 s): true or false, never a failure. */
  heartbeat(options: CallOptions = {}): Effect.Effect<boolean> {
    return this.call({ timeout: options.timeout ?? Duration.seconds(5) }, (rpc) => rpc.Heartbeat()).pipe(
      Effect.as(true),
      Effect.orElseSucceed(() => false)
    )
  }

  /**
   * Sends a local file to `remotePath` in chunks, into a partial file that is renamed into place
   * once the server has checked its size and SHA-256. A broken connection is reconnected and the
   * transfer resumes where the server's partial file ends.
   */
  transfer(localPath: string, remotePath: string, options: TransferOptions = {}): Effect.Effect<TransferResult, ExecClientError> {
    return Effect.suspend(() => {
      const resumedFrom: Array<number> = []
      let first = true
      const attempt: Effect.Effect<TransferResult, ExecClientError> = Effect.flatMap(
        this.call({}, (rpc) => rpc.TransferStatus({ path: remotePath })),
        (offset) => {
          if (!first) resumedFrom.push(offset)
          first = false
          return this.sendFrom(localPath, remotePath, offset, options.chunkSize ?? defaultChunk).pipe(
            Effect.map((sent) => ({ ...sent, resumedFrom }))
          )
        }
      )
      return this.resuming(attempt, options)
    })
  }

  /** Copies a remote file to a local path, resuming after a broken connection; answers the byte count. */
  download(remotePath: string, localPath: string, options: TransferOptions = {}): Effect.Effect<number, ExecClientError> {
    const partial = `${localPath}${partialSuffix}`
    const length = options.chunkSize ?? defaultChunk
    const step: Effect.Effect<number, ExecClientError> = Effect.gen(this, function*() {
      let offset = yield* local(localPath, () => Fs.stat(partial).then((s) => s.size, () => 0))
      for (;;) {
        const slice = yield* this.call({}, (rpc) => rpc.ReadFile({ path: remotePath, offset, length }))
        if (slice.data.length > 0) {
          yield* local(localPath, () => Fs.writeFile(partial, slice.data, { flag: offset === 0 ? "w" : "a" }))
          offset += slice.data.length
        }
        if (slice.data.length === 0 || offset >= slice.size) break
      }
      if (offset === 0) yield* local(localPath, () => Fs.writeFile(partial, new Uint8Array(0)))
      yield* local(localPath, () => Fs.rename(partial, localPath))
      return offset
    })
    return this.resuming(step, options)
  }

  // ---------------------------------------------------------------------------------------------
  // private

  private open(options: ConnectOptions): Effect.Effect<void, ClientError | SecretError> {
    const timeout = Duration.decode(options.timeout ?? this.options.connectTimeout ?? Duration.seconds(5))
    const deadline = Date.now() + Duration.toMillis(timeout)
    return Effect.gen(this, function*() {
      const secret = this.options.secret ?? (yield* Secret.resolve(this.options.secretFile))
      const scope = yield* Scope.make()
      const once = Effect.suspend(() =>
        Transport.makeClient(ExecRpc, this.endpoint, {
          ...this.options,
          secret,
          connectTimeout: Duration.millis(Math.max(1, deadline - Date.now()))
        }).pipe(Scope.extend(scope))
      )
      // A server that is not up yet is tried again until the deadline; a refused secret is final.
      const rpc = yield* once.pipe(
        Effect.retry({
          schedule: Schedule.exponential("50 millis", 1.5).pipe(Schedule.union(Schedule.spaced("1 second"))),
          while: (error: ConnectFailed) =>
            options.retryRefused !== false && (error.reason === "refused" || error.reason === "not-found") &&
            Date.now() < deadline
        }),
        Effect.mapError((error) => this.unreachable(error, timeout)),
        Effect.tapError(() => Scope.close(scope, Exit.void))
      )
      this.live = { scope, rpc }
    })
  }

  private unreachable(error: ConnectFailed, timeout: Duration.Duration): ClientError {
    return new ClientError({
      reason: error.reason === "timeout" || error.reason === "refused" || error.reason === "not-found"
        ? (error.reason === "timeout" ? "timeout" : "unreachable")
        : "unreachable",
      url: this.url,
      message: error.reason === "refused" || error.reason === "not-found"
        ? `cannot reach exec server ${this.url} within ${Duration.format(timeout)} (${error.detail})`
        : `cannot reach exec server ${this.url} (${error.detail})`
    })
  }

  private get current(): Effect.Effect<Live, ClientError> {
    return Effect.suspend(() =>
      this.live === undefined
        ? Effect.fail(
          new ClientError({ reason: "not-connected", url: this.url, message: `not connected to ${this.url}; call connect first` })
        )
        : Effect.succeed(this.live)
    )
  }

  private call<A, E>(
    options: CallOptions,
    f: (rpc: ExecRpcClient) => Effect.Effect<A, E | RpcClientError>
  ): Effect.Effect<A, Exclude<E, RpcClientError> | ClientError> {
    const effect = Effect.flatMap(this.current, (live) =>
      Effect.catchAllCause(f(live.rpc), (cause) => Effect.failCause(this.ended(cause))))
    return options.timeout === undefined ? effect : Effect.timeoutFail(effect, {
      duration: options.timeout,
      onTimeout: () => this.timedOut(options.timeout!)
    })
  }

  // A call the server interrupted (it is shutting down) ends like a lost connection.
  private ended<E>(cause: Cause.Cause<E | RpcClientError>): Cause.Cause<Exclude<E, RpcClientError> | ClientError> {
    const lost = (detail: string, error?: unknown) =>
      new ClientError({
        reason: "connection-lost",
        url: this.url,
        message: `lost connection to exec server ${this.url}: ${detail}`,
        ...(error !== undefined ? { cause: error } : {})
      })
    if (Cause.isInterruptedOnly(cause)) return Cause.fail(lost("the server ended the call (shut down?)"))
    return Cause.map(cause, (error) =>
      isRpcClientError(error) ? lost(error.message, error) : error as Exclude<E, RpcClientError>)
  }

  private timedOut(timeout: Duration.DurationInput): ClientError {
    return new ClientError({
      reason: "timeout",
      url: this.url,
      message: `no answer from ${this.url} within ${Duration.format(Duration.decode(timeout))}`
    })
  }

  private spec(command: string | ReadonlyArray<string>, options: ExecOptions): Effect.Effect<ExecSpec, ExecError> {
    if (typeof command !== "string" && command.length === 0) {
      return Effect.fail(new ExecError({ reason: "invalid", message: "an empty command" }))
    }
    return Effect.succeed(
      new ExecSpec({
        command: typeof command === "string" ? command : [command[0]!, ...command.slice(1)],
        ...(options.cwd !== undefined ? { cwd: options.cwd } : {}),
        ...(options.env !== undefined ? { env: options.env } : {}),
        ...(options.shell !== undefined ? { shell: options.shell } : {}),
        ...(options.keepRunning !== undefined ? { keepRunning: options.keepRunning } : {}),
        ...(options.window !== undefined ? { window: options.window } : {})
      })
    )
  }

  // Opens an output stream as a listener, then either hands it out or reads it to the end.
  private run(
    options: ExecOptions,
    window: number | undefined,
    open: (rpc: ExecRpcClient) => Effect.Effect<OutputMailbox, never, Scope.Scope>
  ): Effect.Effect<ExecResult | ExecListener, ExecClientError> {
    const listening = Effect.flatMap(this.current, (live) => this.listen(live, options, window ?? defaultWindow, open))
    if (options.complete === false) {
      return options.timeout === undefined ? listening : Effect.timeoutFail(listening, {
        duration: options.timeout,
        onTimeout: () => this.timedOut(options.timeout!)
      })
    }
    const echo = options.echoResponse === true ? echoToConsole : options.echoResponse || undefined
    const whole = Effect.acquireUseRelease(
      listening,
      (listener) => listener.collect(echo),
      (listener) => listener.close
    )
    return options.timeout === undefined ? whole : Effect.timeoutFail(whole, {
      duration: options.timeout,
      onTimeout: () => this.timedOut(options.timeout!)
    })
  }

  private listen(
    live: Live,
    options: ExecOptions,
    window: number,
    open: (rpc: ExecRpcClient) => Effect.Effect<OutputMailbox, never, Scope.Scope>
  ): Effect.Effect<ExecListener, ExecClientError> {
    return Effect.uninterruptibleMask((restore) =>
      Effect.gen(this, function*() {
        const scope = yield* Scope.fork(live.scope, ExecutionStrategy.sequential)
        const mailbox = yield* open(live.rpc).pipe(Scope.extend(scope))
        const first = yield* restore(this.untilStarted(mailbox, options)).pipe(
          Effect.onError(() => Scope.close(scope, Exit.void))
        )
        const started = first.events.find((event) => event._tag === "Started")
        const id = started?._tag === "Started" ? started.id : undefined
        const maxInterval = options.maxInterval === undefined ? undefined : Duration.decode(options.maxInterval)
        return new ExecListener({
          url: this.url,
          id,
          pid: started?._tag === "Started" ? started.pid : 0,
          mailbox,
          scope,
          window,
          raiseError: options.raiseError ?? false,
          maxInterval,
          pending: first.events,
          startError: first.error,
          grant: (bytes) =>
            id === undefined ? Effect.void : Effect.ignore(live.rpc.Grant({ id, bytes }, { discard: true })),
          sendInput: (data, eof) =>
            id === undefined ? Effect.fail(notStarted(this.url)) : this.sendInput(id, data, { eof }),
          kill: (signal) => id === undefined ? Effect.fail(notStarted(this.url)) : this.kill(id, signal)
        })
      })
    )
  }

  // Reads until the Started event; a server error before it is raised or kept for the listener to report.
  private untilStarted(
    mailbox: OutputMailbox,
    options: ExecOptions
  ): Effect.Effect<Opening, ExecClientError> {
    const events: Array<ExecEvent> = []
    const limit = options.maxInterval === undefined ? undefined : Duration.decode(options.maxInterval)
    const take = mailbox.takeAll.pipe(
      Effect.either,
      Effect.map(Either.map(([chunk, ended]) => ({ chunk, ended })))
    )
    const bounded = limit === undefined ? take : Effect.timeoutFail(take, {
      duration: limit,
      onTimeout: () =>
        new ClientError({
          reason: "max-interval",
          url: this.url,
          message: `the command did not start on ${this.url} within ${Duration.format(limit)}`
        })
    })
    const loop: Effect.Effect<Opening, ExecClientError> = Effect.flatMap(
      Effect.catchAllCause(bounded, (cause) => Effect.failCause(this.ended(cause))),
      (result) => {
        if (Either.isLeft(result)) {
          const error = result.left
          if (isRpcClientError(error)) return Effect.failCause(this.ended(Cause.fail(error)))
          // Not raised: the listener reports the error as output with exit code 127.
          return options.raiseError === true ? Effect.fail(error) : Effect.succeed({ events, error })
        }
        events.push(...result.right.chunk)
        if (events.some((event) => event._tag === "Started")) return Effect.succeed({ events, error: undefined })
        if (result.right.ended) return Effect.failCause(this.ended(Cause.interrupt(FiberId.none)))
        return loop
      }
    )
    return loop
  }

  private sendFrom(localPath: string, remotePath: string, offset: number, chunkSize: number) {
    return Effect.gen(this, function*() {
      const handle = yield* Effect.acquireRelease(
        local(localPath, () => Fs.open(localPath, "r")),
        (handle) => Effect.promise(() => handle.close().catch(() => undefined))
      )
      const size = (yield* local(localPath, () => handle.stat())).size
      let start = offset
      if (start > size) {
        // A partial file longer than ours is someone else's: start over.
        yield* this.call({}, (rpc) => rpc.Rm({ path: remotePath + partialSuffix })).pipe(Effect.ignore)
        start = 0
      }
      const hash = createHash("sha256")
      const buffer = Buffer.allocUnsafe(chunkSize)
      // The bytes the server already has still count towards the checksum.
      for (let position = 0; position < start;) {
        const { bytesRead } = yield* local(localPath, () => handle.read(buffer, 0, Math.min(chunkSize, start - position), position))
        if (bytesRead === 0) break
        hash.update(buffer.subarray(0, bytesRead))
        position += bytesRead
      }
      // Chunks are read and hashed in order, and up to `transferInFlight` of them are on the wire at once.
      const chunks = Stream.unfoldEffect(start, (position) =>
        position >= size
          ? Effect.succeed(Option.none())
          : Effect.map(
            local(localPath, () => handle.read(Buffer.allocUnsafe(Math.min(chunkSize, size - position)), 0, Math.min(chunkSize, size - position), position)),
            ({ buffer: data, bytesRead }) => {
              if (bytesRead === 0) return Option.none()
              const bytes = data.subarray(0, bytesRead)
              hash.update(bytes)
              return Option.some([{ position, bytes }, position + bytesRead] as const)
            }
          ))
      yield* chunks.pipe(
        Stream.mapEffect(({ bytes, position }) =>
          this.call({}, (rpc) => rpc.TransferWrite({ path: remotePath, offset: position, data: bytes })), {
          concurrency: transferInFlight
        }),
        Stream.runDrain
      )
      const sha256 = hash.digest("hex")
      yield* this.call({}, (rpc) => rpc.TransferFinish({ path: remotePath, size, sha256 }))
      return { bytes: size, sha256 }
    }).pipe(Effect.scoped)
  }

  // Runs a resumable step; after a broken connection it reconnects and runs it again.
  private resuming<A>(step: Effect.Effect<A, ExecClientError>, options: TransferOptions): Effect.Effect<A, ExecClientError> {
    const attempts = options.attempts ?? 5
    const reconnectTimeout = options.reconnectTimeout ?? Duration.seconds(10)
    const loop = (left: number): Effect.Effect<A, ExecClientError> =>
      Effect.catchIf(
        step,
        (error): error is ClientError =>
          left > 0 && error._tag === "ClientError" && (error.reason === "connection-lost" || error.reason === "timeout"),
        () =>
          Effect.zipRight(
            Effect.zipRight(this.disconnect, Effect.mapError(this.connect({ timeout: reconnectTimeout }), toClientError(this.url))),
            Effect.suspend(() => loop(left - 1))
          )
      )
    return loop(attempts)
  }
}

/** A pool of exec connections, one per server (the seed's client pool), for Effect code. */
export class ExecPool extends Context.Tag("troupe/client/ExecPool")<ExecPool, {
  /** The connection to a server (`tcp://host:port`, any endpoint URL, or a host with `port`), made unconnected; the same server gives the same connection. */
  readonly add: (hostOrUrl: string, options?: AddOptions) => Effect.Effect<ExecConnection, InvalidEndpoint>
  /** The pooled connection to a URL, if any. */
  readonly get: (url: string) => ExecConnection | undefined
  /** Every pooled connection. */
  readonly connections: Effect.Effect<ReadonlyArray<ExecConnection>>
  /** Closes every connection and empties the pool. */
  readonly closeAll: Effect.Effect<void>
}>() {
  /** A pool for the layer's lifetime; every connection is closed with it. */
  static readonly layer: Layer.Layer<ExecPool> = Layer.scoped(ExecPool, Effect.suspend(() => makePool))
}

/** A pool whose connections are closed when the scope closes. */
export const makePool: Effect.Effect<ExecPool["Type"], never, Scope.Scope> = Effect.gen(function*() {
  const pool = makePoolUnscoped()
  yield* Effect.addFinalizer(() => pool.closeAll)
  return pool
})

/** A pool without a scope (the Promise facade's); call `closeAll` when done. */
export const makePoolUnscoped = (): ExecPool["Type"] => {
  const connections = new Map<string, ExecConnection>()
  const closeAll = Effect.suspend(() => Effect.forEach(Array.from(connections.values()), (c) => c.close, { discard: true }))
  return ExecPool.of({
    add: (hostOrUrl, options = {}) =>
      Effect.map(endpointOf(hostOrUrl, options), (endpoint) => {
        const url = Endpoint.format(endpoint)
        const existing = connections.get(url)
        if (existing !== undefined) return existing
        const connection = new ExecConnection(url, endpoint, clientOptions(options), (c) => {
          if (connections.get(url) === c) connections.delete(url)
        })
        connections.set(url, connection)
        return connection
      }),
    get: (url) => connections.get(url),
    connections: Effect.sync(() => Array.from(connections.values())),
    closeAll
  })
}

/** Connects to the exec server at a URL for the current scope: closed (and its commands killed) when the scope ends. */
export const connect = (
  url: string,
  options: ExecClientOptions & ConnectOptions = {}
): Effect.Effect<ExecConnection, ClientError | InvalidEndpoint | SecretError, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.flatMap(Endpoint.parse(url), (endpoint) => {
      const connection = new ExecConnection(Endpoint.format(endpoint), endpoint, clientOptions(options))
      return Effect.as(connection.connect(options), connection)
    }),
    (connection) => connection.close
  )

/** Parses `hostOrUrl`: a URL as is, or a host with `port` (and `transport`). */
export const endpointOf = (hostOrUrl: string, options: AddOptions = {}): Effect.Effect<Endpoint.Endpoint, InvalidEndpoint> =>
  hostOrUrl.includes("://")
    ? Endpoint.parse(hostOrUrl)
    : Endpoint.parse(`${options.transport ?? "tcp"}://${hostOrUrl.includes(":") ? `[${hostOrUrl}]` : hostOrUrl}:${options.port ?? 7880}`)

/** The suffix of a partial download next to its local path. */
export const partialSuffix = ".troupe-partial"

// ---------------------------------------------------------------------------------------------
// private

type ExecRpcClient = RpcClient.RpcClient<RpcGroup.Rpcs<typeof ExecRpc>, RpcClientError>
type OutputMailbox = import("effect/Mailbox").ReadonlyMailbox<ExecEvent, ExecError | RpcClientError>

interface Opening {
  readonly events: ReadonlyArray<ExecEvent>
  readonly error: ExecError | undefined
}

interface Live {
  readonly scope: Scope.CloseableScope
  readonly rpc: ExecRpcClient
}

const defaultChunk = 1024 * 1024
const transferInFlight = 4
const defaultWindow = 4 * 1024 * 1024

// Stream requests never block the connection: the client's buffer is unbounded, the server's credit bounds it.
const streamOptions = { asMailbox: true, streamBufferSize: Number.POSITIVE_INFINITY } as const

const echoToConsole = (chunk: Output): void => {
  ;(chunk.channel === "stdout" ? process.stdout : process.stderr).write(chunk.data)
}

const clientOptions = (options: ExecClientOptions): ExecClientOptions => {
  const { port: _port, transport: _transport, ...rest } = options as AddOptions
  return rest
}

const isRpcClientError = (error: unknown): error is RpcClientError =>
  typeof error === "object" && error !== null && (error as { _tag?: unknown })._tag === "RpcClientError"

const notStarted = (url: string): ExecError =>
  new ExecError({ reason: "not-found", message: `the command never started on ${url}` })

const toClientError = (url: string) => (error: ClientError | SecretError): ClientError =>
  error._tag === "ClientError" ? error : new ClientError({ reason: "unreachable", url, message: error.message })

const local = <A>(path: string, task: () => Promise<A>): Effect.Effect<A, ClientError> =>
  Effect.tryPromise({
    try: task,
    catch: (cause) =>
      new ClientError({
        reason: "local-file",
        url: path,
        message: `${path}: ${cause instanceof Error ? cause.message : String(cause)}`,
        cause
      })
  })

const slices = (bytes: Uint8Array, size: number): ReadonlyArray<Uint8Array> => {
  if (bytes.length <= size) return [bytes]
  const out: Array<Uint8Array> = []
  for (let at = 0; at < bytes.length; at += size) out.push(bytes.subarray(at, at + size))
  return out
}
