import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import { parseArgs } from "node:util"
import type { ParseArgsConfig } from "node:util"
import * as Endpoint from "../transport/Endpoint.js"

/** Bad or unknown flags or arguments; the CLI prints the command's usage and exits with 2. */
export class UsageError extends Data.TaggedError("UsageError")<{
  /** The command whose usage to print, or undefined for the general usage. */
  readonly command: string | undefined
  readonly message: string
}> {}

/** The option table of one command, in `util.parseArgs` form. */
export type Options = NonNullable<ParseArgsConfig["options"]>

/** The parsed flags and positionals of one command line. */
export interface Parsed {
  readonly values: Readonly<Record<string, string | boolean | ReadonlyArray<string | boolean> | undefined>>
  readonly positionals: ReadonlyArray<string>
  /** The words after a bare `--`, if one was given. */
  readonly rest: ReadonlyArray<string> | undefined
}

/** Parses a command's arguments strictly with `util.parseArgs`; words after `--` are kept apart in `rest`. */
export const parse = (
  command: string | undefined,
  args: ReadonlyArray<string>,
  options: Options,
  config: { readonly positionals?: boolean } = {}
): Effect.Effect<Parsed, UsageError> =>
  Effect.try({
    try: () => {
      const split = args.indexOf("--")
      const head = split === -1 ? args : args.slice(0, split)
      const { positionals, values } = parseArgs({
        args: [...head],
        options,
        strict: true,
        allowPositionals: config.positionals ?? false
      })
      return { values, positionals, rest: split === -1 ? undefined : args.slice(split + 1) }
    },
    catch: (error) => new UsageError({ command, message: error instanceof Error ? error.message : String(error) })
  })

/** A string flag's value, if given. */
export const string = (parsed: Parsed, name: string): string | undefined => {
  const value = parsed.values[name]
  return typeof value === "string" ? value : undefined
}

/** A repeatable string flag's values (empty when absent). */
export const strings = (parsed: Parsed, name: string): ReadonlyArray<string> => {
  const value = parsed.values[name]
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === "string") : []
}

/** A boolean flag: true when given. */
export const flag = (parsed: Parsed, name: string): boolean => parsed.values[name] === true

/** Parses a duration: a number with a unit of ms, s, m, h or d (`500ms`, `90s`, `5m`, `2h`, `7d`), into ms. */
export const parseDuration = (text: string): Either.Either<number, string> => {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(text.trim())
  if (match === null) return Either.left(`invalid duration "${text}" (use a number and a unit: 500ms, 90s, 5m, 2h, 7d)`)
  return Either.right(Math.round(Number(match[1]) * unitMs[match[2]!]!))
}

/** A duration flag in milliseconds, or undefined when absent; a bad value is a UsageError. */
export const duration = (
  command: string,
  parsed: Parsed,
  name: string
): Effect.Effect<number | undefined, UsageError> => {
  const text = string(parsed, name)
  if (text === undefined) return Effect.succeed(undefined)
  return Either.match(parseDuration(text), {
    onLeft: (message) => Effect.fail(new UsageError({ command, message: `--${name}: ${message}` })),
    onRight: Effect.succeed
  })
}

/** An integer flag at least `min`, or undefined when absent; a bad value is a UsageError. */
export const integer = (
  command: string,
  parsed: Parsed,
  name: string,
  min: number
): Effect.Effect<number | undefined, UsageError> => {
  const text = string(parsed, name)
  if (text === undefined) return Effect.succeed(undefined)
  const value = Number(text)
  return /^-?\d+$/.test(text) && value >= min
    ? Effect.succeed(value)
    : Effect.fail(new UsageError({ command, message: `--${name}: expected an integer >= ${min}, got "${text}"` }))
}

/** An endpoint URL flag, parsed; a bad URL is a UsageError naming the supported schemes. */
export const endpoint = (command: string | undefined, url: string): Effect.Effect<Endpoint.Endpoint, UsageError> =>
  Either.match(Endpoint.parseEither(url), {
    onLeft: (error) => Effect.fail(new UsageError({ command, message: error.message })),
    onRight: Effect.succeed
  })

/** The server URL: `--server`, else `$TROUPE_SERVER`, else `tcp://127.0.0.1:7878`. */
export const server = (parsed: Parsed): string =>
  string(parsed, "server") ?? (process.env["TROUPE_SERVER"] || defaultServer)

/** Where clients connect and the local role listens when nothing says otherwise. */
export const defaultServer = "tcp://127.0.0.1:7878"

/** The `--server URL` and `--secret-file FILE` options shared by every client command. */
export const serverOption: Options = { server: { type: "string" }, "secret-file": { type: "string" } }

// ---------------------------------------------------------------------------------------------
// private

const unitMs: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }
