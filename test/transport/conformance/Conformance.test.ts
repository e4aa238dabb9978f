import * as RpcSerialization from "@effect/rpc/RpcSerialization"
import * as Crypto from "node:crypto"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Path from "node:path"
import * as Endpoint from "../../../src/transport/Endpoint.js"
import * as FolderRpc from "../../../src/transport/folder/FolderRpc.js"
import { freePort, tempDir } from "../../integration/harness.js"
import { conformance } from "./suite.js"

// Opens a raw connection to a socket endpoint, writes the bytes, and closes it once they are sent.
const sendRaw = (endpoint: Endpoint.Endpoint, bytes: Uint8Array): Promise<void> =>
  new Promise((resolve) => {
    const options = endpoint._tag === "Unix"
      ? { path: endpoint.path }
      : { host: (endpoint as Endpoint.TcpEndpoint).host, port: (endpoint as Endpoint.TcpEndpoint).port }
    const socket = Net.createConnection(options, () => socket.end(bytes, () => socket.destroy()))
    socket.on("close", () => resolve())
    socket.on("error", () => resolve())
  })

const framedEndpoint = (endpoint: Endpoint.Endpoint) => {
  const { host, port } = endpoint as Endpoint.FramedEndpoint
  return new Endpoint.TcpEndpoint({ host, port })
}

const halfARequest = (): Uint8Array => {
  const whole = RpcSerialization.msgPack.unsafeMake().encode({
    _tag: "Request",
    id: "1",
    tag: "Echo",
    payload: { text: "x".repeat(1000) },
    headers: []
  }) as Uint8Array
  return whole.subarray(0, whole.length >> 1)
}

conformance({
  name: "tcp",
  endpoint: async () => new Endpoint.TcpEndpoint({ host: "127.0.0.1", port: await freePort() }),
  garbage: (endpoint) => sendRaw(endpoint, Crypto.randomBytes(64 * 1024)),
  dieMidMessage: (endpoint) => sendRaw(endpoint, halfARequest())
})

conformance({
  name: "unix",
  endpoint: async () => new Endpoint.UnixEndpoint({ path: Path.join(tempDir(), "conformance.sock") }),
  garbage: (endpoint) => sendRaw(endpoint, Crypto.randomBytes(64 * 1024)),
  dieMidMessage: (endpoint) => sendRaw(endpoint, halfARequest())
})

conformance({
  name: "framed",
  endpoint: async () => new Endpoint.FramedEndpoint({ host: "127.0.0.1", port: await freePort() }),
  garbage: (endpoint) => sendRaw(framedEndpoint(endpoint), Crypto.randomBytes(64 * 1024)),
  // A frame header that promises 1 MiB, then half of it.
  dieMidMessage: (endpoint) => {
    const frame = Buffer.alloc(6 + 512 * 1024)
    frame.writeInt32BE(2 + 1024 * 1024, 0)
    frame.writeInt16BE(16, 4)
    return sendRaw(framedEndpoint(endpoint), frame)
  }
})

// A folder server's garbage is files: junk, a stray name, and a torn message as a dying writer leaves it.
const toServer = (endpoint: Endpoint.Endpoint): string => FolderRpc.layout((endpoint as Endpoint.FolderEndpoint).path).toServer

conformance({
  name: "folder",
  endpoint: async () => new Endpoint.FolderEndpoint({ path: tempDir("troupe-conf-folder-") }),
  garbage: async (endpoint) => {
    Fs.mkdirSync(toServer(endpoint), { recursive: true })
    Fs.writeFileSync(Path.join(toServer(endpoint), "zzzz-000000000001.msg"), Crypto.randomBytes(4096))
    Fs.writeFileSync(Path.join(toServer(endpoint), "not-a-message.txt"), "hello")
  },
  dieMidMessage: async (endpoint) => {
    Fs.mkdirSync(toServer(endpoint), { recursive: true })
    Fs.writeFileSync(Path.join(toServer(endpoint), "yyyy-000000000001.msg"), halfARequest())
  },
  slowMs: 120_000
})
