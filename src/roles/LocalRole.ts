import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type { IncompatibleDatabase, StoreError } from "../domain/Errors.js"
import * as Endpoint from "../transport/Endpoint.js"
import type { ListenFailed } from "../transport/Errors.js"
import type { Secret } from "../transport/Secret.js"
import type * as Transport from "../transport/Transport.js"
import * as Troupe from "../Troupe.js"
import * as JobsServer from "./JobsServer.js"

/** How to run the `local` role: the job database, where to listen, and the runtime's limits. */
export interface LocalRoleOptions {
  /** The SQLite job database; default `.troupe/troupe.db` under the working directory. */
  readonly database?: string
  /** Where job output is kept; the runtime's default when absent. */
  readonly dataDir?: string
  /** Endpoints to serve JobsRpc on; default `tcp://127.0.0.1:7878`. */
  readonly listen?: ReadonlyArray<Endpoint.Endpoint>
  /** Cores available to jobs; default this machine's. */
  readonly cores?: number
  /** How long running jobs get to finish on shutdown before they are killed. */
  readonly shutdownGraceMs?: number
  /** The shared secret clients must prove they hold; required for listeners beyond loopback. */
  readonly secret?: Secret
  /** Listen beyond loopback without a secret (a private network). */
  readonly insecure?: boolean
  /** Remotes jobs can be sent to: name → URL of a `--role=remote`. */
  readonly remotes?: Readonly<Record<string, string>>
  /** How often remotes are asked isalive, and how long a silent one keeps our jobs. */
  readonly remoteHeartbeatMs?: number
  readonly remoteDeadAfterMs?: number
}

/** The endpoint the local role serves when no `--listen` is given. */
export const defaultListen: Endpoint.Endpoint = new Endpoint.TcpEndpoint({ host: "127.0.0.1", port: 7878 })

/**
 * The `local` role: the embedded runtime served as JobsRpc on every endpoint. Closing the layer
 * closes the listeners first (no new work), then the runtime, which gives running jobs the grace
 * period, kills the rest and records their final states.
 */
export const layer = (
  options: LocalRoleOptions = {}
): Layer.Layer<never, ListenFailed | IncompatibleDatabase | StoreError> => {
  const listen = options.listen !== undefined && options.listen.length > 0 ? options.listen : [defaultListen]
  const urls = listen.map(Endpoint.format).join(" ")
  return JobsServer.layer(listen, compactServerOptions(options)).pipe(
    Layer.tap(() => Effect.logInfo(`troupe local role listening on ${urls}`)),
    Layer.merge(Layer.scopedDiscard(Effect.addFinalizer(() => Effect.logInfo(stoppingMessage)))),
    Layer.provide(Troupe.layer(runtimeOptions(options)))
  )
}

// ---------------------------------------------------------------------------------------------
// private

const stoppingMessage = "troupe local role stopping: listeners closed, running jobs get the grace period"

const compactServerOptions = (options: LocalRoleOptions): Transport.ServerOptions => ({
  ...(options.secret !== undefined ? { secret: options.secret } : {}),
  ...(options.insecure !== undefined ? { insecure: options.insecure } : {})
})

const runtimeOptions = (options: LocalRoleOptions): Troupe.TroupeOptions => ({
  ...(options.database !== undefined ? { database: options.database } : {}),
  ...(options.dataDir !== undefined ? { dataDir: options.dataDir } : {}),
  ...(options.cores !== undefined ? { cores: options.cores } : {}),
  ...(options.shutdownGraceMs !== undefined ? { shutdownGraceMs: options.shutdownGraceMs } : {}),
  ...(options.remotes !== undefined ? { remotes: options.remotes } : {}),
  remoteOptions: {
    ...(options.remoteHeartbeatMs !== undefined ? { heartbeatMs: options.remoteHeartbeatMs } : {}),
    ...(options.remoteDeadAfterMs !== undefined ? { deadAfterMs: options.remoteDeadAfterMs } : {}),
    transport: {
      ...(options.secret !== undefined ? { secret: options.secret } : {})
    }
  }
})
