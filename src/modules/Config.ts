import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Schema from "effect/Schema"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { ChangeSignal } from "../internal/ChangeSignal.js"
import { ConfigError } from "./Errors.js"

/**
 * The module server's config file (seed 004): a JSON object whose keys are module names and whose
 * values are `["import path", "export name", "dispatch method" | null]`, with an optional fourth
 * element of per-module options. A name starting with `_` is ignored; an invalid entry is reported
 * and skipped. Import paths resolve against the config file's directory.
 */

/** One module as the config describes it, with its import path resolved and its options filled in. */
export class ModuleEntry extends Schema.Class<ModuleEntry>("ModuleEntry")({
  name: Schema.String,
  /** The import path as written in the config. */
  importPath: Schema.String,
  /** The module file, absolute. */
  file: Schema.String,
  /** The export: a name, `default`, or `*` for the module's exports as an object of functions. */
  exportName: Schema.String,
  /** The dispatch method, or null to call functions by name. */
  dispatch: Schema.NullOr(Schema.String),
  /** Calls that may run at once; default 1 (calls queue, as in the original). */
  concurrency: Schema.Int,
  /** How long the import (and a class's `init`) may take before the worker is killed; default 5000 ms. */
  importTimeoutMs: Schema.Number,
  /** Calls that may wait for a free slot before new ones are refused as overloaded; default 10,000. */
  maxQueue: Schema.Int,
  /** Reload when the module's files change; default true. */
  watch: Schema.Boolean
}) {
  /** True when the two entries load the same code the same way (only limits may differ). */
  sameCode(that: ModuleEntry): boolean {
    return this.file === that.file && this.exportName === that.exportName && this.dispatch === that.dispatch &&
      this.importTimeoutMs === that.importTimeoutMs && this.watch === that.watch
  }

  /** True when nothing differs. */
  same(that: ModuleEntry): boolean {
    return this.sameCode(that) && this.concurrency === that.concurrency && this.maxQueue === that.maxQueue &&
      this.importPath === that.importPath
  }
}

/** The per-module options, the optional fourth element of an entry. */
export const ModuleOptions = Schema.Struct({
  concurrency: Schema.optional(Schema.Int.pipe(Schema.between(1, 10_000))),
  importTimeoutMs: Schema.optional(Schema.Number.pipe(Schema.between(1, 3_600_000))),
  maxQueue: Schema.optional(Schema.Int.pipe(Schema.between(0, 10_000_000))),
  watch: Schema.optional(Schema.Boolean)
})

/** Defaults for the per-module options. */
export const defaults = { concurrency: 1, importTimeoutMs: 5000, maxQueue: 10_000, watch: true } as const

/** A config file as read: its valid entries, and what was wrong with the others. */
export interface Snapshot {
  readonly entries: ReadonlyMap<string, ModuleEntry>
  /** One line per invalid entry: which, and why it was skipped. */
  readonly problems: ReadonlyArray<string>
  /** The names starting with `_`, ignored. */
  readonly ignored: ReadonlyArray<string>
}

/** Parses a config file's text; `file` is its path (import paths resolve against its directory). */
export const parse = (text: string, file: string): Either.Either<Snapshot, ConfigError> => {
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch (error) {
    return Either.left(
      new ConfigError({
        path: file,
        reason: "invalid-json",
        message: `${file} is not valid JSON (${error instanceof Error ? error.message : String(error)})`
      })
    )
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    return Either.left(
      new ConfigError({ path: file, reason: "not-an-object", message: `${file} must hold a JSON object of modules` })
    )
  }
  const entries = new Map<string, ModuleEntry>()
  const problems: Array<string> = []
  const ignored: Array<string> = []
  for (const [name, value] of Object.entries(json)) {
    if (name.startsWith("_")) {
      ignored.push(name)
      continue
    }
    const entry = parseEntry(name, value, Path.dirname(Path.resolve(file)))
    if (typeof entry === "string") problems.push(`"${name}": ${entry}; skipped`)
    else entries.set(name, entry)
  }
  return Either.right({ entries, problems, ignored })
}

