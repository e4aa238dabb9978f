import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import * as fs from "node:fs"

/** The environment variable naming the secret file when no `--secret-file` is given. */
export const secretFileEnv = "TROUPE_SECRET_FILE"

/** The fewest bytes a shared secret may have; shorter ones are too easy to guess. */
export const minimumSecretBytes = 16

/** A shared secret for the transport handshake, and the file it came from (for messages, never the bytes). */
export interface Secret {
  readonly key: Uint8Array
  readonly source: string
}

/** A secret file that cannot be used; `reason` says why. */
export class SecretError extends Schema.TaggedError<SecretError>()("SecretError", {
  path: Schema.String,
  reason: Schema.Literal("missing", "unreadable", "too-short"),
  message: Schema.String
}) {}

/**
 * Reads a shared secret from a file. Surrounding whitespace (a trailing newline from `echo` or
 * `openssl rand -hex 32 > file`) is not part of it. A file others can read is used, with a warning.
 */
export const load = (path: string): Effect.Effect<Secret, SecretError> =>
  Effect.gen(function*() {
    const read = yield* Effect.try({
      try: () => ({ bytes: fs.readFileSync(path), mode: fs.statSync(path).mode }),
      catch: (cause) => {
        const missing = typeof cause === "object" && cause !== null && "code" in cause && cause.code === "ENOENT"
        return new SecretError({
          path,
          reason: missing ? "missing" : "unreadable",
          message: missing
            ? `secret file ${path} does not exist`
            : `cannot read secret file ${path} (${cause instanceof Error ? cause.message : String(cause)})`
        })
      }
    })
    const key = trimWhitespace(read.bytes)
    if (key.length < minimumSecretBytes) {
      return yield* new SecretError({
        path,
        reason: "too-short",
        message: `secret file ${path} holds ${key.length} bytes; use at least ${minimumSecretBytes} ` +
          `(for example: openssl rand -hex 32 > ${path})`
      })
    }
    if ((read.mode & 0o077) !== 0) {
      yield* Effect.logWarning(`secret file ${path} can be read by other users; chmod 600 it`)
    }
    return { key, source: path }
  })

/** The secret named by an explicit path, else by TROUPE_SECRET_FILE, else none. */
export const resolve = (
  explicitPath: string | undefined,
  env: NodeJS.ProcessEnv = process.env
): Effect.Effect<Secret | undefined, SecretError> => {
  const path = explicitPath ?? nonEmpty(env[secretFileEnv])
  return path === undefined ? Effect.succeed(undefined) : load(path)
}

const nonEmpty = (value: string | undefined): string | undefined =>
  value === undefined || value.trim() === "" ? undefined : value

const trimWhitespace = (bytes: Uint8Array): Uint8Array => {
  const isSpace = (byte: number) => byte === 0x20 || byte === 0x09 || byte === 0x0a || byte === 0x0d
  let start = 0
  let end = bytes.length
  while (start < end && isSpace(bytes[start]!)) start++
  while (end > start && isSpace(bytes[end - 1]!)) end--
  return bytes.subarray(start, end)
}
