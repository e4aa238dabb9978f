/**
 * The entry of a module worker process. It says Hello on fd 3, imports the module it is told to
 * Load (TypeScript through tsx's loader), reports Ready with the module's help and the local files
 * it loaded, then runs calls: each Call is a plain function call and each answer one message, with
 * no runtime in between. Console output becomes JSON records on stdout for the server's log.
 * The worker exits when told to Stop (after the module's `dispose`), or when the server goes away.
 */
import { createRequire, register } from "node:module"
import * as Net from "node:net"
import * as Path from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"
import { MessageChannel } from "node:worker_threads"
import { format } from "node:util"
import { generatedHelp, prepare, type Shape } from "./Shape.js"
import type { ModuleFailure } from "../Errors.js"
import { FrameReader, FrameWriter, FromWorker, type FromWorkerMessage, type LoadSpec, ToWorker, type ToWorkerMessage } from "./Wire.js"

const channel = new Net.Socket({ fd: 3, readable: true, writable: true })
const writer = new FrameWriter<FromWorkerMessage>(channel)
const ownDir = Path.dirname(fileURLToPath(import.meta.url))

let shape: Shape | undefined
let spec: LoadSpec | undefined
let loading = false

// ---------------------------------------------------------------------------------------------
// console → JSON records on stdout (a record starts with the RS character, so that raw writes of
// the module to stdout stay apart)

const record = (level: string) => (...args: Array<unknown>) => {
  process.stdout.write(`\x1e${JSON.stringify({ level, msg: format(...args) })}\n`)
}
console.log = record("info")
console.info = record("info")
console.debug = record("debug")
console.trace = record("debug")
console.warn = record("warn")
console.error = record("error")
// The worker's own complaints go to the same log, without passing through the console it captured.
const logError = record("error")

// ---------------------------------------------------------------------------------------------
// the files the module loads: ESM resolutions reported by a loader hook, CommonJS from require.cache

const seen = new Set<string>()
const hookChannel = new MessageChannel()
hookChannel.port1.on("message", (url: string) => noteFile(url))
hookChannel.port1.unref()
register(
  "data:text/javascript," + encodeURIComponent(`
let port
export async function initialize(data) { port = data.port }
export async function resolve(specifier, context, next) {
  const result = await next(specifier, context)
  if (result.url.startsWith("file:")) port.postMessage(result.url)
  return result
}`),
  { data: { port: hookChannel.port2 }, transferList: [hookChannel.port2] }
)

const noteFile = (url: string): void => {
  const file = url.startsWith("file:") ? fileURLToPath(url) : url
  if (seen.has(file) || !isLocal(file)) return
  seen.add(file)
  if (shape !== undefined) send([FromWorker.Files, [file]])
}

const isLocal = (file: string): boolean =>
  Path.isAbsolute(file) && !file.includes(`${Path.sep}node_modules${Path.sep}`) && !file.startsWith(ownDir + Path.sep)

const requireCache = createRequire(import.meta.url).cache

const loadedFiles = (first: string): Array<string> => {
  for (const file of Object.keys(requireCache)) noteFile(file)
  return [first, ...Array.from(seen).filter((file) => file !== first)]
}

// ---------------------------------------------------------------------------------------------
// load

// TypeScript goes through tsx (its ESM and CommonJS hooks both: a .ts file outside a "type": "module"
// package is CommonJS to it). A spare worker started with --typescript registers it before saying Hello.
let typescript: Promise<void> | undefined
const registerTypeScript = (): Promise<void> => {
  if (process.env["TROUPE_WORKER_TSX"] === "preloaded") return Promise.resolve()
  return typescript ??= Promise.all([import("tsx/esm/api"), import("tsx/cjs/api")]).then(([esm, cjs]) => {
    cjs.register()
    esm.register({ onImport: noteFile })
  })
}

