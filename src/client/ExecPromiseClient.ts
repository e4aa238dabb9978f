import * as Cause from "effect/Cause"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Runtime from "effect/Runtime"
import * as Stream from "effect/Stream"
import type { ClientError, ExecError } from "../exec/Errors.js"
import type { FileInfo, OsInfo, Output, RunInfo } from "../protocol/ExecRpc.js"
import type { SecretError } from "../transport/Secret.js"
import * as ExecClient from "./ExecClient.js"
import type { ExecListener, ExecResult } from "./ExecListener.js"

/**
 * A pool of exec connections for code that does not use Effect, one connection per server: the
 * seed's `client.add(host, port=...)`. `ExecClients` is the default pool.
 */
export class ExecClientPool {
  private readonly pool = ExecClient.makePoolUnscoped()
  private readonly facades = new Map<ExecClient.ExecConnection, PromiseExecConnection>()

  /** The connection to a server, by URL or by host and `port`; unconnected until `connect`. The same server gives the same object. */
  add(hostOrUrl: string, options: ExecClient.AddOptions = {}): PromiseExecConnection {
    const connection = run(this.pool.add(hostOrUrl, options))
    let facade = this.facades.get(connection)
    if (facade === undefined) {
      facade = new PromiseExecConnection(connection, () => this.facades.delete(connection))
      this.facades.set(connection, facade)
    }
    return facade
  }

  /** The pooled connections. */
  get connections(): ReadonlyArray<PromiseExecConnection> {
    return Array.from(this.facades.values())
  }

  /** Closes every connection of the pool. */
  closeAll(): Promise<void> {
    return runPromise(this.pool.closeAll)
  }

  /** `await using pool = new ExecClientPool()` closes every connection at the end of the block. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.closeAll()
  }
}

/** The default pool of exec connections. */
export const ExecClients: ExecClientPool = new ExecClientPool()

/**
 * A connection to an exec server with Promises: `await conn.connect({ timeout })`, server commands
 * as methods (every one rejects with ExecError or ClientError), `close()`, and `await using`.
 */
export class PromiseExecConnection {
  constructor(
    /** The Effect connection underneath, for code that mixes both. */
    readonly effect: ExecClient.ExecConnection,
    private readonly onClose: () => void = () => undefined
  ) {}

  /** The server's endpoint URL. */
  get url(): string {
    return this.effect.url
  }

  /** True between `connect` and `disconnect`. */
  get connected(): boolean {
    return this.effect.connected
  }

  /** Connects (retrying until `timeout`, default 5 s); resolves to this connection, so `await using c = await pool.add(...).connect()` works. */
  async connect(options: ExecClient.ConnectOptions = {}): Promise<this> {
    await runPromise<void, ClientError | SecretError>(this.effect.connect(options))
    return this
  }

  /** Closes the connection; `connect` may be called again. */
  disconnect(): Promise<void> {
    return runPromise(this.effect.disconnect)
  }

  /** Disconnects and leaves the pool. */
  async close(): Promise<void> {
    await runPromise(this.effect.close)
    this.onClose()
  }

  /** Closes the connection at the end of an `await using` block. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close()
  }

  /** Runs a command: the whole output when it ends, or with `complete: false` a listener once it started. */
  exec(command: string | ReadonlyArray<string>, options: ExecClient.ExecOptions & { readonly complete: false }): Promise<PromiseExecListener>
  exec(command: string | ReadonlyArray<string>, options?: ExecClient.ExecOptions): Promise<ExecResult>
  exec(command: string | ReadonlyArray<string>, options: ExecClient.ExecOptions = {}): Promise<ExecResult | PromiseExecListener> {
    return options.complete === false
      ? runPromise(this.effect.exec(command, { ...options, complete: false })).then((l) => new PromiseExecListener(l))
      : runPromise(this.effect.exec(command, options))
  }

