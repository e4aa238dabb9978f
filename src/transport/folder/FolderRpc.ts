import * as RpcClient from "@effect/rpc/RpcClient"
import { RpcClientError } from "@effect/rpc/RpcClientError"
import type { FromClientEncoded, FromServerEncoded } from "@effect/rpc/RpcMessage"
import * as RpcServer from "@effect/rpc/RpcServer"
import * as Config from "effect/Config"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as ExecutionStrategy from "effect/ExecutionStrategy"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Mailbox from "effect/Mailbox"
import * as Schedule from "effect/Schedule"
import * as Scope from "effect/Scope"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as Endpoint from "../Endpoint.js"
import { ConnectFailed, ListenFailed } from "../Errors.js"
import type * as Transport from "../Transport.js"
import type { Envelope, Reader, Writer } from "./FolderChannel.js"
import { makeReader, makeWriter } from "./FolderChannel.js"
import { writeAtomic } from "./FolderFiles.js"

/** Settings of the folder transport that both ends share; each also has a `TROUPE_FOLDER_*` variable. */
export interface FolderOptions {
  /** The rescan of incoming folders, which sets the latency where fs.watch is silent (sshfs, NFS); default 250 ms (`TROUPE_FOLDER_RESCAN_MS`). */
  readonly rescanMs?: number | undefined
  /** How often the server rewrites its presence file and an idle client says it is alive; default 1000 ms (`TROUPE_FOLDER_HEARTBEAT_MS`). */
  readonly heartbeatMs?: number | undefined
  /** After how long without a sign of life a peer counts as gone; default 15,000 ms (`TROUPE_FOLDER_PEER_TIMEOUT_MS`). */
  readonly peerTimeoutMs?: number | undefined
  /** Keep consumed message files under `archive/` beside them instead of deleting them. */
  readonly archive?: boolean | undefined
  /** How long a file waits for a predecessor from the same sender that is still in transit; default 10,000 ms. */
  readonly gapWaitMs?: number | undefined
}

/** How a folder RPC server runs: the transport-wide options plus the folder's own. */
export interface ServerOptions extends Transport.ServerOptions, FolderOptions {}

/** How a folder RPC client connects: the transport-wide options plus the folder's own. */
export interface ClientOptions extends Transport.ClientOptions, FolderOptions {}

/** The folders and files under an endpoint's root. The server writes `to-client/`, clients write `to-server/`. */
export interface Layout {
  readonly root: string
  /** Partial files before their rename; never synced, never read. */
  readonly tmp: string
  /** Every client's requests, `<client>-<seq>.msg`. */
  readonly toServer: string
  /** The server's presence file and one folder of replies per client. */
  readonly toClient: string
  /** The server's presence (heartbeat) file, JSON. */
  readonly presence: string
}

/** The layout of a folder transport rooted at `root`. */
export const layout = (root: string): Layout => ({
  root,
  tmp: path.join(root, ".tmp"),
  toServer: path.join(root, "to-server"),
  toClient: path.join(root, "to-client"),
  presence: path.join(root, "to-client", "server.json")
})

/** What the server's presence file says. */
export interface Presence {
  readonly troupe: 1
  /** This server instance's sender id; a restarted server has a new one. */
  readonly server: string
  readonly host: string
  readonly pid: number
  readonly startedAt: number
  /** Counts up at every heartbeat: readers on other machines watch it change rather than trust clocks. */
  readonly beat: number
  readonly beatAt: number
  readonly heartbeatMs: number
  readonly state: "running" | "stopped"
}

/**
 * The RPC server Protocol over a folder: reads every client's requests from `to-server/`, answers
 * into `to-client/<client>/`, keeps `to-client/server.json` beating, and disconnects a client
 * that has been silent longer than `peerTimeoutMs` (its requests and streams are interrupted and
 * its folder removed). Bad files are quarantined; the server keeps serving everyone else.
 */
