import * as Effect from "effect/Effect"
import * as Runtime from "effect/Runtime"
import type * as Scope from "effect/Scope"
import * as Net from "node:net"
import { encode } from "../../protocol/Frame.js"
import * as Endpoint from "../Endpoint.js"
import { ListenFailed } from "../Errors.js"
import * as Handshake from "../Handshake.js"
import type { ConnectionClosed, ConnectionOptions } from "./FramedConnection.js"
import { FramedConnection } from "./FramedConnection.js"
import { CloseCode, decodeOpen, encodeAccept, FramedType, type Open } from "./FramedWire.js"
import * as Options from "./Options.js"
import { type MessageTooLarge, Session } from "./Session.js"

/** What a framed server tells its user about client sessions. */
export interface ServerEvents {
  /** A client opened a new session, known from now on by `clientId`, from `peer`'s address. */
  readonly onOpen: (clientId: number, peer: { readonly host: string; readonly port: number }) => void
  /** Messages from a client, in order, each once, across reconnects. */
  readonly onMessages: (clientId: number, messages: ReadonlyArray<unknown>) => void
  /** The session is over: the client closed it, broke the protocol, or stayed away past the resume window. */
  readonly onEnd: (clientId: number) => void
}

/** A listening framed server: client sessions that survive reconnects within the resume window. */
export interface FramedServer {
  /** The bound address (the real port when the endpoint asked for port 0). */
  readonly address: { readonly host: string; readonly port: number }
  /** Queues a message to a client's session; fails when it is over the client's frame limit. */
  readonly send: (clientId: number, message: unknown) => MessageTooLarge | undefined
  /** Ends a client's session from the server's side (the client is told with CLOSE). */
  readonly end: (clientId: number) => void
  /** The ids of the open sessions. */
  readonly clientIds: () => ReadonlySet<number>
  /** Cuts every client's TCP connection without ending the sessions (for tests of resume). */
  readonly dropConnections: () => void
}

/**
 * Binds a framed endpoint. Each accepted socket must pass the handshake, then OPEN a new session
 * or resume one; a bad frame closes only that connection (with a log line), and a session whose
 * connection is lost waits `resumeWindow` for the client to come back before it ends.
 */
export const make = (
  endpoint: Endpoint.FramedEndpoint,
  options: Options.ServerOptions,
  events: ServerEvents
): Effect.Effect<FramedServer, ListenFailed, Scope.Scope> =>
  Effect.gen(function*() {
    const runtime = yield* Effect.runtime<never>()
    const state = new ServerState(options, events, Runtime.runFork(runtime))
    const server = yield* Effect.acquireRelease(listen(endpoint, state.onSocket), (server) =>
      Effect.async<void>((resume) => {
        state.shutdown()
        server.close(() => resume(Effect.void))
      }))
    const address = server.address() as Net.AddressInfo
    return {
      address: { host: address.address, port: address.port },
      send: (clientId, message) => state.send(clientId, message),
      end: (clientId) => state.end(clientId),
      clientIds: () => state.clientIds,
      dropConnections: () => state.dropConnections()
    }
  })

// ---------------------------------------------------------------------------------------------
// private

interface Entry {
  readonly clientId: number
  readonly session: Session
  expiry: NodeJS.Timeout | undefined
}

type Fork = (effect: Effect.Effect<void>) => unknown

class ServerState {
  private readonly sessions = new Map<string, Entry>()
  private readonly byClient = new Map<number, Entry>()
  private readonly sockets = new Set<Net.Socket>()
  private nextClientId = 0
  private closing = false
  private readonly connection: ConnectionOptions
  private readonly resumeWindowMs: number
  private readonly handshakeMs: number
  readonly clientIds = new Set<number>()

  constructor(
    private readonly options: Options.ServerOptions,
    private readonly events: ServerEvents,
    private readonly fork: Fork
  ) {
    this.connection = Options.connectionOptions(options)
    this.resumeWindowMs = Options.millis(options.resumeWindow, Options.defaults.resumeWindow)
    this.handshakeMs = Options.millis(options.handshakeTimeout, Options.defaults.handshakeTimeout)
  }

  readonly onSocket = (socket: Net.Socket): void => {
    if (this.closing) return void socket.destroy()
    socket.setNoDelay(true)
    this.sockets.add(socket)
    socket.once("close", () => this.sockets.delete(socket))
    socket.on("error", () => {}) // reported through "close"; an unhandled "error" would crash the process
    this.fork(
      Handshake.serverHandshake(socket, { secret: this.options.secret, timeout: this.handshakeMs }).pipe(
        Effect.match({ onFailure: () => {}, onSuccess: (leftover) => this.awaitOpen(socket, leftover) })
      )
    )
  }

  send(clientId: number, message: unknown): MessageTooLarge | undefined {
    return this.byClient.get(clientId)?.session.send(message)
  }

  end(clientId: number): void {
    const entry = this.byClient.get(clientId)
    if (entry !== undefined) this.drop(entry, CloseCode.Normal, "the server ended the session")
  }

  dropConnections(): void {
    for (const socket of this.sockets) socket.destroy()
  }

  shutdown(): void {
    this.closing = true
    for (const entry of [...this.sessions.values()]) this.drop(entry, CloseCode.Shutdown, "the server is shutting down")
    this.dropConnections()
  }

