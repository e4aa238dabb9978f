// Times Ping (answered by the server) against Com (a worker round trip) through the typed client.
import * as Effect from "effect/Effect"
import { connectModules } from "../src/client/index.js"
const url = process.argv[2]!
const client = await connectModules(url)
for (const [label, call] of [["ping", () => client.ping()], ["com", () => client.com("echo", "echo", "x")]] as const) {
  for (let round = 0; round < 3; round++) {
    const samples: number[] = []
    for (let i = 0; i < 2000; i++) {
      const t0 = performance.now()
      await call()
      samples.push(performance.now() - t0)
    }
    samples.sort((a, b) => a - b)
    console.log(label, "p50", (samples[1000]! * 1000).toFixed(0), "µs")
  }
}
await client.close()
void Effect
