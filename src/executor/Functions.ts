import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Schema from "effect/Schema"

/**
 * A function that jobs can call by name. `args` decodes the job's arguments and `success`
 * encodes the return value for the store. `module` names where a worker thread can import
 * the same function from (`{ url, export }`), which enables `placement: "thread"`.
 * The `any` defaults stand for "some types" in the registry: with `unknown`, `run`'s parameter
 * would refuse every typed definition. `define` keeps a definition's own types where it is made.
 */
export interface FunctionDefinition<A = any, I = any, R = any, RI = any> {
  readonly args: Schema.Schema<A, I>
  readonly success: Schema.Schema<R, RI>
  readonly run: (args: A) => Effect.Effect<R, unknown> | Promise<R> | R
  readonly module?: { readonly url: string; readonly export: string }
}

/** Builds a FunctionDefinition with its types inferred from the schemas. */
export const define = <A, I, R, RI>(definition: FunctionDefinition<A, I, R, RI>): FunctionDefinition<A, I, R, RI> =>
  definition

/** The registry of functions that jobs may call. */
export class Functions extends Context.Tag("troupe/Functions")<Functions, {
  /** Register (or replace) a function under a name. */
  readonly register: (name: string, definition: FunctionDefinition) => Effect.Effect<void>
  /** The definition registered under a name, if any. */
  readonly lookup: (name: string) => FunctionDefinition | undefined
  /** Every registered name. */
  readonly names: () => ReadonlyArray<string>
}>() {}

/** A registry pre-filled with the given functions. */
export const make = (initial: Readonly<Record<string, FunctionDefinition>> = {}): Functions["Type"] => {
  const registry = new Map<string, FunctionDefinition>(Object.entries(initial))
  return {
    register: (name, definition) => Effect.sync(() => void registry.set(name, definition)),
    lookup: (name) => registry.get(name),
    names: () => Array.from(registry.keys())
  }
}

/** Provides a registry holding the given functions. */
export const layer = (initial: Readonly<Record<string, FunctionDefinition>> = {}): Layer.Layer<Functions> =>
  Layer.sync(Functions, () => make(initial))