const load = async (next: LoadSpec): Promise<void> => {
  if (loading || shape !== undefined) return
  loading = true
  spec = next
  try {
    if (next.typescript) await registerTypeScript()
    const namespace = await import(pathToFileURL(next.file).href) as Record<string, unknown>
    const prepared = await prepare(namespace, next.exportName, next.file)
    // Nothing to call is a mistake (or a file caught half written): the old version had better go on serving.
    if (next.dispatch === null && prepared.functions.size === 0) {
      throw new Error(`export "${next.exportName}" of ${next.file} has no functions to call`)
    }
    const help = prepared.ownHelp === undefined
      ? generatedHelp(next.name, prepared, next.dispatch, next.exportName)
      : String(await prepared.ownHelp())
    // Let the loader hook's last reports arrive before the list is sent.
    await new Promise((resolve) => setImmediate(resolve))
    const files = loadedFiles(next.file)
    shape = prepared
    send([FromWorker.Ready, {
      kind: prepared.kind,
      functions: next.dispatch === null ? Array.from(prepared.functions.keys()) : [],
      help,
      files
    }])
  } catch (error) {
    send([FromWorker.LoadFailed, describe(error), stackOf(error), loadedFiles(next.file)])
    writer.flush()
    channel.end(() => process.exit(1))
  } finally {
    loading = false
  }
}

// ---------------------------------------------------------------------------------------------
// calls

const call = (id: number, fn: string | null, args: ReadonlyArray<unknown>, clientIp: string): void => {
  const current = shape!
  if (fn === "_help") {
    Promise.resolve()
      .then(() => current.ownHelp?.() ?? generatedHelp(spec!.name, current, spec!.dispatch, spec!.exportName))
      .then((help) => ok(id, String(help)), (error) => failed(id, "call-failed", error))
    return
  }
  let result: unknown
  try {
    if (spec!.dispatch !== null) {
      const dispatch = current.target?.[spec!.dispatch]
      if (typeof dispatch !== "function") {
        return send([FromWorker.Err, id, "unknown-function", `the dispatch method "${spec!.dispatch}" is not a function`, ""])
      }
      result = dispatch.call(current.target, clientIp, fn, ...args)
    } else {
      const f = fn === null ? undefined : current.functions.get(fn)
      if (f === undefined) {
        return send([FromWorker.Err, id, "unknown-function", `no function "${fn}" in ${spec!.name} (case matters)`, ""])
      }
      result = f.call(current.target, ...args)
    }
  } catch (error) {
    return failed(id, "call-failed", error)
  }
  if (result !== null && typeof result === "object" && typeof (result as PromiseLike<unknown>).then === "function") {
    ;(result as PromiseLike<unknown>).then((value) => ok(id, value), (error) => failed(id, "call-failed", error))
  } else ok(id, result)
}

const ok = (id: number, value: unknown): void => {
  try {
    writer.write([FromWorker.Ok, id, value])
  } catch (error) {
    send([FromWorker.Err, id, "bad-result", `the result cannot be sent back: ${describe(error)}`, ""])
  }
}

const failed = (id: number, reason: ModuleFailure, error: unknown): void =>
  send([FromWorker.Err, id, reason, describe(error), stackOf(error)])

const describe = (error: unknown): string =>
  error instanceof Error ? `${error.name}: ${error.message}` : typeof error === "string" ? error : format(error)

const stackOf = (error: unknown): string => (error instanceof Error && error.stack !== undefined ? error.stack : describe(error))

const send = (message: FromWorkerMessage): void => {
  try {
    writer.write(message)
  } catch {
    // Unreachable for the server's own messages; nothing better to do than drop it.
  }
}

// ---------------------------------------------------------------------------------------------
// stop

let stopping = false
const stop = async (code: number): Promise<void> => {
  if (stopping) return
  stopping = true
  try {
    await shape?.dispose?.()
  } catch (error) {
    logError("dispose failed:", error)
  }
  writer.flush()
  process.exit(code)
}

const reader = new FrameReader<ToWorkerMessage>((message) => {
  switch (message[0]) {
    case ToWorker.Call:
      if (shape === undefined) {
        return send([FromWorker.Err, message[1], "restarting", "the module is not loaded yet", ""])
      }
      return call(message[1], message[2], message[3], message[4])
    case ToWorker.Load:
      return void load(message[1])
    case ToWorker.Stop:
      return void stop(0)
  }
}, (error) => {
  logError("bad message from the server:", error.message)
  process.exit(2)
})

channel.on("data", (chunk: Buffer) => reader.push(chunk))
// The server is gone (it closed the channel, or it died): there is nobody left to serve.
channel.on("end", () => void stop(0))
channel.on("error", () => void stop(0))
process.on("SIGTERM", () => void stop(0))
if (process.argv.includes("--typescript")) registerTypeScript().then(() => send([FromWorker.Hello]), () => send([FromWorker.Hello]))
else send([FromWorker.Hello])
