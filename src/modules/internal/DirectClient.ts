/**
 * A typed client's direct routes (DirectWire.ts): for each module it calls, a connection to the
 * worker process that owns the module, so that a call is one hop. The first call to a module goes
 * through the server while the route opens; later calls take the route. A call the worker did not
 * run (it was retiring: a reload or a stop) is sent through the server, which knows the worker that
 * serves now; the route is then closed and opened again on the next call. A route that closes with
 * calls unanswered means the worker died: they fail with `worker-crashed`, as through the server.
 * When a route cannot be had (no direct listener, a refusal, a failed connection), calls go
 * through the server, and the route is tried again a little later.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as FiberSet from "effect/FiberSet"
import type * as Scope from "effect/Scope"
import type * as Net from "node:net"
import { dial } from "../../transport/Dial.js"
import * as Handshake from "../../transport/Handshake.js"
import type { Secret } from "../../transport/Secret.js"
import { ModuleError } from "../Errors.js"
import { Direct, type DirectReply, type DirectRequest } from "./DirectWire.js"
import { FrameReader, FrameWriter } from "./Wire.js"

/** How to reach the direct routes of one module server. */
export interface DirectClientOptions<E> {
  /** The module server's host (the direct listener is on the same host). */
  readonly host: string
  /** The shared secret for the handshake. */
  readonly secret?: Secret | undefined
  /** How long opening a route may take. */
  readonly connectTimeout: Duration.Duration
  /** The direct listener's port, asked of the server (null: there is none). */
  readonly port: Effect.Effect<number | null, unknown>
  /** A call through the server: the path before a route is open, and for calls a worker moved. */
  readonly viaServer: (module: string, fn: string, args: ReadonlyArray<unknown>) => Effect.Effect<unknown, E>
}

/** The direct routes of one client. */
export interface DirectClient<E> {
  /** Calls `fn(...args)` in `module`: over its route when open, else through the server. */
  readonly com: (module: string, fn: string, args: ReadonlyArray<unknown>) => Effect.Effect<unknown, E | ModuleError>
}

/** Direct routes for the scope; closing it closes them. */
export const make = <E>(options: DirectClientOptions<E>): Effect.Effect<DirectClient<E>, never, Scope.Scope> =>
  Effect.gen(function*() {
    // Routes open in fibers of the scope: closing it interrupts one still opening (a one-shot client
    // does not wait for it to exit).
    const runFork = yield* FiberSet.makeRuntime<never>()
    const routes = new Routes(options, (effect) => void runFork(effect))
    yield* Effect.addFinalizer(() => Effect.sync(() => routes.close()))
    return {
      com: (module, fn, args) =>
        Effect.async<unknown, E | ModuleError>((resume) => {
          const route = routes.get(module)
          if (route === undefined) return resume(options.viaServer(module, fn, args))
          return route.call(fn, args, resume)
        })
    }
  })

// ---------------------------------------------------------------------------------------------
// private

/**
 * After a route could not be opened, calls go through the server for this long before it is tried
 * again; doubled after each failure in a row, up to `maxRetryMs`.
 */
const retryMs = 250
const maxRetryMs = 30_000

type Resume<E> = (effect: Effect.Effect<unknown, E | ModuleError>) => void

interface Slot<E> {
  route: Route<E> | undefined
  opening: boolean
  retryAt: number
  failures: number
}

class Routes<E> {
  private readonly slots = new Map<string, Slot<E>>()
  private port: number | null | undefined
  private closed = false

  constructor(
    readonly options: DirectClientOptions<E>,
    private readonly fork: (effect: Effect.Effect<void>) => void
  ) {}

  /** The open route to `module`, if there is one; otherwise starts opening one (when allowed). */
  get(module: string): Route<E> | undefined {
    let slot = this.slots.get(module)
    if (slot?.route !== undefined) return slot.route
    if (this.closed || this.port === null) return undefined
    if (slot === undefined) {
      slot = { route: undefined, opening: false, retryAt: 0, failures: 0 }
      this.slots.set(module, slot)
    }
    if (!slot.opening && Date.now() >= slot.retryAt) this.open(module, slot)
    return undefined
  }

  /** A route that retires or closes is no longer used for new calls. */
  drop(module: string, route: Route<E>): void {
    const slot = this.slots.get(module)
    if (slot?.route === route) slot.route = undefined
  }

  close(): void {
    this.closed = true
    for (const slot of this.slots.values()) slot.route?.destroy()
    this.slots.clear()
  }

  private open(module: string, slot: Slot<E>): void {
    slot.opening = true
    this.fork(Effect.matchEffect(this.connect(module), {
      onFailure: () =>
        Effect.sync(() => {
          // Ask for the port again next time: the server may have restarted on another one.
          if (typeof this.port === "number") this.port = undefined
          slot.opening = false
          slot.retryAt = Date.now() + Math.min(maxRetryMs, retryMs * 2 ** slot.failures)
          slot.failures++
        }),
      onSuccess: (route) =>
        Effect.sync(() => {
          slot.opening = false
          if (this.closed || this.slots.get(module) !== slot) return route.destroy()
          slot.failures = 0
          if (route.usable) slot.route = route
        })
    }))
  }

