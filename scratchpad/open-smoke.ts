import * as Schema from "effect/Schema"
import * as Troupe from "../src/Troupe.js"

const t = await Troupe.open({ database: "/tmp/os/t.db", functions: { add: Troupe.defineFunction({ args: Schema.Tuple(Schema.Number, Schema.Number), success: Schema.Number, run: ([a, b]) => a + b }) } })
const a = await t.submit({ fn: "add", args: [1, 2] })
const b = await t.submit({ command: ["sh", "-c", "echo hello; exit 3"], after: [a] })
const c = await t.submit({ command: "sleep 30" })
console.log(await t.wait([a, b]))
const chunks: Array<string> = []
for await (const chunk of t.output(b, "stdout")) chunks.push(Buffer.from(chunk).toString())
console.log("stdout:", JSON.stringify(chunks.join("")))
console.log("killed", await t.kill([c]), (await t.get(c)).state)
try { await t.get("nope") } catch (e) { console.log("error:", (e as any)._tag, (e as any).message) }
try { await t.submit({ command: ["does-not-exist-xyz"] }) } catch (e) { console.log("error:", (e as any)._tag, (e as any).message) }
try { await t.submit({ command: ["true"], after: ["zzz"] as any }) } catch (e) { console.log("error:", (e as any)._tag, (e as any).message) }
console.log(await t.queues())
await t.close()
