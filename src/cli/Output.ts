import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as HashMap from "effect/HashMap"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import type * as LogLevel from "effect/LogLevel"

// The CLI's only door to the terminal: every byte the process prints goes through this module.

/** Writes text to stdout, waiting until the stream accepts it (backpressure for large output). */
export const out = (text: string | Uint8Array): Effect.Effect<void> => write(process.stdout, text)

/** Writes a line to stdout. */
export const line = (text: string): Effect.Effect<void> => out(text + "\n")

/** Writes text to stderr. */
export const err = (text: string | Uint8Array): Effect.Effect<void> => write(process.stderr, text)

/** Writes one `troupe: <message>` line to stderr, the form every expected error takes. */
export const problem = (message: string): Effect.Effect<void> => err(`troupe: ${message}\n`)

/** True when stderr is a terminal, so progress lines may be redrawn in place. */
export const stderrIsTty = (): boolean => process.stderr.isTTY === true

/** Redraws a progress line on stderr (only call when `stderrIsTty`). */
export const progress = (text: string): Effect.Effect<void> => err(`\r\x1b[2K${text}`)

/** Formats an unexpected failure with its full cause, for the rare internal-error report. */
export const pretty = (cause: Cause.Cause<unknown>): string => Cause.pretty(cause, { renderErrorCause: true })

/** Replaces the default logger with one that writes `<time> <LEVEL> <message> key=value` lines to stderr. */
export const layerLogger = (minimum?: LogLevel.LogLevel): Layer.Layer<never> =>
  Layer.mergeAll(
    Logger.replace(Logger.defaultLogger, stderrLogger),
    minimum === undefined ? Layer.empty : Logger.minimumLogLevel(minimum)
  )

// ---------------------------------------------------------------------------------------------
// private

const write = (stream: NodeJS.WriteStream, data: string | Uint8Array): Effect.Effect<void> =>
  Effect.async<void>((resume) => {
    stream.write(data, () => resume(Effect.void))
  })

const stderrLogger = Logger.make<unknown, void>(({ annotations, date, logLevel, message }) => {
  const parts = (Array.isArray(message) ? message : [message]).map(render)
  const notes = HashMap.reduce(annotations, "", (acc, value, key) => `${acc} ${key}=${render(value)}`)
  process.stderr.write(`${date.toISOString()} ${logLevel.label} ${parts.join(" ")}${notes}\n`)
})

const render = (value: unknown): string =>
  typeof value === "string" ? value : value instanceof Error ? value.message : JSON.stringify(value) ?? String(value)
