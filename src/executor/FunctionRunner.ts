import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import type * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as os from "node:os"
import { Piscina } from "piscina"
import type { JobSpec } from "../domain/JobSpec.js"
import type { RunOutcome, RunRequest } from "./Executor.js"
import { type FunctionDefinition, Functions } from "./Functions.js"
import { completed, failed, messageOf, timedOut } from "./internal/outcome.js"

/** Runs the attempts of function jobs: in process on the fiber pool, or on a worker thread. */
export class FunctionRunner extends Context.Tag("troupe/FunctionRunner")<FunctionRunner, {
  /** Run one attempt to the end; never fails: a decode error, a failure or a timeout is an outcome. */
  readonly run: (request: RunRequest) => Effect.Effect<RunOutcome>
  /** Start an in-process attempt now; see `Executor.runNow`. */
  readonly runNow: (request: RunRequest) => RunOutcome | Effect.Effect<RunOutcome> | undefined
  /** True when the spec's function runs in process and its last call through `runNow` answered synchronously. */
  readonly isSynchronous: (spec: JobSpec) => boolean
}>() {}

/** Tuning for the worker-thread pool used by `placement: "thread"`. */
export interface FunctionRunnerOptions {
  /** The most worker threads; default: the number of cores. */
  readonly maxThreads?: number
  /** How long an idle thread is kept; default 30 s. */
  readonly idleTimeoutMs?: number
}

/**
 * Builds a function runner over the registry. In-process calls decode `args` with the definition's
 * (cached) decoder, call `run` (an Effect, a Promise or a plain value) and encode the result with
 * `success`. Thread calls check `args` the same way, then post the *encoded* `args` value to a
 * worker thread, which imports `module.url` and calls `module.export(encodedArgs)`; its return value
 * (which must survive structured cloning) is encoded with `success` on this thread. The thread pool
 * is created on first use and destroyed with the scope.
 */
export const make = (
  options: FunctionRunnerOptions = {}
): Effect.Effect<FunctionRunner["Type"], never, Functions | Scope.Scope> =>
  Effect.gen(function*() {
    const functions = yield* Functions
    let pool: Piscina | undefined
    yield* Effect.addFinalizer(() => pool === undefined ? Effect.void : Effect.promise(() => pool!.destroy()))
    const getPool = (): Piscina => {
      pool ??= new Piscina({
        minThreads: 0,
        maxThreads: options.maxThreads ?? os.availableParallelism(),
        idleTimeout: options.idleTimeoutMs ?? 30_000
      })
      return pool
    }

    const run = (request: RunRequest): Effect.Effect<RunOutcome> => {
      const spec = request.spec
      const name = spec.fn ?? ""
      const definition = functions.lookup(name)
      if (definition === undefined) {
        return Effect.succeed(failed(`unknown function: ${name} (registered: ${functions.names().join(", ") || "none"})`))
      }
      const codec = codecOf(definition)
      const body = spec.placement === "thread"
        ? runOnThread(name, definition, codec, spec.args, getPool)
        : runInProcess(name, definition, codec, spec.args)
      if (spec.timeLimitMs === undefined) return body
      const timeLimitMs = spec.timeLimitMs
      return Effect.timeoutTo(body, {
        duration: timeLimitMs,
        onSuccess: (outcome) => outcome,
        onTimeout: () => timedOut(timeLimitMs)
      })
    }
    // Definitions whose last call through runNow answered synchronously.
    const synchronous = new WeakSet<FunctionDefinition>()
    const runsInPlace = (spec: JobSpec) => spec.placement !== "thread" && spec.timeLimitMs === undefined
    const isSynchronous = (spec: JobSpec): boolean => {
      if (!runsInPlace(spec)) return false
      const definition = functions.lookup(spec.fn ?? "")
      return definition !== undefined && synchronous.has(definition)
    }
    // No fiber for a function that answers synchronously; a time limit needs the fiber path.
    const runNow = (request: RunRequest): RunOutcome | Effect.Effect<RunOutcome> | undefined => {
      const spec = request.spec
      if (!runsInPlace(spec)) return undefined
      const name = spec.fn ?? ""
      const definition = functions.lookup(name)
      if (definition === undefined) return undefined
      const outcome = callNow(name, definition, spec.args)
      if (outcome === undefined || Effect.isEffect(outcome)) synchronous.delete(definition)
      else synchronous.add(definition)
      return outcome
    }
    // Calls the function in the caller's fiber: its outcome, the rest as an effect, or undefined.
    const callNow = (name: string, definition: FunctionDefinition, args: unknown): RunOutcome | Effect.Effect<RunOutcome> | undefined => {
      const codec = codecOf(definition)
      const decoded = codec.decodeNow(args)
      if (Either.isLeft(decoded)) return isForbidden(decoded.left) ? undefined : invalidArgs(name, decoded.left)
      let result: unknown
      try {
        result = definition.run(decoded.right)
      } catch (error) {
        return failed(messageOf(error))
      }
      if (Effect.isEffect(result)) return finishCall(name, codec, result as Effect.Effect<unknown, unknown>)
      if (isPromiseLike(result)) {
        return finishCall(name, codec, Effect.tryPromise({ try: () => result as PromiseLike<unknown>, catch: (e) => e }))
      }
      const encoded = codec.encodeNow(result)
      if (Either.isRight(encoded)) return completed(null, undefined, encoded.right)
      if (isForbidden(encoded.left)) return finishCall(name, codec, Effect.succeed(result))
      return failed(`the result of ${name} does not match its success schema: ${encoded.left.message}`)
    }
    return { run, runNow, isSynchronous }
  })

