import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Logger from "effect/Logger"
import * as Net from "node:net"
import { encode } from "../../src/protocol/Frame.js"
import * as Handshake from "../../src/transport/Handshake.js"
import type { Secret } from "../../src/transport/Secret.js"

const secret = (text: string): Secret => ({ key: new TextEncoder().encode(text), source: "test" })
const right = secret("correct horse battery staple")
const wrong = secret("incorrect horse battery staple")

/** A listening server whose connections each run `onSocket`; closed with the scope. */
const listen = (onSocket: (socket: Net.Socket) => void) =>
  Effect.acquireRelease(
    Effect.async<Net.Server>((resume) => {
      const server = Net.createServer((socket) => {
        socket.on("error", () => {})
        onSocket(socket)
      })
      server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
    }),
    (server) => Effect.sync(() => server.close())
  ).pipe(Effect.map((server) => (server.address() as Net.AddressInfo).port))

const connect = (port: number) =>
  Effect.acquireRelease(
    Effect.async<Net.Socket>((resume) => {
      const socket = Net.connect(port, "127.0.0.1", () => resume(Effect.succeed(socket)))
      socket.on("error", () => {})
    }),
    (socket) => Effect.sync(() => socket.destroy())
  )

/** Log lines written while `effect` runs. */
const collectLogs = () => {
  const lines: Array<string> = []
  const layer = Logger.replace(Logger.defaultLogger, Logger.make(({ message }) => lines.push(String(message))))
  return { lines, layer }
}

/** Runs both sides over a real loopback connection; returns each side's outcome. */
const handshake = (server: Handshake.ServerHandshakeOptions, client: Handshake.ClientHandshakeOptions) =>
  Effect.gen(function*() {
    const logs = collectLogs()
    const serverResult: { outcome?: Either.Either<Uint8Array, Handshake.HandshakeError> } = {}
    const done = deferred<void>()
    const port = yield* listen((socket) => {
      Effect.runPromise(Effect.either(Handshake.serverHandshake(socket, server)).pipe(Effect.provide(logs.layer))).then(
        (outcome) => {
          serverResult.outcome = outcome
          done.resolve()
        }
      )
    })
    const socket = yield* connect(port)
    const clientOutcome = yield* Effect.either(Handshake.clientHandshake(socket, client))
    yield* Effect.promise(() => done.promise)
    return { client: clientOutcome, server: serverResult.outcome!, logs: logs.lines, socket }
  })

