import * as NodeSocket from "@effect/platform-node/NodeSocket"
import * as NodeSocketServer from "@effect/platform-node/NodeSocketServer"
import * as Socket from "@effect/platform/Socket"
import * as SocketServer from "@effect/platform/SocketServer"
import * as RpcClient from "@effect/rpc/RpcClient"
import * as RpcSerialization from "@effect/rpc/RpcSerialization"
import * as RpcServer from "@effect/rpc/RpcServer"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Fs from "node:fs/promises"
import * as Net from "node:net"
import * as Path from "node:path"
import * as Endpoint from "../Endpoint.js"
import { ConnectFailed, ListenFailed } from "../Errors.js"
import * as Handshake from "../Handshake.js"
import type { Secret } from "../Secret.js"

/** Options for serving RPC on a socket endpoint. */
export interface ServerOptions {
  /** Permission bits for a Unix socket file; default 0o600 (owner only). */
  readonly socketMode?: number | undefined
  /** The shared secret every client must prove in the handshake; without one, any Troupe client is served. */
  readonly secret?: Secret | undefined
  /** Called when a client connection (by its RPC clientId) opens, with the address it connected from. */
  readonly onConnect?: ((clientId: number, peer: { readonly host: string; readonly port: number }) => void) | undefined
}

/** Options for a socket RPC client. */
export interface ClientOptions {
  /** How long opening a connection (and its handshake) may take before it fails; default 5 seconds. */
  readonly connectTimeout?: Duration.DurationInput | undefined
  /** The shared secret, for a server that asks for one. */
  readonly secret?: Secret | undefined
}

/** The default time allowed to open a connection. */
export const defaultConnectTimeout: Duration.Duration = Duration.seconds(5)

/** The RPC server Protocol for one socket endpoint: binds it, removing a stale Unix socket file first. */
export const layerServerProtocol = (
  endpoint: Endpoint.SocketEndpoint,
  options: ServerOptions = {}
): Layer.Layer<RpcServer.Protocol, ListenFailed> =>
  // A fresh Protocol layer per endpoint: the shared `layerProtocolSocketServer` value would be memoized,
  // so a second endpoint in the same layer graph would silently reuse the first one's protocol.
  Layer.scoped(RpcServer.Protocol, RpcServer.makeProtocolSocketServer).pipe(
    Layer.provide(layerSocketServer(endpoint, options)),
    Layer.provide(RpcSerialization.layerMsgPack)
  )

/** A bound SocketServer for one endpoint; a Unix socket file gets `socketMode` and is removed on close. */
export const layerSocketServer = (
  endpoint: Endpoint.SocketEndpoint,
  options: ServerOptions = {}
): Layer.Layer<SocketServer.SocketServer, ListenFailed> =>
  Layer.scoped(SocketServer.SocketServer, makeSocketServer(endpoint, options))

/**
 * The RPC client Protocol for one socket endpoint, with msgpack framing, Nagle off and a bounded
 * connect time. The first connection, handshake included, is made here, so that a server that is
 * not there or refuses our secret fails the layer with a ConnectFailed that says so.
 */
export const layerClientProtocol = (
  endpoint: Endpoint.SocketEndpoint,
  options: ClientOptions = {}
): Layer.Layer<RpcClient.Protocol, ConnectFailed> =>
  Layer.unwrapScoped(Effect.gen(function*() {
    let first: Net.Socket | undefined = yield* Effect.acquireRelease(
      openAuthenticated(endpoint, options),
      (socket) => Effect.sync(() => socket.destroy())
    )
    // The protocol's first open takes the connection made above; a reconnect opens a new one.
    const open = Effect.suspend(() => {
      const ready = first
      first = undefined
      return ready !== undefined
        ? Effect.succeed(ready)
        : openAuthenticated(endpoint, options).pipe(
          Effect.mapError((cause) => new Socket.SocketGenericError({ reason: "Open", cause }))
        )
    })
    return RpcClient.layerProtocolSocket({ retryTransientErrors: false }).pipe(
      Layer.provide(Layer.effect(Socket.Socket, NodeSocket.fromDuplex(open))),
      Layer.provide(RpcSerialization.layerMsgPack)
    )
  }))

