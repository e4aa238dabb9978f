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

/** Where a transport binds or connects: one case per supported URL scheme. */
export const Endpoint = Schema.Union(TcpEndpoint, UnixEndpoint)
/** Where a transport binds or connects. */
export type Endpoint = typeof Endpoint.Type

/** The URL schemes `parse` understands, in the order help texts list them. */
export const supportedSchemes: ReadonlyArray<string> = ["tcp", "unix"]

/** Parses an endpoint URL (`tcp://host:port`, `unix:///path.sock`) into an Endpoint. */
export const parse = (url: string): Effect.Effect<Endpoint, InvalidEndpoint> => parseEither(url)

/** Parses an endpoint URL without Effect, for option parsing and Promise callers. */
export const parseEither = (url: string): Either.Either<Endpoint, InvalidEndpoint> => {
  const match = /^([a-z][a-z0-9+.-]*):\/\/(.*)$/i.exec(url)
  if (match === null) return invalid(url, "is not a URL")
  const scheme = match[1]!.toLowerCase()
  const rest = match[2]!
  switch (scheme) {
    case "tcp":
      return parseTcp(url, rest)
    case "unix":
      return rest.startsWith("/") && rest.length > 1
        ? Either.right(new UnixEndpoint({ path: decodeURIComponent(rest) }))
        : invalid(url, "needs an absolute socket path, as in unix:///run/troupe.sock")
    default:
      return invalid(url, `uses the unsupported scheme "${scheme}"`)
  }
}

/** Formats an Endpoint back into its URL. */
export const format = (endpoint: Endpoint): string =>
  endpoint._tag === "Tcp"
    ? `tcp://${endpoint.host.includes(":") ? `[${endpoint.host}]` : endpoint.host}:${endpoint.port}`
    : `unix://${endpoint.path}`

/** True when the endpoint is reachable only from this machine (loopback TCP or a Unix socket). */
export const isLocal = (endpoint: Endpoint): boolean =>
  endpoint._tag === "Unix" ||
  endpoint.host === "localhost" || endpoint.host === "::1" || endpoint.host.startsWith("127.")

// `tcp://host:port`, with IPv6 hosts in brackets; the port is required.
const parseTcp = (url: string, rest: string): Either.Either<Endpoint, InvalidEndpoint> => {
  const match = /^(\[[0-9a-f:.]+\]|[^:/[\]]+):(\d{1,5})\/?$/i.exec(rest)
  if (match === null) return invalid(url, "needs a host and a port, as in tcp://127.0.0.1:7878")
  const port = Number(match[2])
  if (port > 65535) return invalid(url, "has a port above 65535")
  const host = match[1]!.startsWith("[") ? match[1]!.slice(1, -1) : match[1]!
  return Either.right(new TcpEndpoint({ host, port }))
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
