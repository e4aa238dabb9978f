/**
 * How a server picks the child for an item. A policy sees only the children that can take an item
 * now (connected, consumers, not full, window open) and returns one, or undefined to hold the item.
 * Each built-in policy is its own module; `make` picks one by name.
 */
import * as LeastLoaded from "./LeastLoaded.js"
import * as Random from "./Random.js"
import * as RoundRobin from "./RoundRobin.js"
import * as Weighted from "./Weighted.js"

/** What a policy knows about a child. */
export interface Candidate {
  /** Unique per connection, increasing in connection order. */
  readonly id: number
  /** The load the child reported in STATUS (0 if none) plus the items outstanding to it. */
  readonly load: number
  /** The child's weight (STATUS `weight`, default 1). */
  readonly weight: number
}

/** A dispatch policy: chooses one of the ready children, or none. Called once per item. */
export interface DispatchPolicy {
  readonly name: string
  readonly choose: <C extends Candidate>(ready: ReadonlyArray<C>) => C | undefined
}

/** A user-supplied choice, as the seed's `choose_dispatch`. */
export type ChooseFunction = <C extends Candidate>(ready: ReadonlyArray<C>) => C | undefined

/** The built-in policies by name. */
export const names = ["round-robin", "least-loaded", "random", "weighted"] as const

/** A built-in policy's name. */
export type PolicyName = typeof names[number]

/** A fresh instance of a built-in policy (policies keep state, so each server makes its own). */
export const make = (name: PolicyName): DispatchPolicy => {
  switch (name) {
    case "round-robin":
      return RoundRobin.make()
    case "least-loaded":
      return LeastLoaded.make()
    case "random":
      return Random.make()
    case "weighted":
      return Weighted.make()
  }
}

/** A policy from a user function. */
export const fromFunction = (choose: ChooseFunction, name = "user"): DispatchPolicy => ({ name, choose })

/** True when `name` is a built-in policy. */
export const isName = (name: string): name is PolicyName => (names as ReadonlyArray<string>).includes(name)
