import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Runtime from "effect/Runtime"
import type * as Scope from "effect/Scope"
import { Packr, Unpackr } from "msgpackr"
import * as Net from "node:net"
import { ListenFailed } from "../transport/Errors.js"
import * as Handshake from "../transport/Handshake.js"
import type { Secret } from "../transport/Secret.js"
import { Direct, type DirectReply, maxRouteRequestBytes } from "./internal/DirectWire.js"
import type { ModuleFailure } from "./Errors.js"
import type { ModuleServer } from "./ModuleServer.js"

/**
 * The listener of direct routes (internal/DirectWire.ts): a typed client connects, passes the
 * handshake with the role's shared secret, and names a module; the connection is handed to that
 * module's worker process, and its calls no longer pass through the server. A client that is refused
 * (the module is unknown, restarting or failed) calls through the server as before.
 */

/** How the direct listener runs. */
export interface DirectServerOptions {
  /** The address to bind: the typed listener's host. */
  readonly host: string
  /** The port to bind; default 0, an ephemeral port (clients learn it from `ModulesRpc.Route`). */
  readonly port?: number | undefined
  /** The secret clients must prove, as on the typed listener. */
  readonly secret?: Secret | undefined
  /** How long a client may take for the handshake and its route request; default 5 seconds. */
  readonly timeout?: Duration.DurationInput | undefined
}

/** A listening direct-route server. */
export interface DirectServer {
  /** The bound port, which `ModulesRpc.Route` tells clients. */
  readonly port: number
}

/** Binds the direct listener for the scope. */
export const make = (
  modules: ModuleServer["Type"],
  options: DirectServerOptions
): Effect.Effect<DirectServer, ListenFailed, Scope.Scope> =>
  Effect.gen(function*() {
    const fork = Runtime.runFork(yield* Effect.runtime<never>())
    const timeout = Duration.decode(options.timeout ?? Handshake.defaultTimeout)
    const pending = new Set<Net.Socket>()
    const onSocket = (socket: Net.Socket): void => {
      socket.setNoDelay(true)
      socket.on("error", () => {})
      pending.add(socket)
      socket.once("close", () => pending.delete(socket))
      fork(Handshake.serverHandshake(socket, { secret: options.secret, timeout }).pipe(
        Effect.match({
          onFailure: () => {},
          onSuccess: (leftover) => awaitRoute(modules, socket, leftover, Duration.toMillis(timeout), () => pending.delete(socket))
        })
      ))
    }
    // Closing stops listening at once. Not waiting for the close callback is deliberate: Node counts
    // the sockets handed to workers as the server's until the workers close them, which they do only
    // once the modules stop, after the listeners.
    const server = yield* Effect.acquireRelease(listen(options.host, options.port ?? 0, onSocket), (server) =>
      Effect.sync(() => {
        for (const socket of pending) socket.destroy()
        server.close()
      }))
    return { port: (server.address() as Net.AddressInfo).port }
  })

// ---------------------------------------------------------------------------------------------
// private

// After the handshake the client sends one message, [Route, module], and waits for the answer.
const awaitRoute = (
  modules: ModuleServer["Type"],
  socket: Net.Socket,
  leftover: Uint8Array,
  timeoutMs: number,
  handed: () => void
): void => {
  let buffer: Buffer = Buffer.from(leftover)
  const timer = setTimeout(() => socket.destroy(), timeoutMs)
  timer.unref()
  let finished = false
  const refuse = (reason: ModuleFailure, message: string): void => {
    socket.end(frame([Direct.Refused, reason, message]))
    setTimeout(() => socket.destroy(), 1000).unref()
  }
  const onData = (chunk: Buffer): void => {
    buffer = buffer.length === 0 ? chunk : Buffer.concat([buffer, chunk])
    if (buffer.length < 4) return
    const size = buffer.readUInt32BE(0)
    if (size > maxRouteRequestBytes) return finish(() => socket.destroy())
    if (buffer.length < 4 + size) return
    // Nothing may follow the request: the client waits for the answer, and the worker reads the rest.
    if (buffer.length > 4 + size) return finish(() => refuse("call-failed", "a direct route request must come alone"))
    let request: unknown
    try {
      request = unpackr.unpack(buffer.subarray(4))
    } catch {
      return finish(() => socket.destroy())
    }
    if (!Array.isArray(request) || request[0] !== Direct.Route || typeof request[1] !== "string") {
      return finish(() => socket.destroy())
    }
    const module = request[1]
    finish(() => {
      const refusal = modules.route(module, socket, socket.remoteAddress ?? "unknown")
      if (refusal === undefined) handed()
      else refuse(refusal.reason, refusal.message)
    })
  }
  const finish = (then: () => void): void => {
    finished = true
    clearTimeout(timer)
    socket.off("data", onData)
    socket.pause()
    then()
  }
  socket.on("data", onData)
  if (buffer.length > 0) onData(Buffer.alloc(0))
  if (!finished && !socket.destroyed) socket.resume()
}

const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true })

const packr = new Packr({ useRecords: false })

// One message as the worker channel frames it (Wire.ts): a 4-byte length, then msgpack.
const frame = (message: DirectReply): Buffer => {
  const body = packr.pack(message)
  const head = Buffer.allocUnsafe(4)
  head.writeUInt32BE(body.length)
  return Buffer.concat([head, body])
}

const listen = (host: string, port: number, onSocket: (socket: Net.Socket) => void): Effect.Effect<Net.Server, ListenFailed> =>
  Effect.async<Net.Server, ListenFailed>((resume) => {
    const server = Net.createServer({ noDelay: true }, onSocket)
    server.once("error", (cause: NodeJS.ErrnoException) => {
      const inUse = cause.code === "EADDRINUSE"
      resume(Effect.fail(
        new ListenFailed({
          url: `${host}:${port}`,
          reason: inUse ? "address-in-use" : cause.code === "EACCES" ? "permission-denied" : "other",
          message: inUse
            ? `cannot listen for direct routes on ${host}:${port}: the port is in use (choose another --direct-port, or off)`
            : `cannot listen for direct routes on ${host}${port === 0 ? "" : `:${port}`} (${cause.message})`,
          cause
        })
      ))
    })
    server.listen(port, host, () => resume(Effect.succeed(server)))
    return Effect.sync(() => server.close())
  })
