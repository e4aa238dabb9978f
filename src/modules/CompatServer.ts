import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Runtime from "effect/Runtime"
import type * as Scope from "effect/Scope"
import * as Net from "node:net"
import * as Endpoint from "../transport/Endpoint.js"
import { ListenFailed } from "../transport/Errors.js"
import * as Compat from "./Compat.js"
import type { ConfigError, ModuleError } from "./Errors.js"
import { type ModuleServer, serverHelp } from "./ModuleServer.js"

/**
 * The listener for the original module server clients (seed 004), which speak the line protocol
 * of `Compat.ts`. A connection starts with a hello `{"name": X}`: `_ping`, `_help`,
 * `_get_modules.<prefix>` and `_reload_<name>` are answered and the connection closed; a module's
 * name is answered `"ack"`, and calls `{"function", "args", "keep_alive"}` follow. Calls go to the
 * same modules, queues and workers as the typed clients'. Bad input gets an error reply and that
 * connection is closed; every other connection carries on.
 */
export interface CompatOptions {
  readonly host: string
  /** 0 picks a free port. */
  readonly port: number
  /** The longest message accepted; default 16 MiB. */
  readonly maxLineBytes?: number | undefined
  /** How long a client may take to finish sending a message, from its first byte; default 1 s. */
  readonly messageTimeoutMs?: number | undefined
  /** How long a connection may stay silent between messages before it is closed; default 30 s. */
  readonly idleTimeoutMs?: number | undefined
}

/** A running compat listener. */
export interface CompatServer {
  /** The bound port (the real one when 0 was asked for). */
  readonly port: number
  readonly host: string
}

/** The compat protocol's defaults. */
export const defaults = { port: 36577, maxLineBytes: 16 * 1024 * 1024, messageTimeoutMs: 1000, idleTimeoutMs: 30_000 } as const

/** Listens for original clients until the scope closes; open connections are closed then. */
export const make = (
  modules: ModuleServer["Type"],
  options: CompatOptions
): Effect.Effect<CompatServer, ListenFailed, Scope.Scope> =>
  Effect.gen(function*() {
    const runtime = yield* Effect.runtime<never>()
    const settings: Settings = {
      modules,
      run: Runtime.runCallback(runtime),
      maxLineBytes: options.maxLineBytes ?? defaults.maxLineBytes,
      messageTimeoutMs: options.messageTimeoutMs ?? defaults.messageTimeoutMs,
      idleTimeoutMs: options.idleTimeoutMs ?? defaults.idleTimeoutMs
    }
    const sockets = new Set<Net.Socket>()
    const server = yield* Effect.acquireRelease(
      listen(options, (socket) => {
        sockets.add(socket)
        socket.once("close", () => sockets.delete(socket))
        new Connection(socket, settings).start()
      }),
      (server) =>
        Effect.async<void>((resume) => {
          for (const socket of sockets) socket.destroy()
          server.close(() => resume(Effect.void))
        })
    )
    const port = (server.address() as Net.AddressInfo).port
    yield* Effect.logInfo(`compat listener (the original line protocol) on ${options.host}:${port}`)
    return { port, host: options.host }
  })

/** Parses `--compat HOST:PORT` (`[::1]:PORT` for IPv6); undefined when it is not one. */
export const parseAddress = (text: string): { readonly host: string; readonly port: number } | undefined => {
  const match = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(text.trim())
  if (match === null) return undefined
  const port = Number(match[3])
  return port > 65535 ? undefined : { host: match[1] ?? match[2]!, port }
}

/** True when the host is a loopback address, so the listener is not reachable from other machines. */
export const isLoopback = (host: string): boolean =>
  Endpoint.isLocal(new Endpoint.TcpEndpoint({ host, port: 1 }))

// ---------------------------------------------------------------------------------------------
// private

interface Settings {
  readonly modules: ModuleServer["Type"]
  readonly run: <A, E>(effect: Effect.Effect<A, E>, options?: { readonly onExit?: (exit: Exit.Exit<A, E>) => void }) => void
  readonly maxLineBytes: number
  readonly messageTimeoutMs: number
  readonly idleTimeoutMs: number
}

