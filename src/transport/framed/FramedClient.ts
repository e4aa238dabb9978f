import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as FiberId from "effect/FiberId"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import * as Crypto from "node:crypto"
import type * as Net from "node:net"
import { dial } from "../Dial.js"
import * as Endpoint from "../Endpoint.js"
import { ConnectFailed } from "../Errors.js"
import * as Handshake from "../Handshake.js"
import { FramedConnection } from "./FramedConnection.js"
import { CloseCode, decodeAccept, decodeClose, encodeOpen, FramedType, sessionIdBytes } from "./FramedWire.js"
import * as Options from "./Options.js"
import { type MessageTooLarge, Session } from "./Session.js"

/** What a framed client tells its user. */
export interface ClientEvents {
  /** Messages from the server, in order, each once, across reconnects. */
  readonly onMessages: (messages: ReadonlyArray<unknown>) => void
  /**
   * The session was lost (the server was unreachable for the whole reconnect window, forgot the
   * session, or closed it): messages in flight are gone, and callers waiting on them should fail.
   * The client carries on with a new session.
   */
  readonly onSessionLost: (error: SessionLost) => void
}

/** Why a session was lost; in-flight calls fail with this message. */
export class SessionLost extends Error {
  readonly _tag = "SessionLost"
  constructor(
    readonly reason: "unreachable" | "expired" | "closed-by-server" | "protocol",
    message: string,
    override readonly cause?: unknown
  ) {
    super(message)
  }
}

/** A connected framed client: a session that reconnects and resends until its window runs out. */
export interface FramedClient {
  /** Queues a message; it is delivered once, even across reconnects. Fails when over the server's frame limit. */
  readonly send: (message: unknown) => MessageTooLarge | undefined
  /** Set while the server has been unreachable longer than the reconnect window: sends should fail with it. */
  readonly failure: () => SessionLost | undefined
  /** Cuts the TCP connection without ending the session (for tests of reconnect). */
  readonly dropConnection: () => void
}

/**
 * Connects to a framed endpoint: the first connection, handshake and session must succeed within
 * `connectTimeout`, or this fails with ConnectFailed. Afterwards a lost connection is re-dialled
 * with backoff and the session resumed, resending what the server had not acknowledged; when the
 * reconnect window passes, the session is declared lost and a new one is started when possible.
 * Closing the scope ends the session (the server stops its requests).
 */
export const make = (
  endpoint: Endpoint.FramedEndpoint,
  options: Options.ClientOptions,
  events: ClientEvents
): Effect.Effect<FramedClient, ConnectFailed, Scope.Scope> =>
  Effect.gen(function*() {
    const state = new ClientState(endpoint, options, events)
    yield* Effect.addFinalizer(() => Effect.sync(() => state.shutdown()))
    // A new session cannot be "expired"; only a resume can.
    yield* state.connect(false).pipe(Effect.catchTag("Expired", () => Effect.dieMessage("a new session was refused")))
    yield* Effect.forkScoped(Effect.interruptible(state.supervise))
    return {
      send: (message) => state.session.send(message),
      failure: () => state.failure,
      dropConnection: () => {
        state.current?.socket.destroy()
      }
    }
  })

// ---------------------------------------------------------------------------------------------
// private

/** How the current connection ended. */
type Lost =
  | { readonly _tag: "Disconnected" }
  | { readonly _tag: "Ended"; readonly reason: string; readonly protocol: boolean }

/** Dialling found the session gone on the server. */
class Expired {
  readonly _tag = "Expired"
}

class ClientState {
  session: Session
  current: FramedConnection | undefined
  failure: SessionLost | undefined
  private started = false
  private lost: Deferred.Deferred<Lost>
  private closing = false
  private readonly url: string
  private readonly connectTimeout: Duration.Duration
  private readonly reconnectWindow: Duration.Duration

