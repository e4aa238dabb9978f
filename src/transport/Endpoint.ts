import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Schema from "effect/Schema"
import { InvalidEndpoint } from "./Errors.js"

/** A TCP endpoint, `tcp://host:port`. */
export class TcpEndpoint extends Schema.TaggedClass<TcpEndpoint>()("Tcp", {
  host: Schema.String,
  port: Schema.Int.pipe(Schema.between(0, 65535))
}) {}

/** A Unix domain socket endpoint, `unix:///absolute/path.sock`. */
export class UnixEndpoint extends Schema.TaggedClass<UnixEndpoint>()("Unix", {
  path: Schema.String
}) {}

/** Troupe's framed TCP transport, `framed://host:port`: length-prefixed typed frames with keepalive and resend. */
export class FramedEndpoint extends Schema.TaggedClass<FramedEndpoint>()("Framed", {
  host: Schema.String,
  port: Schema.Int.pipe(Schema.between(0, 65535))
}) {}

/** The folder transport, `folder:///absolute/path`: messages are files in a shared directory. */
export class FolderEndpoint extends Schema.TaggedClass<FolderEndpoint>()("Folder", {
  path: Schema.String
}) {}

/** Where a transport binds or connects: one case per supported URL scheme. */
export const Endpoint = Schema.Union(TcpEndpoint, UnixEndpoint, FramedEndpoint, FolderEndpoint)
/** Where a transport binds or connects. */
export type Endpoint = typeof Endpoint.Type

/** The endpoints served by the plain socket transport. */
export type SocketEndpoint = TcpEndpoint | UnixEndpoint

/** The URL schemes `parse` understands, in the order help texts list them. */
export const supportedSchemes: ReadonlyArray<string> = ["tcp", "unix", "framed", "folder"]

/** Parses an endpoint URL (`tcp://host:port`, `unix:///path.sock`, `framed://host:port`, `folder:///path`) into an Endpoint. */
export const parse = (url: string): Effect.Effect<Endpoint, InvalidEndpoint> => parseEither(url)

/** Parses an endpoint URL without Effect, for option parsing and Promise callers. */
export const parseEither = (url: string): Either.Either<Endpoint, InvalidEndpoint> => {
  const match = /^([a-z][a-z0-9+.-]*):\/\/(.*)$/i.exec(url)
  if (match === null) return invalid(url, "is not a URL")
  const scheme = match[1]!.toLowerCase()
  const rest = match[2]!
  switch (scheme) {
    case "tcp":
      return Either.map(parseHostPort(url, rest, "tcp://127.0.0.1:7878"), (at) => new TcpEndpoint(at))
    case "framed":
      return Either.map(parseHostPort(url, rest, "framed://127.0.0.1:7979"), (at) => new FramedEndpoint(at))
    case "unix":
      return rest.startsWith("/") && rest.length > 1
        ? Either.right(new UnixEndpoint({ path: decodeURIComponent(rest) }))
        : invalid(url, "needs an absolute socket path, as in unix:///run/troupe.sock")
    case "folder":
      return rest.startsWith("/") && rest.length > 1
        ? Either.right(new FolderEndpoint({ path: decodeURIComponent(rest).replace(/(.)\/+$/, "$1") }))
        : invalid(url, "needs an absolute folder path, as in folder:///srv/troupe/mail")
    default:
      return invalid(url, `uses the unsupported scheme "${scheme}"`)
  }
}

/** Formats an Endpoint back into its URL. */
export const format = (endpoint: Endpoint): string => {
  switch (endpoint._tag) {
    case "Tcp":
      return `tcp://${formatHost(endpoint.host)}:${endpoint.port}`
    case "Framed":
      return `framed://${formatHost(endpoint.host)}:${endpoint.port}`
    case "Unix":
      return `unix://${endpoint.path}`
    case "Folder":
      return `folder://${endpoint.path}`
  }
}

/** True when a network endpoint is reachable only from this machine (loopback TCP or a Unix socket). */
export const isLocal = (endpoint: Endpoint): boolean => {
  switch (endpoint._tag) {
    case "Unix":
    case "Folder":
      return true
    case "Tcp":
    case "Framed":
      return isLoopbackHost(endpoint.host)
  }
}

/** True for host names that only this machine can reach. */
export const isLoopbackHost = (host: string): boolean =>
  host === "localhost" || host === "::1" || host.startsWith("127.")

const formatHost = (host: string): string => host.includes(":") ? `[${host}]` : host

// `scheme://host:port`, with IPv6 hosts in brackets; the port is required.
const parseHostPort = (
  url: string,
  rest: string,
  example: string
): Either.Either<{ readonly host: string; readonly port: number }, InvalidEndpoint> => {
  const match = /^(\[[0-9a-f:.]+\]|[^:/[\]]+):(\d{1,5})\/?$/i.exec(rest)
  if (match === null) return invalid(url, `needs a host and a port, as in ${example}`)
  const port = Number(match[2])
  if (port > 65535) return invalid(url, "has a port above 65535")
  const host = match[1]!.startsWith("[") ? match[1]!.slice(1, -1) : match[1]!
  return Either.right({ host, port })
}

const invalid = (url: string, problem: string): Either.Either<never, InvalidEndpoint> =>
  Either.left(
    new InvalidEndpoint({
      url,
      message: `endpoint ${JSON.stringify(url)} ${problem}; supported: ${
        supportedSchemes.map((scheme) => `${scheme}://`).join(", ")
      }`
    })
  )
