/**
 * Soak: one file through the mailbox over every transport, with peak resident memory.
 *   node --import tsx test/soak/big-file.ts [sizeMiB=1024] [tcp,unix,framed,folder] [push|pull]
 * push (the default): the connecting end sends (Upload); pull: the listening end sends, and the
 * connecting end downloads it (how a remote's outputs come back).
 * Prints, per transport, the time, MB/s and how much the process grew while the file moved.
 */
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as Crypto from "node:crypto"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Endpoint from "../../src/transport/Endpoint.js"
import * as NetworkMailbox from "../../src/transport/mailbox/NetworkMailbox.js"

const sizeMiB = Number(process.argv[2] ?? 1024)
const schemes = (process.argv[3] ?? "tcp,unix,framed,folder").split(",")
const pull = process.argv[4] === "pull"
const Message = Schema.Struct({ name: Schema.String })

const freePort = (): Promise<number> =>
  new Promise((resolve) => {
    const server = Net.createServer().listen(0, "127.0.0.1", () => {
      const port = (server.address() as Net.AddressInfo).port
      server.close(() => resolve(port))
    })
  })

const writeFile = async (file: string): Promise<string> => {
  const hash = Crypto.createHash("sha256")
  const handle = await Fs.promises.open(file, "w")
  const block = Crypto.randomBytes(1024 * 1024)
  for (let i = 0; i < sizeMiB; i++) {
    block[0] = i & 0xff
    hash.update(block)
    await handle.write(block)
  }
  await handle.close()
  return hash.digest("hex")
}

const hashFile = async (file: string): Promise<string> => {
  const hash = Crypto.createHash("sha256")
  for await (const chunk of Fs.createReadStream(file)) hash.update(chunk as Buffer)
  return hash.digest("hex")
}

const endpointFor = async (scheme: string, dir: string): Promise<Endpoint.Endpoint> =>
  scheme === "tcp"
    ? new Endpoint.TcpEndpoint({ host: "127.0.0.1", port: await freePort() })
    : scheme === "framed"
    ? new Endpoint.FramedEndpoint({ host: "127.0.0.1", port: await freePort() })
    : scheme === "unix"
    ? new Endpoint.UnixEndpoint({ path: Path.join(dir, "big.sock") })
    : new Endpoint.FolderEndpoint({ path: Path.join(dir, "shared") })

const main = async () => {
  const work = Fs.mkdtempSync(Path.join(Os.tmpdir(), "troupe-soak-"))
  try {
    const source = Path.join(work, "source.bin")
    const expected = await writeFile(source)
    for (const scheme of schemes) {
      const dir = Fs.mkdtempSync(Path.join(work, `${scheme}-`))
      const endpoint = await endpointFor(scheme, dir)
      const result = await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
        const listener = yield* NetworkMailbox.listen(Message, endpoint, { spool: Path.join(dir, "l"), rescanMs: 100 })
        const connector = yield* NetworkMailbox.connect(Message, endpoint, { spool: Path.join(dir, "c"), rescanMs: 100 })
        const baseline = process.memoryUsage().rss
        let peak = baseline
        const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20)
        const t0 = performance.now()
        yield* (pull ? listener : connector).send({ name: "big" }, "big", { [source]: "big.bin" })
        const [delivery] = Chunk.toArray(yield* (pull ? connector : listener).messages.pipe(Stream.take(1), Stream.runCollect))
        const seconds = (performance.now() - t0) / 1000
        clearInterval(sampler)
        const received = delivery!.files.get("big.bin")!
        const ok = (yield* Effect.promise(() => hashFile(received))) === expected
        return { seconds, grewMb: (peak - baseline) / 2 ** 20, ok }
      })))
      process.stdout.write(
        `${scheme}: ${sizeMiB} MiB in ${result.seconds.toFixed(1)} s (${(sizeMiB / result.seconds).toFixed(0)} MiB/s), ` +
          `grew ${result.grewMb.toFixed(0)} MiB, checksum ${result.ok ? "ok" : "MISMATCH"}\n`
      )
      Fs.rmSync(dir, { recursive: true, force: true })
      if (!result.ok) process.exitCode = 1
    }
  } finally {
    Fs.rmSync(work, { recursive: true, force: true })
  }
}

void main()
