import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Runtime from "effect/Runtime"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import type { RestartPolicy } from "../actors/Supervisor.js"
import { Supervisor } from "../actors/Supervisor.js"
import type { ConnectFailed, ListenFailed } from "../transport/Errors.js"
import { type ClientOptions, NetQueueClient } from "./Client.js"
import type * as Dispatch from "./dispatch/Dispatch.js"
import { type Closed, ConfigError, type Empty, type Full, type InvalidItem } from "./Errors.js"
import { NetQueueNode } from "./Node.js"
import { type Callback, type ClientConn, type LogFunction, NetQueueServer, type ServerOptions, type ServerReport } from "./Server.js"

/** A duration for `get`, `put` and friends; absent means wait without limit. */
export type Timeout = Duration.DurationInput | undefined

/** The server's overridable methods, as functions (the Effect form of subclassing). */
export interface ServerHooks {
  readonly chooseDispatch?: (ready: ReadonlyArray<ClientConn>, server: NetQueueServer) => ClientConn | undefined
  readonly getStatus?: () => string | undefined
  readonly handleClientStatus?: (client: ClientConn, text: string, server: NetQueueServer) => void
  readonly handleClientEnqueue?: (client: ClientConn, items: ReadonlyArray<string>, server: NetQueueServer) => void
}

/** The client's overridable methods, as functions. */
export interface ClientHooks {
  readonly getStatus?: () => string | undefined
  readonly handleServerStatus?: (text: string) => void
  /** Items a hook handles here count as finished when it returns (they do not reach `get`). */
  readonly handleServerEnqueue?: (items: ReadonlyArray<string>) => void
}

/** A bound Net Queue server, with Effect methods. */
export interface Server {
  /** The Promise-facade object underneath (for `clients`, `config`, `report`). */
  readonly server: NetQueueServer
  readonly port: number
  readonly get: (options?: { readonly block?: boolean; readonly timeout?: Timeout }) => Effect.Effect<string, Empty | Closed>
  readonly getAll: Effect.Effect<Array<string>>
  readonly put: (
    items: ReadonlyArray<string>,
    options?: { readonly block?: boolean; readonly timeout?: Timeout; readonly sendAll?: boolean }
  ) => Effect.Effect<void, Full | InvalidItem | Closed>
  readonly putTo: (
    client: ClientConn,
    items: ReadonlyArray<string>,
    options?: { readonly block?: boolean; readonly timeout?: Timeout }
  ) => Effect.Effect<void, Full | InvalidItem | Closed>
  readonly poll: (options?: { readonly block?: boolean; readonly timeout?: Timeout }) => Effect.Effect<boolean>
  readonly acceptConnections: (options?: { readonly block?: boolean; readonly timeout?: Timeout }) => Effect.Effect<number>
  readonly report: Effect.Effect<ServerReport>
}

/** A connected Net Queue client, with Effect methods. */
export interface Client {
  readonly client: NetQueueClient
  readonly get: (options?: { readonly block?: boolean; readonly timeout?: Timeout }) => Effect.Effect<string, Empty | Closed>
  readonly getAll: Effect.Effect<Array<string>>
  readonly put: (items: ReadonlyArray<string>) => Effect.Effect<void, InvalidItem | Closed>
  /** Waits until the items put are held by a Troupe server (or written, for a plain one). */
  readonly flush: (timeout?: Timeout) => Effect.Effect<void, Empty | Closed>
  readonly poll: (options?: { readonly block?: boolean; readonly timeout?: Timeout }) => Effect.Effect<boolean>
  readonly report: (timeout?: Timeout) => Effect.Effect<ServerReport, Empty | Closed>
  /** Closes now (the scope closes it too, with DISCONN). */
  readonly close: (signalDisconn?: boolean) => Effect.Effect<void>
}

/** Where to bind or connect. */
export interface Address {
  readonly host: string
  readonly port: number
}

/** The node's connection to its parent ended; its supervisor reconnects. */
export class ParentLost extends Data.TaggedError("ParentLost")<{ readonly message: string }> {}

/** How the parent link is restarted: keep trying, from 50 ms up to 2 s apart. */
export const parentPolicy: RestartPolicy = {
  maxRestarts: Number.MAX_SAFE_INTEGER,
  within: "1 minute",
  baseDelay: "50 millis",
  maxDelay: "2 seconds"
}

