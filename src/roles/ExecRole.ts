import type * as Rpc from "@effect/rpc/Rpc"
import type * as RpcGroup from "@effect/rpc/RpcGroup"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import * as Confine from "../exec/Confine.js"
import { ExecError } from "../exec/Errors.js"
import * as Files from "../exec/Files.js"
import * as Runs from "../exec/Runs.js"
import { ExecRpc } from "../protocol/ExecRpc.js"
import * as Endpoint from "../transport/Endpoint.js"
import type { ListenFailed } from "../transport/Errors.js"
import type { Secret } from "../transport/Secret.js"
import * as Transport from "../transport/Transport.js"

/** How to run the `exec` role: where to listen, the root every path is confined to, and what clients may do. */
export interface ExecRoleOptions {
  /** Endpoints to serve ExecRpc on; default `tcp://127.0.0.1:7880`. */
  readonly listen?: ReadonlyArray<Endpoint.Endpoint>
  /** The directory every file command and cwd is confined to; default the working directory. */
  readonly root?: string
  /** Let clients stop the server with `closeServer`. */
  readonly allowClose?: boolean
  /** The shared secret clients must prove they hold; required for listeners beyond loopback. */
  readonly secret?: Secret
  /** Listen beyond loopback without a secret (a private network). */
  readonly insecure?: boolean
  /** Limits of the command runner. */
  readonly runs?: Runs.RunsOptions
}

/** The endpoint the exec role serves when no `--listen` is given. */
export const defaultListen: Endpoint.Endpoint = new Endpoint.TcpEndpoint({ host: "127.0.0.1", port: 7880 })

/**
 * Runs the `exec` role until it is interrupted (SIGINT, SIGTERM) or a client calls `closeServer`
 * on a server started with `allowClose`. On the way out every command's process group is killed.
 */
export const run = (options: ExecRoleOptions = {}): Effect.Effect<void, ListenFailed | ExecError> =>
  Effect.scoped(Effect.gen(function*() {
    const closing = yield* Deferred.make<void>()
    yield* Layer.build(layer(options, closing))
    yield* Deferred.await(closing)
    yield* Effect.logInfo("troupe exec role closed by a client")
  }))

/** The `exec` role as a layer; `closing` is completed when a client asks the server to close. */
export const layer = (
  options: ExecRoleOptions,
  closing: Deferred.Deferred<void>
): Layer.Layer<never, ListenFailed | ExecError> => {
  const listen = options.listen !== undefined && options.listen.length > 0 ? options.listen : [defaultListen]
  const urls = listen.map(Endpoint.format).join(" ")
  const serverOptions: Transport.ServerOptions = {
    ...(options.secret !== undefined ? { secret: options.secret } : {}),
    ...(options.insecure !== undefined ? { insecure: options.insecure } : {})
  }
  return Layer.unwrapEffect(Effect.map(Confine.realRoot(options.root ?? process.cwd()), (root) => {
    const shared: Shared = { files: Files.make(root), allowClose: options.allowClose ?? false, closing }
    return Layer.mergeAll(Layer.empty, ...listen.map((endpoint) => layerListener(endpoint, serverOptions, shared))).pipe(
      Layer.tap(() => Effect.logInfo(`troupe exec role listening on ${urls} (root ${root})`)),
      Layer.provide(Runs.layer(options.runs))
    )
  }))
}

/**
 * The ExecRpc handlers for one listener. Each connection (RpcServer's clientId) has its own cwd,
 * starting at the root and forgotten when the connection goes.
 */
export const layerHandlers = (
  shared: Shared,
  sessions: Map<number, string>
): Layer.Layer<Rpc.ToHandler<RpcGroup.Rpcs<typeof ExecRpc>>, never, Runs.Runs> =>
  ExecRpc.toLayer(Effect.gen(function*() {
    const runs = yield* Runs.Runs
    const { files } = shared
    const cwdOf = (clientId: number) => sessions.get(clientId) ?? files.root
    return {
      Exec: ({ spec }, { clientId }) =>
        Stream.unwrap(Effect.map(
          spec.cwd === undefined ? Effect.succeed(cwdOf(clientId)) : files.cd(cwdOf(clientId), spec.cwd),
          (cwd) => runs.exec(spec, cwd)
        )),
      Attach: ({ id, window }) => runs.attach(id, window),
      Grant: ({ bytes, id }) => runs.grant(id, bytes),
      SendInput: ({ data, eof, id }) => runs.sendInput(id, data, eof ?? false),
      Kill: ({ id, signal }) => runs.kill(id, signal),
      Jobs: () => runs.list,
      IsAlive: ({ id }) => runs.isAlive(id),
      Cd: ({ path }, { clientId }) =>
        Effect.tap(files.cd(cwdOf(clientId), path), (cwd) => Effect.sync(() => sessions.set(clientId, cwd))),
      Cwd: (_, { clientId }) => Effect.sync(() => cwdOf(clientId)),
      Ls: ({ path }, { clientId }) => files.ls(cwdOf(clientId), path ?? "."),
      Stat: ({ path }, { clientId }) => files.stat(cwdOf(clientId), path),
      Mkdir: ({ parents, path }, { clientId }) => files.mkdir(cwdOf(clientId), path, parents ?? false),
      Rm: ({ path, recursive }, { clientId }) => files.rm(cwdOf(clientId), path, recursive ?? false),
      Touch: ({ path }, { clientId }) => files.touch(cwdOf(clientId), path),
      ReadFile: ({ length, offset, path }, { clientId }) => files.read(cwdOf(clientId), path, offset, length),
      WriteFile: ({ data, offset, path, truncate }, { clientId }) =>
        files.write(cwdOf(clientId), path, data, offset, truncate ?? false),
      TransferStatus: ({ path }, { clientId }) => files.transferStatus(cwdOf(clientId), path),
      TransferWrite: ({ data, offset, path }, { clientId }) => files.transferWrite(cwdOf(clientId), path, offset, data),
      TransferFinish: ({ path, sha256, size }, { clientId }) =>
        files.transferFinish(cwdOf(clientId), path, size, sha256),
      OsInfo: () => files.osInfo,
      Heartbeat: () => Effect.sync(() => Date.now()),
      CloseServer: () =>
        shared.allowClose
          ? Effect.asVoid(
            // Answer first: the server closes a moment after the reply has left.
            Effect.forkDaemon(Effect.zipRight(Effect.sleep("100 millis"), Deferred.succeed(shared.closing, undefined)))
          )
          : Effect.fail(
            new ExecError({ reason: "forbidden", message: "this server was not started with --allow-close" })
          )
    }
  }))

/** What every listener of one exec server shares. */
export interface Shared {
  readonly files: Files.Files
  readonly allowClose: boolean
  readonly closing: Deferred.Deferred<void>
}

// ---------------------------------------------------------------------------------------------
// private

// One endpoint: its own RpcServer and its own table of connection cwds (client ids are per protocol).
const layerListener = (
  endpoint: Endpoint.Endpoint,
  options: Transport.ServerOptions,
  shared: Shared
): Layer.Layer<never, ListenFailed, Runs.Runs> =>
  Layer.unwrapEffect(Effect.sync(() => {
    const sessions = new Map<number, string>()
    return Transport.layerServer(ExecRpc, endpoint, {
      ...options,
      onDisconnect: (clientId) => Effect.sync(() => sessions.delete(clientId))
    }).pipe(Layer.provide(layerHandlers(shared, sessions)))
  }))