export const makeServerProtocol = (
  endpoint: Endpoint.FolderEndpoint,
  options: ServerOptions = {}
): Effect.Effect<RpcServer.Protocol["Type"], ListenFailed, Scope.Scope> =>
  Effect.gen(function*() {
    const url = Endpoint.format(endpoint)
    const settings = yield* resolveSettings(options)
    const dirs = layout(endpoint.path)
    yield* makeDirs([dirs.toServer, dirs.toClient, dirs.tmp]).pipe(Effect.mapError((cause) => listenFailed(url, cause)))
    yield* checkNoLiveServer(dirs, url)
    yield* removeLeftovers(dirs)
    const server = `s${randomId()}`
    const serverScope = yield* Effect.scope
    const disconnects = yield* Mailbox.make<number>()
    const peers = new Map<string, Peer>()
    const byId = new Map<number, Peer>()
    let nextId = 0
    let reader: Reader | undefined

    return yield* RpcServer.Protocol.make((writeRequest) =>
      Effect.gen(function*() {
        const register = (name: string) =>
          Effect.gen(function*() {
            const scope = yield* Scope.fork(serverScope, ExecutionStrategy.sequential)
            yield* Effect.promise(() => fs.promises.mkdir(path.join(dirs.toClient, name), { recursive: true }).catch(() => undefined))
            const id = nextId++
            // A sender id per registration: a client served again after a timeout must not take the
            // new sequence (from 0) for repeats of the old one.
            const writer = yield* makeWriter(path.join(dirs.toClient, name), `${server}n${id}`, { tmpDir: dirs.tmp }).pipe(
              Scope.extend(scope)
            )
            // Replies still queued get a moment to reach the folder when the server stops.
            yield* Scope.addFinalizer(scope, writer.flush.pipe(Effect.timeout("1 second"), Effect.ignore))
            const peer: Peer = { id, name, writer, scope, lastSeen: Date.now() }
            peers.set(name, peer)
            byId.set(peer.id, peer)
            yield* Effect.logDebug(`client ${name} connected`).pipe(Effect.annotateLogs("endpoint", url))
            return peer
          })

        const disconnect = (peer: Peer, why: string, quiet = false) =>
          Effect.gen(function*() {
            if (peers.get(peer.name) !== peer) return
            peers.delete(peer.name)
            byId.delete(peer.id)
            reader?.forget(peer.name)
            yield* disconnects.offer(peer.id)
            yield* Scope.close(peer.scope, Exit.void)
            yield* Effect.promise(() => fs.promises.rm(path.join(dirs.toClient, peer.name), { recursive: true, force: true }))
            // A goodbye is routine; a client that went silent is worth an operator's attention.
            yield* (quiet ? Effect.logDebug : Effect.logInfo)(`client ${peer.name} disconnected: ${why}`).pipe(
              Effect.annotateLogs("endpoint", url)
            )
          })

        const handle = (envelope: Envelope) =>
          Effect.gen(function*() {
            let peer = peers.get(envelope.from)
            if (peer === undefined) {
              peer = yield* register(envelope.from)
              if (!envelope.messages.some((m) => tagOf(m) === "Hello")) {
                // A client we timed out (or that a previous server knew): its requests here are gone.
                peer.writer.push({ _tag: "Reset", reason: "the server no longer knew this client (it was silent too long, or the server restarted)" })
                return
              }
            }
            peer.lastSeen = Date.now()
            for (const message of envelope.messages) {
              switch (tagOf(message)) {
                case "Hello":
                  peer.writer.push({ _tag: "Welcome", server, heartbeatMs: settings.heartbeatMs })
                  break
                case "Beat":
                  break
                case "Bye":
                  return yield* disconnect(peer, "it said goodbye", true)
                default:
                  yield* writeRequest(peer.id, message as FromClientEncoded)
              }
            }
          })

        reader = yield* makeReader(dirs.toServer, {
          rescanMs: settings.rescanMs,
          archive: settings.archive,
          gapWaitMs: settings.gapWaitMs,
          validate: validateFromClient
        }, handle)

        const writePresence = presenceWriter(dirs, server, settings.heartbeatMs)
        const heartbeat = Effect.gen(function*() {
          yield* writePresence("running")
          const now = Date.now()
          for (const peer of [...peers.values()]) {
            if (now - peer.lastSeen > settings.peerTimeoutMs) {
              yield* disconnect(peer, `silent for ${Math.round((now - peer.lastSeen) / 1000)} s`)
            }
          }
        })
        yield* writePresence("running")
        yield* Effect.addFinalizer(() => writePresence("stopped"))
        yield* heartbeat.pipe(Effect.repeat(Schedule.spaced(settings.heartbeatMs)), Effect.forkScoped)

        return {
          disconnects,
          send: (clientId: number, response: FromServerEncoded) =>
            Effect.sync(() => {
              byId.get(clientId)?.writer.push(response)
            }),
          end: () => Effect.void,
          clientIds: Effect.sync(() => new Set(byId.keys())),
          initialMessage: Effect.succeedNone,
          supportsAck: true,
          supportsTransferables: false,
          supportsSpanPropagation: true
        }
      })
    )
  })

