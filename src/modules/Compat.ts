/**
 * The original module server's line protocol (seed 004), byte for byte: every message, both ways,
 * is `urllib.parse.quote_plus(json.dumps(obj)) + "\n"` in UTF-8. This module is the codec: the
 * listener that speaks it is `CompatServer.ts`.
 */

/** One decoded line: a JSON value, or why the line is not one. */
export type Decoded =
  | { readonly _tag: "Message"; readonly value: unknown }
  | { readonly _tag: "Invalid"; readonly reason: "utf8" | "json"; readonly message: string }

/** The reply envelope of the original server: `{"response": value, "error": bool, "traceback": text}`. */
export interface Envelope {
  readonly response: unknown
  readonly error: boolean
  readonly traceback: string
}

/** Encodes one message as the original peers write it: `quote_plus(json.dumps(value)) + "\n"`. */
export const encode = (value: unknown): Buffer => Buffer.from(quotePlus(pythonJson(value)) + "\n", "latin1")

/** A success reply: the envelope with `response` set, `error` false and an empty traceback. */
export const reply = (response: unknown): Buffer => encode({ response, error: false, traceback: "" })

/** An error reply: `response` is `""`, `error` is true, and `traceback` says what went wrong. */
export const errorReply = (traceback: string): Buffer => encode({ response: "", error: true, traceback })

/**
 * Decodes one line (without its newline) as the original server did: `unquote_plus`, then JSON.
 * Escapes that are not `%XX` stay as they are (as in Python); the bytes must be UTF-8.
 */
export const decode = (line: Uint8Array): Decoded => {
  let text: string
  try {
    text = utf8.decode(unquotePlusBytes(line))
  } catch {
    return { _tag: "Invalid", reason: "utf8", message: "the message is not UTF-8 text" }
  }
  try {
    return { _tag: "Message", value: JSON.parse(text) }
  } catch (error) {
    const detail = error instanceof Error ? error.message : String(error)
    return { _tag: "Invalid", reason: "json", message: `the message is not JSON (${detail}): ${preview(text)}` }
  }
}

/**
 * Splits a byte stream into lines, whatever the TCP reads were: a line may arrive in many pieces,
 * split anywhere (inside a `%XX` escape too), and one read may hold many lines. A line longer than
 * `maxLineBytes` is reported once, and the decoder is then unusable (the connection must close).
 */
export class LineDecoder {
  private pieces: Array<Buffer> = []
  private buffered = 0
  private overlong = false

  constructor(readonly maxLineBytes: number) {}

  /** True while part of a line is waiting for its newline. */
  get partial(): boolean {
    return this.buffered > 0
  }

  /** Adds a chunk; returns the complete lines in it (without newlines), or "overlong" when the limit was passed. */
  push(chunk: Buffer): Array<Buffer> | "overlong" {
    if (this.overlong) return "overlong"
    const lines: Array<Buffer> = []
    let start = 0
    for (;;) {
      const at = chunk.indexOf(10, start)
      if (at === -1) break
      const tail = chunk.subarray(start, at)
      if (this.buffered + tail.length > this.maxLineBytes) return this.tooLong()
      lines.push(this.buffered === 0 ? tail : Buffer.concat([...this.pieces, tail]))
      this.pieces = []
      this.buffered = 0
      start = at + 1
    }
    if (start < chunk.length) {
      const rest = chunk.subarray(start)
      if (this.buffered + rest.length > this.maxLineBytes) return this.tooLong()
      this.pieces.push(rest)
      this.buffered += rest.length
    }
    return lines
  }

  private tooLong(): "overlong" {
    this.overlong = true
    this.pieces = []
    this.buffered = 0
    return "overlong"
  }
}

/**
 * Python's `json.dumps(value)` with its defaults: `", "` and `": "` separators, every character
 * outside printable ASCII escaped as `\uXXXX` (ensure_ascii), floats as Python's `repr`, and
 * NaN/Infinity as `NaN`/`Infinity`. JavaScript has one number type: an integral number is written
 * as a Python int. Maps become objects, Sets and byte arrays lists, and `toJSON` is honoured.
 */
export const pythonJson = (value: unknown): string => write(value, new Set())

/** Python's `urllib.parse.quote_plus`: letters, digits and `_.-~` stay, space becomes `+`, every other UTF-8 byte `%XX`. */
export const quotePlus = (text: string): string => {
  let out = ""
  let plain = 0
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i)
    if (code < 128 && safe[code] === 1) continue
    out += text.slice(plain, i)
    if (code === 32) out += "+"
    else if (code < 128) out += hex[code]
    else {
      // Not ASCII: percent-encode its UTF-8 bytes (a surrogate pair is one character).
      const wide = code >= 0xd800 && code <= 0xdbff && i + 1 < text.length ? 2 : 1
      for (const byte of Buffer.from(text.slice(i, i + wide), "utf8")) out += hex[byte]
      i += wide - 1
    }
    plain = i + 1
  }
  return plain === 0 ? text : out + text.slice(plain)
}

