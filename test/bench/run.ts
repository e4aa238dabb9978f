/**
 * Benchmark entry: `npm run bench` runs every benchmark; `npm run bench -- <name> [...]` runs
 * the named ones. Tables go to stdout (Markdown), progress lines to stderr.
 */
import * as os from "node:os"
import * as fs from "node:fs"
import type { Bench } from "./lib.js"

const benches: ReadonlyArray<() => Promise<Bench>> = [
  () => import("./jobs-noop.js").then((m) => m.bench),
  () => import("./jobs-shell.js").then((m) => m.bench),
  () => import("./jobs-list.js").then((m) => m.bench),
  () => import("./cluster-entity.js").then((m) => m.bench),
  () => import("./transports.js").then((m) => m.bench),
  () => import("./netqueue.js").then((m) => m.bench),
  () => import("./remote.js").then((m) => m.bench),
  () => import("./exec.js").then((m) => m.bench),
  () => import("./modules.js").then((m) => m.bench)
]

const cpuModel = (): string => {
  try {
    return /model name\s*:\s*(.*)/.exec(fs.readFileSync("/proc/cpuinfo", "utf8"))?.[1] ?? os.cpus()[0]?.model ?? "unknown"
  } catch {
    return os.cpus()[0]?.model ?? "unknown"
  }
}

const main = async () => {
  const all = await Promise.all(benches.map((load) => load()))
  const wanted = process.argv.slice(2).filter((a) => a !== "--")
  const unknown = wanted.filter((w) => !all.some((b) => b.name === w))
  if (unknown.length > 0) {
    process.stderr.write(`unknown benchmark(s): ${unknown.join(", ")}\navailable: ${all.map((b) => b.name).join(", ")}\n`)
    process.exit(2)
  }
  const selected = wanted.length === 0 ? all : all.filter((b) => wanted.includes(b.name))
  process.stdout.write(
    `# Troupe benchmarks\n\n` +
      `machine: ${os.availableParallelism()} cores (${cpuModel()}), ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB RAM, ` +
      `Node ${process.version}, ${os.platform()} ${os.release()}\n` +
      `date: ${new Date().toISOString()}\n`
  )
  for (const bench of selected) {
    const t0 = Date.now()
    process.stderr.write(`\n== ${bench.name}: ${bench.description}\n`)
    await bench.run()
    process.stderr.write(`== ${bench.name} took ${((Date.now() - t0) / 1000).toFixed(1)} s\n`)
  }
}

main().then(
  () => process.exit(0),
  (error) => {
    process.stderr.write(`benchmark failed: ${error instanceof Error ? error.stack : String(error)}\n`)
    process.exit(1)
  }
)