/**
 * The RPC client Protocol over a folder: writes requests into `to-server/` and reads answers from
 * its own `to-client/<client>/`. Connecting says hello and waits for the server's welcome, so the
 * layer fails with ConnectFailed when no live server answers within `connectTimeout`. An idle
 * client sends heartbeats; a server whose presence stops beating (or that restarted) fails the
 * requests in flight, and the client says hello again once a server is back.
 */
export const makeClientProtocol = (
  endpoint: Endpoint.FolderEndpoint,
  options: ClientOptions = {}
): Effect.Effect<RpcClient.Protocol["Type"], ConnectFailed, Scope.Scope> =>
  Effect.gen(function*() {
    const url = Endpoint.format(endpoint)
    const settings = yield* resolveSettings(options)
    const dirs = layout(endpoint.path)
    const timeout = Duration.decode(options.connectTimeout ?? defaultConnectTimeout)
    const rootExists = yield* Effect.promise(() => fs.promises.stat(dirs.root).then((s) => s.isDirectory(), () => false))
    if (!rootExists) return yield* connectFailed(url, "not-found", "no such folder")
    const name = `c${randomId()}`
    const inbox = path.join(dirs.toClient, name)
    yield* makeDirs([inbox, dirs.toServer, dirs.tmp]).pipe(
      Effect.mapError((cause) =>
        errorCode(cause) === "EACCES" || errorCode(cause) === "EPERM"
          ? connectFailed(url, "permission-denied", "permission denied")
          : connectFailed(url, "other", String((cause as Error).message ?? cause))
      )
    )
    yield* Effect.addFinalizer(() => Effect.promise(() => fs.promises.rm(inbox, { recursive: true, force: true })))
    const writer = yield* makeWriter(dirs.toServer, name, { tmpDir: dirs.tmp })

    return yield* RpcClient.Protocol.make((writeResponse) =>
      Effect.gen(function*() {
        const welcomed = yield* Deferred.make<string>()
        const watch = new ServerWatch()
        // Set while no server answers: sends fail at once, as on a closed socket.
        let lost: RpcClientError | undefined

        const failInFlight = (message: string) =>
          writeResponse({ _tag: "ClientProtocolError", error: new RpcClientError({ reason: "Protocol", message }) })

        const handle = (envelope: Envelope) =>
          Effect.forEach(envelope.messages, (message) => {
            switch (tagOf(message)) {
              case "Welcome": {
                watch.welcomed((message as { server: string }).server)
                lost = undefined
                return Deferred.succeed(welcomed, watch.server!)
              }
              case "Reset":
                return failInFlight(`${url}: ${(message as { reason: string }).reason}`)
              default:
                return writeResponse(message as FromServerEncoded)
            }
          }, { discard: true })

        yield* makeReader(inbox, {
          rescanMs: settings.rescanMs,
          archive: settings.archive,
          gapWaitMs: settings.gapWaitMs,
          validate: validateFromServer
        }, handle)

        writer.push({ _tag: "Hello" })
        yield* Deferred.await(welcomed).pipe(
          Effect.timeout(timeout),
          Effect.catchAll(() =>
            Effect.flatMap(explainNoAnswer(dirs, url, name, timeout), (error) => Effect.fail(error))
          )
        )
        yield* Effect.addFinalizer(() => {
          writer.push({ _tag: "Bye" })
          return writer.flush.pipe(Effect.timeout("1 second"), Effect.ignore)
        })

        const tick = Effect.gen(function*() {
          const presence = yield* readPresence(dirs)
          const verdict = watch.observe(presence, settings.peerTimeoutMs)
          if (verdict !== undefined && lost === undefined) {
            lost = new RpcClientError({ reason: "Protocol", message: `${url}: ${verdict}` })
            yield* Effect.logWarning(verdict).pipe(Effect.annotateLogs("endpoint", url))
            yield* writeResponse({ _tag: "ClientProtocolError", error: lost })
          }
          if (lost !== undefined && watch.serverSeemsLive()) writer.push({ _tag: "Hello" })
          else if (Date.now() - writer.lastWriteAt() >= settings.heartbeatMs) writer.push({ _tag: "Beat" })
        })
        yield* tick.pipe(Effect.repeat(Schedule.spaced(settings.heartbeatMs)), Effect.forkScoped)

        return {
          send: (request: FromClientEncoded) => (lost !== undefined ? Effect.fail(lost) : Effect.sync(() => writer.push(request))),
          supportsAck: true,
          supportsTransferables: false
        }
      })
    )
  })

