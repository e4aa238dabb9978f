import type * as Rpc from "@effect/rpc/Rpc"
import type * as RpcGroup from "@effect/rpc/RpcGroup"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as CompatServer from "../modules/CompatServer.js"
import * as DirectServer from "../modules/DirectServer.js"
import type { ConfigError } from "../modules/Errors.js"
import * as ModuleServer from "../modules/ModuleServer.js"
import { ModulesRpc, PeerAddress } from "../protocol/ModulesRpc.js"
import * as Endpoint from "../transport/Endpoint.js"
import { ListenFailed } from "../transport/Errors.js"
import type { Secret } from "../transport/Secret.js"
import * as Transport from "../transport/Transport.js"

/** How to run the `module` role. */
export interface ModuleRoleOptions extends ModuleServer.ModuleServerOptions {
  /** Endpoints to serve ModulesRpc on; default `tcp://127.0.0.1:7881`. */
  readonly listen?: ReadonlyArray<Endpoint.Endpoint> | undefined
  /** The listener for the original clients; default 127.0.0.1:36577, `off` for none. */
  readonly compat?: { readonly host: string; readonly port: number } | "off" | undefined
  /** The shared secret typed clients must prove they hold; required for listeners beyond loopback. */
  readonly secret?: Secret | undefined
  /** Listen beyond loopback without a secret (a private network); also allows a compat listener beyond loopback. */
  readonly insecure?: boolean | undefined
  /**
   * The port of the direct-route listener beside each TCP endpoint: default 0, an ephemeral port;
   * a fixed port for firewalls; `off` for none (every call then passes through the server).
   */
  readonly directPort?: number | "off" | undefined
}

/** The endpoint the module role serves when no `--listen` is given. */
export const defaultListen: Endpoint.Endpoint = new Endpoint.TcpEndpoint({ host: "127.0.0.1", port: 7881 })

/**
 * The `module` role: a module server (its config watched, its modules in supervised workers) served
 * to typed clients on every `listen` endpoint, and to the original clients on the compat listener.
 * Closing the layer (SIGINT, SIGTERM) stops the listeners, then every module: running calls get the
 * grace period, then each worker runs its module's `dispose` and exits.
 */
export const layer = (options: ModuleRoleOptions): Layer.Layer<never, ListenFailed | ConfigError> => {
  const listen = options.listen !== undefined && options.listen.length > 0 ? options.listen : [defaultListen]
  const serverOptions: Transport.ServerOptions = {
    ...(options.secret !== undefined ? { secret: options.secret } : {}),
    ...(options.insecure !== undefined ? { insecure: options.insecure } : {})
  }
  const listeners = Layer.mergeAll(
    Layer.empty,
    ...listen.map((endpoint) => layerListener(endpoint, serverOptions, options.directPort ?? 0))
  )
  return Layer.mergeAll(listeners, layerCompat(options)).pipe(
    Layer.tap(() => Effect.logInfo(`troupe module role serving ${listen.map(Endpoint.format).join(" ")}`)),
    Layer.provide(ModuleServer.layer(options))
  )
}

/**
 * The ModulesRpc handlers over a ModuleServer; `peerOf` gives a connection's address by its clientId,
 * `directPort` the port of the direct-route listener beside the endpoint (null for none).
 */
export const layerHandlers = (
  peerOf: (clientId: number) => PeerAddress,
  directPort: () => number | null = () => null
): Layer.Layer<Rpc.ToHandler<RpcGroup.Rpcs<typeof ModulesRpc>>, never, ModuleServer.ModuleServer> =>
  ModulesRpc.toLayer(Effect.gen(function*() {
    const modules = yield* ModuleServer.ModuleServer
    return {
      Ping: (_, { clientId }) => Effect.succeed(peerOf(clientId)),
      Com: ({ args, fn, module }, { clientId }) => modules.com(module, fn, args, peerOf(clientId).ip),
      Help: ({ module }) => modules.help(module),
      GetModules: ({ prefix }) => Effect.sync(() => modules.getModules(prefix)),
      Status: ({ prefix }) => Effect.sync(() => modules.status(prefix)),
      Reload: ({ module }) => modules.reload(module),
      ReloadConfig: () => modules.reloadConfig,
      Events: () => modules.events,
      Route: () => Effect.sync(directPort)
    }
  }))

// ---------------------------------------------------------------------------------------------
// private

// One endpoint: its own RpcServer and its own table of client addresses (client ids are per protocol).
// A TCP endpoint (framed:// or tcp://) gets a direct-route listener on its host too, unless `off`.
const layerListener = (
  endpoint: Endpoint.Endpoint,
  options: Transport.ServerOptions,
  directPort: number | "off"
): Layer.Layer<never, ListenFailed, ModuleServer.ModuleServer> =>
  Layer.unwrapScoped(Effect.gen(function*() {
    const peers = new Map<number, PeerAddress>()
    const none = new PeerAddress({ ip: endpoint._tag === "Folder" ? "folder" : "unix", port: 0 })
    let direct: DirectServer.DirectServer | undefined
    if ((endpoint._tag === "Framed" || endpoint._tag === "Tcp") && directPort !== "off") {
      yield* Transport.checkExposure(endpoint, options)
      const modules = yield* ModuleServer.ModuleServer
      direct = yield* DirectServer.make(modules, { host: endpoint.host, port: directPort, secret: options.secret })
    }
    const routePort = direct === undefined ? null : direct.port
    return Transport.layerServer(ModulesRpc, endpoint, {
      ...options,
      onConnect: (clientId, peer) => peers.set(clientId, new PeerAddress({ ip: peer.host, port: peer.port })),
      onDisconnect: (clientId) => Effect.sync(() => peers.delete(clientId))
    }).pipe(Layer.provide(layerHandlers((clientId) => peers.get(clientId) ?? none, () => routePort)))
  }))

const layerCompat = (options: ModuleRoleOptions): Layer.Layer<never, ListenFailed, ModuleServer.ModuleServer> => {
  const compat = options.compat ?? { host: "127.0.0.1", port: CompatServer.defaults.port }
  if (compat === "off") return Layer.empty
  return Layer.scopedDiscard(Effect.gen(function*() {
    if (!CompatServer.isLoopback(compat.host)) {
      if (options.insecure !== true) {
        return yield* new ListenFailed({
          url: `${compat.host}:${compat.port}`,
          reason: "secret-required",
          message: `refusing to listen on ${compat.host}:${compat.port} for the compat protocol: it is reachable from ` +
            `other machines and the original protocol has no authentication. Pass --insecure on a private network`
        })
      }
      yield* Effect.logWarning(`compat listener on ${compat.host}:${compat.port} without authentication (--insecure)`)
    }
    const modules = yield* ModuleServer.ModuleServer
    yield* CompatServer.make(modules, compat)
  }))
}
