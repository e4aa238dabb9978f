import type { JobEvent, JobRecord, QueueSummary } from "../domain/JobRecord.js"
import { describeSpec } from "../domain/JobSpec.js"

/** The exit code that stands for a finished job: its own code, or 137 killed, 124 timeout, 1 otherwise. */
export const exitCodeOf = (record: JobRecord): number => {
  switch (record.state) {
    case "completed":
      return record.exitCode ?? 0
    case "killed":
      return 137
    case "timeout":
      return 124
    case "failed":
      return record.exitCode !== null && record.exitCode !== 0 ? record.exitCode : 1
    default:
      return 1
  }
}

/** A transition as `events --json` prints it, one JSON object per line. */
export const eventJson = (event: JobEvent): Record<string, unknown> => ({
  id: event.id,
  queue: event.queue,
  from: event.from,
  to: event.to,
  at: iso(event.at),
  attempt: event.attempt,
  exitCode: event.exitCode,
  reason: event.reason,
  seq: event.seq ?? null
})

/** A transition as `events` prints it: time, job, queue, from → to, then the exit code and reason if any. */
export const eventLine = (event: JobEvent): string =>
  [
    iso(event.at),
    event.id,
    event.queue,
    `${event.from ?? "new"} -> ${event.to}`,
    ...(event.exitCode === null ? [] : [`exit ${event.exitCode}`]),
    ...(event.reason === null ? [] : [event.reason])
  ].join("  ")

/** A job as `status --json` prints it: timestamps as ISO-8601 strings or null. */
export const jobJson = (record: JobRecord): Record<string, unknown> => ({
  id: record.id,
  name: record.name,
  state: record.state,
  exitCode: record.exitCode,
  queue: record.queue,
  submittedAt: iso(record.submittedAt),
  startedAt: iso(record.startedAt),
  finishedAt: iso(record.finishedAt),
  attempts: record.attempts,
  reason: record.reason,
  outputs: record.outputs,
  command: record.spec.command ?? null,
  fn: record.spec.fn ?? null,
  priority: record.priority,
  tags: record.spec.tags ?? [],
  location: record.location ?? record.spec.on ?? null,
  transportState: record.transportState ?? null
})

/** The `status` table: id, name, state, exit, queue, submitted, runtime. */
export const jobTable = (records: ReadonlyArray<JobRecord>, now: number): string =>
  table(
    ["ID", "NAME", "STATE", "EXIT", "QUEUE", "SUBMITTED", "RUNTIME"],
    records.map((record) => [
      record.id,
      truncate(record.name ?? describeSpec(record.spec), 32),
      record.state,
      record.exitCode === null ? "-" : String(record.exitCode),
      record.queue,
      localTime(record.submittedAt),
      record.startedAt === null ? "-" : elapsed((record.finishedAt ?? now) - record.startedAt)
    ])
  )

/** The `queue` table. */
export const queueTable = (queues: ReadonlyArray<QueueSummary>): string =>
  table(
    ["QUEUE", "CONCURRENCY", "CAPACITY", "HELD", "QUEUED", "RUNNING", "WHERE"],
    queues.map((q) => [
      ...[q.queue, q.concurrency, q.capacity, q.held, q.queued, q.running].map(String),
      q.where.length === 0
        ? "-"
        : q.where.map((w) => `${w.location ?? "local"}: ${w.running} running, ${w.queued} queued`).join("; ")
    ])
  )

/** A duration in ms as a short human string: `850ms`, `12s`, `3m04s`, `2h05m`. */
export const elapsed = (ms: number): string => {
  if (ms < 1000) return `${Math.max(0, Math.round(ms))}ms`
  const s = Math.floor(ms / 1000)
  if (s < 60) return `${s}s`
  const m = Math.floor(s / 60)
  if (m < 60) return `${m}m${String(s % 60).padStart(2, "0")}s`
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, "0")}m`
}

// ---------------------------------------------------------------------------------------------
// private

const iso = (ms: number | null): string | null => ms === null ? null : new Date(ms).toISOString()

const localTime = (ms: number): string => {
  const d = new Date(ms)
  const pad = (n: number) => String(n).padStart(2, "0")
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${
    pad(d.getSeconds())
  }`
}

const truncate = (text: string, width: number): string => text.length > width ? text.slice(0, width - 1) + "…" : text

const table = (header: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string>>): string => {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)))
  const render = (row: ReadonlyArray<string>) => row.map((cell, i) => cell.padEnd(widths[i]!)).join("  ").trimEnd()
  return [header, ...rows].map(render).join("\n") + "\n"
}
