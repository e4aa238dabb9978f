import type { Candidate, DispatchPolicy } from "./Dispatch.js"

/** Round robin (the default): the next ready child after the last one chosen, in connection order. */
export const make = (): DispatchPolicy => {
  let last = -1
  return {
    name: "round-robin",
    choose: <C extends Candidate>(ready: ReadonlyArray<C>): C | undefined => {
      if (ready.length === 0) return undefined
      let next: C | undefined
      let first = ready[0]!
      for (const child of ready) {
        if (child.id < first.id) first = child
        if (child.id > last && (next === undefined || child.id < next.id)) next = child
      }
      const chosen = next ?? first
      last = chosen.id
      return chosen
    }
  }
}
