import { type ChildProcess, fork } from "node:child_process"
import { fileURLToPath } from "node:url"
import { signalGroup } from "./processGroup.js"
import type { SpawnEvents, Spawner, SpawnRequest } from "./Spawner.js"

/** A message from the runtime to the spawn helper. */
export type HelperRequest =
  | {
    readonly t: "spawn"
    readonly id: number
    /** Without `env` when `sameEnv`: the environment is the one last sent. */
    readonly request: SpawnRequest
    /** The environment, when it differs from the last one sent. */
    readonly env?: Readonly<Record<string, string>>
    readonly sameEnv?: boolean
  }
  | { readonly t: "release"; readonly id: number }

/** A message from the spawn helper to the runtime. */
export type HelperReply =
  | { readonly t: "error"; readonly id: number; readonly code: string | null; readonly message: string }
  | { readonly t: "spawned"; readonly id: number; readonly pid: number }
  | { readonly t: "exit"; readonly id: number; readonly code: number | null; readonly signal: string | null }
  | { readonly t: "done"; readonly id: number }
  /** Exit and closed streams together: the common end of a job, in one message. */
  | { readonly t: "end"; readonly id: number; readonly code: number | null; readonly signal: string | null }

// Every fork copies the helper's page tables and every page it writes afterwards takes a
// copy-on-write fault: a small young generation and no V8 background threads keep both low
// (measured: `true` jobs in 2 submit → wait loops 631–635/s → 649–721/s, docs/BENCHMARKS.md).
const helperFlags = ["--single-threaded", "--max-semi-space-size=1"]

/**
 * Spawns through a helper process (started on first use, restarted after a crash). The channel
 * holds the runtime's event loop open only while processes are running.
 */
export const make = (): Spawner & { readonly helperPid: () => number | undefined; readonly load: () => number } => {
  let helper: ChildProcess | undefined
  let nextId = 1
  // An entry leaves when both its end (exit or error) and its streams' end have arrived, in either order.
  const active = new Map<number, { readonly events: SpawnEvents; pid: number | undefined; ended: boolean; drained: boolean }>()

  const start = (): ChildProcess => {
    // Under the test runner this module is TypeScript: the helper then needs the same loader.
    const fromSource = import.meta.url.endsWith(".ts")
    const script = fileURLToPath(new URL(fromSource ? "./SpawnHelper.ts" : "./SpawnHelper.js", import.meta.url))
    const child = fork(script, [], {
      execArgv: fromSource ? ["--import", "tsx", ...helperFlags] : helperFlags,
      stdio: ["ignore", "inherit", "inherit", "ipc"],
      serialization: "json"
    })
    child.on("message", (reply: HelperReply) => receive(reply))
    child.on("exit", () => {
      if (helper === child) helper = undefined
      orphan()
    })
    child.on("error", () => {})
    return child
  }

  const receive = (reply: HelperReply) => {
    const entry = active.get(reply.id)
    if (entry === undefined) return
    switch (reply.t) {
      case "error":
        entry.ended = true
        entry.events.onError(reply.code ?? undefined, reply.message)
        break
      case "spawned":
        entry.pid = reply.pid
        entry.events.onSpawn(reply.pid)
        break
      case "exit":
        entry.ended = true
        entry.events.onExit(reply.code, reply.signal)
        break
      case "done":
        entry.drained = true
        entry.events.onStreamsDone()
        break
      case "end":
        entry.ended = true
        entry.drained = true
        entry.events.onExit(reply.code, reply.signal)
        entry.events.onStreamsDone()
        break
    }
    if (entry.ended && entry.drained) {
      active.delete(reply.id)
      idle()
    }
  }

  // The helper died: its jobs can no longer be watched, so they are ended and reported as killed.
  const orphan = () => {
    const entries = Array.from(active.values())
    active.clear()
    for (const entry of entries) {
      if (!entry.ended) {
        if (entry.pid === undefined) entry.events.onError(undefined, "the spawn helper stopped before the process started")
        else {
          signalGroup(entry.pid, "SIGKILL")
          entry.events.onExit(null, "SIGKILL")
        }
      }
      if (!entry.drained) entry.events.onStreamsDone()
    }
  }

  // Keep the event loop alive only while something runs.
  const busy = (child: ChildProcess) => {
    child.ref()
    child.channel?.ref()
  }
  const idle = () => {
    if (active.size > 0 || helper === undefined) return
    helper.unref()
    helper.channel?.unref()
  }

  // The environment last sent to the current helper, and its text, to send it only when it changes.
  let sentEnv: { readonly helper: ChildProcess; readonly text: string } | undefined

  const send = (request: HelperRequest) => {
    helper ??= start()
    busy(helper)
    helper.send(request)
  }

  const spawnMessage = (id: number, request: SpawnRequest): HelperRequest => {
    helper ??= start()
    if (request.env === undefined) return { t: "spawn", id, request }
    const { env, ...rest } = request
    const text = JSON.stringify(env)
    if (sentEnv !== undefined && sentEnv.helper === helper && sentEnv.text === text) {
      return { t: "spawn", id, request: rest, sameEnv: true }
    }
    sentEnv = { helper, text }
    return { t: "spawn", id, request: rest, env }
  }

  return {
    spawn: (request, events) => {
      const id = nextId++
      active.set(id, { events, pid: undefined, ended: false, drained: false })
      send(spawnMessage(id, request))
      return {
        releaseStreams: () => {
          if (active.has(id) && helper !== undefined) helper.send({ t: "release", id })
        }
      }
    },
    helperPid: () => helper?.pid,
    load: () => active.size,
    close: () => {
      const child = helper
      helper = undefined
      if (child !== undefined && child.connected) child.disconnect()
    }
  }
}

/** Several helpers; each spawn goes to the least busy one, so that forks run side by side. */
export const makePool = (size: number): Spawner => {
  const helpers = Array.from({ length: Math.max(1, size) }, make)
  return {
    spawn: (request, events) => {
      let best = helpers[0]!
      for (const helper of helpers) if (helper.load() < best.load()) best = helper
      return best.spawn(request, events)
    },
    close: () => helpers.forEach((helper) => helper.close())
  }
}
