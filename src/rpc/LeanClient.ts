import * as Headers from "@effect/platform/Headers"
import type * as Rpc from "@effect/rpc/Rpc"
import type * as RpcClient from "@effect/rpc/RpcClient"
import { RpcClientError } from "@effect/rpc/RpcClientError"
import type * as RpcGroup from "@effect/rpc/RpcGroup"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberId from "effect/FiberId"
import * as Mailbox from "effect/Mailbox"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { formatParseError, type Route, routesOf } from "./internal/routes.js"
import { type ClientMessage, ClientTag, isRequestId, ServerTag } from "./Wire.js"

/** How the client reaches its server: one message session, which delivers in order, once. */
export interface Session {
  /** Queues a message; returns why when it cannot be sent (over the server's size limit). */
  readonly send: (message: ClientMessage) => { readonly message: string } | undefined
  /** Set while the session is unusable (the server has been unreachable too long): calls fail with it. */
  readonly failure: () => { readonly message: string } | undefined
}

/** A lean client and the inputs its transport feeds it. */
export interface LeanClient<Rpcs extends Rpc.Any> {
  /** The typed client, shaped like @effect/rpc's RpcClient. */
  readonly client: RpcClient.RpcClient<Rpcs, RpcClientError>
  /** Messages from the server, in order. */
  readonly onMessages: (messages: ReadonlyArray<unknown>) => void
  /** The session was lost: every call in flight fails with RpcClientError. */
  readonly onSessionLost: (error: { readonly message: string }) => void
}

/**
 * A typed client of an RpcGroup over one message session, speaking @effect/rpc's messages in their
 * compact form (`Wire.ts`; a stock RpcServer can answer it through an adapter). A unary call is one `Effect.async` around a synchronous
 * encode, a map entry and a send: no forked fiber, runtime or span per call, which is where
 * RpcClient spends its ~18 µs (docs/BENCHMARKS.md, section 5). Streams are mailboxes acknowledged
 * chunk by chunk, as RpcClient does. Closing the scope interrupts every call in flight.
 */
export const make = <Rpcs extends Rpc.Any>(
  group: RpcGroup.RpcGroup<Rpcs>,
  session: Session
): Effect.Effect<LeanClient<Rpcs>, never, Scope.Scope> =>
  Effect.gen(function*() {
    const calls = new Calls(session)
    yield* Effect.addFinalizer(() => Effect.sync(() => calls.shutdown()))
    return {
      client: clientOf(group, calls) as RpcClient.RpcClient<Rpcs, RpcClientError>,
      onMessages: (messages) => {
        for (const message of messages) calls.receive(message)
      },
      onSessionLost: (error) => calls.fail(protocolError(error.message, error))
    }
  })

// ---------------------------------------------------------------------------------------------
// private

interface CallOptions {
  readonly headers?: Headers.Input | undefined
  readonly discard?: boolean | undefined
  readonly asMailbox?: boolean | undefined
  readonly streamBufferSize?: number | undefined
}

type Entry =
  | { readonly _tag: "Unary"; readonly route: Route; readonly resume: (effect: Effect.Effect<unknown, unknown>) => void }
  | { readonly _tag: "Stream"; readonly route: Route; readonly mailbox: Mailbox.Mailbox<unknown, unknown> }

const clientInterrupt = FiberId.make(-499, 0)

class Calls {
  private readonly entries = new Map<number, Entry>()
  private nextId = 0
  private closed = false

  constructor(private readonly session: Session) {}

  unary(route: Route, input: unknown, options: CallOptions | undefined): Effect.Effect<unknown, unknown> {
    return Effect.async<unknown, unknown>((resume) => {
      if (this.closed) return resume(Effect.interrupt)
      const failure = this.session.failure()
      if (failure !== undefined) return resume(Effect.fail(protocolError(failure.message, failure)))
      const payload = route.encodePayload(route.makePayload(input))
      if (payload._tag === "Left") return resume(Effect.die(formatParseError(payload.left)))
      const id = this.nextId++
      const discard = options?.discard === true
      if (!discard) this.entries.set(id, { _tag: "Unary", route, resume })
      const problem = this.session.send(request(id, route.tag, payload.right, options?.headers))
      if (problem !== undefined) {
        this.entries.delete(id)
        return resume(Effect.fail(protocolError(problem.message, problem)))
      }
      if (discard) return resume(Effect.void)
      return Effect.sync(() => {
        if (this.entries.delete(id)) this.session.send([ClientTag.Interrupt, id])
      })
    })
  }

