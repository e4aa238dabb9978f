import type * as Rpc from "@effect/rpc/Rpc"
import * as RpcClient from "@effect/rpc/RpcClient"
import type { RpcClientError } from "@effect/rpc/RpcClientError"
import type * as RpcGroup from "@effect/rpc/RpcGroup"
import * as RpcServer from "@effect/rpc/RpcServer"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Mailbox from "effect/Mailbox"
import type * as Scope from "effect/Scope"
import * as Routes from "../rpc/internal/routes.js"
import * as Endpoint from "./Endpoint.js"
import type { ConnectFailed } from "./Errors.js"
import { ListenFailed } from "./Errors.js"
import type { Secret } from "./Secret.js"
import * as FolderRpc from "./folder/FolderRpc.js"
import * as FramedRpc from "./framed/FramedRpc.js"
import * as SocketRpc from "./socket/SocketRpc.js"

/** How a server listens, whatever the transport; each transport ignores what does not apply to it. */
export interface ServerOptions {
  /** The shared secret clients must prove they hold; required when binding beyond loopback. */
  readonly secret?: Secret | undefined
  /** Serve a non-loopback address without a secret; for networks that are already private. */
  readonly insecure?: boolean | undefined
  /** How many requests one server handles at once; default unbounded. */
  readonly concurrency?: number | "unbounded" | undefined
  /** Permission bits for a Unix socket file; default 0o600. */
  readonly socketMode?: number | undefined
  /** The largest frame the framed transport accepts; default 16 MiB. */
  readonly maxFrameBytes?: number | undefined
  /** Called once per client connection (by its RPC clientId) when it is gone, after its requests were interrupted. */
  readonly onDisconnect?: ((clientId: number) => Effect.Effect<void>) | undefined
  /**
   * Called synchronously when a client connection (by its RPC clientId) opens, with the peer's
   * address, before its first request; not called by the folder transport, which has no peers.
   */
  readonly onConnect?: ((clientId: number, peer: Peer) => void) | undefined
}

/** The address a client connected from: an IP and port, or `{ host: "unix", port: 0 }` for a Unix socket. */
export interface Peer {
  readonly host: string
  readonly port: number
}

/** How a client connects, whatever the transport. */
export interface ClientOptions {
  /** How long the first connection may take before it fails with ConnectFailed; default 5 seconds. */
  readonly connectTimeout?: Duration.DurationInput | undefined
  /** The shared secret, when the server asks for one. */
  readonly secret?: Secret | undefined
  /** The largest frame the framed transport accepts; default 16 MiB. */
  readonly maxFrameBytes?: number | undefined
}

/** Serves an RpcGroup on one endpoint of any transport, with no per-request spans. */
export const layerServer = <Rpcs extends Rpc.Any>(
  group: RpcGroup.RpcGroup<Rpcs>,
  endpoint: Endpoint.Endpoint,
  options: ServerOptions = {}
): Layer.Layer<never, ListenFailed, Rpc.ToHandler<Rpcs> | Rpc.Context<Rpcs> | Rpc.Middleware<Rpcs>> =>
  endpoint._tag === "Framed" && Routes.supportsGroup(group)
    ? Layer.unwrapEffect(Effect.as(checkExposure(endpoint, options), FramedRpc.layerServer(group, endpoint, options)))
    : RpcServer.layer(group, {
    disableTracing: true,
    spanPrefix: `RpcServer(${Endpoint.format(endpoint)})`,
    concurrency: options.concurrency ?? "unbounded"
  }).pipe(Layer.provide(withDisconnectHook(layerServerProtocol(endpoint, options), options.onDisconnect)))

