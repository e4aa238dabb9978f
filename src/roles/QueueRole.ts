import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Supervisor from "../actors/Supervisor.js"
import type * as Dispatch from "../netqueue/dispatch/Dispatch.js"
import type { ConfigError } from "../netqueue/Errors.js"
import * as NetQueue from "../netqueue/NetQueue.js"
import * as Endpoint from "../transport/Endpoint.js"
import { ListenFailed } from "../transport/Errors.js"

/** How to run the `queue` role: one tree node. */
export interface QueueRoleOptions {
  /** Where children connect: `framed://host:port`. */
  readonly listen: Endpoint.FramedEndpoint
  /** The parent node (or original Net Queue server) to take items from. */
  readonly parent?: Endpoint.FramedEndpoint
  /** The dispatch policy; default round-robin. */
  readonly policy?: Dispatch.PolicyName
  /** Items in flight per child; default 1000. */
  readonly window?: number
  /** Items the node holds; default 10,000. */
  readonly capacity?: number
  readonly pingIntervalMs?: number
  readonly pingTimeoutMs?: number
  /** A server config file (docs/NETQUEUE.md); flags win over it. */
  readonly configFile?: string
  /** Listen beyond loopback: Net Queue has no authentication, so this must be asked for. */
  readonly insecure?: boolean
}

/**
 * The `queue` role: a Net Queue tree node on framed TCP, speaking the original protocol (types 1–6)
 * to any peer, and Troupe's acknowledgements to Troupe peers. The link to the parent runs under a
 * supervisor that makes it again whenever it is lost.
 */
export const layer = (options: QueueRoleOptions): Layer.Layer<never, ListenFailed | ConfigError> =>
  Layer.scopedDiscard(
    Effect.gen(function*() {
      yield* checkExposure(options)
      const node = yield* NetQueue.node({
        listen: { host: options.listen.host, port: options.listen.port },
        parent: options.parent === undefined ? undefined : { host: options.parent.host, port: options.parent.port },
        policy: options.policy,
        window: options.window,
        capacity: options.capacity,
        pingInterval: options.pingIntervalMs,
        pingTimeout: options.pingTimeoutMs,
        configFile: options.configFile ?? ""
      })
      const url = Endpoint.format(new Endpoint.FramedEndpoint({ host: options.listen.host, port: node.port }))
      const parent = options.parent === undefined ? "no parent (root)" : `parent ${Endpoint.format(options.parent)}`
      yield* Effect.logInfo(`troupe queue node listening on ${url}, ${parent}, policy ${node.node.policy.name}`)
      yield* Effect.addFinalizer(() => Effect.logInfo("troupe queue node stopping: DISCONN to every child"))
    })
  ).pipe(Layer.provide(Supervisor.layer))

// Net Queue peers cannot do Troupe's handshake, so there is no secret to require: a listener beyond
// loopback is refused unless the operator says the network is private.
const checkExposure = (options: QueueRoleOptions): Effect.Effect<void, ListenFailed> => {
  if (Endpoint.isLocal(options.listen)) return Effect.void
  const url = Endpoint.format(options.listen)
  return options.insecure === true
    ? Effect.logWarning(`queue node listening on ${url} without authentication (--insecure): Net Queue has none`)
    : Effect.fail(
      new ListenFailed({
        url,
        reason: "secret-required",
        message: `refusing to listen on ${url}: it is reachable from other machines and the Net Queue protocol has no ` +
          `authentication (original peers cannot do Troupe's handshake). Pass --insecure on a private network`
      })
    )
}