  stream(
    route: Route,
    input: unknown,
    options: CallOptions | undefined
  ): Effect.Effect<Mailbox.ReadonlyMailbox<unknown, unknown>, never, Scope.Scope> {
    return Effect.gen(this, function*() {
      if (this.closed) return yield* Effect.interrupt
      const mailbox = yield* Mailbox.make<unknown, unknown>(options?.streamBufferSize ?? 16)
      const id = this.nextId++
      yield* Effect.addFinalizer(() =>
        Effect.sync(() => {
          if (this.entries.delete(id)) this.session.send([ClientTag.Interrupt, id])
        })
      )
      const failure = this.session.failure()
      if (failure !== undefined) {
        yield* mailbox.fail(protocolError(failure.message, failure))
        return mailbox
      }
      const payload = route.encodePayload(route.makePayload(input))
      if (payload._tag === "Left") {
        yield* mailbox.failCause(Cause.die(formatParseError(payload.left)))
        return mailbox
      }
      this.entries.set(id, { _tag: "Stream", route, mailbox })
      const problem = this.session.send(request(id, route.tag, payload.right, options?.headers))
      if (problem !== undefined) {
        this.entries.delete(id)
        yield* mailbox.fail(protocolError(problem.message, problem))
      }
      return mailbox
    })
  }

  receive(message: unknown): void {
    if (!Array.isArray(message)) return
    switch (message[0]) {
      case ServerTag.Success:
        return this.success(message[1], message[2])
      case ServerTag.Failure:
        return this.failure(message[1], message[2])
      case ServerTag.Chunk:
        return this.chunk(message[1], message[2])
      case ServerTag.Defect:
        return this.failCause(Cause.die(message[1]))
    }
  }

  fail(error: RpcClientError): void {
    this.failCause(Cause.fail(error))
  }

  shutdown(): void {
    this.closed = true
    this.failCause(Cause.interrupt(clientInterrupt))
  }

  private failCause(cause: Cause.Cause<unknown>): void {
    const entries = [...this.entries.values()]
    this.entries.clear()
    for (const entry of entries) {
      if (entry._tag === "Unary") entry.resume(Effect.failCause(cause))
      else entry.mailbox.unsafeDone(Exit.failCause(cause))
    }
  }

  private take(id: unknown): Entry | undefined {
    if (!isRequestId(id)) return undefined
    const entry = this.entries.get(id)
    if (entry !== undefined) this.entries.delete(id)
    return entry
  }

  private success(id: unknown, encoded: unknown): void {
    const entry = this.take(id)
    if (entry === undefined) return
    if (entry._tag === "Stream") {
      entry.mailbox.unsafeDone(Exit.void)
      return
    }
    const value = entry.route.decodeSuccess(encoded)
    entry.resume(value._tag === "Right" ? Effect.succeed(value.right) : Effect.die(formatParseError(value.left)))
  }

  private failure(id: unknown, cause: unknown): void {
    const entry = this.take(id)
    if (entry === undefined) return
    const decoded = entry.route.decodeExit({ _tag: "Failure", cause })
    const exit: Exit.Exit<unknown, unknown> = decoded._tag === "Right"
      ? decoded.right
      : Exit.die(formatParseError(decoded.left))
    if (entry._tag === "Unary") entry.resume(exit)
    else entry.mailbox.unsafeDone(Exit.asVoid(exit))
  }

  // The Ack goes back once the values are in the mailbox, so a slow reader slows the server's stream.
  private chunk(id: unknown, encoded: unknown): void {
    if (!isRequestId(id)) return
    const entry = this.entries.get(id)
    if (entry === undefined || entry._tag !== "Stream") return
    const values = entry.route.decodeChunk(encoded)
    if (values._tag === "Left") {
      this.entries.delete(id)
      this.session.send([ClientTag.Interrupt, id])
      entry.mailbox.unsafeDone(Exit.die(formatParseError(values.left)))
      return
    }
    const rest = entry.mailbox.unsafeOfferAll(values.right)
    const ack = (): void => {
      if (this.entries.has(id)) this.session.send([ClientTag.Ack, id])
    }
    if (rest.length === 0) return ack()
    Effect.runFork(Effect.map(entry.mailbox.offerAll(rest), ack))
  }
}

// The client object: a method per RPC, with prefixed tags ("Jobs.Submit") under a nested object.
interface ClientObject {
  [name: string]: ClientObject | ((input: unknown, options?: CallOptions) => unknown)
}

const clientOf = <Rpcs extends Rpc.Any>(group: RpcGroup.RpcGroup<Rpcs>, calls: Calls): unknown => {
  const client: ClientObject = {}
  for (const route of routesOf(group).values()) {
    const dot = route.tag.indexOf(".")
    const target = dot === -1 ? client : (client[route.tag.slice(0, dot)] ??= {}) as ClientObject
    const method = dot === -1 ? route.tag : route.tag.slice(dot + 1)
    target[method] = route.isStream
      ? (input: unknown, options?: CallOptions) => {
        const mailbox = calls.stream(route, input, options)
        return options?.asMailbox === true ? mailbox : Stream.unwrapScoped(Effect.map(mailbox, Mailbox.toStream))
      }
      : (input: unknown, options?: CallOptions) => calls.unary(route, input, options)
  }
  return client
}

const request = (id: number, tag: string, payload: unknown, headers: Headers.Input | undefined): ClientMessage =>
  headers === undefined
    ? [ClientTag.Request, id, tag, payload]
    : [ClientTag.Request, id, tag, payload, Object.entries(Headers.fromInput(headers))]

const protocolError = (message: string, cause: unknown): RpcClientError =>
  new RpcClientError({ reason: "Protocol", message, cause })
