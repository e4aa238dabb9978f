import type { Candidate, DispatchPolicy } from "./Dispatch.js"

/** Least loaded: the ready child with the smallest load (reported in STATUS, plus items outstanding to it). */
export const make = (): DispatchPolicy => ({
  name: "least-loaded",
  choose: <C extends Candidate>(ready: ReadonlyArray<C>): C | undefined => {
    let best: C | undefined
    for (const child of ready) if (best === undefined || child.load < best.load) best = child
    return best
  }
})
