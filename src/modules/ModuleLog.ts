import * as Fs from "node:fs"
import * as Path from "node:path"
import { createStream, type RotatingFileStream } from "rotating-file-stream"

/**
 * Per-module logs: one file of JSON lines per module, `<dir>/<module>.log`, rotated by size the way
 * logrotate does (`.1` is the newest old file, `.N` the oldest; 10 MiB × 5 by default). The module's
 * console output and raw stdout/stderr lines land here, with the server's own lines about the module
 * (loaded, reloaded, crashed, restarted). Rotation is `rotating-file-stream`'s classical mode.
 */
export interface ModuleLogs {
  /** The folder the logs are written to. */
  readonly dir: string
  /** Appends one record to the module's log. */
  readonly write: (module: string, record: LogRecord) => void
  /** The path of a module's current log file. */
  readonly fileOf: (module: string) => string
  /** Flushes and closes one module's log (it reopens on the next write). */
  readonly close: (module: string) => Promise<void>
  /** Flushes and closes every log. */
  readonly closeAll: () => Promise<void>
}

/** One line of a module's log. */
export interface LogRecord {
  readonly level: string
  readonly msg: string
  /** `module` for what the module wrote, `server` for the server's lines about it. */
  readonly source: "module" | "server"
  /** The worker process, when the line is about one. */
  readonly pid?: number | undefined
  /** The worker's generation: 1 for the first load, +1 for each reload or restart. */
  readonly generation?: number | undefined
}

/** How logs are written. */
export interface LogOptions {
  readonly dir: string
  /** Rotate when a file passes this many bytes; default 10 MiB. */
  readonly maxBytes?: number | undefined
  /** Rotated files kept; default 5. */
  readonly files?: number | undefined
  /** Told when a log cannot be written (the line is dropped). */
  readonly onError?: ((module: string, error: Error) => void) | undefined
}

/** The rotation defaults: 10 MiB × 5. */
export const defaults = { maxBytes: 10 * 1024 * 1024, files: 5 } as const

/** Opens the log folder (creating it); files are opened on their first line. */
export const make = (options: LogOptions): ModuleLogs => {
  Fs.mkdirSync(options.dir, { recursive: true })
  const streams = new Map<string, RotatingFileStream>()
  const fileName = (module: string) => `${module.replace(/[^A-Za-z0-9_.-]/g, "_")}.log`
  const open = (module: string): RotatingFileStream => {
    let stream = streams.get(module)
    if (stream !== undefined) return stream
    stream = createStream(fileName(module), {
      path: options.dir,
      size: `${options.maxBytes ?? defaults.maxBytes}B`,
      rotate: options.files ?? defaults.files
    })
    stream.on("error", (error: Error) => options.onError?.(module, error))
    streams.set(module, stream)
    return stream
  }
  const end = (stream: RotatingFileStream) => new Promise<void>((resolve) => stream.end(() => resolve()))
  return {
    dir: options.dir,
    write: (module, record) => {
      const line = JSON.stringify({
        time: new Date().toISOString(),
        level: record.level,
        module,
        source: record.source,
        ...(record.pid !== undefined ? { pid: record.pid } : {}),
        ...(record.generation !== undefined ? { generation: record.generation } : {}),
        msg: record.msg
      })
      open(module).write(line + "\n")
    },
    fileOf: (module) => Path.join(options.dir, fileName(module)),
    close: async (module) => {
      const stream = streams.get(module)
      streams.delete(module)
      if (stream !== undefined) await end(stream)
    },
    closeAll: async () => {
      const all = Array.from(streams.values())
      streams.clear()
      await Promise.all(all.map(end))
    }
  }
}
