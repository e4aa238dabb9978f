import * as Headers from "@effect/platform/Headers"
import * as Rpc from "@effect/rpc/Rpc"
import type * as RpcGroup from "@effect/rpc/RpcGroup"
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
import { ClientTag, isRequestId, type ServerMessage, ServerTag } from "./Wire.js"

/** How the server reaches its clients: the transport's sessions, which deliver messages in order, once. */
export interface Sessions {
  /** Queues a message to a client; returns why when it cannot be sent (over the client's size limit). */
  readonly send: (clientId: number, message: ServerMessage) => { readonly message: string } | undefined
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
 * Serves an RpcGroup's handlers to message sessions. It speaks @effect/rpc's messages in their
 * compact form (`Wire.ts`), so a stock RpcClient can call it through an adapter, but a request
 * costs at most one fiber and two synchronous schema passes: no per-request runtime, span, scope
 * or schema effect, which is where RpcServer spends its ~16 µs per call (docs/BENCHMARKS.md,
 * section 5), and none of those when the handler answers with `Effect.succeed` or `Effect.fail`.
 * A handler's defect fails its own request, not the client's others. Middleware is not run;
 * groups that declare it use the stock server.
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
  readonly fibers: Map<number, Fiber.RuntimeFiber<unknown, unknown>>
  /** Stream requests waiting for the client to acknowledge their last chunk. */
  readonly acks: Map<number, () => void>
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
    if (this.closed) return
    const client = this.client(clientId)
    if (!Array.isArray(message)) return this.defect(clientId, "a message that is not a list")
    switch (message[0]) {
      case ClientTag.Request:
        return this.request(clientId, client, message)
      case ClientTag.Ack:
        return void client.acks.get(message[1])?.()
      case ClientTag.Interrupt:
        return this.interrupt(clientId, client, message[1])
      case ClientTag.Ping:
        return void this.sessions.send(clientId, [ServerTag.Pong])
      case ClientTag.Eof:
        return
      default:
        return this.defect(clientId, `unknown message tag ${String(message[0])}`)
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

  private request(clientId: number, client: Client, request: ReadonlyArray<unknown>): void {
    const [, id, tag, encodedPayload, headers] = request
    if (!isRequestId(id)) return this.defect(clientId, `a request without a valid id: ${String(id)}`)
    const handled = this.handlers.get(String(tag))
    if (handled === undefined) return this.die(clientId, id, `unknown request tag: ${String(tag)}`)
    if (client.fibers.has(id)) return this.die(clientId, id, `request id ${id} is already running`)
    const payload = handled.route.decodePayload(encodedPayload)
    if (payload._tag === "Left") return this.die(clientId, id, formatParseError(payload.left))
    let result: unknown
    try {
      result = handled.handler(payload.right, {
        clientId,
        headers: Array.isArray(headers) && headers.length > 0 ? Headers.fromInput(headers) : Headers.empty
      })
    } catch (defect) {
      return this.die(clientId, id, defect)
    }
    const wrapper = typeof result === "object" && result !== null && Rpc.isWrapper(result) ? result : undefined
    const body = (wrapper === undefined ? result : wrapper.value) as Effect.Effect<unknown, unknown>
    // A handler that answers with a value it already has (Effect.succeed, Effect.fail) needs no fiber.
    if (!handled.route.isStream && Exit.isExit(body)) return this.reply(clientId, id, handled.route, body)
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

  private interrupt(clientId: number, client: Client, id: unknown): void {
    if (!isRequestId(id)) return this.defect(clientId, `an interrupt without a valid id: ${String(id)}`)
    const fiber = client.fibers.get(id)
    if (fiber !== undefined) fiber.unsafeInterruptAsFork(clientInterrupt)
    else this.sessions.send(clientId, [ServerTag.Failure, id, interruptedCause])
  }

  // Chunks go out one at a time: the next waits for the client's Ack, which is the stream's flow control.
  private stream(
    clientId: number,
    client: Client,
    id: number,
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
        const problem = this.sessions.send(clientId, [ServerTag.Chunk, id, encoded.right])
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

  private reply(clientId: number, id: number, route: Route, exit: Exit.Exit<unknown, unknown>): void {
    let message: ServerMessage
    if (Exit.isSuccess(exit) && !route.isStream) {
      const value = route.encodeSuccess(exit.value)
      if (value._tag === "Left") return this.die(clientId, id, formatParseError(value.left))
      message = [ServerTag.Success, id, value.right]
    } else {
      const encoded = route.encodeExit(exit)
      if (encoded._tag === "Left") return this.die(clientId, id, formatParseError(encoded.left))
      const exitEncoded = encoded.right as { readonly _tag: string; readonly value?: unknown; readonly cause?: unknown }
      message = exitEncoded._tag === "Success"
        ? [ServerTag.Success, id, exitEncoded.value]
        : [ServerTag.Failure, id, exitEncoded.cause]
    }
    const problem = this.sessions.send(clientId, message)
    if (problem !== undefined) this.die(clientId, id, `reply not sent: ${problem.message}`)
  }

  private die(clientId: number, id: number, defect: unknown): void {
    const text = typeof defect === "string" ? defect : Cause.pretty(Cause.die(defect))
    this.sessions.send(clientId, [ServerTag.Failure, id, { _tag: "Die", defect: text }])
  }

  // A message that cannot be tied to a request: the client is told, and its calls fail.
  private defect(clientId: number, problem: string): void {
    this.sessions.send(clientId, [ServerTag.Defect, `protocol error: ${problem}`])
  }
}

const interruptedCause = { _tag: "Interrupt", fiberId: { _tag: "None" } } as const