/** A typed client of an RpcGroup on one endpoint of any transport; fails with ConnectFailed when nothing answers. */
export const makeClient = <Rpcs extends Rpc.Any>(
  group: RpcGroup.RpcGroup<Rpcs>,
  endpoint: Endpoint.Endpoint,
  options: ClientOptions = {}
): Effect.Effect<RpcClient.RpcClient<Rpcs, RpcClientError>, ConnectFailed, Scope.Scope> =>
  endpoint._tag === "Framed" && Routes.supportsGroup(group)
    ? Effect.map(FramedRpc.makeClient(group, endpoint, options), ({ client }) => client)
    : Effect.flatMap(
    Layer.build(layerClientProtocol(endpoint, options)),
    (protocol) => RpcClient.make(group, { disableTracing: true }).pipe(Effect.provide(protocol))
  )

/** The RPC server Protocol for an endpoint: the transport is chosen by the URL's scheme. */
export const layerServerProtocol = (
  endpoint: Endpoint.Endpoint,
  options: ServerOptions = {}
): Layer.Layer<RpcServer.Protocol, ListenFailed> =>
  Layer.unwrapEffect(Effect.as(checkExposure(endpoint, options), serverProtocolFor(endpoint, options)))

/** The RPC client Protocol for an endpoint; fails with ConnectFailed when the first connection cannot be made. */
export const layerClientProtocol = (
  endpoint: Endpoint.Endpoint,
  options: ClientOptions = {}
): Layer.Layer<RpcClient.Protocol, ConnectFailed> => {
  switch (endpoint._tag) {
    case "Tcp":
    case "Unix":
      return SocketRpc.layerClientProtocol(endpoint, options)
    case "Folder":
      return FolderRpc.layerClientProtocol(endpoint, options)
    case "Framed":
      return FramedRpc.layerClientProtocol(endpoint, options)
  }
}

/**
 * A listener reachable from other machines must authenticate its clients. Binding beyond loopback
 * without a secret is refused unless the caller says the network is private (`insecure`).
 */
export const checkExposure = (endpoint: Endpoint.Endpoint, options: ServerOptions): Effect.Effect<void, ListenFailed> => {
  if (Endpoint.isLocal(endpoint) || options.secret !== undefined) return Effect.void
  const url = Endpoint.format(endpoint)
  return options.insecure === true
    ? Effect.logWarning(`listening on ${url} without authentication (--insecure)`)
    : Effect.fail(
      new ListenFailed({
        url,
        reason: "secret-required",
        message: `refusing to listen on ${url} without a shared secret: it is reachable from other machines. ` +
          `Pass --secret-file FILE (or set TROUPE_SECRET_FILE), or --insecure on a private network`
      })
    )
}

// Wraps a server Protocol so that the owner hears of each client that goes away.
const withDisconnectHook = (
  protocol: Layer.Layer<RpcServer.Protocol, ListenFailed>,
  onDisconnect: ((clientId: number) => Effect.Effect<void>) | undefined
): Layer.Layer<RpcServer.Protocol, ListenFailed> =>
  onDisconnect === undefined ? protocol : Layer.scoped(
    RpcServer.Protocol,
    Effect.gen(function*() {
      const inner = yield* RpcServer.Protocol
      const disconnects = yield* Mailbox.make<number>()
      yield* inner.disconnects.take.pipe(
        Effect.tap(onDisconnect),
        Effect.flatMap((clientId) => disconnects.offer(clientId)),
        Effect.forever,
        Effect.ignore,
        Effect.forkScoped
      )
      return RpcServer.Protocol.of({ ...inner, disconnects })
    })
  ).pipe(Layer.provide(protocol))

const serverProtocolFor = (
  endpoint: Endpoint.Endpoint,
  options: ServerOptions
): Layer.Layer<RpcServer.Protocol, ListenFailed> => {
  switch (endpoint._tag) {
    case "Tcp":
    case "Unix":
      return SocketRpc.layerServerProtocol(endpoint, options)
    case "Folder":
      return FolderRpc.layerServerProtocol(endpoint, options)
    case "Framed":
      return FramedRpc.layerServerProtocol(endpoint, options)
  }
}
