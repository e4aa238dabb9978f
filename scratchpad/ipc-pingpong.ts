// A two-process process.send ping-pong: the round trip p50 and p99 of the machine as it is now.
// Run it idle and beside spinners (`nice -n 19 node -e "for(;;){}"`, one per core) to see what an
// idle core's wake-up costs (docs/BENCHMARKS.md).
import { fork } from "node:child_process"
import { fileURLToPath } from "node:url"

const rounds = Number(process.env.N ?? 5000)

if (process.argv[2] === "child") {
  process.on("message", (message) => process.send!(message))
} else {
  const child = fork(fileURLToPath(import.meta.url), ["child"])
  const samples: Array<number> = []
  let started = 0n
  const send = () => {
    started = process.hrtime.bigint()
    child.send(samples.length)
  }
  child.on("message", () => {
    samples.push(Number(process.hrtime.bigint() - started) / 1000)
    if (samples.length < rounds) return send()
    samples.sort((a, b) => a - b)
    const at = (q: number) => samples[Math.min(samples.length - 1, Math.floor(q * samples.length))]!.toFixed(0)
    console.log(`process.send round trip: p50 ${at(0.5)} µs, p99 ${at(0.99)} µs`)
    child.kill()
  })
  child.once("spawn", () => setTimeout(send, 200))
}
