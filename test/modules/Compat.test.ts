import { assert, describe, it } from "@effect/vitest"
import { spawnSync } from "node:child_process"
import * as Compat from "../../src/modules/Compat.js"

// Python's own quote_plus(json.dumps(v)) for each value, one line each, from JSON on stdin.
const python = (values: ReadonlyArray<unknown>): Array<string> => {
  const script = [
    "import json, sys, urllib.parse",
    "for line in sys.stdin.read().splitlines():",
    "    print(urllib.parse.quote_plus(json.dumps(json.loads(line))))"
  ].join("\n")
  const result = spawnSync("python3", ["-c", script], {
    input: values.map((v) => JSON.stringify(v)).join("\n") + "\n",
    encoding: "utf8"
  })
  assert.strictEqual(result.status, 0, result.stderr)
  return result.stdout.split("\n").slice(0, values.length)
}

describe("the original line protocol (Compat)", () => {
  it("encodes byte for byte as Python's quote_plus(json.dumps(obj))", () => {
    const values: Array<unknown> = [
      { name: "_ping" },
      { name: null },
      { function: "foo", args: ["ay", 1, false, null], keep_alive: true },
      { response: ["127.0.0.1", 5555], error: false, traceback: "" },
      "space and + plus, %percent, ~tilde_under-dash.dot",
      "é ünïcödé 中文 😀 \u0001 \u007f \t\n\r\b\f \"quote\" \\back",
      [1.5, -0.25, 1e-7, 1.5e-5, 0.0001, 123456789.125, 1e16, 1.2345e100, 2 ** 60, -3, 0, 1e21],
      { nested: { list: [[], {}, [[]]], "key with space": "v" } },
      "!*'();:@&=+$,/?#[]"
    ]
    const expected = python(values)
    values.forEach((value, i) => {
      assert.strictEqual(Compat.quotePlus(Compat.pythonJson(value)), expected[i], `value ${i}: ${JSON.stringify(value)}`)
      assert.strictEqual(Compat.encode(value).toString("latin1"), expected[i] + "\n")
    })
  })

  it("writes NaN and Infinity as Python does, and refuses cycles", () => {
    assert.strictEqual(Compat.pythonJson([NaN, Infinity, -Infinity]), "[NaN, Infinity, -Infinity]")
    const cycle: Record<string, unknown> = {}
    cycle["self"] = cycle
    assert.throws(() => Compat.pythonJson(cycle), /Circular/)
  })

  it("builds the reply envelope with response, error and traceback in that order", () => {
    assert.strictEqual(Compat.unquotePlus(Compat.reply("ack").toString().trimEnd()), `{"response": "ack", "error": false, "traceback": ""}`)
    assert.strictEqual(
      Compat.unquotePlus(Compat.errorReply("boom").toString().trimEnd()),
      `{"response": "", "error": true, "traceback": "boom"}`
    )
  })

  it("decodes any valid JSON, quoted or not, and reports what is not JSON or not UTF-8", () => {
    const decoded = Compat.decode(Buffer.from(Compat.quotePlus(`{"a": [1, 2.5, "x y"], "b": null}`)))
    assert.deepStrictEqual(decoded, { _tag: "Message", value: { a: [1, 2.5, "x y"], b: null } })
    assert.deepStrictEqual(Compat.decode(Buffer.from(`{"compact":true}`)), { _tag: "Message", value: { compact: true } })
    // %-escapes of UTF-8 bytes, and a bad escape kept literally (as Python's unquote does).
    assert.deepStrictEqual(Compat.decode(Buffer.from("%22%C3%A9%zz%22")), { _tag: "Message", value: "é%zz" })
    const notJson = Compat.decode(Buffer.from("hello+world"))
    assert.strictEqual(notJson._tag, "Invalid")
    assert.strictEqual(notJson._tag === "Invalid" && notJson.reason, "json")
    const notUtf8 = Compat.decode(Buffer.from([0x22, 0xff, 0xfe, 0x22]))
    assert.strictEqual(notUtf8._tag === "Invalid" && notUtf8.reason, "utf8")
  })

  it("splits lines whatever the reads, including inside a %XX escape", () => {
    const messages = [{ name: "mod é" }, { function: "f", args: ["a b", 1], keep_alive: true }]
    const wire = Buffer.concat(messages.map((m) => Compat.encode(m)))
    assert.include(wire.toString(), "%5Cu00e9")
    // Every split point, and one byte per read.
    for (let cut = 0; cut <= wire.length; cut++) {
      const decoder = new Compat.LineDecoder(1024)
      const lines = [...decoder.push(wire.subarray(0, cut)) as Array<Buffer>, ...decoder.push(wire.subarray(cut)) as Array<Buffer>]
      assert.deepStrictEqual(lines.map((l) => (Compat.decode(l) as { value: unknown }).value), messages, `cut at ${cut}`)
    }
    const decoder = new Compat.LineDecoder(1024)
    const lines: Array<Buffer> = []
    for (const byte of wire) lines.push(...decoder.push(Buffer.from([byte])) as Array<Buffer>)
    assert.deepStrictEqual(lines.map((l) => (Compat.decode(l) as { value: unknown }).value), messages)
    assert.isFalse(decoder.partial)
  })

  it("reports a line over the limit, whether or not its newline has come", () => {
    const decoder = new Compat.LineDecoder(10)
    assert.deepStrictEqual(decoder.push(Buffer.from("0123456789")), [])
    assert.strictEqual(decoder.push(Buffer.from("a")), "overlong")
    assert.strictEqual(new Compat.LineDecoder(4).push(Buffer.from("12345\n")), "overlong")
    assert.deepStrictEqual(new Compat.LineDecoder(4).push(Buffer.from("1234\n")).toString(), "1234")
  })
})
