/**
 * The entry of a module worker process. It says Hello on fd 3, imports the module it is told to
 * Load (TypeScript through tsx's loader), reports Ready with the module's help and the local files
 * it loaded, then runs calls: each Call is a plain function call and each answer one message, with
 * no runtime in between. Calls come from the server, and from the typed clients whose connections
 * the server handed over (direct routes, DirectWire.ts); at most the server's `Limit` run at once. Console output becomes JSON records on stdout for the server's log.
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
import { adoptedTag, adoptTag, Direct, type DirectReply, type DirectRequest, openTag } from "./DirectWire.js"
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
// calls: at most `limit` at once, the server's and the direct routes' alike, the rest waiting in order

/** Where a call's answer goes: the server's channel, or a direct route. */
interface Sink {
  readonly ok: (id: number, value: unknown) => void
  readonly fail: (id: number, reason: ModuleFailure, message: string, traceback: string) => void
}

/** A call waiting for a slot; a direct one is `moved` (answered, not run) when the worker retires. */
interface Waiting {
  readonly start: () => void
  readonly moved: (() => void) | undefined
}

// The server sets the limit once the worker is installed (Wire.ts): none run before.
let limit = 0
let running = 0
let waiting: Array<Waiting> = []
let waitingHead = 0
let retiring = false

const schedule = (start: () => void, moved?: () => void): void => {
  if (running < limit && waitingHead === waiting.length) {
    running++
    return start()
  }
  waiting.push({ start, moved })
}

const pump = (): void => {
  while (running < limit && waitingHead < waiting.length) {
    const next = waiting[waitingHead++]!
    running++
    next.start()
  }
  if (waitingHead === waiting.length) {
    waiting = []
    waitingHead = 0
  }
}

const finished = (): void => {
  running--
  const before = running
  pump()
  // A retiring worker tells the server of every slot it gives back, for the next generation to take.
  if (retiring && running === before) send([FromWorker.Freed])
  if (stopping) stopWhenIdle()
}

const invoke = (id: number, fn: string | null, args: ReadonlyArray<unknown>, clientIp: string, sink: Sink): void => {
  const current = shape!
  if (fn === "_help") {
    Promise.resolve()
      .then(() => current.ownHelp?.() ?? generatedHelp(spec!.name, current, spec!.dispatch, spec!.exportName))
      .then((help) => ok(sink, id, String(help)), (error) => failed(sink, id, "call-failed", error))
    return
  }
  let result: unknown
  try {
    if (spec!.dispatch !== null) {
      const dispatch = current.target?.[spec!.dispatch]
      if (typeof dispatch !== "function") {
        return refuse(sink, id, "unknown-function", `the dispatch method "${spec!.dispatch}" is not a function`)
      }
      result = dispatch.call(current.target, clientIp, fn, ...args)
    } else {
      const f = fn === null ? undefined : current.functions.get(fn)
      if (f === undefined) return refuse(sink, id, "unknown-function", `no function "${fn}" in ${spec!.name} (case matters)`)
      result = f.call(current.target, ...args)
    }
  } catch (error) {
    return failed(sink, id, "call-failed", error)
  }
  if (result !== null && typeof result === "object" && typeof (result as PromiseLike<unknown>).then === "function") {
    // As a real promise: a thenable that settles twice must not give its slot back twice.
    Promise.resolve(result).then((value) => ok(sink, id, value), (error) => failed(sink, id, "call-failed", error))
  } else ok(sink, id, result)
}

const ok = (sink: Sink, id: number, value: unknown): void => {
  finished()
  sink.ok(id, value)
}

const failed = (sink: Sink, id: number, reason: ModuleFailure, error: unknown): void => {
  finished()
  sink.fail(id, reason, describe(error), stackOf(error))
}

const refuse = (sink: Sink, id: number, reason: ModuleFailure, message: string): void => {
  finished()
  sink.fail(id, reason, message, "")
}

// A sink over one channel's two writes: a result that cannot be encoded is answered as bad-result.
const sinkOf = (
  writeOk: (id: number, value: unknown) => void,
  writeErr: Sink["fail"]
): Sink => ({
  ok: (id, value) => {
    try {
      writeOk(id, value)
    } catch (error) {
      writeErr(id, "bad-result", `the result cannot be sent back: ${describe(error)}`, "")
    }
  },
  fail: writeErr
})

const serverSink = sinkOf(
  (id, value) => writer.write([FromWorker.Ok, id, value]),
  (id, reason, message, traceback) => send([FromWorker.Err, id, reason, message, traceback])
)

// ---------------------------------------------------------------------------------------------
// direct routes: client connections the server handed over (DirectWire.ts)

