// Where the main process allocates in `true` shell job loops: the sampling heap profiler with
// collected objects kept, written to /tmp/shell-alloc.heapprofile (compiled into .bench-dist/scratchpad).
import * as fs from "node:fs"
import { Session } from "node:inspector/promises"
import type { JobSpecInput } from "../src/jobs/Jobs.js"
import { openRuntime, submitWaitLoops } from "../test/bench/troupe.js"
const total = Number(process.env.N ?? 2000)
const spec: JobSpecInput = process.env.SPEC === "noop" ? { fn: "noop", args: {} } : { command: ["true"] }
const { noop } = await import("../test/bench/troupe.js")
const rt = await openRuntime("alloc", { cores: 2, functions: { noop } })
await rt.runtime.runPromise(submitWaitLoops(spec, 2, 300))
const session = new Session()
session.connect()
await session.post("HeapProfiler.startSampling", { samplingInterval: 1024, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: process.env.MINOR !== "0" } as never)
await rt.runtime.runPromise(submitWaitLoops(spec, 2, total))
const { profile } = await session.post("HeapProfiler.stopSampling")
fs.writeFileSync("/tmp/shell-alloc.heapprofile", JSON.stringify(profile))
let sum = 0
const walk = (n: any) => { sum += n.selfSize; n.children.forEach(walk) }
walk(profile.head)
console.log(`${(sum / total / 1024).toFixed(1)} KB per job sampled`)
await rt.close(); rt.remove()