/** Opens and closes one connection to check that something accepts connections at the endpoint. */
export const checkReachable = (
  endpoint: Endpoint.SocketEndpoint,
  options: ClientOptions = {}
): Effect.Effect<void, ConnectFailed> => {
  const timeout = Duration.decode(options.connectTimeout ?? defaultConnectTimeout)
  return Effect.async<void, ConnectFailed>((resume) => {
    const socket = Net.createConnection(connectOptions(endpoint))
    socket.once("connect", () => {
      socket.destroy()
      resume(Effect.void)
    })
    socket.once("error", (error) => resume(Effect.fail(connectFailed(endpoint, error))))
    return Effect.sync(() => socket.destroy())
  }).pipe(
    Effect.timeoutFail({
      duration: timeout,
      onTimeout: () =>
        connectFailedWith(endpoint, "timeout", `no answer within ${Duration.format(timeout)}`)
    })
  )
}

// ---------------------------------------------------------------------------------------------
// private

const connectOptions = (endpoint: Endpoint.SocketEndpoint): Net.NetConnectOpts =>
  endpoint._tag === "Tcp"
    ? { host: endpoint.host, port: endpoint.port, noDelay: true }
    : { path: endpoint.path }

const makeSocketServer = Effect.fnUntraced(function*(endpoint: Endpoint.SocketEndpoint, options: ServerOptions) {
  const url = Endpoint.format(endpoint)
  if (endpoint._tag === "Unix") yield* prepareUnixPath(endpoint)
  const server = yield* NodeSocketServer.make(
    endpoint._tag === "Tcp"
      ? { host: endpoint.host, port: endpoint.port, noDelay: true }
      : { path: endpoint.path }
  ).pipe(Effect.mapError((error) => listenFailed(url, error.cause)))
  const authenticated = withHandshake(server, options.secret, options.onConnect)
  if (endpoint._tag === "Unix") {
    const mode = options.socketMode ?? 0o600
    yield* Effect.tryPromise({
      try: () => Fs.chmod(endpoint.path, mode),
      catch: (cause) => listenFailed(url, cause)
    })
  }
  return authenticated
})

// Every accepted connection goes through the handshake before the RPC protocol sees a byte of it.
//
// `onConnect` learns each connection's RpcServer clientId by counting: @effect/rpc's socket protocol
// numbers connections from 0 in the order their handlers start, and takes the number in the same
// synchronous run of the fiber that calls `handler` here (a fiber yields only at an async boundary
// or after 2,048 operations, and none lies between the two), so the nth handler call is clientId n.
const withHandshake = (
  server: SocketServer.SocketServer["Type"],
  secret: Secret | undefined,
  onConnect: ServerOptions["onConnect"]
): SocketServer.SocketServer["Type"] => {
  let nextClientId = 0
  return SocketServer.SocketServer.of({
    address: server.address,
    // NodeSocketServer provides each handler with its connection's NetSocket, hence the cast.
    run: <R, E, _>(handler: (socket: Socket.Socket) => Effect.Effect<_, E, R>) =>
      server.run((socket) =>
        Effect.flatMap(NodeSocket.NetSocket, (conn) =>
          Handshake.serverHandshake(conn, { secret }).pipe(
            Effect.matchEffect({
              onFailure: () => Effect.void,
              onSuccess: (leftover) =>
                Effect.suspend(() => {
                  handOver(conn, leftover)
                  onConnect?.(nextClientId++, {
                    host: conn.remoteAddress ?? "unix",
                    port: conn.remotePort ?? 0
                  })
                  return handler(socket)
                })
            })
          ))
      ) as Effect.Effect<never, SocketServer.SocketServerError, R>
  })
}

// Connects and runs the client side of the handshake; the socket comes back ready for the protocol.
const openAuthenticated = (
  endpoint: Endpoint.SocketEndpoint,
  options: ClientOptions
): Effect.Effect<Net.Socket, ConnectFailed> => {
  const timeout = Duration.decode(options.connectTimeout ?? defaultConnectTimeout)
  return Effect.async<Net.Socket, ConnectFailed>((resume) => {
    const socket = Net.createConnection(connectOptions(endpoint))
    const onError = (error: Error) => resume(Effect.fail(connectFailed(endpoint, error)))
    socket.once("connect", () => {
      socket.off("error", onError)
      resume(Effect.succeed(socket))
    })
    socket.once("error", onError)
    return Effect.sync(() => socket.destroy())
  }).pipe(
    Effect.flatMap((socket) =>
      Handshake.clientHandshake(socket, { secret: options.secret, timeout }).pipe(
        Effect.map((leftover) => {
          handOver(socket, leftover)
          return socket
        }),
        Effect.mapError((error) =>
          connectFailedWith(
            endpoint,
            error.reason === "auth-failed" || error.reason === "secret-required" ||
              error.reason === "server-unauthenticated"
              ? "auth-failed"
              : error.reason === "timeout"
              ? "timeout"
              : "protocol",
            error.message.replace(/^handshake with \S+ failed: /, "")
          )
        )
      )
    ),
    Effect.timeoutFail({
      duration: timeout,
      onTimeout: () => connectFailedWith(endpoint, "timeout", `no answer within ${Duration.format(timeout)}`)
    })
  )
}

