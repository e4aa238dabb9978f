import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import * as Crypto from "node:crypto"
import type * as Net from "node:net"
import { encode, firstTroupeType, headerBytes } from "../protocol/Frame.js"
import type { Secret } from "./Secret.js"

/**
 * The shared-secret handshake that opens every authenticated Troupe connection, before any
 * RPC byte. It runs on a connected socket of any transport and speaks in frames (Frame.ts)
 * of types 16–19:
 *
 * 1. the server always greets first (HELLO: magic, version, "secret required" flag, nonce);
 * 2. the client answers (AUTH: its nonce and, when the server wants one, an HMAC-SHA256 proof);
 * 3. the server accepts (WELCOME: its own proof, so the client knows the server holds the
 *    secret too) or refuses (REJECT: a reason code and a message) and closes.
 *
 * A failed handshake closes the socket on both sides. The byte layout is in docs/PROTOCOL.md.
 */
export const HandshakeType = {
  Hello: firstTroupeType,
  Auth: firstTroupeType + 1,
  Welcome: firstTroupeType + 2,
  Reject: firstTroupeType + 3
} as const

/** The handshake version this code speaks. */
export const version = 1

/** The default time a whole handshake may take. */
export const defaultTimeout: Duration.Duration = Duration.seconds(5)

/** Why a handshake failed. */
export type HandshakeFailure =
  /** The secrets differ: our proof or the peer's did not check out. */
  | "auth-failed"
  /** The server requires a secret and the client has none. */
  | "secret-required"
  /** The client holds a secret but the server cannot prove one (it has none). */
  | "server-unauthenticated"
  /** The peer does not speak Troupe's handshake. */
  | "protocol"
  /** The handshake did not finish in time. */
  | "timeout"
  /** The peer closed the connection during the handshake. */
  | "closed"

/** A handshake that failed; the socket has been closed. */
export class HandshakeError extends Schema.TaggedError<HandshakeError>()("HandshakeError", {
  reason: Schema.Literal("auth-failed", "secret-required", "server-unauthenticated", "protocol", "timeout", "closed"),
  /** Who saw the failure. */
  side: Schema.Literal("client", "server"),
  /** The peer's address, for messages and logs. */
  peer: Schema.String,
  message: Schema.String
}) {}

/** Options for the server side of the handshake. */
export interface ServerHandshakeOptions {
  /** The secret clients must prove; without one, any Troupe client is welcome. */
  readonly secret?: Secret | undefined
  /** How long the client may take; default 5 seconds. */
  readonly timeout?: Duration.DurationInput | undefined
}

/** Options for the client side of the handshake. */
export interface ClientHandshakeOptions {
  /** The shared secret, for a server that asks for one. */
  readonly secret?: Secret | undefined
  /** How long the server may take; default 5 seconds. */
  readonly timeout?: Duration.DurationInput | undefined
  /**
   * A client holding a secret refuses a server that cannot prove it holds it too (it has none),
   * so that a secret always means a mutually authenticated connection. Default true.
   */
  readonly requireServerAuth?: boolean | undefined
}

/**
 * Runs the server side on a freshly accepted socket. Succeeds with the bytes the client sent
 * beyond the handshake (usually none) and leaves the socket paused, so the caller can attach its
 * reader and resume without losing data. On failure the client is told why (REJECT), the socket
 * is closed, and a line is logged.
 */
export const serverHandshake = (
  socket: Net.Socket,
  options: ServerHandshakeOptions = {}
): Effect.Effect<Uint8Array, HandshakeError> => {
  const peer = peerName(socket)
  const secret = options.secret?.key
  const serverNonce = Crypto.randomBytes(nonceBytes)
  return exchange(socket, "server", options.timeout, (read, write, fail) => {
    write(HandshakeType.Hello, hello(secret !== undefined, serverNonce))
    return read((frame) => {
      if (frame.type !== HandshakeType.Auth || frame.data.length < 2 + nonceBytes || frame.data[0] !== version) {
        return reject(write, fail, 3, "protocol", "not a Troupe client (no valid AUTH frame)")
      }
      const hasProof = (frame.data[1]! & 1) === 1
      const clientNonce = frame.data.subarray(2, 2 + nonceBytes)
      if (secret !== undefined) {
        if (!hasProof) {
          return reject(write, fail, 2, "secret-required", "the client has no shared secret")
        }
        const proof = frame.data.subarray(2 + nonceBytes, 2 + nonceBytes + proofBytes)
        const expected = hmac(secret, clientLabel, serverNonce, clientNonce)
        if (proof.length !== proofBytes || !Crypto.timingSafeEqual(proof, expected)) {
          return reject(write, fail, 1, "auth-failed", "the client's secret is wrong")
        }
      }
      write(
        HandshakeType.Welcome,
        secret === undefined ? empty : hmac(secret, serverLabel, serverNonce, clientNonce)
      )
      return "done"
    })
  }).pipe(
    Effect.tapError((error) =>
      Effect.logWarning(`rejected client ${peer}: ${error.message}`).pipe(
        Effect.annotateLogs({ module: "Handshake", reason: error.reason })
      )
    )
  )
}

