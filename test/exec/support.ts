// Real `--role=exec` server processes for the exec tests, and a TCP proxy that can cut connections.
import type { ChildProcess } from "node:child_process"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Path from "node:path"
import { freePort, spawnRole, tempDir } from "../integration/harness.js"

/** An exec server process started by a test. */
export interface ExecServer {
  readonly url: string
  readonly port: number
  /** Its --root. */
  readonly root: string
  readonly child: ChildProcess
  readonly stderr: () => string
  /** Resolves once the process is gone. */
  readonly exited: Promise<number | null>
  readonly stop: (signal?: NodeJS.Signals) => Promise<number | null>
}

/** Starts `node dist/node.js --role=exec` on a free port with a fresh root, and waits until it listens. */
export const startExec = async (extraArgs: ReadonlyArray<string> = []): Promise<ExecServer> => {
  const root = Fs.realpathSync(tempDir("troupe-exec-root-"))
  const port = await freePort()
  const url = `tcp://127.0.0.1:${port}`
  const role = await spawnRole(["--role=exec", "--listen", url, "--root", root, ...extraArgs], {
    port,
    cwd: root,
    env: { TROUPE_SECRET_FILE: "" }
  })
  return { url, port, root, ...role }
}

/** A TCP proxy to a port on 127.0.0.1 that counts the bytes it forwards and can cut every connection. */
export interface CuttingProxy {
  readonly port: number
  /** Bytes forwarded from clients to the server so far. */
  readonly upstreamBytes: () => number
  /** Destroys every open connection (both sides); new connections are still accepted. */
  readonly cut: () => void
  readonly close: () => Promise<void>
}

/** Starts a proxy to `targetPort`; `onBytes` sees the running count of client-to-server bytes. */
export const startProxy = async (targetPort: number, onBytes: (total: number) => void = () => undefined): Promise<CuttingProxy> => {
  const sockets = new Set<Net.Socket>()
  let upstream = 0
  const server = Net.createServer((client) => {
    const target = Net.connect(targetPort, "127.0.0.1")
    sockets.add(client)
    sockets.add(target)
    client.on("data", (data: Buffer) => {
      upstream += data.length
      onBytes(upstream)
    })
    client.pipe(target)
    target.pipe(client)
    const drop = () => {
      client.destroy()
      target.destroy()
      sockets.delete(client)
      sockets.delete(target)
    }
    client.on("error", drop).on("close", drop)
    target.on("error", drop).on("close", drop)
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const address = server.address() as Net.AddressInfo
  return {
    port: address.port,
    upstreamBytes: () => upstream,
    cut: () => {
      for (const socket of sockets) socket.destroy()
      sockets.clear()
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy()
        server.close(() => resolve())
      })
  }
}

/** The resident set of a process in bytes (Linux /proc), or undefined when it is gone. */
export const rssOf = (pid: number): number | undefined => {
  try {
    const status = Fs.readFileSync(`/proc/${pid}/status`, "utf8")
    const kb = /VmRSS:\s+(\d+)/.exec(status)?.[1]
    return kb === undefined ? undefined : Number(kb) * 1024
  } catch {
    return undefined
  }
}

/** True while a process exists (and is not a zombie). */
export const processAlive = (pid: number): boolean => {
  try {
    const stat = Fs.readFileSync(`/proc/${pid}/stat`, "utf8")
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3)
    return state !== "Z" && state !== "X"
  } catch {
    return false
  }
}

/** A file of `size` pseudo-random bytes in a fresh temp folder. */
export const randomFile = (size: number, name = "data.bin"): string => {
  const file = Path.join(tempDir("troupe-exec-local-"), name)
  const out = Fs.openSync(file, "w")
  const block = Buffer.alloc(1 << 20)
  let seed = 12345
  for (let written = 0; written < size;) {
    const n = Math.min(block.length, size - written)
    for (let i = 0; i < n; i += 4) {
      seed = (seed * 1103515245 + 12345) >>> 0
      block.writeUInt32LE(seed, i)
    }
    Fs.writeSync(out, block, 0, n)
    written += n
  }
  Fs.closeSync(out)
  return file
}
