/**
 * The server half of the transport benchmark, run as its own process:
 *   node transport-server.js troupe <url>       an echo RpcGroup on any Troupe transport
 *   node transport-server.js raw <port>         a raw Node TCP echo of length-prefixed messages
 *   node transport-server.js moleculer <port> <clientPort>   a Moleculer 0.14 broker, TCP transporter
 * It prints "ready" on stdout once it accepts requests, and exits when stdin closes.
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Net from "node:net"
import * as Endpoint from "../../src/transport/Endpoint.js"
import * as Transport from "../../src/transport/Transport.js"
import { EchoRpc } from "./transport-rpc.js"

const [kind, where, extra] = process.argv.slice(2)

const ready = () => process.stdout.write("ready\n")
process.stdin.on("close", () => process.exit(0))
process.stdin.resume()

const troupe = async (url: string) => {
  const endpoint = Effect.runSync(Endpoint.parse(url))
  const handlers = EchoRpc.toLayer({ Echo: ({ data }) => Effect.succeed(data) })
  await Effect.runPromise(
    Layer.launch(
      Transport.layerServer(EchoRpc, endpoint).pipe(
        Layer.provide(handlers),
        Layer.tap(() => Effect.sync(ready))
      )
    )
  )
}

// Each message is a 4-byte length and that many bytes; the server sends every message straight back.
const raw = (port: number) => {
  const server = Net.createServer({ noDelay: true }, (socket) => {
    socket.on("data", (chunk) => socket.write(chunk))
  })
  server.listen(port, "127.0.0.1", ready)
}

const moleculer = async (port: number, clientPort: number) => {
  const { ServiceBroker } = await import("moleculer")
  const broker = new ServiceBroker({
    nodeID: "server",
    logger: false,
    transporter: {
      type: "TCP",
      options: {
        udpDiscovery: false,
        port,
        urls: [`127.0.0.1:${port}/server`, `127.0.0.1:${clientPort}/client`]
      }
    }
  })
  broker.createService({ name: "echo", actions: { echo: (ctx: { params: { data: string } }) => ctx.params.data } })
  await broker.start()
  ready()
}

if (kind === "troupe") void troupe(where!)
else if (kind === "raw") raw(Number(where))
else if (kind === "moleculer") void moleculer(Number(where), Number(extra))
else {
  process.stderr.write(`unknown server kind ${kind}\n`)
  process.exit(2)
}