/** The RPC server Protocol for a folder endpoint; fails with ListenFailed when the folder cannot be used or another server is live in it. */
export const layerServerProtocol = (
  endpoint: Endpoint.FolderEndpoint,
  options: ServerOptions = {}
): Layer.Layer<RpcServer.Protocol, ListenFailed> => Layer.scoped(RpcServer.Protocol, makeServerProtocol(endpoint, options))

/** The RPC client Protocol for a folder endpoint; fails with ConnectFailed when no live server answers in time. */
export const layerClientProtocol = (
  endpoint: Endpoint.FolderEndpoint,
  options: ClientOptions = {}
): Layer.Layer<RpcClient.Protocol, ConnectFailed> => Layer.scoped(RpcClient.Protocol, makeClientProtocol(endpoint, options))

/** The default time a client waits for the server's welcome. */
export const defaultConnectTimeout: Duration.Duration = Duration.seconds(5)

// ---------------------------------------------------------------------------------------------
// private

interface Peer {
  readonly id: number
  readonly name: string
  readonly writer: Writer
  readonly scope: Scope.CloseableScope
  lastSeen: number
}

interface Settings {
  readonly rescanMs: number
  readonly heartbeatMs: number
  readonly peerTimeoutMs: number
  readonly archive: boolean
  readonly gapWaitMs: number
}

const envMs = (name: string, fallback: number, description: string) =>
  Config.integer(name).pipe(
    Config.withDefault(fallback),
    Config.withDescription(description),
    Effect.catchAll((error) => Effect.as(Effect.logWarning(`ignoring ${name}: ${error}`), fallback))
  )

// Explicit options win over the environment, which wins over the defaults.
const resolveSettings = (options: FolderOptions): Effect.Effect<Settings> =>
  Effect.gen(function*() {
    const rescanMs = options.rescanMs ?? (yield* envMs("TROUPE_FOLDER_RESCAN_MS", 250, "rescan of incoming folders, ms"))
    const heartbeatMs = options.heartbeatMs ??
      (yield* envMs("TROUPE_FOLDER_HEARTBEAT_MS", 1000, "server presence and client heartbeat period, ms"))
    const peerTimeoutMs = options.peerTimeoutMs ??
      (yield* envMs("TROUPE_FOLDER_PEER_TIMEOUT_MS", 15_000, "silence after which a peer counts as gone, ms"))
    return {
      rescanMs,
      heartbeatMs,
      peerTimeoutMs: Math.max(peerTimeoutMs, 2 * heartbeatMs),
      archive: options.archive === true,
      gapWaitMs: options.gapWaitMs ?? 10_000
    }
  })

const randomId = () => crypto.randomBytes(8).toString("hex")

