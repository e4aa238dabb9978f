import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"
import * as Queue from "effect/Queue"
import type * as Request from "effect/Request"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import type { Escalation, RestartPolicy } from "./Supervisor.js"
import { Supervisor } from "./Supervisor.js"

/** The actor's mailbox is at capacity; the message was not delivered. */
export class MailboxFull extends Schema.TaggedError<MailboxFull>()("MailboxFull", {
  actor: Schema.String,
  capacity: Schema.Int,
  message: Schema.String
}) {}

/** A message together with the means to answer it. */
export interface Envelope<M> {
  readonly message: M
  /** Complete the asker's call; a second answer is ignored. */
  readonly reply: (exit: Exit.Exit<unknown, unknown>) => void
}

/** A handle to a running actor. */
export interface ActorRef<M> {
  readonly name: string
  /** Deliver without waiting for an answer; fails with MailboxFull when the mailbox is full. */
  readonly tell: (message: M) => Effect.Effect<void, MailboxFull>
  /** Deliver from synchronous code; false when the mailbox is full. */
  readonly unsafeTell: (message: M) => boolean
  /** Deliver a request and wait for the handler's answer. */
  readonly ask: <Req extends M & Request.Request<unknown, unknown>>(
    message: Req
  ) => Effect.Effect<Request.Request.Success<Req>, Request.Request.Error<Req> | MailboxFull>
  /** Deliver a request from synchronous code; `onReply` gets the handler's answer. False when the mailbox is full. */
  readonly unsafeAsk: <Req extends M & Request.Request<unknown, unknown>>(
    message: Req,
    onReply: (exit: Exit.Exit<Request.Request.Success<Req>, Request.Request.Error<Req>>) => void
  ) => boolean
  /** Messages waiting in the mailbox. */
  readonly pending: Effect.Effect<number>
  /** The supervised fiber; it fails with Escalation when the actor gives up. */
  readonly fiber: Fiber.RuntimeFiber<never, Escalation>
}

/** How to build and run an actor. */
export interface ActorOptions<M, R> {
  readonly name: string
  /** Mailbox capacity; a full mailbox is a MailboxFull error for senders. */
  readonly capacity: number
  /** Most messages handed to `receive` at once. */
  readonly maxBatch?: number
  /**
   * Builds the actor's private state and returns its handler. It runs again after every crash,
   * so it should rebuild state from the source of truth.
   */
  readonly behavior: Effect.Effect<(batch: ReadonlyArray<Envelope<M>>) => Effect.Effect<void, unknown>, unknown, R>
  readonly policy?: RestartPolicy
}

/**
 * Starts a supervised actor: one fiber takes messages from a bounded mailbox in batches and
 * hands them to the behavior, one batch at a time. A crash fails the unanswered asks of that
 * batch, then the supervisor rebuilds the behavior; messages still in the mailbox are kept.
 */
export const make = <M, R>(options: ActorOptions<M, R>): Effect.Effect<ActorRef<M>, never, R | Supervisor | Scope.Scope> =>
  Effect.gen(function*() {
    const supervisor = yield* Supervisor
    const mailbox = yield* Queue.dropping<Envelope<M>>(options.capacity)
    const maxBatch = options.maxBatch ?? 1024
    const full = new MailboxFull({
      actor: options.name,
      capacity: options.capacity,
      message: `${options.name} mailbox is full (${options.capacity} messages)`
    })
    const deliver = (envelope: Envelope<M>) => Effect.flatMap(Queue.offer(mailbox, envelope), (ok) => ok ? Effect.void : Effect.fail(full))

    const run = Effect.gen(function*() {
      const receive = yield* options.behavior
      return yield* Effect.forever(
        Effect.flatMap(Queue.takeBetween(mailbox, 1, maxBatch), (chunk) => {
          const batch = Array.from(chunk)
          return receive(batch).pipe(Effect.onExit((exit) =>
            Exit.isSuccess(exit) ? Effect.void : Effect.sync(() => {
              for (const envelope of batch) envelope.reply(Exit.die(new Error(`${options.name} crashed while handling this message`)))
            })
          ))
        })
      )
    })
    const fiber = yield* supervisor.supervise(options.name, run, options.policy)

    // A callback rather than a Deferred: asks sit on the hot path of every job.
    const ask = <Req extends M & Request.Request<unknown, unknown>>(message: Req) =>
      Effect.async<Request.Request.Success<Req>, Request.Request.Error<Req> | MailboxFull>((resume) => {
        let answered = false
        const delivered = Queue.unsafeOffer(mailbox, {
          message,
          reply: (exit) => {
            if (answered) return
            answered = true
            resume(exit as Exit.Exit<Request.Request.Success<Req>, Request.Request.Error<Req>>)
          }
        })
        if (!delivered) resume(Effect.fail(full))
      })

    return {
      name: options.name,
      tell: (message: M) => deliver({ message, reply: noReply }),
      unsafeTell: (message: M) => Queue.unsafeOffer(mailbox, { message, reply: noReply }),
      ask,
      unsafeAsk: <Req extends M & Request.Request<unknown, unknown>>(
        message: Req,
        onReply: (exit: Exit.Exit<Request.Request.Success<Req>, Request.Request.Error<Req>>) => void
      ) => {
        let answered = false
        return Queue.unsafeOffer(mailbox, {
          message,
          reply: (exit) => {
            if (answered) return
            answered = true
            onReply(exit as Exit.Exit<Request.Request.Success<Req>, Request.Request.Error<Req>>)
          }
        })
      },
      pending: Queue.size(mailbox),
      fiber
    }
  })

const noReply = (): void => {}
