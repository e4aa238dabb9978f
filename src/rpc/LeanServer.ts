import * as Headers from "@effect/platform/Headers"
import * as Rpc from "@effect/rpc/Rpc"
import type * as RpcGroup from "@effect/rpc/RpcGroup"
import type { FromServerEncoded } from "@effect/rpc/RpcMessage"
import * as Cause from "effect/Cause"
import * as Chunk from "effect/Chunk"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import type * as Mailbox from "effect/Mailbox"
import * as Runtime from "effect/Runtime"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { formatParseError, type Route, routesOf } from "./internal/routes.js"

/** How the server reaches its clients: the transport's sessions, which deliver messages in order, once. */
export interface Sessions {
  /** Queues a message to a client; returns why when it cannot be sent (over the client's size limit). */
  readonly send: (clientId: number, message: FromServerEncoded) => { readonly message: string } | undefined
}

/** What the transport tells the server about its sessions. */
export interface SessionEvents {
  /** Messages from a client, in order, each once. */
  readonly onMessages: (clientId: number, messages: ReadonlyArray<unknown>) => void
  /** The client's session is over: its requests are interrupted and the owner told. */
  readonly onEnd: (clientId: number) => void
}

/** How a lean server behaves. */
export interface Options {
  /** How many requests run at once across all clients; default unbounded. */
  readonly concurrency?: number | "unbounded" | undefined
  /** Called once per client session that ends, after its requests were interrupted. */
  readonly onDisconnect?: ((clientId: number) => Effect.Effect<void>) | undefined
}

/**
 * Serves an RpcGroup's handlers to message sessions. It speaks @effect/rpc's encoded messages
 * (Request, Ack, Interrupt, Eof, Ping in; Exit, Chunk, Pong out), so a stock RpcClient can call
 * it, but a request costs one fiber and two synchronous schema passes: no per-request runtime,
 * span, scope or schema effect, which is where RpcServer spends its ~16 µs per call
 * (docs/BENCHMARKS.md, section 5). A handler's defect fails its own request, not the client's
 * others. Middleware is not run; groups that declare it use the stock server.
 */
export const make = <Rpcs extends Rpc.Any>(
  group: RpcGroup.RpcGroup<Rpcs>,
  sessions: Sessions,
  options: Options = {}
): Effect.Effect<SessionEvents, never, Rpc.ToHandler<Rpcs> | Scope.Scope> =>
  Effect.gen(function*() {
    const runtime = yield* Effect.runtime<Rpc.ToHandler<Rpcs> | Scope.Scope>()
    const server = new Server(handlersOf(group, runtime), sessions, options, runtime)
    yield* Effect.addFinalizer(() => server.shutdown())
    return {
      onMessages: (clientId, messages) => {
        for (const message of messages) server.receive(clientId, message)
      },
      onEnd: (clientId) => server.end(clientId)
    }
  })

// ---------------------------------------------------------------------------------------------
// private

/** A route with the handler that serves it and the runtime its effects run in. */
interface Handled {
  readonly route: Route
  readonly handler: Rpc.Handler<string>["handler"]
  readonly run: <A, E>(effect: Effect.Effect<A, E>) => Fiber.RuntimeFiber<A, E>
}

interface Client {
  readonly fibers: Map<string, Fiber.RuntimeFiber<unknown, unknown>>
  /** Stream requests waiting for the client to acknowledge their last chunk. */
  readonly acks: Map<string, () => void>
}

const handlersOf = <Rpcs extends Rpc.Any>(
  group: RpcGroup.RpcGroup<Rpcs>,
  runtime: Runtime.Runtime<never>
): ReadonlyMap<string, Handled> => {
  const handled = new Map<string, Handled>()
  for (const route of routesOf(group).values()) {
    const entry = runtime.context.unsafeMap.get(route.rpc.key) as Rpc.Handler<string> | undefined
    if (entry === undefined) continue
    const handlerRuntime = Runtime.make({
      context: Context.merge(runtime.context, entry.context),
      fiberRefs: runtime.fiberRefs,
      runtimeFlags: runtime.runtimeFlags
    })
    handled.set(route.tag, { route, handler: entry.handler, run: Runtime.runFork(handlerRuntime) })
  }
  return handled
}

