import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Endpoint from "../../src/transport/Endpoint.js"

describe("Endpoint", () => {
  it("parses tcp URLs, including IPv6 hosts", () => {
    assert.deepStrictEqual(
      Endpoint.parseEither("tcp://127.0.0.1:7878"),
      Either.right(new Endpoint.TcpEndpoint({ host: "127.0.0.1", port: 7878 }))
    )
    assert.deepStrictEqual(
      Endpoint.parseEither("tcp://[::1]:80"),
      Either.right(new Endpoint.TcpEndpoint({ host: "::1", port: 80 }))
    )
    assert.deepStrictEqual(
      Endpoint.parseEither("tcp://example.org:1/"),
      Either.right(new Endpoint.TcpEndpoint({ host: "example.org", port: 1 }))
    )
  })

  it("parses unix URLs with absolute paths", () => {
    assert.deepStrictEqual(
      Endpoint.parseEither("unix:///run/troupe.sock"),
      Either.right(new Endpoint.UnixEndpoint({ path: "/run/troupe.sock" }))
    )
  })

  it("formats back to the same URL", () => {
    for (const url of ["tcp://127.0.0.1:7878", "tcp://[::1]:80", "unix:///tmp/a b.sock"]) {
      const endpoint = Either.getOrThrow(Endpoint.parseEither(url))
      assert.strictEqual(Endpoint.format(endpoint), url)
    }
  })

  it.effect("rejects other schemes with a typed error naming the supported ones", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Endpoint.parse("http://127.0.0.1:80"))
      assert.strictEqual(error._tag, "InvalidEndpoint")
      assert.strictEqual(error.url, "http://127.0.0.1:80")
      assert.include(error.message, "unsupported scheme \"http\"")
      assert.include(error.message, "tcp://")
      assert.include(error.message, "unix://")
    }))

  it("rejects malformed URLs", () => {
    for (const url of ["127.0.0.1:7878", "tcp://127.0.0.1", "tcp://host:99999", "unix://relative.sock", "tcp://:80"]) {
      const result = Endpoint.parseEither(url)
      assert.isTrue(Either.isLeft(result), url)
    }
  })

  it("tells local endpoints from remote ones", () => {
    assert.isTrue(Endpoint.isLocal(new Endpoint.TcpEndpoint({ host: "127.0.0.1", port: 1 })))
    assert.isTrue(Endpoint.isLocal(new Endpoint.UnixEndpoint({ path: "/tmp/x.sock" })))
    assert.isFalse(Endpoint.isLocal(new Endpoint.TcpEndpoint({ host: "0.0.0.0", port: 1 })))
  })
})
