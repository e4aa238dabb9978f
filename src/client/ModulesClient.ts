import type * as RpcClient from "@effect/rpc/RpcClient"
import type { RpcClientError } from "@effect/rpc/RpcClientError"
import type * as RpcGroup from "@effect/rpc/RpcGroup"
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Runtime from "effect/Runtime"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type { ConfigError, ModuleError } from "../modules/Errors.js"
import * as DirectClient from "../modules/internal/DirectClient.js"
import type { ConfigReport, ModuleEvent, ModuleInfo, ReloadOutcome } from "../modules/ModuleInfo.js"
import { ModulesRpc, type PeerAddress } from "../protocol/ModulesRpc.js"
import * as Endpoint from "../transport/Endpoint.js"
import type { ConnectFailed, InvalidEndpoint } from "../transport/Errors.js"
import * as Secret from "../transport/Secret.js"
import type { SecretError } from "../transport/Secret.js"
import * as Transport from "../transport/Transport.js"
import { ServerUnreachable } from "./Errors.js"

/** Every error a ModulesClient call can report: the module's or the config's typed error, or an unreachable server. */
export type ModulesClientError = ModuleError | ServerUnreachable

/** Options for connecting to a module server. */
export interface ModulesClientOptions extends Transport.ClientOptions {
  /** A file holding the shared secret; read when `secret` is not given. Defaults to TROUPE_SECRET_FILE. */
  readonly secretFile?: string | undefined
  /**
   * Over framed:// and tcp://, call each module's worker process directly (one hop instead of two
   * through the server) once a route to it is open; default true. Calls go through the server
   * whenever a route cannot be had.
   */
  readonly direct?: boolean | undefined
}

/** A typed client of a module server (the `module` role), over any transport. */
export class ModulesClient extends Context.Tag("troupe/client/ModulesClient")<ModulesClient, {
  /** The endpoint URL this client talks to. */
  readonly url: string
  /** The caller's address as the server sees it. */
  readonly ping: Effect.Effect<PeerAddress, ServerUnreachable>
  /** Calls `fn(...args)` in `module` and returns its result. */
  readonly com: (module: string, fn: string, ...args: ReadonlyArray<unknown>) => Effect.Effect<unknown, ModulesClientError>
  /** A module's help, or the server's (its modules and protocols) without a name. */
  readonly help: (module?: string) => Effect.Effect<string, ModulesClientError>
  /** The names of the loaded modules starting with `prefix`. */
  readonly getModules: (prefix?: string) => Effect.Effect<ReadonlyArray<string>, ServerUnreachable>
  /** Status of each module starting with `prefix`: state, worker, generation, restarts, calls. */
  readonly status: (prefix?: string) => Effect.Effect<ReadonlyArray<ModuleInfo>, ServerUnreachable>
  /** Loads a module's code again; the old code serves until the new is ready, and keeps serving if it fails. */
  readonly reload: (module: string) => Effect.Effect<ReloadOutcome, ModulesClientError>
  /** Has the server read its config file now and apply it. */
  readonly reloadConfig: Effect.Effect<ConfigReport, ConfigError | ServerUnreachable>
  /** Module events (loads, reloads, crashes, restarts) from now on. */
  readonly events: Stream.Stream<ModuleEvent, ServerUnreachable>
}>() {
  /** Provides a ModulesClient connected to `url`; same as the module's `layer`. */
  static readonly layer = (
    url: string,
    options: ModulesClientOptions = {}
  ): Layer.Layer<ModulesClient, ServerUnreachable | InvalidEndpoint | SecretError> => layer(url, options)
  /** Connects within the current scope; same as the module's `make`. */
  static readonly make = (
    url: string,
    options: ModulesClientOptions = {}
  ): Effect.Effect<ModulesClient["Type"], ServerUnreachable | InvalidEndpoint | SecretError, Scope.Scope> =>
    make(url, options)
}

/** Connects to the module server at `url`; fails with ServerUnreachable when nothing answers within the timeout. */
export const make = Effect.fn("ModulesClient.make")(function*(url: string, options: ModulesClientOptions = {}) {
  const endpoint = yield* Endpoint.parse(url)
  const secret = options.secret ?? (yield* Secret.resolve(options.secretFile))
  const rpc = yield* Transport.makeClient(ModulesRpc, endpoint, { ...options, secret }).pipe(Effect.mapError(unreachable))
  const client = fromRpcClient(Endpoint.format(endpoint), rpc)
  if (options.direct === false || (endpoint._tag !== "Framed" && endpoint._tag !== "Tcp")) return client
  const routes = yield* DirectClient.make({
    host: endpoint.host,
    secret,
    connectTimeout: Duration.decode(options.connectTimeout ?? "5 seconds"),
    // A server without direct routes (an older one) fails the request: calls then go through it.
    port: rpc.Route(undefined),
    viaServer: (module, fn, args) => client.com(module, fn, ...args)
  })
  return ModulesClient.of({ ...client, com: (module, fn, ...args) => routes.com(module, fn, args) })
}) satisfies (
  url: string,
  options?: ModulesClientOptions
) => Effect.Effect<ModulesClient["Type"], ServerUnreachable | InvalidEndpoint | SecretError, Scope.Scope>