const listen = (options: CompatOptions, onSocket: (socket: Net.Socket) => void): Effect.Effect<Net.Server, ListenFailed> =>
  Effect.async<Net.Server, ListenFailed>((resume) => {
    const server = Net.createServer({ noDelay: true }, onSocket)
    const url = `${options.host}:${options.port}`
    server.once("error", (cause: NodeJS.ErrnoException) =>
      resume(Effect.fail(
        new ListenFailed({
          url,
          reason: cause.code === "EADDRINUSE"
            ? "address-in-use"
            : cause.code === "EACCES" || cause.code === "EPERM"
            ? "permission-denied"
            : "other",
          message: `cannot listen on ${url} for the compat protocol (${cause.code ?? cause.message})`,
          cause
        })
      )))
    server.listen(options.port, options.host, () => resume(Effect.succeed(server)))
    return Effect.sync(() => server.close())
  })

// One client connection: a hello, then calls to the module it named.
class Connection {
  private readonly decoder: Compat.LineDecoder
  private readonly lines: Array<Buffer> = []
  private module: string | undefined
  private busy = false
  private closed = false
  private timer: NodeJS.Timeout | undefined
  // When the message now arriving started (its first byte, or when reading resumed after a call).
  private messageStart: number | undefined
  private readonly ip: string
  private readonly port: number

  constructor(private readonly socket: Net.Socket, private readonly settings: Settings) {
    this.decoder = new Compat.LineDecoder(settings.maxLineBytes)
    this.ip = socket.remoteAddress ?? "unknown"
    this.port = socket.remotePort ?? 0
  }

  start(): void {
    this.socket.on("data", (chunk: Buffer) => this.received(chunk))
    this.socket.on("error", () => this.close())
    this.socket.on("close", () => this.close())
    this.socket.on("end", () => this.close())
    this.arm()
  }

  private received(chunk: Buffer): void {
    if (this.closed) return
    const lines = this.decoder.push(chunk)
    if (lines === "overlong") {
      return this.fail(`the message is longer than ${this.settings.maxLineBytes} bytes without a newline`)
    }
    if (lines.length > 0) this.messageStart = undefined
    if (this.decoder.partial) this.messageStart ??= Date.now()
    this.lines.push(...lines)
    this.next()
  }

  // Handles queued lines one at a time; reading pauses while a call runs.
  private next(): void {
    if (this.busy || this.closed) return
    const line = this.lines.shift()
    if (line === undefined) return this.arm()
    this.clearTimer()
    this.busy = true
    this.socket.pause()
    const message = Compat.decode(line)
    if (message._tag === "Invalid") return this.fail(message.message)
    if (this.module === undefined) this.hello(message.value)
    else this.call(this.module, message.value)
  }

  private done(closeAfter: boolean): void {
    this.busy = false
    if (closeAfter) return this.end()
    this.socket.resume()
    // Bytes of the next message that waited while the call ran start their clock now.
    if (this.decoder.partial) this.messageStart = Date.now()
    this.next()
  }

  // The clock: a message that has started must end within the message timeout; a silent
  // connection is closed after the idle timeout.
  private arm(): void {
    this.clearTimer()
    if (this.closed || this.busy) return
    if (this.decoder.partial) {
      const left = (this.messageStart ?? Date.now()) + this.settings.messageTimeoutMs - Date.now()
      this.timer = setTimeout(() => {
        this.fail(`did not receive all client data within ${this.settings.messageTimeoutMs / 1000} s; end each message with "\\n"`)
      }, Math.max(0, left))
    } else {
      this.timer = setTimeout(() => this.end(), this.settings.idleTimeoutMs)
    }
  }