  /** Reads a kept command's output from where the last reader stopped. */
  attach(id: string, options: ExecClient.ExecOptions & { readonly complete: false }): Promise<PromiseExecListener>
  attach(id: string, options?: ExecClient.ExecOptions): Promise<ExecResult>
  attach(id: string, options: ExecClient.ExecOptions = {}): Promise<ExecResult | PromiseExecListener> {
    return options.complete === false
      ? runPromise(this.effect.attach(id, { ...options, complete: false })).then((l) => new PromiseExecListener(l))
      : runPromise(this.effect.attach(id, options))
  }

  /** Writes to a command's stdin; with `eof`, closes it afterwards. */
  sendInput(id: string, data: Uint8Array | string, options: ExecClient.CallOptions & { readonly eof?: boolean } = {}): Promise<void> {
    return runPromise(this.effect.sendInput(id, data, options))
  }

  /** Sends a signal (default SIGTERM) to a command's process group. */
  kill(id: string, signal?: string, options?: ExecClient.CallOptions): Promise<boolean> {
    return runPromise(this.effect.kill(id, signal, options))
  }

  /** The commands the server is running or keeping. */
  jobs(options?: ExecClient.CallOptions): Promise<ReadonlyArray<RunInfo>> {
    return runPromise(this.effect.jobs(options))
  }

  /** True while the command runs. */
  isAlive(id: string, options?: ExecClient.CallOptions): Promise<boolean> {
    return runPromise(this.effect.isAlive(id, options))
  }

  /** Changes this connection's cwd; resolves to the new one. */
  cd(path: string, options?: ExecClient.CallOptions): Promise<string> {
    return runPromise(this.effect.cd(path, options))
  }

  /** This connection's cwd on the server. */
  cwd(options?: ExecClient.CallOptions): Promise<string> {
    return runPromise(this.effect.cwd(options))
  }

  /** A directory's entries (default the cwd). */
  ls(path?: string, options?: ExecClient.CallOptions): Promise<ReadonlyArray<FileInfo>> {
    return runPromise(this.effect.ls(path, options))
  }

  /** One entry. */
  stat(path: string, options?: ExecClient.CallOptions): Promise<FileInfo> {
    return runPromise(this.effect.stat(path, options))
  }

  /** Makes a directory (with `parents`, its parents too). */
  mkdir(path: string, options?: ExecClient.CallOptions & { readonly parents?: boolean }): Promise<void> {
    return runPromise(this.effect.mkdir(path, options))
  }

  /** Removes a file or empty directory (with `recursive`, a tree). */
  rm(path: string, options?: ExecClient.CallOptions & { readonly recursive?: boolean }): Promise<void> {
    return runPromise(this.effect.rm(path, options))
  }

  /** Creates a file or updates its times. */
  touch(path: string, options?: ExecClient.CallOptions): Promise<void> {
    return runPromise(this.effect.touch(path, options))
  }

  /** A remote file's bytes as an async iterable. */
  readFile(path: string, options?: { readonly chunkSize?: number }): AsyncIterable<Uint8Array> {
    return iterate(this.effect.readFile(path, options))
  }

  /** Writes a remote file (with `append`, at its end); resolves to its size. */
  writeFile(path: string, data: Uint8Array | string, options?: ExecClient.CallOptions & { readonly append?: boolean }): Promise<number> {
    return runPromise(this.effect.writeFile(path, data, options))
  }

  /** The server machine. */
  osInfo(options?: ExecClient.CallOptions): Promise<OsInfo> {
    return runPromise(this.effect.osInfo(options))
  }

  /** Stops the server (only when it runs with --allow-close). */
  closeServer(options?: ExecClient.CallOptions): Promise<void> {
    return runPromise(this.effect.closeServer(options))
  }

  /** Whether the server answers within `timeout` (default 5 s); never rejects. */
  heartbeat(options?: ExecClient.CallOptions): Promise<boolean> {
    return runPromise(this.effect.heartbeat(options))
  }

  /** Sends a local file in checksummed chunks, resuming after a broken connection. */
  transfer(localPath: string, remotePath: string, options?: ExecClient.TransferOptions): Promise<ExecClient.TransferResult> {
    return runPromise(this.effect.transfer(localPath, remotePath, options))
  }

