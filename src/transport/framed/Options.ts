import * as Duration from "effect/Duration"
import { defaultMaxFrameBytes } from "../../protocol/Frame.js"
import type { Secret } from "../Secret.js"
import type { ConnectionOptions } from "./FramedConnection.js"

/** Settings both ends of the framed transport share. */
export interface CommonOptions {
  /** The shared secret for the handshake. */
  readonly secret?: Secret | undefined
  /** The largest frame accepted from the peer; default 16 MiB. One message must fit in one frame. */
  readonly maxFrameBytes?: number | undefined
  /** Send a PING after this long without hearing from the peer; default 5 seconds. */
  readonly keepaliveInterval?: Duration.DurationInput | undefined
  /** Drop the connection after this long without hearing from the peer; default 15 seconds. */
  readonly keepaliveTimeout?: Duration.DurationInput | undefined
}

/** How a framed server listens. */
export interface ServerOptions extends CommonOptions {
  /** How long a disconnected client's session (and its running requests) waits for it; default 30 seconds. */
  readonly resumeWindow?: Duration.DurationInput | undefined
  /** How long a new connection may take to authenticate and open its session; default 5 seconds. */
  readonly handshakeTimeout?: Duration.DurationInput | undefined
  /** Called when a client opens a new session (by its clientId), with the address it connected from. */
  readonly onConnect?: ((clientId: number, peer: { readonly host: string; readonly port: number }) => void) | undefined
}

/** How a framed client connects. */
export interface ClientOptions extends CommonOptions {
  /** How long the first connection may take; default 5 seconds. Later attempts use it per attempt. */
  readonly connectTimeout?: Duration.DurationInput | undefined
  /** How long to keep reconnecting before in-flight calls fail; default 30 seconds. */
  readonly reconnectWindow?: Duration.DurationInput | undefined
  /** The first pause between reconnect attempts, doubled after each; default 20 ms. */
  readonly reconnectBackoff?: Duration.DurationInput | undefined
  /** The longest pause between reconnect attempts; default 1 second. */
  readonly reconnectBackoffMax?: Duration.DurationInput | undefined
  /** Refuse a server without a secret when this client holds one; default true. */
  readonly requireServerAuth?: boolean | undefined
}

/** The defaults, in one place for the docs and the tests. */
export const defaults = {
  maxFrameBytes: defaultMaxFrameBytes,
  keepaliveInterval: Duration.seconds(5),
  keepaliveTimeout: Duration.seconds(15),
  resumeWindow: Duration.seconds(30),
  handshakeTimeout: Duration.seconds(5),
  connectTimeout: Duration.seconds(5),
  reconnectWindow: Duration.seconds(30),
  reconnectBackoff: Duration.millis(20),
  reconnectBackoffMax: Duration.seconds(1)
} as const

/** The connection settings implied by the options. */
export const connectionOptions = (options: CommonOptions): ConnectionOptions => ({
  maxFrameBytes: options.maxFrameBytes ?? defaults.maxFrameBytes,
  keepaliveIntervalMs: millis(options.keepaliveInterval, defaults.keepaliveInterval),
  keepaliveTimeoutMs: millis(options.keepaliveTimeout, defaults.keepaliveTimeout)
})

/** A duration option in milliseconds, or its default. */
export const millis = (value: Duration.DurationInput | undefined, fallback: Duration.Duration): number =>
  Duration.toMillis(value === undefined ? fallback : Duration.decode(value))