/** Reads the config file's text. */
export const readText = (file: string): Effect.Effect<string, ConfigError> =>
  Effect.tryPromise({
    try: () => Fs.promises.readFile(file, "utf8"),
    catch: (error) =>
      new ConfigError({
        path: file,
        reason: "unreadable",
        message: `cannot read ${file} (${(error as NodeJS.ErrnoException).code ?? String(error)})`
      })
  })

/** Reads and parses the config file. */
export const read = (file: string): Effect.Effect<Snapshot, ConfigError> =>
  Effect.flatMap(readText(file), (text) => parse(text, file))

/**
 * Resolves an import path against the config's directory: an absolute path, or a relative one (with
 * or without `./`). Without an extension, the first existing file with one of `.ts .mts .cts .js .mjs
 * .cjs`, or an `index` with one, is used.
 */
export const resolveImport = (importPath: string, dir: string): string => {
  const base = Path.resolve(dir, importPath)
  if (Path.extname(base) !== "" && Fs.existsSync(base)) return base
  for (const candidate of [base, ...extensions.map((ext) => base + ext), ...extensions.map((ext) => Path.join(base, "index" + ext))]) {
    if (Fs.existsSync(candidate) && Fs.statSync(candidate).isFile()) return candidate
  }
  return base
}

/** True for a file the worker loads through the TypeScript loader. */
export const isTypeScript = (file: string): boolean => /\.(c|m)?tsx?$/.test(file)

// ---------------------------------------------------------------------------------------------
// private

const extensions = [".ts", ".mts", ".cts", ".js", ".mjs", ".cjs"]

const decodeOptions = Schema.decodeUnknownEither(ModuleOptions, { onExcessProperty: "error" })

const parseEntry = (name: string, value: unknown, dir: string): ModuleEntry | string => {
  if (!Array.isArray(value)) return "the value must be a list [import path, export name, dispatch method or null]"
  if (value.length !== 3 && value.length !== 4) return `the list must have 3 entries (or 4 with options), found ${value.length}`
  const [importPath, exportName, dispatch, options] = value as [unknown, unknown, unknown, unknown]
  if (typeof importPath !== "string" || importPath.trim() === "") return "the import path must be a non-empty string"
  if (typeof exportName !== "string" || exportName.trim() === "") return "the export name must be a non-empty string"
  if (dispatch !== null && (typeof dispatch !== "string" || dispatch.trim() === "")) {
    return "the dispatch method must be a method name or null"
  }
  const decoded = decodeOptions(options ?? {})
  if (Either.isLeft(decoded)) {
    return `invalid options ${JSON.stringify(options)}: ${decoded.left.message.split("\n").slice(-1)[0]?.trim()}`
  }
  return new ModuleEntry({
    name,
    importPath,
    file: resolveImport(importPath, dir),
    exportName,
    dispatch: dispatch as string | null,
    concurrency: decoded.right.concurrency ?? defaults.concurrency,
    importTimeoutMs: decoded.right.importTimeoutMs ?? defaults.importTimeoutMs,
    maxQueue: decoded.right.maxQueue ?? defaults.maxQueue,
    watch: decoded.right.watch ?? defaults.watch
  })
}

/**
 * Watches the config file (its directory, so that editors' rename-over saves are seen, plus a
 * rescan every `intervalMs`) and runs `onChange` with each new version of its text. A version that
 * cannot be read is skipped; the next change is read again. Runs until interrupted.
 */
export const watch = (
  file: string,
  initial: string,
  onChange: (text: string) => Effect.Effect<void>,
  intervalMs = 1000
): Effect.Effect<never> =>
  Effect.acquireUseRelease(
    Effect.sync(() => new ChangeSignal(Path.dirname(Path.resolve(file)), intervalMs)),
    (signal) => {
      let last = initial
      return Effect.forever(
        signal.wait.pipe(
          // Let a writer finish the file before reading it.
          Effect.zipRight(Effect.sleep("20 millis")),
          Effect.zipRight(Effect.promise(() => Fs.promises.readFile(file, "utf8").catch(() => undefined))),
          Effect.flatMap((text) => {
            if (text === undefined || text === last) return Effect.void
            last = text
            return onChange(text)
          })
        )
      )
    },
    (signal) => Effect.sync(() => signal.close())
  )
