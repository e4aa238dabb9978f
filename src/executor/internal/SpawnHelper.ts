/**
 * The spawn helper: a small process that starts job processes for the runtime, so that `fork`
 * runs on another core and copies a small address space. It speaks the messages of
 * `HelperSpawner` over the IPC channel and exits when the runtime goes away.
 */
import type { SpawnedProcess } from "./Spawner.js"
import { inProcess } from "./Spawner.js"
import type { HelperReply, HelperRequest } from "./HelperSpawner.js"

const handles = new Map<number, SpawnedProcess>()
const send = (reply: HelperReply) => {
  if (process.connected) process.send!(reply)
}
// The environment of the last spawn: the runtime sends it again only when it changes.
let lastEnv: Readonly<Record<string, string>> | undefined

// A process that exits with its streams closed soon after is reported by one message; a process
// whose pipes stay open (a child left in the background) has its exit reported at once after a moment.
const exitAloneAfterMs = 20

process.on("message", (message: HelperRequest) => {
  if (message.t === "spawn") {
    const id = message.id
    if (message.env !== undefined) lastEnv = message.env
    const env = message.sameEnv === true ? lastEnv : message.env
    const request = env === undefined ? message.request : { ...message.request, env }
    let exit: { readonly code: number | null; readonly signal: string | null } | undefined
    let exitSent = false
    let drained = false
    let timer: NodeJS.Timeout | undefined
    const sendExit = () => {
      if (exitSent || exit === undefined) return
      exitSent = true
      send({ t: "exit", id, code: exit.code, signal: exit.signal })
    }
    handles.set(
      id,
      inProcess.spawn(request, {
        onError: (code, text) => {
          exitSent = true
          send({ t: "error", id, code: code ?? null, message: text })
          if (drained) {
            handles.delete(id)
            send({ t: "done", id })
          }
        },
        onSpawn: (pid) => send({ t: "spawned", id, pid }),
        onExit: (code, signal) => {
          exit = { code, signal }
          if (drained) {
            exitSent = true
            handles.delete(id)
            send({ t: "end", id, code, signal })
          } else timer = setTimeout(sendExit, exitAloneAfterMs)
        },
        onStreamsDone: () => {
          drained = true
          if (exit === undefined && !exitSent) return
          clearTimeout(timer)
          handles.delete(id)
          if (exitSent) send({ t: "done", id })
          else {
            exitSent = true
            send({ t: "end", id, code: exit!.code, signal: exit!.signal })
          }
        }
      })
    )
  } else if (message.t === "release") {
    handles.get(message.id)?.releaseStreams()
  }
})
process.on("disconnect", () => process.exit(0))
