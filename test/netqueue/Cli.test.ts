import { assert, describe, it } from "@effect/vitest"
import type { ChildProcess } from "node:child_process"
import { freePort, runCli, spawnRole } from "../integration/harness.js"

/** A `--role=queue` process started by a test. */
export interface QueueNodeProcess {
  readonly url: string
  readonly port: number
  readonly child: ChildProcess
  readonly stderr: () => string
  readonly stop: () => Promise<number | null>
}

/** Starts `node dist/node.js --role=queue` on a free port and waits until it listens. */
export const startQueueNode = async (args: ReadonlyArray<string> = []): Promise<QueueNodeProcess> => {
  const port = await freePort()
  const url = `framed://127.0.0.1:${port}`
  const role = await spawnRole(["--role=queue", "--listen", url, ...args], {
    port,
    env: { TROUPE_QUEUE_SERVER: "" },
    timeoutMs: 20_000
  })
  return { url, port, child: role.child, stderr: role.stderr, stop: () => role.stop() }
}

describe("troupe --role=queue and the queue commands", () => {
  it("enqueue at the root, dequeue at a child node, queue-status shows children; exit codes", async () => {
    const root = await startQueueNode(["--policy", "least-loaded"])
    const child = await startQueueNode(["--parent", root.url])
    try {
      // The child is a consumer of the root once its link is up.
      const status = await (async () => {
        for (let i = 0; i < 200; i++) {
          const result = await runCli(["queue-status", "--server", root.url, "--json"])
          const report = JSON.parse(result.stdout) as { children: Array<{ role: string; troupe: boolean }> }
          if (report.children.some((c) => c.role === "consumer" && c.troupe)) return report
        }
        throw new Error("the child node never showed up at the root")
      })()
      assert.strictEqual((status as unknown as { policy: string }).policy, "least-loaded")
      const enqueued = await runCli(["enqueue", "--server", root.url, "one", "two words", "thrée"])
      assert.strictEqual(enqueued.code, 0, enqueued.stderr)
      const dequeued = await runCli(["dequeue", "--server", child.url, "--count", "3", "--timeout", "10s"])
      assert.strictEqual(dequeued.code, 0, dequeued.stderr)
      assert.strictEqual(dequeued.stdout, "one\ntwo words\nthrée\n")
      const table = await runCli(["queue-status", "--server", child.url])
      assert.strictEqual(table.code, 0)
      assert.match(table.stdout, new RegExp(`parent +${root.url.replace(/[/.]/g, "\\$&")} \\(connected\\)`))
      assert.match(table.stdout, /ID +ADDRESS +ROLE +PROTOCOL +STATE +LOAD +IN-FLIGHT +WINDOW/)
      // Nothing left: a dequeue times out with exit code 3.
      const empty = await runCli(["dequeue", "--server", child.url, "--timeout", "200ms"])
      assert.strictEqual(empty.code, 3)
      assert.match(empty.stderr, /got 0 of 1 items before the timeout/)
    } finally {
      await child.stop()
      assert.strictEqual(await root.stop(), 0)
    }
    const unreachable = await runCli(["dequeue", "--server", root.url, "--timeout", "1s"])
    assert.strictEqual(unreachable.code, 2)
    const usage = await runCli(["enqueue", "--server", "tcp://127.0.0.1:1", "x"])
    assert.strictEqual(usage.code, 2)
    assert.match(usage.stderr, /framed:\/\/host:port only/)
  })

  it("refuses to listen beyond loopback without --insecure, and a bad policy is a usage error", async () => {
    const port = await freePort()
    const refused = await runCli(["--role=queue", "--listen", `framed://0.0.0.0:${port}`])
    assert.strictEqual(refused.code, 2)
    assert.match(refused.stderr, /no authentication.*--insecure/)
    const policy = await runCli(["--role=queue", "--listen", `framed://127.0.0.1:${port}`, "--policy", "fastest"])
    assert.strictEqual(policy.code, 2)
    assert.match(policy.stderr, /unknown policy "fastest"/)
  })
})