const clientInterrupt = FiberId.make(-499, 0)
const serverShutdown = FiberId.make(-503, 0)

class Server {
  private readonly clients = new Map<number, Client>()
  private readonly permits: Effect.Semaphore | undefined
  private closed = false

  constructor(
    private readonly handlers: ReadonlyMap<string, Handled>,
    private readonly sessions: Sessions,
    private readonly options: Options,
    private readonly runtime: Runtime.Runtime<never>
  ) {
    const concurrency = options.concurrency ?? "unbounded"
    this.permits = concurrency === "unbounded" ? undefined : Effect.unsafeMakeSemaphore(concurrency)
  }

  receive(clientId: number, message: unknown): void {
    if (this.closed || typeof message !== "object" || message === null) return
    const client = this.client(clientId)
    const m = message as { readonly _tag?: unknown; readonly requestId?: unknown }
    switch (m._tag) {
      case "Request":
        return this.request(clientId, client, message as RequestMessage)
      case "Ack":
        return void client.acks.get(String(m.requestId))?.()
      case "Interrupt":
        return this.interrupt(clientId, client, String(m.requestId))
      case "Ping":
        return void this.sessions.send(clientId, { _tag: "Pong" })
      case "Eof":
        return
      default:
        this.sessions.send(clientId, { _tag: "Defect", defect: `unknown message tag: ${String(m._tag)}` })
    }
  }

  end(clientId: number): void {
    const client = this.clients.get(clientId)
    this.clients.delete(clientId)
    if (client !== undefined) {
      for (const fiber of client.fibers.values()) fiber.unsafeInterruptAsFork(serverShutdown)
    }
    const onDisconnect = this.options.onDisconnect
    if (onDisconnect !== undefined && !this.closed) Runtime.runFork(this.runtime)(onDisconnect(clientId))
  }

  shutdown(): Effect.Effect<void> {
    this.closed = true
    const fibers = [...this.clients.values()].flatMap((client) => [...client.fibers.values()])
    this.clients.clear()
    return Fiber.interruptAllAs(fibers, serverShutdown)
  }

  private client(clientId: number): Client {
    let client = this.clients.get(clientId)
    if (client === undefined) {
      client = { fibers: new Map(), acks: new Map() }
      this.clients.set(clientId, client)
    }
    return client
  }

  private request(clientId: number, client: Client, request: RequestMessage): void {
    const id = String(request.id)
    const handled = this.handlers.get(String(request.tag))
    if (handled === undefined) return this.die(clientId, id, `unknown request tag: ${String(request.tag)}`)
    if (client.fibers.has(id)) return this.die(clientId, id, `request id ${id} is already running`)
    const payload = handled.route.decodePayload(request.payload)
    if (payload._tag === "Left") return this.die(clientId, id, formatParseError(payload.left))
    let result: unknown
    try {
      result = handled.handler(payload.right, {
        clientId,
        headers: Array.isArray(request.headers) && request.headers.length > 0
          ? Headers.fromInput(request.headers)
          : Headers.empty
      })
    } catch (defect) {
      return this.die(clientId, id, defect)
    }
    const wrapper = typeof result === "object" && result !== null && Rpc.isWrapper(result) ? result : undefined
    const body = (wrapper === undefined ? result : wrapper.value) as Effect.Effect<unknown, unknown>
    let effect = handled.route.isStream ? this.stream(clientId, client, id, handled.route, body) : body
    if (this.permits !== undefined && wrapper?.fork !== true) effect = this.permits.withPermits(1)(effect)
    if (wrapper?.uninterruptible === true) effect = Effect.uninterruptible(effect)
    const fiber = handled.run(effect)
    const done = fiber.unsafePoll()
    if (done !== null) return this.reply(clientId, id, handled.route, done)
    client.fibers.set(id, fiber)
    fiber.addObserver((exit) => {
      client.fibers.delete(id)
      client.acks.delete(id)
      if (this.clients.get(clientId) === client) this.reply(clientId, id, handled.route, exit)
    })
  }

