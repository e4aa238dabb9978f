/** Scratch: the framed transport without @effect/rpc: requests echoed by callbacks, 100 in flight, one process. */
import * as Effect from "effect/Effect"
import * as Endpoint from "../src/transport/Endpoint.js"
import * as FramedClient from "../src/transport/framed/FramedClient.js"
import * as FramedServer from "../src/transport/framed/FramedServer.js"

const program = Effect.gen(function*() {
  const endpoint = new Endpoint.FramedEndpoint({ host: "127.0.0.1", port: 37000 + Math.floor(Math.random() * 1000) })
  let server!: FramedServer.FramedServer
  server = yield* FramedServer.make(endpoint, {}, {
    onOpen: () => {},
    onEnd: () => {},
    onMessages: (clientId, messages) => {
      for (const m of messages as Array<any>) {
        server.send(clientId, { _tag: "Exit", requestId: m.id, exit: { _tag: "Success", value: m.payload.text } })
      }
    }
  })
  let done = 0
  let id = 0
  let end = 0
  let finish: () => void = () => {}
  const client: FramedClient.FramedClient = yield* FramedClient.make(endpoint, {}, {
    onSessionLost: () => {},
    onMessages: (messages) => {
      for (let i = 0; i < messages.length; i++) {
        done++
        if (performance.now() < end) send()
        else if (--inFlight === 0) finish()
      }
    }
  })
  let inFlight = 0
  const send = () => client.send({ _tag: "Request", id: String(id++), tag: "Echo", payload: { text: "x" }, headers: [] })
  for (const millis of [1000, 3000]) {
    done = 0
    end = performance.now() + millis
    const t0 = performance.now()
    yield* Effect.promise(() => new Promise<void>((resolve) => {
      finish = resolve
      inFlight = 100
      for (let i = 0; i < 100; i++) send()
    }))
    console.log(`raw framed, 100 in flight: ${(done / ((performance.now() - t0) / 1000)).toFixed(0)} msg/s (${((performance.now() - t0) * 1000 / done).toFixed(2)} µs per round trip, both sides)`)
  }
})
Effect.runPromise(Effect.scoped(program)).then(() => process.exit(0))
