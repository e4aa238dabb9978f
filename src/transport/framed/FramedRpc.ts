import type * as Rpc from "@effect/rpc/Rpc"
import * as RpcClient from "@effect/rpc/RpcClient"
import { RpcClientError } from "@effect/rpc/RpcClientError"
import type * as RpcGroup from "@effect/rpc/RpcGroup"
import type { FromClientEncoded, FromServerEncoded } from "@effect/rpc/RpcMessage"
import * as RpcServer from "@effect/rpc/RpcServer"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Mailbox from "effect/Mailbox"
import * as Option from "effect/Option"
import * as Runtime from "effect/Runtime"
import type * as Scope from "effect/Scope"
import * as LeanClient from "../../rpc/LeanClient.js"
import * as LeanServer from "../../rpc/LeanServer.js"
import * as Wire from "../../rpc/Wire.js"
import type * as Endpoint from "../Endpoint.js"
import type { ConnectFailed, ListenFailed } from "../Errors.js"
import * as FramedClient from "./FramedClient.js"
import * as FramedServer from "./FramedServer.js"
import { Inbox } from "./Inbox.js"
import type * as Options from "./Options.js"

/** Options for serving RPC over the framed transport (a superset of Transport.ServerOptions' relevant fields). */
export type ServerOptions = Options.ServerOptions

/** Options for an RPC client over the framed transport (a superset of Transport.ClientOptions). */
export type ClientOptions = Options.ClientOptions

/**
 * Serves an RpcGroup over framed TCP with the lean engine (`rpc/LeanServer.ts`): one client per
 * session, so a client that reconnects within the resume window keeps its running requests.
 */
export const layerServer = <Rpcs extends Rpc.Any>(
  group: RpcGroup.RpcGroup<Rpcs>,
  endpoint: Endpoint.FramedEndpoint,
  options: ServerOptions & LeanServer.Options = {}
): Layer.Layer<never, ListenFailed, Rpc.ToHandler<Rpcs>> => Layer.scopedDiscard(makeServer(group, endpoint, options))

/** The lean server and the framed server under it (for its address, and for tests that cut connections). */
export const makeServer = <Rpcs extends Rpc.Any>(
  group: RpcGroup.RpcGroup<Rpcs>,
  endpoint: Endpoint.FramedEndpoint,
  options: ServerOptions & LeanServer.Options = {}
): Effect.Effect<FramedServer.FramedServer, ListenFailed, Rpc.ToHandler<Rpcs> | Scope.Scope> =>
  Effect.gen(function*() {
    let server: FramedServer.FramedServer | undefined
    const events = yield* LeanServer.make(group, {
      send: (clientId, message) => server?.send(clientId, message)
    }, options)
    server = yield* FramedServer.make(endpoint, options, { ...events, onOpen: (clientId, peer) => options.onConnect?.(clientId, peer) })
    return server
  })

/**
 * A typed client of an RpcGroup over framed TCP with the lean engine (`rpc/LeanClient.ts`); fails
 * with ConnectFailed when the first session cannot be opened.
 */
export const makeClient = <Rpcs extends Rpc.Any>(
  group: RpcGroup.RpcGroup<Rpcs>,
  endpoint: Endpoint.FramedEndpoint,
  options: ClientOptions = {}
): Effect.Effect<
  { readonly client: RpcClient.RpcClient<Rpcs, RpcClientError>; readonly framed: FramedClient.FramedClient },
  ConnectFailed,
  Scope.Scope
> =>
  Effect.gen(function*() {
    let framed: FramedClient.FramedClient | undefined
    const lean = yield* LeanClient.make(group, {
      send: (message) => framed!.send(message),
      failure: () => framed!.failure()
    })
    framed = yield* FramedClient.make(endpoint, options, lean)
    return { client: lean.client, framed }
  })

/**
 * The RPC server Protocol over framed TCP, for a stock RpcServer: one RpcServer client per
 * session, so a client that reconnects within the resume window keeps its running requests.
 */
export const layerServerProtocol = (
  endpoint: Endpoint.FramedEndpoint,
  options: ServerOptions = {}
): Layer.Layer<RpcServer.Protocol, ListenFailed> =>
  Layer.scoped(RpcServer.Protocol, Effect.map(makeServerProtocol(endpoint, options), ({ protocol }) => protocol))

/** The RPC client Protocol over framed TCP, for a stock RpcClient; fails with ConnectFailed when the first session cannot be opened. */
export const layerClientProtocol = (
  endpoint: Endpoint.FramedEndpoint,
  options: ClientOptions = {}
): Layer.Layer<RpcClient.Protocol, ConnectFailed> =>
  Layer.scoped(RpcClient.Protocol, Effect.map(makeClientProtocol(endpoint, options), ({ protocol }) => protocol))