/** Python's `urllib.parse.unquote_plus` on a string (invalid UTF-8 in escapes becomes U+FFFD, as in Python). */
export const unquotePlus = (text: string): string =>
  new TextDecoder().decode(unquotePlusBytes(Buffer.from(text, "utf8")))

// ---------------------------------------------------------------------------------------------
// private

const utf8 = new TextDecoder("utf-8", { fatal: true })

const safe = new Uint8Array(128)
for (const c of "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~") safe[c.charCodeAt(0)] = 1
const hex = Array.from({ length: 256 }, (_, i) => "%" + i.toString(16).toUpperCase().padStart(2, "0"))

const hexValue = (byte: number): number =>
  byte >= 48 && byte <= 57 ? byte - 48 : byte >= 65 && byte <= 70 ? byte - 55 : byte >= 97 && byte <= 102 ? byte - 87 : -1

const unquotePlusBytes = (line: Uint8Array): Uint8Array => {
  if (line.indexOf(37) === -1 && line.indexOf(43) === -1) return line
  const out = Buffer.allocUnsafe(line.length)
  let n = 0
  for (let i = 0; i < line.length; i++) {
    const byte = line[i]!
    if (byte === 43) out[n++] = 32
    else if (byte === 37 && i + 2 < line.length && hexValue(line[i + 1]!) >= 0 && hexValue(line[i + 2]!) >= 0) {
      out[n++] = hexValue(line[i + 1]!) * 16 + hexValue(line[i + 2]!)
      i += 2
    } else out[n++] = byte
  }
  return out.subarray(0, n)
}

const preview = (text: string): string => (text.length > 200 ? JSON.stringify(text.slice(0, 200)) + "…" : JSON.stringify(text))

const write = (value: unknown, seen: Set<object>): string => {
  switch (typeof value) {
    case "string":
      return pythonString(value)
    case "number":
      return pythonNumber(value)
    case "bigint":
      return value.toString()
    case "boolean":
      return value ? "true" : "false"
    case "undefined":
    case "function":
    case "symbol":
      return "null"
  }
  if (value === null) return "null"
  const object = value as object
  if (seen.has(object)) throw new TypeError("Circular reference detected")
  if (typeof (object as { toJSON?: unknown }).toJSON === "function") {
    return write((object as { toJSON: () => unknown }).toJSON(), seen)
  }
  seen.add(object)
  try {
    if (Array.isArray(object)) return "[" + object.map((item) => write(item, seen)).join(", ") + "]"
    if (object instanceof Uint8Array) return "[" + Array.from(object).join(", ") + "]"
    if (object instanceof Set) return "[" + Array.from(object, (item) => write(item, seen)).join(", ") + "]"
    const entries = object instanceof Map
      ? Array.from(object.entries(), ([k, v]) => [String(k), v] as const)
      : Object.entries(object)
    const parts: Array<string> = []
    for (const [key, item] of entries) {
      if (item === undefined || typeof item === "function" || typeof item === "symbol") continue
      parts.push(pythonString(key) + ": " + write(item, seen))
    }
    return "{" + parts.join(", ") + "}"
  } finally {
    seen.delete(object)
  }
}

const shortEscapes: Record<number, string> = { 8: "\\b", 9: "\\t", 10: "\\n", 12: "\\f", 13: "\\r", 34: "\\\"", 92: "\\\\" }

const pythonString = (text: string): string => {
  let out = "\""
  let plain = 0
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i)
    if (code >= 32 && code <= 126 && code !== 34 && code !== 92) continue
    out += text.slice(plain, i) + (shortEscapes[code] ?? "\\u" + code.toString(16).padStart(4, "0"))
    plain = i + 1
  }
  return out + text.slice(plain) + "\""
}

// Python writes ints in full and floats as `repr`: the shortest digits that round-trip (as
// JavaScript's), in fixed notation when the exponent is within [-4, 16), else as d.ddde±XX.
const pythonNumber = (value: number): string => {
  if (Number.isNaN(value)) return "NaN"
  if (!Number.isFinite(value)) return value > 0 ? "Infinity" : "-Infinity"
  // What Python writes after reading JavaScript's JSON for the number: digits are an int, 1e+21 a float.
  if (Number.isInteger(value) && Math.abs(value) < 1e21) return String(value)
  const [mantissa, exponentText] = value.toExponential().split("e") as [string, string]
  const exponent = Number(exponentText)
  const negative = mantissa.startsWith("-")
  const digits = mantissa.replace("-", "").replace(".", "")
  const sign = negative ? "-" : ""
  if (exponent < -4 || exponent >= 16) {
    const head = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits
    const magnitude = String(Math.abs(exponent)).padStart(2, "0")
    return `${sign}${head}e${exponent < 0 ? "-" : "+"}${magnitude}`
  }
  if (exponent < 0) return `${sign}0.${"0".repeat(-exponent - 1)}${digits}`
  const whole = digits.slice(0, exponent + 1).padEnd(exponent + 1, "0")
  const fraction = digits.slice(exponent + 1)
  return `${sign}${whole}.${fraction === "" ? "0" : fraction}`
}
