/**
 * Opening a TCP connection, as every Troupe client does: Nagle off, the connect error as the
 * failure, and from then on socket errors left to the "close" the owner watches. Interrupting the
 * dial destroys the socket.
 */
import * as Effect from "effect/Effect"
import * as Net from "node:net"

/** Connects to `host:port`. */
export const dial = (host: string, port: number): Effect.Effect<Net.Socket, Error> =>
  Effect.async<Net.Socket, Error>((resume) => {
    const socket = Net.createConnection({ host, port, noDelay: true })
    const onError = (error: Error) => resume(Effect.fail(error))
    socket.once("error", onError)
    socket.once("connect", () => {
      socket.off("error", onError)
      socket.on("error", () => {}) // reported through "close" from now on
      resume(Effect.succeed(socket))
    })
    return Effect.sync(() => socket.destroy())
  })