  private hello(value: unknown): void {
    if (!isRecord(value) || !("name" in value)) return this.fail(`the hello must be an object with "name": missing "name"`)
    const name = value["name"]
    const { modules } = this.settings
    if (name === null || name === "_ping") return this.answer([this.ip, this.port], true)
    if (typeof name !== "string") return this.fail(`"name" must be a string or null, got ${JSON.stringify(name)}`)
    if (name === "_help") return this.answer(serverHelp(modules.getModules()), true)
    if (name === "_get_modules" || name.startsWith("_get_modules.")) {
      return this.answer(modules.getModules(name.slice("_get_modules.".length)), true)
    }
    if (name.startsWith("_reload_")) return this.reload(Compat.unquotePlus(name.slice("_reload_".length)))
    if (!modules.getModules().includes(name)) return this.fail(`module "${name}" does not exist (case matters)`)
    this.module = name
    this.answer("ack", false)
  }

  private reload(name: string): void {
    const { modules } = this.settings
    if (name === "") {
      this.settings.run(modules.reloadConfig, {
        onExit: (exit: Exit.Exit<unknown, ConfigError>) =>
          Exit.isSuccess(exit) ? this.answer("Reloaded config", true) : this.failWith(exit)
      })
      return
    }
    if (!modules.getModules().includes(name)) return this.answer(`Failed to find module "${name}"`, true)
    this.settings.run(modules.reload(name), {
      onExit: (exit: Exit.Exit<unknown, ModuleError>) =>
        Exit.isSuccess(exit) ? this.answer(`Reloaded "${name}"`, true) : this.failWith(exit)
    })
  }

  private call(module: string, value: unknown): void {
    const request = parseCall(value)
    if (Either.isLeft(request)) return this.fail(request.left)
    const { args, fn, keepAlive } = request.right
    // A client that leaves politely gets no reply.
    if (fn === null) return this.end()
    this.settings.modules.submit(module, {
      fn,
      args,
      clientIp: this.ip,
      done: (result) => {
        if (result.ok) return this.answer(result.value, !keepAlive)
        const traceback = result.traceback !== "" ? `\n${result.traceback}` : ""
        this.fail(`ModuleError (${result.reason}): ${result.message}${traceback}`)
      }
    })
  }

  private answer(response: unknown, closeAfter: boolean): void {
    if (this.closed) return
    let bytes: Buffer
    try {
      bytes = Compat.reply(response)
    } catch (error) {
      return this.fail(`the result cannot be written as JSON: ${error instanceof Error ? error.message : String(error)}`)
    }
    this.socket.write(bytes)
    this.done(closeAfter)
  }

  private failWith(exit: Exit.Exit<unknown, { readonly message: string }>): void {
    const error = Exit.isFailure(exit) ? exit.cause : undefined
    const failure = error !== undefined && error._tag === "Fail" ? error.error : undefined
    this.fail(failure !== undefined ? `${(failure as { _tag?: string })._tag ?? "Error"}: ${failure.message}` : "internal error")
  }

  // An error reply, then the connection closes (the original closes after every error).
  private fail(traceback: string): void {
    if (this.closed) return
    this.socket.write(Compat.errorReply(traceback))
    this.end()
  }

  private end(): void {
    if (this.closed) return
    this.closed = true
    this.clearTimer()
    this.socket.end()
    // A client that does not close its side is cut off after a moment.
    setTimeout(() => this.socket.destroy(), 2000).unref()
  }

  private close(): void {
    this.closed = true
    this.clearTimer()
  }

  private clearTimer(): void {
    if (this.timer !== undefined) clearTimeout(this.timer)
    this.timer = undefined
  }
}

interface CallRequest {
  readonly fn: string | null
  readonly args: ReadonlyArray<unknown>
  readonly keepAlive: boolean
}

const parseCall = (value: unknown): Either.Either<CallRequest, string> => {
  if (!isRecord(value)) return Either.left(`a call must be an object {"function", "args", "keep_alive"}`)
  for (const field of ["function", "args", "keep_alive"]) {
    if (!(field in value)) return Either.left(`"${field}" missing`)
  }
  const fn = value["function"]
  const args = value["args"]
  const keepAlive = value["keep_alive"]
  if (typeof keepAlive !== "boolean") return Either.left("keep_alive must be a boolean")
  if (!Array.isArray(args)) return Either.left("args should be a list of values")
  if (fn !== null && typeof fn !== "string") return Either.left(`"function" must be a name or null`)
  return Either.right({ fn, args, keepAlive })
}

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value)
