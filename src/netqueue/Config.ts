import * as Either from "effect/Either"
import * as Fs from "node:fs"
import { ConfigError } from "./Errors.js"

/**
 * Net Queue config files, as the seed's `load_config` implies: one per client or server, read into
 * `config` when it is constructed (default paths `./client_conf` and `./server_conf`, used only if
 * they exist). Two forms, told apart by the first character:
 *
 *   # a comment                          {"host": "127.0.0.1", "port": 7979,
 *   host = 127.0.0.1                      "policy": "least-loaded"}
 *   port = 7979
 *   policy = least-loaded
 *
 * Keys are case-insensitive (`-` and `_` alike); values are strings (JSON values are kept as their
 * text). Unknown keys are kept for the program's own use. The keys Troupe reads are listed in
 * docs/NETQUEUE.md.
 */
export type ConfigValues = Readonly<Record<string, string>>

/** The seed's default client config path. */
export const defaultClientFile = "./client_conf"

/** The seed's default server config path. */
export const defaultServerFile = "./server_conf"

/** Parses a config file's text. */
export const parse = (path: string, text: string): Either.Either<ConfigValues, ConfigError> => {
  const trimmed = text.trim()
  if (trimmed.startsWith("{")) {
    return Either.try({
      try: () => {
        const value: unknown = JSON.parse(trimmed)
        if (typeof value !== "object" || value === null || Array.isArray(value)) throw new Error("not an object")
        const values: Record<string, string> = {}
        for (const [key, field] of Object.entries(value)) {
          values[normalize(key)] = typeof field === "string" ? field : JSON.stringify(field)
        }
        return values
      },
      catch: (error) => new ConfigError({ path, message: `${path}: invalid JSON config (${String(error)})` })
    })
  }
  const values: Record<string, string> = {}
  const lines = text.split(/\r?\n/)
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim()
    if (line.length === 0 || line.startsWith("#") || line.startsWith(";")) continue
    const match = /^([A-Za-z0-9_.-]+)\s*[=:]\s*(.*)$/.exec(line)
    if (match === null) {
      return Either.left(new ConfigError({ path, message: `${path}:${i + 1}: expected "key = value", got "${line}"` }))
    }
    values[normalize(match[1]!)] = unquote(match[2]!.trim())
  }
  return Either.right(values)
}

/** Reads and parses a config file; a missing file is an error unless `optional`. */
export const load = (path: string, optional = false): Either.Either<ConfigValues, ConfigError> => {
  let text: string
  try {
    text = Fs.readFileSync(path, "utf8")
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    if (optional && code === "ENOENT") return Either.right({})
    return Either.left(new ConfigError({ path, message: `cannot read config file ${path} (${code ?? String(error)})` }))
  }
  return parse(path, text)
}

/** An integer value at least `min`, or undefined when absent. */
export const integer = (values: ConfigValues, key: string, min: number, path = "config"): number | undefined => {
  const text = values[key]
  if (text === undefined) return undefined
  const value = Number(text)
  if (!Number.isInteger(value) || value < min) {
    throw new ConfigError({ path, message: `${path}: ${key} must be an integer >= ${min}, got "${text}"` })
  }
  return value
}

/** A duration value in milliseconds: a number of seconds (as the seed's timeouts), or `500ms`, `5s`, `2m`. */
export const duration = (values: ConfigValues, key: string, path = "config"): number | undefined => {
  const text = values[key]
  if (text === undefined) return undefined
  const match = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h)?$/.exec(text.trim())
  if (match === null) throw new ConfigError({ path, message: `${path}: ${key} must be a duration (5, 5s, 500ms), got "${text}"` })
  return Math.round(Number(match[1]) * (match[2] === undefined ? 1000 : unitMs[match[2]]!))
}

/** A boolean value (`1`, `true`, `yes`, `on` / `0`, `false`, `no`, `off`), or undefined when absent. */
export const boolean = (values: ConfigValues, key: string, path = "config"): boolean | undefined => {
  const text = values[key]
  if (text === undefined) return undefined
  if (/^(1|true|yes|on)$/i.test(text)) return true
  if (/^(0|false|no|off)$/i.test(text)) return false
  throw new ConfigError({ path, message: `${path}: ${key} must be true or false, got "${text}"` })
}

const normalize = (key: string): string => key.trim().toLowerCase().replace(/-/g, "_")

const unquote = (value: string): string =>
  value.length >= 2 && (value[0] === "\"" || value[0] === "'") && value[value.length - 1] === value[0]
    ? value.slice(1, -1)
    : value

const unitMs: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }
