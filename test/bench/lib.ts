/**
 * Shared helpers for the benchmarks: timing, percentiles, tables, temp folders, progress.
 * Benchmarks print their tables to stdout and progress lines to stderr.
 */
import * as fs from "node:fs"
import * as Net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { performance } from "node:perf_hooks"

/** Milliseconds since an arbitrary origin, sub-millisecond resolution. */
export const now = (): number => performance.now()

/** A progress line on stderr, prefixed with the benchmark name and elapsed seconds. */
export const progress = (bench: string, message: string): void => {
  process.stderr.write(`[${bench} +${(process.uptime()).toFixed(1)}s] ${message}\n`)
}

/** The q-quantile (0..1) of a sample, nearest-rank on a sorted copy. */
export const quantile = (sorted: ReadonlyArray<number>, q: number): number => {
  if (sorted.length === 0) return NaN
  const rank = Math.ceil(q * sorted.length) - 1
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank))]!
}

/** p50 and p99 of a sample of durations in milliseconds. */
export interface Latency {
  readonly n: number
  readonly p50: number
  readonly p99: number
  readonly max: number
}

export const latency = (samples: ReadonlyArray<number>): Latency => {
  const sorted = Float64Array.from(samples).sort()
  const arr = Array.from(sorted)
  return { n: arr.length, p50: quantile(arr, 0.5), p99: quantile(arr, 0.99), max: arr[arr.length - 1] ?? NaN }
}

/** Formats a duration in ms with a sensible unit. */
export const ms = (value: number): string =>
  !Number.isFinite(value)
    ? "-"
    : value < 0.01
    ? `${(value * 1e6).toFixed(0)} ns`
    : value < 1
    ? `${(value * 1000).toFixed(0)} µs`
    : value < 100
    ? `${value.toFixed(2)} ms`
    : `${value.toFixed(0)} ms`

/** Formats a rate per second. */
export const rate = (value: number): string =>
  !Number.isFinite(value) ? "-" : value >= 100 ? `${Math.round(value).toLocaleString("en-US")}/s` : `${value.toFixed(1)}/s`

/** Formats a byte count. */
export const bytes = (value: number): string =>
  value >= 1024 * 1024 ? `${(value / 1024 / 1024).toFixed(1)} MiB` : value >= 1024 ? `${(value / 1024).toFixed(1)} KiB` : `${value} B`

/** Prints a table (Markdown-style, so it can be pasted into docs/BENCHMARKS.md as is). */
export const table = (title: string, header: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string>>): void => {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)))
  const line = (cells: ReadonlyArray<string>) =>
    `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(" | ")} |`
  const out = [
    "",
    `### ${title}`,
    "",
    line(header),
    `|${widths.map((w, i) => (i === 0 ? "-".repeat(w + 2) : "-".repeat(w + 1) + ":")).join("|")}|`,
    ...rows.map(line),
    ""
  ]
  process.stdout.write(out.join("\n") + "\n")
}

/** Prints free-form notes under a table. */
export const notes = (lines: ReadonlyArray<string>): void => {
  process.stdout.write(lines.map((l) => `- ${l}`).join("\n") + "\n")
}

/** A fresh temporary folder; `remove` deletes it. */
export const tempDir = (prefix: string): { readonly dir: string; readonly remove: () => void } => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `troupe-bench-${prefix}-`))
  return { dir, remove: () => fs.rmSync(dir, { recursive: true, force: true }) }
}

/** Size of a SQLite database with its -wal and -shm files. */
export const databaseSize = (file: string): { readonly main: number; readonly wal: number; readonly total: number } => {
  const size = (f: string) => {
    try {
      return fs.statSync(f).size
    } catch {
      return 0
    }
  }
  const main = size(file)
  const wal = size(`${file}-wal`) + size(`${file}-shm`)
  return { main, wal, total: main + wal }
}

/** Runs `worker` from `count` concurrent loops until `total` iterations have been handed out. */
export const concurrently = async (
  count: number,
  total: number,
  worker: (index: number) => Promise<void>
): Promise<void> => {
  let next = 0
  const loop = async () => {
    while (next < total) {
      const index = next++
      await worker(index)
    }
  }
  await Promise.all(Array.from({ length: Math.min(count, total) }, loop))
}

/** Bar verdict text. */
export const verdict = (met: boolean): string => (met ? "MET" : "MISSED")

/** Ratio text a / b. */
export const ratio = (a: number, b: number): string => {
  const r = a / b
  return b === 0 || !Number.isFinite(r) ? "-" : r < 0.01 ? `${r.toPrecision(2)}×` : `${r.toFixed(2)}×`
}

/** A benchmark module. */
export interface Bench {
  readonly name: string
  readonly description: string
  readonly run: () => Promise<void>
}

/** Yields to the event loop so that pending I/O callbacks and timers run. */
export const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))

/** One measured scenario: how many jobs in how long, with per-job latency when it was measured. */
export interface RateRow {
  readonly label: string
  readonly jobs: number
  readonly seconds: number
  readonly latency: Latency | undefined
}

/** Prints scenarios as a table of jobs, jobs/s, p50 and p99. */
export const rateTable = (title: string, rows: ReadonlyArray<RateRow>): void =>
  table(
    title,
    ["scenario", "jobs", "jobs/s", "p50", "p99"],
    rows.map((r) => [
      r.label,
      r.jobs.toLocaleString("en-US"),
      rate(r.jobs / r.seconds),
      r.latency === undefined ? "-" : ms(r.latency.p50),
      r.latency === undefined ? "-" : ms(r.latency.p99)
    ])
  )

/** A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0, then released). */
export const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = Net.createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as Net.AddressInfo).port
      server.close(() => resolve(port))
    })
  })