/** The server Protocol and the framed server under it (for its address, and for tests that cut connections). */
export const makeServerProtocol = (
  endpoint: Endpoint.FramedEndpoint,
  options: ServerOptions = {}
): Effect.Effect<
  { readonly protocol: RpcServer.Protocol["Type"]; readonly server: FramedServer.FramedServer },
  ListenFailed,
  Scope.Scope
> =>
  Effect.gen(function*() {
    let server!: FramedServer.FramedServer
    const protocol = yield* RpcServer.Protocol.make(Effect.fnUntraced(function*(writeRequest) {
      const disconnects = yield* Mailbox.make<number>()
      const inboxes = new Map<number, Inbox<FromClientEncoded>>()
      const fork = Runtime.runFork(yield* Effect.runtime<never>())
      server = yield* FramedServer.make(endpoint, options, {
        onOpen: (clientId, peer) => {
          options.onConnect?.(clientId, peer)
          const inbox = new Inbox<FromClientEncoded>()
          inboxes.set(clientId, inbox)
          // The disconnect is reported after the last message, so the RpcServer never sees a message from a client it dropped.
          fork(Effect.zipRight(
            inbox.consume((message) => writeRequest(clientId, message)),
            disconnects.offer(clientId)
          ))
        },
        // Compact messages become @effect/rpc's; one that is not a message reaches RpcServer as an unknown tag.
        onMessages: (clientId, messages) =>
          inboxes.get(clientId)?.offerAll(
            messages.map((message) => Wire.toClientEncoded(message) ?? ({ _tag: "Unknown" } as never))
          ),
        onEnd: (clientId) => {
          inboxes.get(clientId)?.close()
          inboxes.delete(clientId)
        }
      })
      return {
        disconnects,
        send: (clientId, response) => Effect.sync(() => sendResponse(server, clientId, response)),
        end: (clientId) => Effect.sync(() => server.end(clientId)),
        clientIds: Effect.sync(() => server.clientIds()),
        initialMessage: Effect.succeed(Option.none()),
        supportsAck: true,
        supportsTransferables: false,
        supportsSpanPropagation: true
      }
    }))
    return { protocol, server }
  })

/** The client Protocol and the framed client under it (for tests that cut the connection). */
export const makeClientProtocol = (
  endpoint: Endpoint.FramedEndpoint,
  options: ClientOptions = {}
): Effect.Effect<
  { readonly protocol: RpcClient.Protocol["Type"]; readonly client: FramedClient.FramedClient },
  ConnectFailed,
  Scope.Scope
> =>
  Effect.gen(function*() {
    let client!: FramedClient.FramedClient
    const protocol = yield* RpcClient.Protocol.make(Effect.fnUntraced(function*(writeResponse) {
      const inbox = new Inbox<FromServerEncoded>()
      client = yield* FramedClient.make(endpoint, options, {
        onMessages: (messages) => {
          for (const message of messages) {
            const decoded = Wire.toServerEncoded(message)
            if (decoded !== undefined) inbox.offer(decoded)
          }
        },
        // Failing every call in flight is how RpcClient learns that their replies will never come.
        onSessionLost: (error) =>
          inbox.offer({
            _tag: "ClientProtocolError",
            error: new RpcClientError({ reason: "Protocol", message: error.message, cause: error })
          })
      })
      yield* Effect.forkScoped(Effect.interruptible(inbox.consume(writeResponse)))
      return {
        send: (request) =>
          Effect.suspend(() => {
            const failure = client.failure()
            if (failure !== undefined) {
              return Effect.fail(new RpcClientError({ reason: "Protocol", message: failure.message, cause: failure }))
            }
            const tooLarge = client.send(Wire.fromClientEncoded(request))
            return tooLarge === undefined
              ? Effect.void
              : Effect.fail(new RpcClientError({ reason: "Protocol", message: tooLarge.message, cause: tooLarge }))
          }),
        supportsAck: true,
        supportsTransferables: false
      }
    }))
    return { protocol, client }
  })

// ---------------------------------------------------------------------------------------------
// private

// A reply over the client's frame limit becomes a defect for that request, so the caller learns why.
const sendResponse = (server: FramedServer.FramedServer, clientId: number, response: FromServerEncoded): void => {
  const message = Wire.fromServerEncoded(response)
  if (message === undefined) return
  const tooLarge = server.send(clientId, message)
  if (tooLarge === undefined) return
  if (response._tag === "Exit" || response._tag === "Chunk") {
    server.send(clientId, [
      Wire.ServerTag.Failure,
      Number(response.requestId),
      { _tag: "Die", defect: `reply not sent: ${tooLarge.message}` }
    ])
  }
}
