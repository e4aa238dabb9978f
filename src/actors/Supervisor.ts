import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as PubSub from "effect/PubSub"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"

/** How hard a supervisor tries before it gives up on a child (OTP's restart intensity). */
export interface RestartPolicy {
  /** Restarts allowed within `within`; one more and the supervisor escalates. */
  readonly maxRestarts: number
  readonly within: Duration.DurationInput
  /** First restart delay; doubled per recent restart, capped at `maxDelay`. */
  readonly baseDelay: Duration.DurationInput
  readonly maxDelay: Duration.DurationInput
}

/** Three restarts in five seconds, from 10 ms up to 1 s apart. */
export const defaultPolicy: RestartPolicy = {
  maxRestarts: 3,
  within: "5 seconds",
  baseDelay: "10 millis",
  maxDelay: "1 second"
}

/** A supervision event: a child crashed and was restarted, or crashed too often and was given up on. */
export class SupervisorEvent extends Schema.Class<SupervisorEvent>("SupervisorEvent")({
  child: Schema.String,
  kind: Schema.Literal("restarted", "escalated"),
  /** Restarts within the current intensity window, this one included. */
  restarts: Schema.Int,
  cause: Schema.String,
  at: Schema.Number
}) {}

/** A child crashed more often than its policy allows. */
export class Escalation extends Schema.TaggedError<Escalation>()("Escalation", {
  child: Schema.String,
  restarts: Schema.Int,
  message: Schema.String,
  cause: Schema.Defect
}) {}

/** One-for-one supervision of long-running children, with restart events for operators. */
export class Supervisor extends Context.Tag("troupe/Supervisor")<Supervisor, {
  /**
   * Run `child` forever in the caller's scope: when it fails or dies it is restarted after a backoff;
   * past the policy's intensity the returned fiber fails with Escalation. Interruption stops it quietly.
   */
  readonly supervise: <E, R>(
    name: string,
    child: Effect.Effect<never, E, R>,
    policy?: RestartPolicy
  ) => Effect.Effect<Fiber.RuntimeFiber<never, Escalation>, never, R | Scope.Scope>
  /** Restart and escalation events from now on. */
  readonly events: Stream.Stream<SupervisorEvent>
}>() {}

/** Builds a supervisor whose events go to an unbounded-free sliding PubSub. */
export const make: Effect.Effect<Supervisor["Type"]> = Effect.gen(function*() {
  const hub = yield* PubSub.sliding<SupervisorEvent>(1024)
  const supervise = <E, R>(name: string, child: Effect.Effect<never, E, R>, policy: RestartPolicy = defaultPolicy) =>
    Effect.forkScoped(runSupervised(name, child, policy, (event) => PubSub.publish(hub, event)))
  return Supervisor.of({ supervise, events: Stream.fromPubSub(hub) })
})

/** Provides a Supervisor. */
export const layer: Layer.Layer<Supervisor> = Layer.effect(Supervisor, make)

const runSupervised = <E, R>(
  name: string,
  child: Effect.Effect<never, E, R>,
  policy: RestartPolicy,
  report: (event: SupervisorEvent) => Effect.Effect<boolean>
): Effect.Effect<never, Escalation, R> => {
  const within = Duration.toMillis(policy.within)
  const restarts: Array<number> = []
  const loop: Effect.Effect<never, Escalation, R> = Effect.catchAllCause(child, (cause) => {
    if (Cause.isInterruptedOnly(cause)) return Effect.failCause(cause as Cause.Cause<never>)
    const now = Date.now()
    while (restarts.length > 0 && restarts[0]! <= now - within) restarts.shift()
    restarts.push(now)
    const text = Cause.pretty(cause)
    if (restarts.length > policy.maxRestarts) {
      return report(new SupervisorEvent({ child: name, kind: "escalated", restarts: restarts.length, cause: text, at: now })).pipe(
        Effect.zipRight(Effect.logError(`${name} crashed ${restarts.length} times within ${Duration.format(policy.within)}; giving up`)),
        Effect.zipRight(Effect.fail(new Escalation({ child: name, restarts: restarts.length, message: `${name} gave up after ${restarts.length} restarts`, cause: Cause.squash(cause) })))
      )
    }
    const delay = Math.min(Duration.toMillis(policy.baseDelay) * 2 ** (restarts.length - 1), Duration.toMillis(policy.maxDelay))
    return report(new SupervisorEvent({ child: name, kind: "restarted", restarts: restarts.length, cause: text, at: now })).pipe(
      Effect.zipRight(Effect.logWarning(`${name} crashed; restarting in ${delay} ms`).pipe(Effect.annotateLogs("cause", text))),
      Effect.zipRight(Effect.sleep(delay)),
      Effect.zipRight(Effect.suspend(() => loop))
    )
  })
  return loop
}
