// Shared helpers for tests that run real processes and sockets: temp dirs, free ports, the built CLI.
import { spawn, spawnSync } from "node:child_process"
import type { ChildProcess } from "node:child_process"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"

/** The repository root. */
export const root = Path.resolve(import.meta.dirname, "..", "..")

/** The built CLI entry; `npm test` builds it before vitest runs. */
export const cli = Path.join(root, "dist", "node.js")

/** A fresh temporary directory. */
export const tempDir = (prefix = "troupe-test-"): string => Fs.mkdtempSync(Path.join(Os.tmpdir(), prefix))

/** A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0, then released). */
export const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = Net.createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      server.close(() => resolve(port))
    })
  })

/** Resolves once something accepts connections at the tcp port or unix path, or rejects after `timeoutMs`. */
export const waitForListening = async (
  target: { readonly port: number } | { readonly path: string },
  timeoutMs = 20_000,
  alive: () => boolean = () => true
): Promise<void> => {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (!alive()) throw new Error("the server process exited before it was listening")
    if (await canConnect(target)) return
    await pause(50)
  }
  throw new Error(`nothing listening at ${JSON.stringify(target)} after ${timeoutMs} ms`)
}

/** True when a connection to the tcp port or unix path opens. */
export const canConnect = (target: { readonly port: number } | { readonly path: string }): Promise<boolean> =>
  new Promise((resolve) => {
    const socket = "port" in target ? Net.connect(target.port, "127.0.0.1") : Net.connect(target.path)
    socket.once("connect", () => {
      socket.destroy()
      resolve(true)
    })
    socket.once("error", () => resolve(false))
  })

/** Polls `check` until it returns a value other than undefined, or fails after `timeoutMs`. */
export const eventually = async <A>(
  check: () => Promise<A | undefined> | A | undefined,
  timeoutMs = 20_000,
  what = "condition"
): Promise<A> => {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    const value = await check()
    if (value !== undefined) return value
    await pause(50)
  }
  throw new Error(`timed out waiting for ${what}`)
}

/** The result of running the CLI to completion. */
export interface CliResult {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly stdout: string
  readonly stderr: string
}

/** Runs any command to its end, collecting its output; rejects when it runs past `timeoutMs` (then killed). */
export const runCommand = (
  command: string,
  args: ReadonlyArray<string>,
  options: { readonly cwd?: string; readonly env?: NodeJS.ProcessEnv; readonly timeoutMs?: number } = {}
): Promise<CliResult> =>
  new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: options.cwd ?? root, env: options.env ?? process.env, stdio: ["ignore", "pipe", "pipe"] })
    let stdout = ""
    let stderr = ""
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk))
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk))
    const timer = setTimeout(() => {
      child.kill("SIGKILL")
      reject(new Error(`${Path.basename(command)} ${args.join(" ")} did not finish in time; stderr: ${stderr}`))
    }, options.timeoutMs ?? 30_000)
    child.once("error", reject)
    child.once("close", (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, stdout, stderr })
    })
  })

/** Runs `node dist/node.js ...args` to completion. */
export const runCli = (
  args: ReadonlyArray<string>,
  options: { readonly cwd?: string; readonly env?: Record<string, string>; readonly timeoutMs?: number } = {}
): Promise<CliResult> =>
  runCommand(process.execPath, [cli, ...args], {
    ...options,
    env: { ...process.env, TROUPE_SERVER: "", ...options.env }
  })

/** Runs the CLI synchronously; for quick commands only. */
export const runCliSync = (args: ReadonlyArray<string>, cwd = root): CliResult => {
  const result = spawnSync(process.execPath, [cli, ...args], {
    cwd,
    env: { ...process.env, TROUPE_SERVER: "" },
    encoding: "utf8",
    timeout: 30_000
  })
  return { code: result.status, signal: result.signal, stdout: result.stdout, stderr: result.stderr }
}

/** A `--role=local` server process started by a test. */
export interface LocalServer {
  readonly url: string
  readonly port: number
  readonly db: string
  readonly dir: string
  readonly child: ChildProcess
  /** Everything the server wrote to stderr so far. */
  readonly stderr: () => string
  /** Sends a signal and resolves with the exit code once the process is gone. */
  readonly stop: (signal?: NodeJS.Signals) => Promise<number | null>
}

/** A `node dist/node.js --role=...` process started by a test, listening on a TCP port. */
export interface RoleProcess {
  readonly child: ChildProcess
  /** Everything the process wrote to stderr so far. */
  readonly stderr: () => string
  /** Resolves with the exit code once the process is gone. */
  readonly exited: Promise<number | null>
  /** Sends a signal and resolves with the exit code once the process is gone. */
  readonly stop: (signal?: NodeJS.Signals) => Promise<number | null>
}

/** Spawns `node dist/node.js ...args` and waits until something accepts connections on `port`. */
export const spawnRole = async (
  args: ReadonlyArray<string>,
  options: { readonly port: number; readonly cwd?: string; readonly env?: Record<string, string>; readonly timeoutMs?: number }
): Promise<RoleProcess> => {
  const child = spawn(process.execPath, [cli, ...args], {
    cwd: options.cwd ?? root,
    env: { ...process.env, TROUPE_SERVER: "", ...options.env },
    stdio: ["ignore", "ignore", "pipe"]
  })
  let stderr = ""
  child.stderr!.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk))
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)))
  let alive = true
  void exited.then(() => (alive = false))
  try {
    await waitForListening({ port: options.port }, options.timeoutMs ?? 30_000, () => alive)
  } catch (error) {
    child.kill("SIGKILL")
    throw new Error(`${String(error)}; stderr of ${args.join(" ")}:\n${stderr}`)
  }
  return {
    child,
    stderr: () => stderr,
    exited,
    stop: async (signal = "SIGTERM") => {
      if (alive) child.kill(signal)
      return exited
    }
  }
}

/** Starts `node dist/node.js --role=local` on a free port with a database in `dir`, and waits until it listens. */
export const startLocal = async (
  options: { readonly dir?: string; readonly extraArgs?: ReadonlyArray<string> } = {}
): Promise<LocalServer> => {
  const dir = options.dir ?? tempDir()
  const port = await freePort()
  const db = Path.join(dir, "t.db")
  const url = `tcp://127.0.0.1:${port}`
  const role = await spawnRole(["--role=local", "--db", db, "--listen", url, ...(options.extraArgs ?? [])], {
    port,
    cwd: dir
  })
  return { url, port, db, dir, child: role.child, stderr: role.stderr, stop: role.stop }
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
