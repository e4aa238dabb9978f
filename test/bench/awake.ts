/**
 * Cores held out of idle. On this VM a core that has gone idle takes tens of microseconds to wake
 * (raw IPC round trip p50 ~150 µs from idle against ~30–37 µs with the cores busy, measured
 * 2026-12-01), which swamps any sequential round-trip latency. A latency section can be measured
 * both ways: as it comes, and with one spinning process per core at nice 19, which any real work
 * preempts (it gets ~1.5% of a core against a normal-priority process) but which keeps the cores
 * from sleeping, as a loaded server's cores are.
 */
import { spawn } from "node:child_process"
import type { ChildProcess } from "node:child_process"
import * as Os from "node:os"

/** Starts one nice-19 spinner per core; the returned function stops them. */
export const holdCoresAwake = async (): Promise<() => void> => {
  const spinners: Array<ChildProcess> = []
  for (let i = 0; i < Os.availableParallelism(); i++) {
    const child = spawn(process.execPath, ["-e", "for (;;) {}"], { stdio: "ignore" })
    await new Promise<void>((resolve, reject) => {
      child.once("spawn", () => resolve())
      child.once("error", reject)
    })
    Os.setPriority(child.pid!, 19)
    spinners.push(child)
  }
  const stop = () => {
    for (const child of spinners) child.kill("SIGKILL")
    process.off("exit", stop)
  }
  // A bench that fails must not leave spinners behind.
  process.on("exit", stop)
  return stop
}