/** Binds a server for the scope's lifetime; closing the scope sends DISCONN to every client. */
export const bind = (
  address: Address,
  options: Omit<ServerOptions, "log"> & { readonly hooks?: ServerHooks } = {}
): Effect.Effect<Server, ListenFailed | ConfigError, Scope.Scope> =>
  Effect.gen(function*() {
    const log = yield* logFunction
    const server = yield* construct(() => withServerHooks(new NetQueueServer({ ...options, log }), options.hooks))
    yield* Effect.acquireRelease(Effect.tryPromise({ try: () => server.bind(address.host, address.port), catch: (e) => e as ListenFailed }), () =>
      Effect.promise(() => server.close()))
    return serverHandle(server)
  })

/** Connects a client for the scope's lifetime; closing the scope sends DISCONN. */
export const connect = (
  address: Address,
  options: Omit<ClientOptions, "log"> & { readonly hooks?: ClientHooks } = {}
): Effect.Effect<Client, ConnectFailed | ConfigError, Scope.Scope> =>
  Effect.gen(function*() {
    const log = yield* logFunction
    const client = yield* construct(() => withClientHooks(new NetQueueClient({ ...options, log }), options.hooks))
    yield* Effect.acquireRelease(
      Effect.tryPromise({ try: () => client.connect(address.host, address.port), catch: (e) => e as ConnectFailed }),
      () => Effect.promise(() => client.close(true))
    )
    return clientHandle(client)
  })

/** How to run a tree node. */
export interface NodeOptions extends Omit<ServerOptions, "log" | "policy"> {
  readonly listen: Address
  readonly parent?: Address | undefined
  readonly policy?: Dispatch.PolicyName | Dispatch.DispatchPolicy | Dispatch.ChooseFunction | undefined
  /** Options of the link to the parent (ping, window, connect timeout). */
  readonly parentOptions?: Omit<ClientOptions, "log" | "producer" | "configFile"> | undefined
}

/** A running tree node: its server half, and the node for reports. */
export interface Node extends Server {
  readonly node: NetQueueNode
}

/**
 * Runs a tree node for the scope's lifetime: the server for children, and (with `parent`) a link to
 * the parent, supervised: when it is lost it is made again with backoff, for as long as the node runs.
 */
export const node = (options: NodeOptions): Effect.Effect<Node, ListenFailed | ConfigError, Scope.Scope | Supervisor> =>
  Effect.gen(function*() {
    const log = yield* logFunction
    const { listen, parent, parentOptions, ...serverOptions } = options
    const node = yield* construct(() => new NetQueueNode({ ...serverOptions, configFile: serverOptions.configFile ?? "", log }))
    yield* Effect.acquireRelease(
      Effect.tryPromise({ try: () => node.bind(listen.host, listen.port), catch: (e) => e as ListenFailed }),
      () => Effect.promise(() => node.close())
    )
    if (parent !== undefined) {
      const supervisor = yield* Supervisor
      yield* supervisor.supervise(`netqueue parent link to ${parent.host}:${parent.port}`, parentLink(node, parent, { ...parentOptions, log }), parentPolicy)
    }
    return { ...serverHandle(node), node }
  })

// ---------------------------------------------------------------------------------------------
// private

const parentLink = (node: NetQueueNode, parent: Address, options: ClientOptions): Effect.Effect<never, ParentLost | ConnectFailed> =>
  Effect.acquireUseRelease(
    Effect.sync(() => node.makeParentLink(options)),
    (link) =>
      Effect.gen(function*() {
        // Connecting is retried here (a parent that is not up yet is normal); the supervisor restarts a lost link.
        yield* Effect.tryPromise({ try: () => link.connect(parent.host, parent.port), catch: (e) => e as ConnectFailed }).pipe(
          Effect.tapError((error) => Effect.logWarning(`parent link: ${error.message}; retrying`)),
          Effect.retry(Schedule.exponential("50 millis").pipe(Schedule.either(Schedule.spaced("2 seconds"))))
        )
        node.attachParent(link)
        yield* Effect.logInfo(`connected to parent ${link.url}${link.troupeServer ? " (Troupe: at-least-once)" : " (plain Net Queue: at-most-once)"}`)
        return yield* Effect.async<never, ParentLost>((resume) => {
          link.onDisconnected = (reason) => resume(Effect.fail(new ParentLost({ message: `lost the parent ${link.url}: ${reason}` })))
          if (!link.connected) link.onDisconnected("closed while connecting")
        })
      }),
    (link) => Effect.promise(() => link.close(true)).pipe(Effect.ensuring(Effect.sync(() => node.detachParent(link))))
  )

