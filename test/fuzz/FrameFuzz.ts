/**
 * Fuzzing of the frame decoder: random and mutated byte streams, fed in random splits. The
 * decoder must never throw, never hold more than one frame beyond its limit, and decode every
 * valid stream exactly. `npm run fuzz` runs a million frames; the test suite runs a slice.
 */
import * as Either from "effect/Either"
import { encode, FrameDecoder } from "../../src/protocol/Frame.js"

/** A small deterministic generator (mulberry32), so that a failure can be replayed by seed. */
export const random = (seed: number) => () => {
  seed |= 0
  seed = (seed + 0x6d2b79f5) | 0
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}

/** What one fuzz run saw. */
export interface FuzzReport {
  readonly frames: number
  readonly validStreams: number
  readonly rejectedStreams: number
  readonly maxPending: number
}

/** Runs about `frames` frames through fresh decoders; throws (with the seed) on the first violation. */
export const fuzz = (frames: number, seed: number, maxFrameBytes = 4096): FuzzReport => {
  const next = random(seed)
  const int = (n: number) => Math.floor(next() * n)
  let sent = 0
  let validStreams = 0
  let rejectedStreams = 0
  let maxPending = 0
  while (sent < frames) {
    const count = 1 + int(50)
    const expected = Array.from({ length: count }, () => {
      const data = new Uint8Array(int(next() < 0.9 ? 64 : maxFrameBytes - 2))
      for (let i = 0; i < data.length; i++) data[i] = int(256)
      return { type: int(65536) - 32768, data }
    })
    sent += count
    const stream = concatAll(expected.map((f) => encode(f.type, f.data)))
    const mutate = next() < 0.5
    if (mutate) {
      const edits = 1 + int(8)
      for (let i = 0; i < edits; i++) stream[int(stream.length)] = int(256)
    }
    const decoder = new FrameDecoder(maxFrameBytes)
    const got: Array<{ type: number; data: Uint8Array }> = []
    let rejected = false
    let offset = 0
    while (offset < stream.length) {
      const size = 1 + int(next() < 0.5 ? 16 : 4096)
      const result = decoder.push(stream.subarray(offset, offset + size))
      offset += size
      maxPending = Math.max(maxPending, decoder.pending)
      if (decoder.pending > maxFrameBytes + 4 + 4096) {
        throw new Error(`seed ${seed}: decoder holds ${decoder.pending} bytes, over the limit`)
      }
      if (Either.isLeft(result)) {
        rejected = true
        break
      }
      got.push(...result.right)
    }
    if (rejected) rejectedStreams++
    else validStreams++
    if (!mutate) {
      if (rejected || got.length !== expected.length) throw new Error(`seed ${seed}: a valid stream was not decoded whole`)
      for (let i = 0; i < got.length; i++) {
        const a = got[i]!
        const b = expected[i]!
        if (a.type !== b.type || !sameBytes(a.data, b.data)) throw new Error(`seed ${seed}: frame ${i} differs`)
      }
    }
  }
  return { frames: sent, validStreams, rejectedStreams, maxPending }
}

const sameBytes = (a: Uint8Array, b: Uint8Array) => a.length === b.length && a.every((x, i) => x === b[i])

const concatAll = (parts: ReadonlyArray<Uint8Array>): Uint8Array => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let offset = 0
  for (const part of parts) {
    out.set(part, offset)
    offset += part.length
  }
  return out
}

const isMain = import.meta.url === `file://${process.argv[1]}`
if (isMain) {
  const total = Number(process.argv[2] ?? 1_000_000)
  const t0 = performance.now()
  const report = fuzz(total, Number(process.argv[3] ?? Date.now() % 100000))
  process.stdout.write(`${JSON.stringify(report)} in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`)
}
