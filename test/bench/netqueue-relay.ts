/**
 * The anchor of the Net Queue benchmark, run as its own process: a raw TCP relay with no parsing.
 *   node netqueue-relay.js PORT
 * The first connection is the sink; the bytes of every later connection are written to it as they
 * come (with backpressure). Prints "ready" once listening; exits when stdin closes.
 */
import * as Net from "node:net"

const port = Number(process.argv[2])
let sink: Net.Socket | undefined
const server = Net.createServer({ noDelay: true }, (socket) => {
  if (sink === undefined) {
    sink = socket
    return
  }
  const out = sink
  socket.on("data", (chunk) => {
    if (!out.write(chunk)) {
      socket.pause()
      out.once("drain", () => socket.resume())
    }
  })
  socket.on("error", () => {})
})
server.listen(port, "127.0.0.1", () => process.stdout.write("ready\n"))
process.stdin.on("close", () => process.exit(0))
process.stdin.resume()