const logFunction: Effect.Effect<LogFunction> = Effect.map(Effect.runtime<never>(), (runtime) => {
  const run = Runtime.runSync(runtime)
  return (level, message) =>
    run(
      (level === "warning" ? Effect.logWarning(message) : level === "info" ? Effect.logInfo(message) : Effect.logDebug(message))
        .pipe(Effect.annotateLogs("component", "netqueue"))
    )
})

const construct = <A>(make: () => A): Effect.Effect<A, ConfigError> =>
  Effect.try({
    try: make,
    catch: (error) => error instanceof ConfigError ? error : new ConfigError({ path: "options", message: String(error instanceof Error ? error.message : error) })
  })

const fromCallback = <A, E>(run: (callback: Callback<A, E>) => () => void): Effect.Effect<A, E> =>
  Effect.async<A, E>((resume) => {
    const cancel = run((result) => resume(Either.isRight(result) ? Effect.succeed(result.right) : Effect.fail(result.left)))
    return Effect.sync(cancel)
  })

const ms = (timeout: Timeout): number | undefined => timeout === undefined ? undefined : Duration.toMillis(Duration.decode(timeout))

const serverHandle = (server: NetQueueServer): Server => ({
  server,
  port: server.port,
  get: (options = {}) => fromCallback((callback) => server.getAsync(options.block ?? true, ms(options.timeout), callback)),
  getAll: Effect.sync(() => server.getAll()),
  put: (items, options = {}) =>
    fromCallback((callback) => server.putAsync(items, options.block ?? false, ms(options.timeout), options.sendAll ?? false, callback)),
  putTo: (client, items, options = {}) =>
    fromCallback((callback) => server.putToAsync(client, items, options.block ?? false, ms(options.timeout), callback)),
  poll: (options = {}) => fromCallback((callback) => server.pollAsync(options.block ?? false, ms(options.timeout), callback)),
  acceptConnections: (options = {}) => fromCallback((callback) => server.acceptAsync(options.block ?? false, ms(options.timeout), callback)),
  report: Effect.sync(() => server.report())
})

const clientHandle = (client: NetQueueClient): Client => ({
  client,
  get: (options = {}) => fromCallback((callback) => client.getAsync(options.block ?? true, ms(options.timeout), callback)),
  getAll: Effect.sync(() => client.getAll()),
  put: (items) => Effect.try({ try: () => client.put(items), catch: (e) => e as InvalidItem | Closed }),
  flush: (timeout) => fromCallback((callback) => client.flushAsync(ms(timeout), callback)),
  poll: (options = {}) => fromCallback((callback) => client.pollAsync(options.block ?? false, ms(options.timeout), callback)),
  report: (timeout) => Effect.tryPromise({ try: () => client.report(timeout), catch: (e) => e as Empty | Closed }),
  close: (signalDisconn = true) => Effect.promise(() => client.close(signalDisconn))
})

const withServerHooks = (server: NetQueueServer, hooks: ServerHooks | undefined): NetQueueServer => {
  if (hooks === undefined) return server
  const defaultStatus = server.handleClientStatus.bind(server)
  if (hooks.chooseDispatch) server.chooseDispatch = (ready) => hooks.chooseDispatch!(ready, server)
  if (hooks.getStatus) server.getStatus = hooks.getStatus
  if (hooks.handleClientStatus) {
    server.handleClientStatus = (client, text) => {
      defaultStatus(client, text)
      hooks.handleClientStatus!(client, text, server)
    }
  }
  if (hooks.handleClientEnqueue) server.handleClientEnqueue = (client, items) => hooks.handleClientEnqueue!(client, items, server)
  return server
}

const withClientHooks = (client: NetQueueClient, hooks: ClientHooks | undefined): NetQueueClient => {
  if (hooks === undefined) return client
  if (hooks.getStatus) client.getStatus = hooks.getStatus
  if (hooks.handleServerStatus) client.handleServerStatus = hooks.handleServerStatus
  if (hooks.handleServerEnqueue) client.handleServerEnqueue = hooks.handleServerEnqueue
  return client
}