  // After the handshake the client has one frame to send: OPEN.
  private awaitOpen(socket: Net.Socket, leftover: Uint8Array): void {
    const connection = new FramedConnection(socket, this.connection)
    const timer = setTimeout(() => connection.destroy("no OPEN frame in time"), this.handshakeMs)
    timer.unref()
    connection.start({
      onFrame: (type, data) => {
        clearTimeout(timer)
        const open = type === FramedType.Open ? decodeOpen(data) : undefined
        if (open === undefined) return this.reject(connection, `expected an OPEN frame, got type ${type}`)
        this.open(connection, open)
      },
      onFlush: () => {},
      onClose: (closed) => {
        clearTimeout(timer)
        this.logClosed(connection, closed)
      }
    }, leftover)
  }

  private open(connection: FramedConnection, open: Open): void {
    const existing = this.sessions.get(open.sessionId)
    if (open.resume) {
      if (existing === undefined) {
        connection.push(encode(FramedType.Expired))
        return connection.close(CloseCode.Normal, "unknown session")
      }
      if (existing.expiry !== undefined) clearTimeout(existing.expiry)
      existing.expiry = undefined
      existing.session.detach("replaced by a newer connection")
      this.attach(existing, connection, open, true)
    } else {
      if (existing !== undefined) return this.reject(connection, "a new session reused an existing session id")
      const clientId = this.nextClientId++
      const session = new Session(open.sessionId, {
        onMessages: (messages) => this.events.onMessages(clientId, messages),
        onEnd: (code, reason, byPeer) => this.ended(entry, code, reason, byPeer),
        onDisconnect: (closed) => this.disconnected(entry, closed)
      })
      const entry: Entry = { clientId, session, expiry: undefined }
      this.sessions.set(open.sessionId, entry)
      this.byClient.set(entry.clientId, entry)
      this.clientIds.add(entry.clientId)
      this.events.onOpen(entry.clientId, {
        host: connection.socket.remoteAddress ?? "unknown",
        port: connection.socket.remotePort ?? 0
      })
      this.attach(entry, connection, open, false)
    }
  }

  private attach(entry: Entry, connection: FramedConnection, open: Open, resumed: boolean): void {
    const { session } = entry
    connection.push(
      encodeAccept({ resumed, received: session.receivedCount, maxFrameBytes: this.connection.maxFrameBytes })
    )
    const problem = session.attach(connection, open.received, open.maxFrameBytes)
    if (problem !== undefined) {
      this.logWarning(connection, `protocol error: ${problem}`)
      this.drop(entry, CloseCode.Protocol, `protocol error: ${problem}`)
    }
  }

  private disconnected(entry: Entry, closed: ConnectionClosed): void {
    if (closed.reason === "frame-error") {
      this.fork(
        Effect.logWarning(`closed a connection that sent a bad frame: ${closed.message}`).pipe(
          Effect.annotateLogs({ module: "FramedServer", clientId: entry.clientId })
        )
      )
      return this.drop(entry, CloseCode.Protocol, closed.message)
    }
    if (this.closing || this.sessions.get(entry.session.id) !== entry) return
    entry.expiry = setTimeout(() => this.drop(entry, CloseCode.Normal, "resume window passed"), this.resumeWindowMs)
    entry.expiry.unref()
  }

  private ended(entry: Entry, code: number, reason: string, byPeer: boolean): void {
    if (!byPeer) {
      this.fork(
        Effect.logWarning(`ended a client session: ${reason}`).pipe(
          Effect.annotateLogs({ module: "FramedServer", clientId: entry.clientId })
        )
      )
    }
    this.drop(entry, code, reason)
  }

  private drop(entry: Entry, code: number, reason: string): void {
    if (this.sessions.get(entry.session.id) !== entry) return
    if (entry.expiry !== undefined) clearTimeout(entry.expiry)
    this.sessions.delete(entry.session.id)
    this.byClient.delete(entry.clientId)
    this.clientIds.delete(entry.clientId)
    entry.session.close(code, reason)
    this.events.onEnd(entry.clientId)
  }

  private reject(connection: FramedConnection, problem: string): void {
    this.logWarning(connection, `protocol error: ${problem}`)
    connection.close(CloseCode.Protocol, `protocol error: ${problem}`)
  }

  private logClosed(connection: FramedConnection, closed: ConnectionClosed): void {
    if (closed.reason === "frame-error") this.logWarning(connection, `bad frame: ${closed.message}`)
  }

  private logWarning(connection: FramedConnection, message: string): void {
    this.fork(
      Effect.logWarning(`closing connection from ${Handshake.peerName(connection.socket)}: ${message}`).pipe(
        Effect.annotateLogs({ module: "FramedServer" })
      )
    )
  }
}

const listen = (
  endpoint: Endpoint.FramedEndpoint,
  onSocket: (socket: Net.Socket) => void
): Effect.Effect<Net.Server, ListenFailed> =>
  Effect.async<Net.Server, ListenFailed>((resume) => {
    const server = Net.createServer({ noDelay: true, pauseOnConnect: false }, onSocket)
    server.once("error", (cause) => resume(Effect.fail(listenFailed(Endpoint.format(endpoint), cause))))
    server.listen(endpoint.port, endpoint.host, () => resume(Effect.succeed(server)))
    return Effect.sync(() => server.close())
  })

const listenFailed = (url: string, cause: Error): ListenFailed => {
  const code = (cause as NodeJS.ErrnoException).code
  const [reason, detail] = code === "EADDRINUSE"
    ? ["address-in-use", "address already in use"] as const
    : code === "EACCES" || code === "EPERM"
    ? ["permission-denied", "permission denied"] as const
    : ["other", cause.message] as const
  return new ListenFailed({ url, reason, message: `cannot listen on ${url} (${detail})`, cause })
}
