/** Type check only: the framed layers accept Transport's option types as the dispatcher will pass them. */
import type * as RpcClient from "@effect/rpc/RpcClient"
import type * as RpcServer from "@effect/rpc/RpcServer"
import type * as Layer from "effect/Layer"
import type * as Endpoint from "../src/transport/Endpoint.js"
import type { ConnectFailed, ListenFailed } from "../src/transport/Errors.js"
import * as FramedRpc from "../src/transport/framed/FramedRpc.js"
import type * as Transport from "../src/transport/Transport.js"

export const server = (
  endpoint: Endpoint.FramedEndpoint,
  options: Transport.ServerOptions
): Layer.Layer<RpcServer.Protocol, ListenFailed> => FramedRpc.layerServerProtocol(endpoint, options)

export const client = (
  endpoint: Endpoint.FramedEndpoint,
  options: Transport.ClientOptions
): Layer.Layer<RpcClient.Protocol, ConnectFailed> => FramedRpc.layerClientProtocol(endpoint, options)