interface Route {
  readonly socket: Net.Socket
  readonly writer: FrameWriter<DirectReply>
  readonly sink: Sink
}

const routes = new Set<Route>()

const adopt = (socket: Net.Socket, clientIp: string): Route => {
  socket.setNoDelay(true)
  // A client that vanished without closing is noticed, so that a stopping worker is not held up by it.
  socket.setKeepAlive(true, 15_000)
  const writer = new FrameWriter<DirectReply>(socket)
  const reply = (message: DirectReply): void => {
    try {
      writer.write(message)
    } catch {
      // only a result can fail to encode, and that is answered as bad-result below
    }
  }
  const route: Route = {
    socket,
    writer,
    sink: sinkOf(
      (id, value) => writer.write([Direct.Ok, id, value]),
      (id, reason, message, traceback) => reply([Direct.Err, id, reason, message, traceback])
    )
  }
  routes.add(route)
  const reader = new FrameReader<DirectRequest>((message) => {
    if (message[0] !== Direct.Call) return void socket.destroy()
    const id = message[1]
    if (retiring || shape === undefined) return reply([Direct.Moved, id])
    const fn = message[2]
    const args = message[3]
    schedule(() => invoke(id, fn, args, clientIp, route.sink), () => reply([Direct.Moved, id]))
  }, () => socket.destroy())
  socket.on("data", (chunk: Buffer) => reader.push(chunk))
  socket.on("error", () => {})
  socket.on("close", () => {
    routes.delete(route)
    if (stopping) stopWhenIdle()
  })
  socket.resume()
  return route
}

// Routes handed over whose client is not yet told (DirectWire.ts): Routed waits for the server's open.
const handedOver = new Map<unknown, Route>()

const open = (handover: unknown): void => {
  const route = handedOver.get(handover)
  if (route === undefined) return
  handedOver.delete(handover)
  if (route.socket.destroyed) return
  route.writer.write([Direct.Routed])
  if (retiring) route.writer.write([Direct.Retiring])
}

process.on("message", (message: unknown, handle: unknown) => {
  if (!Array.isArray(message)) return
  if (message[0] === adoptTag && handle instanceof Net.Socket) {
    const route = adopt(handle, String(message[1]))
    handedOver.set(message[2], route)
    route.socket.once("close", () => handedOver.delete(message[2]))
    process.send?.([adoptedTag, message[2]])
  } else if (message[0] === openTag) open(message[1])
})
process.channel?.unref()

// No new direct calls: the waiting ones are answered Moved (the client sends them through the server),
// every route is told, and the server hears how many calls still hold a slot.
const retire = (): void => {
  if (retiring) return
  retiring = true
  const keep: Array<Waiting> = []
  for (let i = waitingHead; i < waiting.length; i++) {
    const entry = waiting[i]!
    if (entry.moved === undefined) keep.push(entry)
    else entry.moved()
  }
  waiting = keep
  waitingHead = 0
  for (const route of routes) route.writer.write([Direct.Retiring])
  send([FromWorker.Retired, running])
}

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
let exiting = false

// Told to stop: no new direct calls; once the calls running here have ended and the clients of the
// direct routes have closed them (they do once their calls are answered), the module is disposed.
const stopWhenIdle = (): void => {
  if (running === 0 && waitingHead === waiting.length && routes.size === 0) void exit(0)
}

const exit = async (code: number): Promise<void> => {
  if (exiting) return
  exiting = true
  stopping = true
  for (const route of routes) route.socket.destroy()
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
    case ToWorker.Call: {
      if (shape === undefined) {
        return send([FromWorker.Err, message[1], "restarting", "the module is not loaded yet", ""])
      }
      const [, id, fn, args, clientIp] = message
      return schedule(() => invoke(id, fn, args, clientIp, serverSink))
    }
    case ToWorker.Load:
      return void load(message[1])
    case ToWorker.Limit:
      limit = message[1]
      return pump()
    case ToWorker.Retire:
      return retire()
    case ToWorker.Stop:
      stopping = true
      retire()
      return stopWhenIdle()
  }
}, (error) => {
  logError("bad message from the server:", error.message)
  process.exit(2)
})

channel.on("data", (chunk: Buffer) => reader.push(chunk))
// The server is gone (it closed the channel, or it died): there is nobody left to serve.
channel.on("end", () => void exit(0))
channel.on("error", () => void exit(0))
process.on("SIGTERM", () => void exit(0))
if (process.argv.includes("--typescript")) registerTypeScript().then(() => send([FromWorker.Hello]), () => send([FromWorker.Hello]))
else send([FromWorker.Hello])