const tagOf = (message: unknown): string | undefined =>
  typeof message === "object" && message !== null && typeof (message as { _tag?: unknown })._tag === "string"
    ? (message as { _tag: string })._tag
    : undefined

const makeDirs = (dirs: ReadonlyArray<string>) =>
  Effect.tryPromise({
    try: async () => {
      for (const dir of dirs) await fs.promises.mkdir(dir, { recursive: true })
    },
    catch: (cause) => cause
  })

const errorCode = (cause: unknown): string | undefined =>
  typeof cause === "object" && cause !== null && "code" in cause && typeof cause.code === "string" ? cause.code : undefined

const listenFailed = (url: string, cause: unknown): ListenFailed => {
  const code = errorCode(cause)
  const denied = code === "EACCES" || code === "EPERM"
  return new ListenFailed({
    url,
    reason: denied ? "permission-denied" : "other",
    message: `cannot serve ${url} (${denied ? "permission denied" : String((cause as Error).message ?? cause)})`,
    cause
  })
}

const connectFailed = (url: string, reason: ConnectFailed["reason"], detail: string): ConnectFailed =>
  new ConnectFailed({ url, reason, detail, message: `cannot reach ${url} (${detail})` })

// Writes the presence file, counting the beats; a failed write is retried at the next beat.
const presenceWriter = (dirs: Layout, server: string, heartbeatMs: number) => {
  let beat = 0
  const startedAt = Date.now()
  return (state: Presence["state"]): Effect.Effect<void> => {
    const presence: Presence = {
      troupe: 1,
      server,
      host: os.hostname(),
      pid: process.pid,
      startedAt,
      beat: beat++,
      beatAt: Date.now(),
      heartbeatMs,
      state
    }
    return Effect.promise(() => writeAtomic(dirs.tmp, dirs.presence, JSON.stringify(presence)).catch(() => undefined))
  }
}

const readPresence = (dirs: Layout): Effect.Effect<Presence | undefined> =>
  Effect.promise(async () => {
    try {
      const value = JSON.parse(await fs.promises.readFile(dirs.presence, "utf8")) as Presence
      return value?.troupe === 1 && typeof value.server === "string" ? value : undefined
    } catch {
      return undefined
    }
  })

// Another server beating in the same folder would split the clients between two servers.
const checkNoLiveServer = (dirs: Layout, url: string): Effect.Effect<void, ListenFailed> =>
  Effect.gen(function*() {
    const first = yield* readPresence(dirs)
    if (first === undefined || first.state !== "running") return
    let live: boolean
    if (first.host === os.hostname()) {
      // A server that stopped wrote "stopped"; one that still says "running" with a live pid is serving.
      live = pidAlive(first.pid) && Date.now() - first.beatAt < 5 * first.heartbeatMs
    } else {
      // Another machine's clock may differ: watch whether its beat changes instead.
      yield* Effect.sleep(Duration.millis(2 * first.heartbeatMs))
      const second = yield* readPresence(dirs)
      live = second !== undefined && second.server === first.server && second.beat !== first.beat && second.state === "running"
    }
    if (live) {
      return yield* new ListenFailed({
        url,
        reason: "in-use-by-live-server",
        message: `cannot serve ${url}: server ${first.server} (pid ${first.pid} on ${first.host}) is serving it`
      })
    }
  })

// Reply folders of a previous server's clients (they say hello again, and get a new one), and
// partial files of writers that died more than an hour ago.
const removeLeftovers = (dirs: Layout): Effect.Effect<void> =>
  Effect.promise(async () => {
    const clients = await fs.promises.readdir(dirs.toClient, { withFileTypes: true }).catch(() => [])
    for (const entry of clients) {
      if (entry.isDirectory()) await fs.promises.rm(path.join(dirs.toClient, entry.name), { recursive: true, force: true })
    }
    const partial = await fs.promises.readdir(dirs.tmp).catch(() => [] as Array<string>)
    for (const name of partial) {
      const file = path.join(dirs.tmp, name)
      const stat = await fs.promises.stat(file).catch(() => undefined)
      if (stat !== undefined && Date.now() - stat.mtimeMs > 3_600_000) await fs.promises.rm(file, { force: true })
    }
  })

const pidAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return errorCode(error) === "EPERM"
  }
}

// Why no welcome came: no server (not-found) or a server that did not answer (timeout). Our hello
// is taken back, so that a server starting later does not serve a client that gave up.
const explainNoAnswer = (dirs: Layout, url: string, name: string, timeout: Duration.Duration) =>
  Effect.gen(function*() {
    yield* Effect.promise(async () => {
      const entries = await fs.promises.readdir(dirs.toServer).catch(() => [] as Array<string>)
      await Promise.all(entries.filter((e) => e.startsWith(`${name}-`)).map((e) => fs.promises.rm(path.join(dirs.toServer, e), { force: true })))
    })
    const presence = yield* readPresence(dirs)
    const waited = Duration.format(timeout)
    if (presence === undefined) return connectFailed(url, "not-found", `no server has announced itself in the folder within ${waited}`)
    if (presence.state === "stopped") return connectFailed(url, "not-found", `the server of this folder has stopped (no answer within ${waited})`)
    return connectFailed(url, "timeout", `no answer from server ${presence.server} within ${waited}`)
  })

// What a client knows of the server's liveness, from the presence file's beat counter.
class ServerWatch {
  server: string | undefined
  private beat: number | undefined
  private changedAt = Date.now()
  private liveSince: number | undefined

  welcomed(server: string): void {
    this.server = server
    this.changedAt = Date.now()
  }

  /** Returns why the server counts as lost, or undefined while it is fine. */
  observe(presence: Presence | undefined, timeoutMs: number): string | undefined {
    const now = Date.now()
    if (presence !== undefined && presence.beat !== this.beat) {
      this.beat = presence.beat
      this.changedAt = now
      this.liveSince = presence.state === "running" ? (this.liveSince ?? now) : undefined
    }
    if (presence !== undefined && presence.state === "stopped") this.liveSince = undefined
    if (now - this.changedAt > timeoutMs) this.liveSince = undefined
    if (presence?.server !== undefined && presence.state === "running" && presence.server !== this.server) {
      return `the server restarted (${this.server} is now ${presence.server})`
    }
    if (presence?.state === "stopped" && presence.server === this.server) return `the server ${this.server} stopped`
    if (now - this.changedAt > timeoutMs) return `no heartbeat from the server for ${Math.round((now - this.changedAt) / 1000)} s`
    return undefined
  }

  /** True when a running server's beat is changing: worth saying hello to. */
  serverSeemsLive(): boolean {
    return this.liveSince !== undefined
  }
}

const isString = (u: unknown) => typeof u === "string"

const validateMessages = (envelope: Envelope, check: (tag: string | undefined, m: Record<string, unknown>) => boolean, side: string) => {
  for (const message of envelope.messages) {
    if (!check(tagOf(message), message as Record<string, unknown>)) {
      return `a message ${JSON.stringify(tagOf(message) ?? typeof message)} is not a valid ${side} message`
    }
  }
  return undefined
}

const validateFromClient = (envelope: Envelope): string | undefined =>
  validateMessages(envelope, (tag, m) => {
    switch (tag) {
      case "Request":
        return isString(m.id) && isString(m.tag) && Array.isArray(m.headers)
      case "Ack":
      case "Interrupt":
        return isString(m.requestId)
      case "Ping":
      case "Eof":
      case "Hello":
      case "Beat":
      case "Bye":
        return true
      default:
        return false
    }
  }, "client")

const validateFromServer = (envelope: Envelope): string | undefined =>
  validateMessages(envelope, (tag, m) => {
    switch (tag) {
      case "Chunk":
        return isString(m.requestId) && Array.isArray(m.values) && m.values.length > 0
      case "Exit":
        return isString(m.requestId) && typeof m.exit === "object" && m.exit !== null
      case "Defect":
      case "Pong":
      case "Reset":
        return true
      case "Welcome":
        return isString(m.server)
      default:
        return false
    }
  }, "server")