  private interrupt(clientId: number, client: Client, id: string): void {
    const fiber = client.fibers.get(id)
    if (fiber !== undefined) fiber.unsafeInterruptAsFork(clientInterrupt)
    else this.sessions.send(clientId, { _tag: "Exit", requestId: id, exit: interruptedExit })
  }

  // Chunks go out one at a time: the next waits for the client's Ack, which is the stream's flow control.
  private stream(
    clientId: number,
    client: Client,
    id: string,
    route: Route,
    body: unknown
  ): Effect.Effect<void, unknown> {
    const send = (values: ReadonlyArray<unknown>): Effect.Effect<void> => {
      if (values.length === 0) return Effect.void
      const encoded = route.encodeChunk(values)
      if (encoded._tag === "Left") return Effect.die(formatParseError(encoded.left))
      return Effect.async<void>((resume) => {
        client.acks.set(id, () => {
          client.acks.delete(id)
          resume(Effect.void)
        })
        const problem = this.sessions.send(clientId, {
          _tag: "Chunk",
          requestId: id,
          values: encoded.right as [unknown, ...Array<unknown>]
        })
        if (problem !== undefined) resume(Effect.die(`chunk not sent: ${problem.message}`))
      })
    }
    if (Effect.isEffect(body)) {
      return Effect.scoped(Effect.flatMap(
        body as Effect.Effect<Mailbox.ReadonlyMailbox<unknown, unknown>, unknown, Scope.Scope>,
        (mailbox) => {
          let done = false
          return Effect.whileLoop({
            while: () => !done,
            body: () =>
              Effect.flatMap(mailbox.takeAll, ([chunk, end]) => {
                done = end
                return send(Chunk.toReadonlyArray(chunk))
              }),
            step: () => {}
          })
        }
      ))
    }
    return Stream.runForEachChunk(body as Stream.Stream<unknown, unknown>, (chunk) => send(Chunk.toReadonlyArray(chunk)))
  }

  private reply(clientId: number, id: string, route: Route, exit: Exit.Exit<unknown, unknown>): void {
    if (Exit.isSuccess(exit) && !route.isStream) {
      const value = route.encodeSuccess(exit.value)
      if (value._tag === "Left") return this.die(clientId, id, formatParseError(value.left))
      const problem = this.sessions.send(clientId, {
        _tag: "Exit",
        requestId: id,
        exit: { _tag: "Success", value: value.right }
      })
      if (problem !== undefined) this.die(clientId, id, `reply not sent: ${problem.message}`)
      return
    }
    const encoded = route.encodeExit(exit)
    if (encoded._tag === "Left") return this.die(clientId, id, formatParseError(encoded.left))
    const problem = this.sessions.send(clientId, { _tag: "Exit", requestId: id, exit: encoded.right as never })
    if (problem !== undefined) this.die(clientId, id, `reply not sent: ${problem.message}`)
  }

  private die(clientId: number, id: string, defect: unknown): void {
    const text = typeof defect === "string" ? defect : Cause.pretty(Cause.die(defect))
    this.sessions.send(clientId, {
      _tag: "Exit",
      requestId: id,
      exit: { _tag: "Failure", cause: { _tag: "Die", defect: text } }
    })
  }
}

interface RequestMessage {
  readonly _tag: "Request"
  readonly id: unknown
  readonly tag: unknown
  readonly payload: unknown
  readonly headers?: unknown
}

const interruptedExit = { _tag: "Failure", cause: { _tag: "Interrupt", fiberId: { _tag: "None" } } } as const