describe("Handshake", () => {
  it.scopedLive("the right secret authenticates both ways", () =>
    Effect.gen(function*() {
      const result = yield* handshake({ secret: right }, { secret: right })
      assert.isTrue(Either.isRight(result.client))
      assert.isTrue(Either.isRight(result.server))
      assert.deepStrictEqual(result.logs, [])
    }))

  it.scopedLive("no secret on either side still checks that the peer speaks Troupe", () =>
    Effect.gen(function*() {
      const result = yield* handshake({}, {})
      assert.isTrue(Either.isRight(result.client))
      assert.isTrue(Either.isRight(result.server))
    }))

  it.scopedLive("a wrong secret: the client is told authentication failed and is disconnected; the server logs", () =>
    Effect.gen(function*() {
      const result = yield* handshake({ secret: right }, { secret: wrong })
      const error = failure(result.client)
      assert.strictEqual(error.reason, "auth-failed")
      assert.include(error.message, "authentication failed")
      assert.strictEqual(failure(result.server).reason, "auth-failed")
      assert.isTrue(result.logs.some((line) => line.includes("rejected client 127.0.0.1") && line.includes("wrong")))
      yield* Effect.promise(() => closed(result.socket))
    }))

  it.scopedLive("a missing secret: the client is told the server requires one and how to give it", () =>
    Effect.gen(function*() {
      const result = yield* handshake({ secret: right }, {})
      const error = failure(result.client)
      assert.strictEqual(error.reason, "secret-required")
      assert.include(error.message, "server requires a shared secret (--secret-file or TROUPE_SECRET_FILE)")
      assert.strictEqual(failure(result.server).reason, "secret-required")
      assert.isTrue(result.logs.some((line) => line.includes("rejected client")))
    }))

  it.scopedLive("a client with a secret refuses a server without one, unless told not to require it", () =>
    Effect.gen(function*() {
      const refused = yield* handshake({}, { secret: right })
      const error = failure(refused.client)
      assert.strictEqual(error.reason, "server-unauthenticated")
      assert.include(error.message, "no shared secret")
      const allowed = yield* handshake({}, { secret: right, requireServerAuth: false })
      assert.isTrue(Either.isRight(allowed.client))
      assert.isTrue(Either.isRight(allowed.server))
    }))

  it.scopedLive("a client that is not Troupe gets a protocol error on the server, which logs it", () =>
    Effect.gen(function*() {
      const logs = collectLogs()
      const outcome = deferred<Either.Either<Uint8Array, Handshake.HandshakeError>>()
      const port = yield* listen((socket) => {
        Effect.runPromise(Effect.either(Handshake.serverHandshake(socket)).pipe(Effect.provide(logs.layer))).then(
          outcome.resolve
        )
      })
      const socket = yield* connect(port)
      socket.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
      const result = yield* Effect.promise(() => outcome.promise)
      assert.strictEqual(failure(result).reason, "protocol")
      assert.isTrue(logs.lines.some((line) => line.includes("rejected client") && line.includes("not a Troupe peer")))
      yield* Effect.promise(() => closed(socket))
    }))

  it.scopedLive("a server that is not Troupe gets a protocol error on the client", () =>
    Effect.gen(function*() {
      const port = yield* listen((socket) => {
        socket.end("SSH-2.0-OpenSSH_9.6\r\n")
      })
      const socket = yield* connect(port)
      const error = yield* Effect.flip(Handshake.clientHandshake(socket))
      assert.strictEqual(error.reason, "protocol")
    }))

  it.scopedLive("a silent peer times out on either side", () =>
    Effect.gen(function*() {
      const serverOutcome = deferred<Either.Either<Uint8Array, Handshake.HandshakeError>>()
      const silentPort = yield* listen(() => {})
      const silentServer = yield* connect(silentPort)
      const clientError = yield* Effect.flip(Handshake.clientHandshake(silentServer, { timeout: "200 millis" }))
      assert.strictEqual(clientError.reason, "timeout")
      const port = yield* listen((socket) => {
        Effect.runPromise(Effect.either(Handshake.serverHandshake(socket, { timeout: "200 millis" }))).then(
          serverOutcome.resolve
        )
      })
      const silentClient = yield* connect(port)
      const result = yield* Effect.promise(() => serverOutcome.promise)
      assert.strictEqual(failure(result).reason, "timeout")
      yield* Effect.promise(() => closed(silentClient))
    }))

  it.scopedLive("bytes the client sends right after AUTH are handed back, and the socket is left paused", () =>
    Effect.gen(function*() {
      const outcome = deferred<Either.Either<Uint8Array, Handshake.HandshakeError>>()
      let paused = false
      const port = yield* listen((socket) => {
        Effect.runPromise(Effect.either(Handshake.serverHandshake(socket))).then((result) => {
          paused = socket.isPaused()
          outcome.resolve(result)
        })
      })
      const socket = yield* connect(port)
      // A hand-made client without a secret: wait for HELLO, then AUTH and more bytes in one write.
      yield* Effect.async<void>((resume) => {
        socket.once("data", () => resume(Effect.void))
      })
      const auth = new Uint8Array(2 + 32)
      auth[0] = Handshake.version
      const extra = encode(99, new Uint8Array([1, 2, 3]))
      socket.write(Buffer.concat([encode(Handshake.HandshakeType.Auth, auth), extra]))
      const leftover = Either.getOrThrow(yield* Effect.promise(() => outcome.promise))
      assert.deepStrictEqual(Array.from(leftover), Array.from(extra))
      assert.isTrue(paused)
    }))
})

/** A promise with its resolve function (Node 20 has no Promise.withResolvers). */
const deferred = <A = void>() => {
  let resolve!: (value: A) => void
  const promise = new Promise<A>((r) => {
    resolve = r
  })
  return { promise, resolve }
}

/** The error of a handshake that must have failed. */
const failure = (outcome: Either.Either<Uint8Array, Handshake.HandshakeError>): Handshake.HandshakeError =>
  Either.isLeft(outcome) ? outcome.left : assert.fail("the handshake succeeded")

const closed = (socket: Net.Socket) =>
  new Promise<void>((resolve) => {
    if (socket.destroyed || socket.readableEnded) return resolve()
    socket.once("close", () => resolve())
    socket.once("end", () => resolve())
    socket.resume()
  })
