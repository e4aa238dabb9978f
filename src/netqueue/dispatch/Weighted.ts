import type { Candidate, DispatchPolicy } from "./Dispatch.js"

/**
 * Weighted: smooth weighted round robin (as nginx does it). Over any stretch, each ready child gets
 * items in proportion to its weight (STATUS `weight`, default 1), interleaved rather than in runs.
 */
export const make = (): DispatchPolicy => {
  const current = new Map<number, number>()
  return {
    name: "weighted",
    choose: <C extends Candidate>(ready: ReadonlyArray<C>): C | undefined => {
      if (ready.length === 0) return undefined
      if (current.size > ready.length * 4) current.clear()
      let total = 0
      let best: C | undefined
      let bestWeight = -Infinity
      for (const child of ready) {
        const weight = Math.max(0, child.weight)
        total += weight
        const value = (current.get(child.id) ?? 0) + weight
        current.set(child.id, value)
        if (value > bestWeight) {
          best = child
          bestWeight = value
        }
      }
      current.set(best!.id, bestWeight - total)
      return best
    }
  }
}
