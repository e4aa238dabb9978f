import * as Rpc from "@effect/rpc/Rpc"
import * as RpcGroup from "@effect/rpc/RpcGroup"
import * as Schema from "effect/Schema"
import { ConfigError, ModuleError } from "../modules/Errors.js"
import { ConfigReport, ModuleEvent, ModuleInfo, ReloadOutcome } from "../modules/ModuleInfo.js"

/** The caller's address as the server sees it (`ip` is `unix` over a Unix socket, `folder` over the folder transport, with port 0). */
export class PeerAddress extends Schema.Class<PeerAddress>("PeerAddress")({
  ip: Schema.String,
  port: Schema.Number
}) {}

/**
 * The module server as a typed RpcGroup: the `module` role serves it on any transport, and
 * `ModulesClient` calls it. Arguments and results are any value msgpack carries (JSON values,
 * binary data); `Com` answers with what the module's function returned.
 */
export class ModulesRpc extends RpcGroup.make(
  Rpc.make("Ping", { success: PeerAddress }),
  Rpc.make("Com", {
    payload: { module: Schema.String, fn: Schema.String, args: Schema.Array(Schema.Unknown) },
    success: Schema.Unknown,
    error: ModuleError
  }),
  Rpc.make("Help", { payload: { module: Schema.optional(Schema.String) }, success: Schema.String, error: ModuleError }),
  Rpc.make("GetModules", { payload: { prefix: Schema.optional(Schema.String) }, success: Schema.Array(Schema.String) }),
  Rpc.make("Status", { payload: { prefix: Schema.optional(Schema.String) }, success: Schema.Array(ModuleInfo) }),
  Rpc.make("Reload", { payload: { module: Schema.String }, success: ReloadOutcome, error: ModuleError }),
  Rpc.make("ReloadConfig", { success: ConfigReport, error: ConfigError }),
  Rpc.make("Events", { success: ModuleEvent, stream: true }),
  /**
   * The port of the direct-route listener beside this endpoint (on its host), or null when there is
   * none (Unix sockets, folders): a client may then call a module's worker directly
   * (modules/internal/DirectWire.ts), one hop instead of two.
   */
  Rpc.make("Route", { success: Schema.NullOr(Schema.Number) })
) {}
