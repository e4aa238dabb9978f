import * as fs from "node:fs"
import * as path from "node:path"

/**
 * The remote's journal of ended attempts, `<workdir>/ended.log`: one JSON line per end,
 * `{"key":"<id>-<attempt>","state","exitCode","reason","at"}`, appended before the end is sent.
 * An attempt's folder without a line here (or, from older remotes, without
 * `.troupe/state.json`) was cut off. One append per batch of ends replaces a file created in
 * every attempt's folder, which cost more than the rest of a short job's end.
 */
export interface JournalEntry {
  readonly key: string
  readonly state: string
  readonly exitCode: number | null
  readonly reason: string | null
  readonly at: number
}

/** The journal file of a remote working in `workdir`. */
export const journalFile = (workdir: string): string => path.join(workdir, "ended.log")

/** An open journal: ends are appended, several in one write. */
export class Journal {
  private constructor(private readonly file: string, private fd: number | undefined) {}

  /**
   * Reads the journal, keeps the lines of attempts whose folders still exist (`keep`), rewrites it
   * with them and opens it for appending; also gives the attempts it has, with when each ended. A
   * torn last line (a crash mid-write) is dropped.
   */
  static open(file: string, keep: (key: string) => boolean): { readonly journal: Journal; readonly ended: ReadonlyMap<string, number> } {
    fs.mkdirSync(path.dirname(file), { recursive: true })
    const kept = rewrite(file, keep)
    return { journal: new Journal(file, fs.openSync(file, "a")), ended: new Map(Array.from(kept, (entry) => [entry.key, entry.at])) }
  }

  /** Rewrites the journal with only the lines `keep` accepts (attempts whose folders were removed go). */
  compact(keep: (key: string) => boolean): void {
    if (this.fd === undefined) return
    fs.closeSync(this.fd)
    this.fd = undefined
    try {
      rewrite(this.file, keep)
    } finally {
      // Reopened even when the rewrite failed: ends must keep being journaled.
      this.fd = fs.openSync(this.file, "a")
    }
  }

  /** Appends ends in one write; they are on disk (in the page cache) when this returns. */
  append(entries: ReadonlyArray<JournalEntry>): void {
    if (entries.length === 0 || this.fd === undefined) return
    fs.writeSync(this.fd, entries.map(formatLine).join(""))
  }

  close(): void {
    if (this.fd !== undefined) fs.closeSync(this.fd)
    this.fd = undefined
  }
}

// ---------------------------------------------------------------------------------------------
// private

// Replaces the file, through a temporary one, with its parsed lines that `keep` accepts.
const rewrite = (file: string, keep: (key: string) => boolean): ReadonlyArray<JournalEntry> => {
  let text = ""
  try {
    text = fs.readFileSync(file, "utf8")
  } catch {
    // No journal yet.
  }
  const kept = new Map<string, JournalEntry>()
  for (const line of text.split("\n")) {
    const entry = parseLine(line)
    if (entry !== undefined && keep(entry.key)) kept.set(entry.key, entry)
  }
  const tmp = `${file}.tmp`
  fs.writeFileSync(tmp, Array.from(kept.values(), formatLine).join(""))
  fs.renameSync(tmp, file)
  return Array.from(kept.values())
}

const formatLine = (entry: JournalEntry): string =>
  `${JSON.stringify({ key: entry.key, state: entry.state, exitCode: entry.exitCode, reason: entry.reason, at: entry.at })}\n`

const parseLine = (line: string): JournalEntry | undefined => {
  if (line.length === 0) return undefined
  try {
    const value = JSON.parse(line) as Record<string, unknown>
    if (typeof value.key !== "string" || typeof value.state !== "string" || typeof value.at !== "number") return undefined
    return {
      key: value.key,
      state: value.state,
      exitCode: typeof value.exitCode === "number" ? value.exitCode : null,
      reason: typeof value.reason === "string" ? value.reason : null,
      at: value.at
    }
  } catch {
    return undefined
  }
}
