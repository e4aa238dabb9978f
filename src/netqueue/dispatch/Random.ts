import type { Candidate, DispatchPolicy } from "./Dispatch.js"

/** Random: a ready child chosen uniformly. */
export const make = (random: () => number = Math.random): DispatchPolicy => ({
  name: "random",
  choose: <C extends Candidate>(ready: ReadonlyArray<C>): C | undefined =>
    ready.length === 0 ? undefined : ready[Math.floor(random() * ready.length)]
})
