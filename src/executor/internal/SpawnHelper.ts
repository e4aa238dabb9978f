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

process.on("message", (message: HelperRequest) => {
  if (message.t === "spawn") {
    const id = message.id
    handles.set(
      id,
      inProcess.spawn(message.request, {
        onError: (code, text) => send({ t: "error", id, code: code ?? null, message: text }),
        onSpawn: (pid) => send({ t: "spawned", id, pid }),
        onExit: (code, signal) => send({ t: "exit", id, code, signal }),
        onStreamsDone: () => {
          handles.delete(id)
          send({ t: "done", id })
        }
      })
    )
  } else if (message.t === "release") {
    handles.get(message.id)?.releaseStreams()
  }
})
process.on("disconnect", () => process.exit(0))