  private connect(module: string): Effect.Effect<Route<E>, unknown> {
    return Effect.gen(this, function*() {
      if (this.port === undefined) this.port = yield* Effect.orElseSucceed(this.options.port, () => null)
      const port = this.port
      if (port === null) return yield* Effect.fail("no direct listener")
      return yield* Effect.scoped(Effect.gen(this, function*() {
        const socket = yield* Effect.acquireRelease(dial(this.options.host, port), (socket, exit) =>
          Effect.sync(() => {
            if (exit._tag === "Failure") socket.destroy()
          }))
        const leftover = yield* Handshake.clientHandshake(socket, { secret: this.options.secret, timeout: this.options.connectTimeout })
        return yield* routed(socket, leftover, module, this)
      }))
    }).pipe(Effect.timeoutFail({ duration: this.options.connectTimeout, onTimeout: () => "timeout" }))
  }
}

// Asks for the route and waits for the worker's Routed (or the server's refusal).
const routed = <E>(socket: Net.Socket, leftover: Uint8Array, module: string, routes: Routes<E>): Effect.Effect<Route<E>, string> =>
  Effect.async<Route<E>, string>((resume) => {
    const route = new Route<E>(module, socket, routes)
    route.onOpen = (outcome) => resume(outcome === undefined ? Effect.succeed(route) : Effect.fail(outcome))
    route.start(leftover)
    route.request([Direct.Route, module])
    return Effect.sync(() => route.destroy())
  })

interface Pending<E> {
  readonly fn: string
  readonly args: ReadonlyArray<unknown>
  readonly resume: Resume<E>
}

/** One direct route: a connection to the worker that owns `module`, and the calls waiting on it. */
class Route<E> {
  private readonly writer: FrameWriter<DirectRequest>
  private readonly pending = new Map<number, Pending<E>>()
  private nextId = 0
  private open = false
  private retiring = false
  private closed = false
  /** Told once whether the route opened (undefined) or why not. */
  onOpen: ((problem: string | undefined) => void) | undefined

  constructor(readonly module: string, private readonly socket: Net.Socket, private readonly routes: Routes<E>) {
    this.writer = new FrameWriter<DirectRequest>(socket)
  }

  start(leftover: Uint8Array): void {
    const reader = new FrameReader<DirectReply>((message) => this.receive(message), () => this.socket.destroy())
    this.socket.on("data", (chunk: Buffer) => reader.push(chunk))
    this.socket.on("close", () => this.closedBy())
    if (leftover.length > 0) reader.push(Buffer.from(leftover))
    this.socket.resume()
  }

  request(message: DirectRequest): void {
    this.writer.write(message)
  }

  /** Sends a call over the route, or through the server when the route no longer takes calls. */
  call(fn: string, args: ReadonlyArray<unknown>, resume: Resume<E>): Effect.Effect<void> | void {
    if (this.retiring || this.closed) return resume(this.routes.options.viaServer(this.module, fn, args))
    const id = this.nextId++
    try {
      this.writer.write([Direct.Call, id, fn, args])
    } catch {
      // Arguments msgpack cannot carry: the server's path reports it as it always has.
      return resume(this.routes.options.viaServer(this.module, fn, args))
    }
    this.pending.set(id, { fn, args, resume })
    return Effect.sync(() => {
      // The call may still run in the worker; its answer is dropped.
      this.pending.delete(id)
      this.closeIfDone()
    })
  }

  destroy(): void {
    this.closed = true
    this.socket.destroy()
  }

  /** False once the worker retires the route or it closed. */
  get usable(): boolean {
    return !this.retiring && !this.closed
  }

  private receive(message: DirectReply): void {
    switch (message[0]) {
      case Direct.Ok: {
        const call = this.take(message[1])
        return call?.resume(Effect.succeed(message[2]))
      }
      case Direct.Err: {
        const call = this.take(message[1])
        const [, , reason, text, traceback] = message
        return call?.resume(Effect.fail(
          new ModuleError({ module: this.module, reason, message: text, ...(traceback !== "" ? { traceback } : {}) })
        ))
      }
      case Direct.Moved: {
        const call = this.take(message[1])
        return call?.resume(this.routes.options.viaServer(this.module, call.fn, call.args))
      }
      case Direct.Retiring:
        this.retiring = true
        this.routes.drop(this.module, this)
        return this.closeIfDone()
      case Direct.Routed:
        this.open = true
        return this.settle(undefined)
      case Direct.Refused:
        this.settle(`${message[1]}: ${message[2]}`)
        return this.destroy()
    }
  }

  private take(id: number): Pending<E> | undefined {
    const call = this.pending.get(id)
    if (call === undefined) return undefined
    this.pending.delete(id)
    if (this.retiring) this.closeIfDone()
    return call
  }

  // A retiring worker stops once its routes are closed; each closes when its last call is answered.
  private closeIfDone(): void {
    if (this.retiring && this.pending.size === 0 && !this.closed) {
      this.closed = true
      this.socket.end()
    }
  }

  private settle(problem: string | undefined): void {
    const onOpen = this.onOpen
    this.onOpen = undefined
    onOpen?.(problem)
  }

  // The worker answers every call before it closes a route it retires: calls still waiting here
  // were running when it died.
  private closedBy(): void {
    this.closed = true
    this.routes.drop(this.module, this)
    if (!this.open) return this.settle("the connection closed")
    const calls = Array.from(this.pending.values())
    this.pending.clear()
    for (const call of calls) {
      call.resume(Effect.fail(
        new ModuleError({ module: this.module, reason: "worker-crashed", message: "the worker process died while running this call" })
      ))
    }
  }
}