/**
 * Runs the client side on a freshly connected socket. Succeeds with the bytes the server sent
 * beyond the handshake and leaves the socket paused; fails with a HandshakeError that says what
 * to fix, after closing the socket.
 */
export const clientHandshake = (
  socket: Net.Socket,
  options: ClientHandshakeOptions = {}
): Effect.Effect<Uint8Array, HandshakeError> => {
  const secret = options.secret?.key
  const clientNonce = Crypto.randomBytes(nonceBytes)
  return exchange(socket, "client", options.timeout, (read, write, fail) =>
    read((greeting) => {
      if (greeting.type === HandshakeType.Reject) return fail(rejection(greeting.data))
      if (greeting.type !== HandshakeType.Hello || !isHello(greeting.data)) {
        return fail("protocol", "the server does not speak Troupe's handshake")
      }
      if (greeting.data[magic.length] !== version) {
        return fail("protocol", `the server speaks handshake version ${greeting.data[magic.length]}, not ${version}`)
      }
      const secretRequired = (greeting.data[magic.length + 1]! & 1) === 1
      const serverNonce = greeting.data.subarray(magic.length + 2, magic.length + 2 + nonceBytes)
      if (secretRequired && secret === undefined) {
        write(HandshakeType.Auth, auth(clientNonce, undefined))
        return fail("secret-required", secretRequiredMessage)
      }
      if (!secretRequired && secret !== undefined && options.requireServerAuth !== false) {
        return fail(
          "server-unauthenticated",
          "the server has no shared secret, so it cannot prove who it is; this client holds one and refuses " +
            "an unauthenticated server (give the server the same --secret-file)"
        )
      }
      const proof = secretRequired ? hmac(secret!, clientLabel, serverNonce, clientNonce) : undefined
      write(HandshakeType.Auth, auth(clientNonce, proof))
      return read((answer) => {
        if (answer.type === HandshakeType.Reject) return fail(rejection(answer.data))
        if (answer.type !== HandshakeType.Welcome) return fail("protocol", "the server did not answer AUTH")
        if (secretRequired) {
          const expected = hmac(secret!, serverLabel, serverNonce, clientNonce)
          if (answer.data.length !== proofBytes || !Crypto.timingSafeEqual(answer.data, expected)) {
            return fail("auth-failed", "authentication failed: the server could not prove it holds the shared secret")
          }
        }
        return "done"
      })
    }))
}

/** The message a client without a secret gets from a server that requires one. */
export const secretRequiredMessage = "server requires a shared secret (--secret-file or TROUPE_SECRET_FILE)"

/** A short name for a socket's peer, as `host:port`. */
export const peerName = (socket: Net.Socket): string =>
  socket.remoteAddress === undefined ? "unknown peer" : `${socket.remoteAddress}:${socket.remotePort}`

// ---------------------------------------------------------------------------------------------
// private

const nonceBytes = 32
const proofBytes = 32
// Handshake frames are small; anything longer is not a Troupe peer.
const maxHandshakeFrame = 1024
const magic = Buffer.from("TRPE", "latin1")
const clientLabel = Buffer.from("troupe-handshake-client\0", "latin1")
const serverLabel = Buffer.from("troupe-handshake-server\0", "latin1")
const empty = new Uint8Array(0)
const ignore = () => {}
const utf8 = new TextDecoder()

const rejectReasons: Record<number, HandshakeFailure> = { 1: "auth-failed", 2: "secret-required", 3: "protocol" }

interface RawFrame {
  readonly type: number
  readonly data: Buffer
}

// A step handles one frame: it finishes the handshake, fails it, or waits for the next frame.
type Step = "done" | Failed | { readonly next: (frame: RawFrame) => Step }
interface Failed {
  readonly failed: HandshakeFailure
  readonly message: string
}

type Read = (next: (frame: RawFrame) => Step) => Step
type Write = (type: number, data: Uint8Array) => void
type Fail = (reason: HandshakeFailure | Failed, message?: string) => Step

const hello = (secretRequired: boolean, nonce: Uint8Array): Uint8Array =>
  Buffer.concat([magic, Buffer.from([version, secretRequired ? 1 : 0]), nonce])

