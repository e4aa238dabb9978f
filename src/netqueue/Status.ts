/**
 * STATUS text. The original protocol leaves it free-form; Troupe reads a small vocabulary from it
 * and writes its own in the same form, `key=value` words separated by spaces:
 *
 *   troupe=1 producer=1 load=12 full=0 window=1000 weight=2
 *
 * Reading is lenient so that plain peers can speak it too: `key:value` also works, words may be
 * separated by commas or semicolons, a bare word is a flag (`producer` is `producer=1`), a bare
 * number is the load, and a JSON object is read as the same fields. Unknown keys are kept.
 */

/** The fields read from a STATUS text, as strings, by key. */
export type StatusFields = Readonly<Record<string, string>>

/** Reads a STATUS text into fields. */
export const parse = (text: string): StatusFields => {
  const trimmed = text.trim()
  if (trimmed.startsWith("{")) {
    try {
      const value: unknown = JSON.parse(trimmed)
      if (typeof value === "object" && value !== null && !Array.isArray(value)) {
        const fields: Record<string, string> = {}
        for (const [key, field] of Object.entries(value)) {
          fields[key.toLowerCase()] = typeof field === "string" ? field : JSON.stringify(field)
        }
        return fields
      }
    } catch {
      // not JSON after all: read it as words
    }
  }
  const fields: Record<string, string> = {}
  for (const word of trimmed.split(/[\s,;]+/)) {
    if (word.length === 0) continue
    const match = /^([^=:]+)[=:](.*)$/.exec(word)
    if (match !== null) fields[match[1]!.toLowerCase()] = match[2]!
    else if (/^-?\d+(\.\d+)?$/.test(word)) fields["load"] = word
    else fields[word.toLowerCase()] = "1"
  }
  return fields
}

/** Writes fields as a STATUS text (`key=value` words). */
export const format = (fields: Readonly<Record<string, string | number | boolean | undefined>>): string =>
  Object.entries(fields)
    .filter(([, value]) => value !== undefined)
    .map(([key, value]) => `${key}=${typeof value === "boolean" ? (value ? 1 : 0) : value}`)
    .join(" ")

/** A flag field: true for `1`, `true`, `yes`, `on`. */
export const flag = (fields: StatusFields, key: string): boolean | undefined => {
  const value = fields[key]
  if (value === undefined) return undefined
  return /^(1|true|yes|on)$/i.test(value)
}

/** A finite number field, or undefined. */
export const number = (fields: StatusFields, key: string): number | undefined => {
  const value = fields[key]
  if (value === undefined || value.trim() === "") return undefined
  const parsed = Number(value)
  return Number.isFinite(parsed) ? parsed : undefined
}
