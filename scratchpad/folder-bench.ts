// Folder RPC between two processes on a local disk: a server child process (from dist/) and a client
// here. Sequential p50/p99, then throughput with 1, 10 and 100 requests in flight; 1 KB payloads.
// Run: npm run build --silent && node --import tsx scratchpad/folder-bench.ts [rounds]
import * as RpcClient from "@effect/rpc/RpcClient"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as Endpoint from "../src/transport/Endpoint.js"
import * as FolderRpc from "../src/transport/folder/FolderRpc.js"
import { TestRpc } from "../test/transport/folder/fixtures.js"

const rounds = Number(process.argv[2] ?? 3)
const root = fs.mkdtempSync(path.join(os.tmpdir(), "troupe-folder-bench-"))
const endpoint = new Endpoint.FolderEndpoint({ path: root })
const payload = "x".repeat(1024)

const percentile = (sorted: ReadonlyArray<number>, p: number) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!

const main = Effect.gen(function*() {
  const child = spawn(process.execPath, ["test/transport/folder/peer.mjs", "server", root], { stdio: ["ignore", "pipe", "inherit"] })
  yield* Effect.addFinalizer(() => Effect.sync(() => child.kill("SIGKILL")))
  yield* Effect.async<void>((resume) => {
    child.stdout!.once("data", () => resume(Effect.void))
  })
  const protocol = yield* Layer.build(FolderRpc.layerClientProtocol(endpoint))
  const client = yield* RpcClient.make(TestRpc, { disableTracing: true }).pipe(Effect.provide(protocol))
  for (let i = 0; i < 200; i++) yield* client.Echo({ text: payload })
  for (let round = 1; round <= rounds; round++) {
    const latencies: Array<number> = []
    for (let i = 0; i < 2000; i++) {
      const t0 = performance.now()
      yield* client.Echo({ text: payload })
      latencies.push(performance.now() - t0)
    }
    latencies.sort((a, b) => a - b)
    const line = [`round ${round}: sequential p50 ${percentile(latencies, 0.5).toFixed(2)} ms, p99 ${percentile(latencies, 0.99).toFixed(2)} ms`]
    for (const inFlight of [1, 10, 100]) {
      const total = inFlight === 1 ? 2000 : 10_000
      let next = 0
      const t0 = performance.now()
      yield* Effect.forEach(Array.from({ length: inFlight }), () =>
        Effect.gen(function*() {
          while (next < total) {
            next++
            yield* client.Echo({ text: payload })
          }
        }), { concurrency: "unbounded", discard: true })
      line.push(`${inFlight} in flight ${Math.round(total / (performance.now() - t0) * 1000)}/s`)
    }
    console.log(line.join(", "))
  }
})

Effect.runPromise(Effect.scoped(main)).finally(() => fs.rmSync(root, { recursive: true, force: true }))
