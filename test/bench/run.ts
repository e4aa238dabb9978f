/**
 * Benchmark entry: `npm run bench` runs every benchmark; `npm run bench -- <name> [...]` runs
 * the named ones. Tables go to stdout (Markdown), progress lines to stderr.
 *
 * Each benchmark runs in a fresh process of its own: one that follows jobs-list in the same
 * process measures a heap of a million rows and its garbage collector, not itself.
 */
import { spawn } from "node:child_process"
import * as os from "node:os"
import * as fs from "node:fs"
import { fileURLToPath } from "node:url"
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
  let failed = 0
  for (const bench of selected) {
    const t0 = Date.now()
    process.stderr.write(`\n== ${bench.name}: ${bench.description}\n`)
    const code = await runAlone(bench.name)
    if (code !== 0) {
      failed++
      process.stderr.write(`== ${bench.name} FAILED (exit code ${code})\n`)
    } else process.stderr.write(`== ${bench.name} took ${((Date.now() - t0) / 1000).toFixed(1)} s\n`)
  }
  if (failed > 0) process.exit(1)
}

// Runs one benchmark in a child process of this script, sharing its stdout and stderr.
const runAlone = (benchName: string): Promise<number> =>
  new Promise((resolve) => {
    const child = spawn(process.execPath, [fileURLToPath(import.meta.url), childFlag, benchName], { stdio: "inherit" })
    child.once("exit", (code, signal) => resolve(code ?? (signal !== null ? 128 : 1)))
  })

const childFlag = "--alone"

// In the child: run the one benchmark named, here.
const runChild = async (benchName: string) => {
  const all = await Promise.all(benches.map((load) => load()))
  const bench = all.find((b) => b.name === benchName)
  if (bench === undefined) throw new Error(`unknown benchmark ${benchName}`)
  await bench.run()
}

const childIndex = process.argv.indexOf(childFlag)
;(childIndex >= 0 ? runChild(process.argv[childIndex + 1] ?? "") : main()).then(
  () => process.exit(0),
  (error) => {
    process.stderr.write(`benchmark failed: ${error instanceof Error ? error.stack : String(error)}\n`)
    process.exit(1)
  }
)