// The handshake leaves the socket paused with any early bytes in hand. Put them back, and resume
// once the protocol's reader is attached, so no byte is read before someone listens for it.
const handOver = (socket: Net.Socket, leftover: Uint8Array): void => {
  if (leftover.length > 0) socket.unshift(leftover)
  const onListener = (event: string | symbol) => {
    if (event !== "data") return
    socket.off("newListener", onListener)
    process.nextTick(() => socket.resume())
  }
  socket.on("newListener", onListener)
}

// A socket file left by a crashed server is removed; a live server's socket, or any other file, is kept.
const prepareUnixPath = Effect.fnUntraced(function*(endpoint: Endpoint.UnixEndpoint) {
  const url = Endpoint.format(endpoint)
  yield* Effect.tryPromise({
    try: () => Fs.mkdir(Path.dirname(endpoint.path), { recursive: true, mode: 0o700 }),
    catch: (cause) => listenFailed(url, cause)
  })
  const stat = yield* Effect.promise(() => Fs.lstat(endpoint.path).catch(() => undefined))
  if (stat === undefined) return
  if (!stat.isSocket()) {
    return yield* new ListenFailed({
      url,
      reason: "not-a-socket",
      message: `cannot listen on ${url}: the path exists and is not a socket`
    })
  }
  const live = yield* checkReachable(endpoint, { connectTimeout: Duration.seconds(1) }).pipe(
    Effect.as(true),
    Effect.catchAll(() => Effect.succeed(false))
  )
  if (live) {
    return yield* new ListenFailed({
      url,
      reason: "in-use-by-live-server",
      message: `cannot listen on ${url}: another server is listening on it`
    })
  }
  yield* Effect.logDebug("removing stale unix socket").pipe(Effect.annotateLogs("path", endpoint.path))
  yield* Effect.tryPromise({
    try: () => Fs.unlink(endpoint.path),
    catch: (cause) => listenFailed(url, cause)
  })
})

const errorCode = (cause: unknown): string | undefined =>
  typeof cause === "object" && cause !== null && "code" in cause && typeof cause.code === "string"
    ? cause.code
    : undefined

const listenFailed = (url: string, cause: unknown): ListenFailed => {
  const code = errorCode(cause)
  const [reason, detail] = code === "EADDRINUSE"
    ? ["address-in-use", "address already in use"] as const
    : code === "EACCES" || code === "EPERM"
    ? ["permission-denied", "permission denied"] as const
    : ["other", cause instanceof Error ? cause.message : String(cause)] as const
  return new ListenFailed({ url, reason, message: `cannot listen on ${url} (${detail})`, cause })
}

const connectFailed = (endpoint: Endpoint.SocketEndpoint, cause: Error): ConnectFailed => {
  const code = errorCode(cause)
  return code === "ECONNREFUSED"
    ? connectFailedWith(endpoint, "refused", "connection refused")
    : code === "ENOENT"
    ? connectFailedWith(endpoint, "not-found", "no such socket")
    : code === "EACCES" || code === "EPERM"
    ? connectFailedWith(endpoint, "permission-denied", "permission denied")
    : code === "ETIMEDOUT"
    ? connectFailedWith(endpoint, "timeout", "connection timed out")
    : connectFailedWith(endpoint, "other", code !== undefined ? `${code}: ${cause.message}` : cause.message)
}

const connectFailedWith = (
  endpoint: Endpoint.SocketEndpoint,
  reason: ConnectFailed["reason"],
  detail: string
): ConnectFailed => {
  const url = Endpoint.format(endpoint)
  return new ConnectFailed({ url, reason, detail, message: `cannot reach ${url} (${detail})` })
}