  constructor(
    private readonly endpoint: Endpoint.FramedEndpoint,
    private readonly options: Options.ClientOptions,
    private readonly events: ClientEvents
  ) {
    this.url = Endpoint.format(endpoint)
    this.connectTimeout = Duration.decode(options.connectTimeout ?? Options.defaults.connectTimeout)
    this.reconnectWindow = Duration.decode(options.reconnectWindow ?? Options.defaults.reconnectWindow)
    this.lost = Deferred.unsafeMake<Lost>(FiberId.none)
    this.session = this.newSession()
  }

  /** Dials, authenticates and opens (or resumes) the session, within the connect timeout. */
  connect(resume: boolean): Effect.Effect<void, ConnectFailed | Expired> {
    return Effect.scoped(Effect.gen(this, function*() {
      const socket = yield* Effect.acquireRelease(this.dial(), (socket, exit) =>
        Effect.sync(() => {
          // A failed handshake has already ended the socket gracefully, so its REJECT or AUTH still goes out.
          if (exit._tag === "Failure" && !socket.writableEnded) socket.destroy()
        }))
      const leftover = yield* Handshake.clientHandshake(socket, {
        secret: this.options.secret,
        timeout: this.connectTimeout,
        requireServerAuth: this.options.requireServerAuth
      }).pipe(Effect.mapError((error) => this.handshakeFailed(error)))
      yield* this.open(socket, leftover, resume)
    })).pipe(
      Effect.timeoutFail({
        duration: this.connectTimeout,
        onTimeout: () => this.connectFailed("timeout", `no session within ${Duration.format(this.connectTimeout)}`)
      })
    )
  }

  /** Waits for the connection to go, then reconnects or starts over; runs until the scope closes. */
  readonly supervise: Effect.Effect<never> = Effect.gen(this, function*() {
    while (true) {
      const lost = yield* Deferred.await(this.lost)
      if (this.closing) return yield* Effect.never
      if (lost._tag === "Ended") {
        this.loseSession(new SessionLost(lost.protocol ? "protocol" : "closed-by-server", lost.reason))
      }
      yield* this.reconnect
    }
  })

  shutdown(): void {
    this.closing = true
    this.session.close(CloseCode.Normal, "the client closed")
  }

  // Reconnect with backoff until the window passes; then fail what is in flight and keep trying slowly.
  private readonly reconnect: Effect.Effect<void> = Effect.gen(this, function*() {
    const backoff = Schedule.exponential(
      this.options.reconnectBackoff ?? Options.defaults.reconnectBackoff
    ).pipe(Schedule.either(Schedule.spaced(this.options.reconnectBackoffMax ?? Options.defaults.reconnectBackoffMax)))
    const attempt = Effect.suspend(() => this.connect(this.started)).pipe(
      Effect.catchTag("Expired", () => {
        this.loseSession(
          new SessionLost("expired", `the server at ${this.url} no longer has this client's session (it restarted, ` +
            `or the client was away longer than its resume window)`)
        )
        return this.connect(false)
      })
    )
    const withinWindow = yield* attempt.pipe(
      Effect.retry({ schedule: backoff, while: (error) => error._tag !== "Expired" && error.reason !== "auth-failed" }),
      Effect.timeout(this.reconnectWindow),
      Effect.either
    )
    if (withinWindow._tag === "Right") return
    const cause = withinWindow.left
    this.loseSession(
      new SessionLost(
        "unreachable",
        cause._tag === "ConnectFailed" && cause.reason === "auth-failed"
          ? cause.message
          : `lost the connection to ${this.url} and could not reconnect within ${Duration.format(this.reconnectWindow)}`,
        cause
      ),
      true
    )
    yield* attempt.pipe(Effect.retry(backoff), Effect.ignore)
    this.failure = undefined
  })

  private loseSession(error: SessionLost, keepFailing = false): void {
    this.session.detach("session lost")
    this.session = this.newSession()
    this.started = false
    this.failure = keepFailing ? error : undefined
    this.events.onSessionLost(error)
  }