/** Provides a function runner; needs the Functions registry. */
export const layer = (options: FunctionRunnerOptions = {}): Layer.Layer<FunctionRunner, never, Functions> =>
  Layer.scoped(FunctionRunner, make(options))

// ---------------------------------------------------------------------------------------------
// Private

interface Codec {
  readonly decode: (input: unknown) => Effect.Effect<unknown, ParseResult.ParseError>
  readonly encode: (value: unknown) => Effect.Effect<unknown, ParseResult.ParseError>
  readonly decodeNow: (input: unknown) => Either.Either<unknown, ParseResult.ParseError>
  readonly encodeNow: (value: unknown) => Either.Either<unknown, ParseResult.ParseError>
}

// A schema with asynchronous parts cannot be run synchronously: the effect path handles it.
const isForbidden = (error: ParseResult.ParseError): boolean => error.issue._tag === "Forbidden"

// Compiled decoders and encoders, once per definition.
const codecs = new WeakMap<FunctionDefinition, Codec>()

const codecOf = (definition: FunctionDefinition): Codec => {
  let codec = codecs.get(definition)
  if (codec === undefined) {
    codec = {
      decode: Schema.decodeUnknown(definition.args as Schema.Schema<unknown, unknown>),
      encode: Schema.encodeUnknown(definition.success as Schema.Schema<unknown, unknown>),
      decodeNow: Schema.decodeUnknownEither(definition.args as Schema.Schema<unknown, unknown>),
      encodeNow: Schema.encodeUnknownEither(definition.success as Schema.Schema<unknown, unknown>)
    }
    codecs.set(definition, codec)
  }
  return codec
}

const runInProcess = (
  name: string,
  definition: FunctionDefinition,
  codec: Codec,
  args: unknown
): Effect.Effect<RunOutcome> =>
  Effect.matchEffect(codec.decode(args), {
    onFailure: (error) => Effect.succeed(invalidArgs(name, error)),
    onSuccess: (decoded) => finishCall(name, codec, invoke(definition, decoded))
  })

const runOnThread = (
  name: string,
  definition: FunctionDefinition,
  codec: Codec,
  args: unknown,
  getPool: () => Piscina
): Effect.Effect<RunOutcome> => {
  const module = definition.module
  if (module === undefined) {
    return Effect.succeed(
      failed(`function ${name} cannot run on a thread: its definition has no module { url, export }`)
    )
  }
  return Effect.matchEffect(codec.decode(args), {
    onFailure: (error) => Effect.succeed(invalidArgs(name, error)),
    onSuccess: () =>
      finishCall(
        name,
        codec,
        Effect.tryPromise({
          try: (signal) => getPool().run(args, { filename: module.url, name: module.export, signal }),
          catch: (error) => error
        })
      )
  })
}

// Calls the function however it answers: an Effect, a Promise or a plain value; a throw is a failure.
const invoke = (definition: FunctionDefinition, args: unknown): Effect.Effect<unknown, unknown> =>
  Effect.suspend(() => {
    let result: unknown
    try {
      result = definition.run(args)
    } catch (error) {
      return Effect.fail(error)
    }
    if (Effect.isEffect(result)) return result as Effect.Effect<unknown, unknown>
    if (isPromiseLike(result)) return Effect.tryPromise({ try: () => result as PromiseLike<unknown>, catch: (e) => e })
    return Effect.succeed(result)
  })

// Encodes the return value and turns every failure (typed, thrown or defect) into a failed outcome.
const finishCall = (name: string, codec: Codec, call: Effect.Effect<unknown, unknown>): Effect.Effect<RunOutcome> =>
  Effect.matchCauseEffect(call, {
    onFailure: (cause) => Effect.succeed(failed(reasonOf(cause))),
    onSuccess: (value) =>
      Effect.match(codec.encode(value), {
        onFailure: (error) => failed(`the result of ${name} does not match its success schema: ${error.message}`),
        onSuccess: (result) => completed(null, undefined, result)
      })
  })

const invalidArgs = (name: string, error: ParseResult.ParseError): RunOutcome =>
  failed(`invalid arguments for ${name}: ${error.message}`)

const reasonOf = (cause: Cause.Cause<unknown>): string =>
  Cause.isInterruptedOnly(cause) ? "interrupted" : messageOf(Cause.squash(cause))

const isPromiseLike = (value: unknown): value is PromiseLike<unknown> =>
  typeof value === "object" && value !== null && typeof (value as { then?: unknown }).then === "function"