  /** Fetches a remote file to a local path, resuming after a broken connection. */
  download(remotePath: string, localPath: string, options?: ExecClient.TransferOptions): Promise<number> {
    return runPromise(this.effect.download(remotePath, localPath, options))
  }
}

/**
 * The seed's listener with Promises: `next()` (null once the command ended), `for await`, the Effect
 * `stream`, `done`, `exitCode`, `id`, and a `maxInterval` that can be changed at any time.
 */
export class PromiseExecListener implements AsyncIterable<Output> {
  constructor(
    /** The Effect listener underneath. */
    readonly effect: ExecListener
  ) {}

  /** The command's id on the server. */
  get id(): string | undefined {
    return this.effect.id
  }

  /** The command's process id on the server. */
  get pid(): number {
    return this.effect.pid
  }

  /** True once the command ended and all its output was read. */
  get done(): boolean {
    return this.effect.done
  }

  /** The exit code once done (null for a signal). */
  get exitCode(): number | null {
    return this.effect.exitCode
  }

  /** The signal that ended the command, once done. */
  get signal(): string | null {
    return this.effect.signal
  }

  /** The server's error when the command failed there (raiseError false). */
  get error(): ExecError | undefined {
    return this.effect.error
  }

  /** The longest silence `next` waits through (a number is milliseconds). */
  get maxInterval(): Duration.DurationInput | undefined {
    return this.effect.maxInterval
  }

  set maxInterval(value: Duration.DurationInput | undefined) {
    this.effect.maxInterval = value
  }

  /** The next chunk of output, or null once the command ended; rejects with ClientError "max-interval" after a silence. */
  next(): Promise<Output | null> {
    return runPromise(this.effect.next)
  }

  /** The rest of the output as an Effect Stream. */
  get stream(): Stream.Stream<Output, ExecError | ClientError> {
    return this.effect.stream
  }

  /** Reads to the end and resolves to the whole output. */
  collect(): Promise<ExecResult> {
    return runPromise(this.effect.collect())
  }

  /** Writes to the command's stdin. */
  sendInput(data: Uint8Array | string, options?: { readonly eof?: boolean }): Promise<void> {
    return runPromise(this.effect.sendInput(data, options))
  }

  /** Sends a signal (default SIGTERM) to the command's process group. */
  kill(signal?: string): Promise<boolean> {
    return runPromise(this.effect.kill(signal))
  }

  /** Stops listening: the command is killed unless it was started with keepRunning. */
  close(): Promise<void> {
    return runPromise(this.effect.close)
  }

  /** Closes the listener at the end of an `await using` block. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close()
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Output> {
    for (;;) {
      const chunk = await this.next()
      if (chunk === null) return
      yield chunk
    }
  }
}

// ---------------------------------------------------------------------------------------------
// private

// Rejects with the typed error itself, never a FiberFailure wrapper.
const runPromise = <A, E>(effect: Effect.Effect<A, E>): Promise<A> =>
  Effect.runPromiseExit(effect).then((exit) => {
    if (Exit.isSuccess(exit)) return exit.value
    throw Cause.squash(exit.cause)
  })

const run = <A, E>(effect: Effect.Effect<A, E>): A => {
  const exit = Effect.runSyncExit(effect)
  if (Exit.isSuccess(exit)) return exit.value
  throw Cause.squash(exit.cause)
}

const iterate = <A, E>(stream: Stream.Stream<A, E>): AsyncIterable<A> => ({
  [Symbol.asyncIterator]: () => {
    const iterator = Stream.toAsyncIterable(stream)[Symbol.asyncIterator]()
    return {
      next: () =>
        iterator.next().catch((error: unknown) => {
          throw unwrapFiberFailure(error)
        }),
      return: () => iterator.return?.() ?? Promise.resolve({ done: true, value: undefined })
    }
  }
})

const unwrapFiberFailure = (error: unknown): unknown =>
  Runtime.isFiberFailure(error) ? Cause.squash(error[Runtime.FiberFailureCauseId]) : error