const isHello = (data: Uint8Array): boolean =>
  data.length === magic.length + 2 + nonceBytes && Buffer.from(data.subarray(0, magic.length)).equals(magic)

const auth = (nonce: Uint8Array, proof: Uint8Array | undefined): Uint8Array =>
  Buffer.concat([Buffer.from([version, proof === undefined ? 0 : 1]), nonce, proof ?? empty])

const hmac = (key: Uint8Array, label: Uint8Array, serverNonce: Uint8Array, clientNonce: Uint8Array): Buffer =>
  Crypto.createHmac("sha256", key).update(label).update(serverNonce).update(clientNonce).digest()

const rejection = (data: Uint8Array): Failed => {
  const reason = rejectReasons[data[0] ?? 0] ?? "protocol"
  const text = utf8.decode(data.subarray(1))
  return {
    failed: reason,
    message: reason === "secret-required"
      ? secretRequiredMessage
      : reason === "auth-failed"
      ? `authentication failed: the server rejected this client's shared secret`
      : `the server refused the handshake: ${text}`
  }
}

const reject = (write: Write, fail: Fail, code: number, reason: HandshakeFailure, message: string): Step => {
  write(HandshakeType.Reject, Buffer.concat([Buffer.from([code]), Buffer.from(message, "utf8")]))
  return fail(reason, message)
}

/**
 * Drives one side of the handshake: parses frames out of the socket's data as they come, hands
 * each to the current step, and on success pauses the socket and returns the unread bytes.
 */
const exchange = (
  socket: Net.Socket,
  side: "client" | "server",
  timeout: Duration.DurationInput | undefined,
  start: (read: Read, write: Write, fail: Fail) => Step
): Effect.Effect<Uint8Array, HandshakeError> => {
  const peer = peerName(socket)
  const limit = Duration.decode(timeout ?? defaultTimeout)
  const error = (reason: HandshakeFailure, message: string) =>
    new HandshakeError({ reason, side, peer, message: `handshake with ${peer} failed: ${message}` })
  return Effect.async<Uint8Array, HandshakeError>((resume) => {
    let buffered: Buffer = Buffer.alloc(0)
    let step: Step | undefined
    let finished = false
    const cleanup = () => {
      finished = true
      socket.off("data", onData)
      socket.off("close", onClose)
      socket.off("error", onError)
    }
    const finish = (outcome: Step) => {
      if (outcome === "done") {
        socket.pause()
        cleanup()
        resume(Effect.succeed(new Uint8Array(buffered)))
      } else if ("failed" in outcome) {
        cleanup()
        socket.on("error", ignore) // a reset while closing is expected, not a crash
        // Let a REJECT written just before reach the peer, then make sure the socket goes away.
        socket.end()
        setTimeout(() => socket.destroy(), 1000).unref()
        resume(Effect.fail(error(outcome.failed, outcome.message)))
      } else {
        step = outcome
      }
    }
    const read: Read = (next) => ({ next })
    const write: Write = (type, data) => {
      if (!socket.destroyed) socket.write(encode(type, data))
    }
    const fail: Fail = (reason, message) =>
      typeof reason === "string" ? { failed: reason, message: message ?? reason } : reason
    function onData(chunk: Buffer) {
      buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk])
      while (!finished && step !== undefined && step !== "done" && "next" in step && buffered.length >= 4) {
        const length = buffered.readInt32BE(0)
        if (length < 2 || length > maxHandshakeFrame) {
          return finish(fail("protocol", `not a Troupe peer (a frame of length ${length} during the handshake)`))
        }
        if (buffered.length < 4 + length) return
        const frame = { type: buffered.readInt16BE(4), data: buffered.subarray(headerBytes, 4 + length) }
        buffered = buffered.subarray(4 + length)
        finish(step.next(frame))
      }
    }
    function onClose() {
      if (!finished) finish(fail("closed", "the peer closed the connection"))
    }
    function onError(cause: Error) {
      if (!finished) finish(fail("closed", `the connection failed (${cause.message})`))
    }
    socket.on("data", onData)
    socket.on("close", onClose)
    socket.on("error", onError)
    finish(start(read, write, fail))
    if (!finished && socket.isPaused()) socket.resume()
    return Effect.sync(() => {
      if (!finished) {
        cleanup()
        socket.on("error", ignore)
        socket.destroy()
      }
    })
  }).pipe(
    Effect.timeoutFail({
      duration: limit,
      onTimeout: () => error("timeout", `no answer within ${Duration.format(limit)}`)
    })
  )
}