  private newSession(): Session {
    const session: Session = new Session(Crypto.randomBytes(sessionIdBytes).toString("hex"), {
      onMessages: this.events.onMessages,
      onEnd: (_code, reason, byPeer) => {
        if (this.session === session) this.signal({ _tag: "Ended", reason, protocol: !byPeer })
      },
      onDisconnect: (closed) => {
        if (this.session !== session) return
        if (closed.reason === "frame-error") this.signal({ _tag: "Ended", reason: closed.message, protocol: true })
        else this.signal({ _tag: "Disconnected" })
      }
    })
    return session
  }

  private signal(lost: Lost): void {
    this.current = undefined
    Deferred.unsafeDone(this.lost, Effect.succeed(lost))
  }

  private dial(): Effect.Effect<Net.Socket, ConnectFailed> {
    return Effect.mapError(dial(this.endpoint.host, this.endpoint.port), (error) => this.socketFailed(error))
  }

  // Sends OPEN and waits for ACCEPT; the session takes the connection over in the same tick.
  private open(socket: Net.Socket, leftover: Uint8Array, resume: boolean): Effect.Effect<void, ConnectFailed | Expired> {
    return Effect.async<void, ConnectFailed | Expired>((done) => {
      const connection = new FramedConnection(socket, Options.connectionOptions(this.options))
      const session = this.session
      let settled = false
      const settle = (outcome: Effect.Effect<void, ConnectFailed | Expired>) => {
        if (settled) return
        settled = true
        done(outcome)
      }
      connection.start({
        onFrame: (type, data) => {
          const accept = type === FramedType.Accept ? decodeAccept(data) : undefined
          if (accept !== undefined) {
            const problem = session.attach(connection, accept.received, accept.maxFrameBytes)
            if (problem !== undefined) {
              settle(Effect.fail(this.connectFailed("protocol", problem)))
              return connection.close(CloseCode.Protocol, `protocol error: ${problem}`)
            }
            this.started = true
            this.current = connection
            this.lost = Deferred.unsafeMake<Lost>(FiberId.none)
            return settle(Effect.void)
          }
          const detail = type === FramedType.Close ? decodeClose(data).reason : `unexpected frame type ${type}`
          settle(Effect.fail(type === FramedType.Expired ? new Expired() : this.connectFailed("protocol", detail)))
          connection.destroy("session refused")
        },
        onFlush: () => {},
        onClose: (closed) => settle(Effect.fail(this.connectFailed("protocol", closed.message)))
      }, leftover)
      connection.push(
        encodeOpen({
          resume,
          sessionId: session.id,
          received: session.receivedCount,
          maxFrameBytes: Options.connectionOptions(this.options).maxFrameBytes
        })
      )
      return Effect.sync(() => connection.destroy("interrupted"))
    })
  }

  private handshakeFailed(error: Handshake.HandshakeError): ConnectFailed {
    switch (error.reason) {
      case "auth-failed":
      case "secret-required":
      case "server-unauthenticated":
        return this.connectFailed("auth-failed", error.message.replace(/^handshake with \S+ failed: /, ""))
      case "timeout":
        return this.connectFailed("timeout", error.message)
      case "protocol":
      case "closed":
        return this.connectFailed("protocol", error.message)
    }
  }

  private socketFailed(error: NodeJS.ErrnoException): ConnectFailed {
    switch (error.code) {
      case "ECONNREFUSED":
        return this.connectFailed("refused", "connection refused")
      case "ETIMEDOUT":
        return this.connectFailed("timeout", "connection timed out")
      case "ENOTFOUND":
      case "EAI_AGAIN":
        return this.connectFailed("not-found", `host ${this.endpoint.host} not found`)
      case "EACCES":
      case "EPERM":
        return this.connectFailed("permission-denied", "permission denied")
      default:
        return this.connectFailed("other", error.code !== undefined ? `${error.code}: ${error.message}` : error.message)
    }
  }

  private connectFailed(reason: ConnectFailed["reason"], detail: string): ConnectFailed {
    return new ConnectFailed({ url: this.url, reason, detail, message: `cannot reach ${this.url} (${detail})` })
  }
}