/** Provides a ModulesClient connected to `url` for the layer's lifetime. */
export const layer = (
  url: string,
  options: ModulesClientOptions = {}
): Layer.Layer<ModulesClient, ServerUnreachable | InvalidEndpoint | SecretError> =>
  Layer.scoped(ModulesClient, make(url, options))

/**
 * A connection to a module server for code that does not use Effect: the original client's
 * `ping()`, `com(module, fn, ...args)`, `help()`, `getModules(prefix)`, `reload(module)`, plus
 * `reloadConfig()`, `status()` and `close()`. Every method rejects with the typed errors
 * (ModuleError, ConfigError, ServerUnreachable), never with a wrapper.
 */
export interface ModulesConnection {
  readonly url: string
  readonly ping: () => Promise<PeerAddress>
  readonly com: (module: string, fn: string, ...args: ReadonlyArray<unknown>) => Promise<unknown>
  readonly help: (module?: string) => Promise<string>
  readonly getModules: (prefix?: string) => Promise<ReadonlyArray<string>>
  readonly status: (prefix?: string) => Promise<ReadonlyArray<ModuleInfo>>
  readonly reload: (module: string) => Promise<ReloadOutcome>
  readonly reloadConfig: () => Promise<ConfigReport>
  /** Module events from now on; stop iterating (break) to unsubscribe. */
  readonly events: () => AsyncIterable<ModuleEvent>
  /** Closes the connection; pending calls are interrupted. */
  readonly close: () => Promise<void>
  /** `await using conn = await connectModules(url)` closes it at the end of the block. */
  readonly [Symbol.asyncDispose]: () => Promise<void>
}

/** Connects to the module server at `url`; rejects with ServerUnreachable or InvalidEndpoint. */
export const connectModules = async (url: string, options: ModulesClientOptions = {}): Promise<ModulesConnection> => {
  const managed = ManagedRuntime.make(layer(url, options))
  const runtime = await managed.runtime().catch(async (error: unknown) => {
    await managed.dispose()
    throw unwrap(error)
  })
  const client = Context.get(runtime.context, ModulesClient)
  const runFork = Runtime.runFork(runtime)
  // A callback per call rather than runPromiseExit: `com` is the hot path.
  const run = <A, E>(effect: Effect.Effect<A, E>): Promise<A> =>
    new Promise<A>((resolve, reject) => {
      runFork(effect).addObserver((exit) => {
        if (Exit.isSuccess(exit)) resolve(exit.value)
        else reject(Cause.squash(exit.cause))
      })
    })
  const close = () => managed.dispose()
  return {
    url: client.url,
    ping: () => run(client.ping),
    com: (module, fn, ...args) => run(client.com(module, fn, ...args)),
    help: (module) => run(client.help(module)),
    getModules: (prefix) => run(client.getModules(prefix)),
    status: (prefix) => run(client.status(prefix)),
    reload: (module) => run(client.reload(module)),
    reloadConfig: () => run(client.reloadConfig),
    events: () => Stream.toAsyncIterableRuntime(client.events, runtime),
    close,
    [Symbol.asyncDispose]: close
  }
}

// ---------------------------------------------------------------------------------------------
// private

type ModulesRpcClient = RpcClient.RpcClient<RpcGroup.Rpcs<typeof ModulesRpc>, RpcClientError>

const fromRpcClient = (url: string, rpc: ModulesRpcClient): ModulesClient["Type"] => {
  const lost = (cause: Cause.Cause<RpcClientError | ModuleError | ConfigError>) =>
    Cause.isInterruptedOnly(cause)
      ? Cause.fail(new ServerUnreachable({ url, reason: "connection-lost", message: `server ${url} ended the call (shut down?)` }))
      : Cause.map(cause, (error) =>
        error._tag === "RpcClientError"
          ? new ServerUnreachable({ url, reason: "connection-lost", message: `lost connection to server ${url}`, cause: error })
          : error)
  const call = <A, E extends RpcClientError | ModuleError | ConfigError>(effect: Effect.Effect<A, E>) =>
    Effect.catchAllCause(effect, (cause) => Effect.failCause(lost(cause))) as Effect.Effect<
      A,
      Exclude<E, RpcClientError> | ServerUnreachable
    >
  return ModulesClient.of({
    url,
    ping: call(rpc.Ping(undefined)),
    com: (module, fn, ...args) => call(rpc.Com({ module, fn, args })),
    help: (module) => call(rpc.Help(module === undefined ? {} : { module })),
    getModules: (prefix) => call(rpc.GetModules(prefix === undefined ? {} : { prefix })),
    status: (prefix) => call(rpc.Status(prefix === undefined ? {} : { prefix })),
    reload: (module) => call(rpc.Reload({ module })),
    reloadConfig: call(rpc.ReloadConfig(undefined)),
    events: Stream.catchAllCause(rpc.Events(undefined), (cause) => Stream.failCause(lost(cause) as Cause.Cause<ServerUnreachable>))
  })
}

const unreachable = (error: ConnectFailed): ServerUnreachable =>
  new ServerUnreachable({ url: error.url, reason: error.reason, message: `cannot reach server ${error.url} (${error.detail})` })

// ManagedRuntime rejects with a FiberFailure; callers want the typed error inside it.
const unwrap = (error: unknown): unknown => (Runtime.isFiberFailure(error) ? Cause.squash(error[Runtime.FiberFailureCauseId]) : error)
