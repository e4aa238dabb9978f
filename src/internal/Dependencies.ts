import type { JobId } from "../domain/JobId.js"
import type { JobSpec } from "../domain/JobSpec.js"

// Jobs in one request may depend on each other: insert dependencies first (the request has no cycle).
export const dependenciesFirst = <T extends { readonly id: JobId; readonly spec: JobSpec }>(
  fresh: ReadonlyArray<T>
): ReadonlyArray<T> => {
  if (fresh.every((f) => f.spec.after === undefined || f.spec.after.length === 0)) return fresh
  const byId = new Map(fresh.map((f) => [f.id, f] as const))
  const ordered: Array<T> = []
  const seen = new Set<JobId>()
  const visit = (item: T) => {
    if (seen.has(item.id)) return
    seen.add(item.id)
    for (const dep of item.spec.after ?? []) {
      const inner = byId.get(dep)
      if (inner !== undefined) visit(inner)
    }
    ordered.push(item)
  }
  for (const item of fresh) visit(item)
  return ordered
}

// Depth-first search over the dependencies inside one request.
export const findCycle = (specs: ReadonlyMap<JobId, JobSpec>): ReadonlyArray<JobId> | undefined => {
  const done = new Set<JobId>()
  const path: Array<JobId> = []
  const onPath = new Set<JobId>()
  const visit = (id: JobId): ReadonlyArray<JobId> | undefined => {
    if (onPath.has(id)) return [...path.slice(path.indexOf(id)), id]
    if (done.has(id)) return undefined
    onPath.add(id)
    path.push(id)
    for (const dep of specs.get(id)?.after ?? []) {
      if (!specs.has(dep)) continue
      const cycle = visit(dep)
      if (cycle !== undefined) return cycle
    }
    path.pop()
    onPath.delete(id)
    done.add(id)
    return undefined
  }
  for (const id of specs.keys()) {
    const cycle = visit(id)
    if (cycle !== undefined) return cycle
  }
  return undefined
}
