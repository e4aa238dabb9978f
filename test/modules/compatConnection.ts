// A keep-alive connection of the original module server protocol (hello, then calls one at a
// time), for the tests and the modules benchmark. No side effects on import: the benchmark uses it.
import * as Net from "node:net"
import * as Compat from "../../src/modules/Compat.js"

/** Opens a connection to `module` on the compat listener at 127.0.0.1:`port` and says hello. */
export const compatConnection = async (port: number, module: string) => {
  const socket = Net.connect(port, "127.0.0.1")
  socket.setNoDelay(true)
  const decoder = new Compat.LineDecoder(1 << 20)
  const waiting: Array<(value: unknown) => void> = []
  socket.on("data", (chunk: Buffer) => {
    for (const line of decoder.push(chunk) as Array<Buffer>) {
      const decoded = Compat.decode(line)
      // A reply that does not decode is handed over as the decoder's verdict, for the caller to see.
      waiting.shift()?.(decoded._tag === "Message" ? (decoded.value as { response: unknown }).response : decoded)
    }
  })
  const send = (value: unknown) =>
    new Promise<unknown>((resolve) => {
      waiting.push(resolve)
      socket.write(Compat.encode(value))
    })
  await new Promise<void>((resolve) => socket.once("connect", () => resolve()))
  const ack = await send({ name: module })
  if (ack !== "ack") throw new Error(`compat hello answered ${JSON.stringify(ack)}`)
  return {
    /** Calls `fn(...args)` and resolves with the reply's `response`. */
    call: (fn: string, args: ReadonlyArray<unknown>) => send({ function: fn, args, keep_alive: true }),
    close: () => socket.destroy()
  }
}
