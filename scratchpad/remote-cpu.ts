// CPU per `true` job of the local role, the remote role and their spawn helpers, local executor vs
// remote over framed:// (the wall rate on a shared 2-core machine is noisy; CPU per job is steadier).
import { spawn } from "node:child_process"
import type { ChildProcess } from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { connectJobs, type SubmitInput } from "../src/client/index.js"
import { freePort, tempDir } from "../test/bench/lib.js"

const cli = Path.resolve("dist/node.js")
const jobsN = Number(process.env.N ?? 400)
const tick = 100 // USER_HZ

const startRole = (args: ReadonlyArray<string>, cwd: string): Promise<ChildProcess> =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...(process.env.PROF ? ["--cpu-prof", `--cpu-prof-dir=${process.env.PROF}`] : []), cli, ...args], { cwd, stdio: ["ignore", "ignore", "pipe"] })
    let seen = ""
    child.stderr!.on("data", (c: Buffer) => {
      seen += c.toString()
      if (seen.includes("listening on")) resolve(child)
    })
    child.once("exit", (code) => reject(new Error(`exited ${code}: ${seen}`)))
  })

const descendants = (pid: number): Array<number> => {
  const out = [pid]
  try {
    for (const t of Fs.readdirSync(`/proc/${pid}/task`)) {
      const kids = Fs.readFileSync(`/proc/${pid}/task/${t}/children`, "utf8").trim()
      if (kids) for (const k of kids.split(" ")) out.push(...descendants(Number(k)))
    }
  } catch {}
  return out
}
// utime+stime+cutime+cstime in ms of a process tree (reaped children counted through c*time).
const cpu = (pid: number) => {
  let total = 0
  for (const p of descendants(pid)) {
    try {
      const f = Fs.readFileSync(`/proc/${p}/stat`, "utf8").split(") ")[1]!.split(" ")
      total += (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) * (1000 / tick)
    } catch {}
  }
  return total
}

// CPU ms of each thread of one process, by thread name (main thread, libuv pool, V8 workers).
const threads = (pid: number) => {
  const out = new Map<string, number>()
  for (const t of Fs.readdirSync(`/proc/${pid}/task`)) {
    try {
      const [head, rest] = Fs.readFileSync(`/proc/${pid}/task/${t}/stat`, "utf8").split(") ")
      const name = Number(t) === pid ? "main" : head!.split(" (")[1]!
      const f = rest!.split(" ")
      out.set(name, (out.get(name) ?? 0) + (Number(f[11]) + Number(f[12])) * (1000 / tick))
    } catch {}
  }
  return out
}
const diff = (a: Map<string, number>, b: Map<string, number>, n: number) =>
  [...b].map(([k, v]) => `${k}=${((v - (a.get(k) ?? 0)) / n).toFixed(2)}`).join(" ")

const main = async () => {
  const dir = tempDir("remote-cpu-")
  const remoteUrl = `framed://127.0.0.1:${await freePort()}`
  const localUrl = `tcp://127.0.0.1:${await freePort()}`
  const remote = await startRole(["--role=remote", "--listen", remoteUrl, "--workdir", Path.join(dir.dir, "remote")], dir.dir)
  const local = await startRole(["--role=local", "--db", Path.join(dir.dir, "t.db"), "--listen", localUrl, "--remote", `box=${remoteUrl}`], dir.dir)
  const jobs = await connectJobs(localUrl)
  const tracers: Array<ChildProcess> = []
  const phase = async (label: string, on: string | undefined) => {
    const spec: SubmitInput = on === undefined ? { command: ["true"] } : { command: ["true"], on }
    await jobs.wait(await jobs.submitMany(Array.from({ length: 50 }, () => spec)))
    if (process.env.STRACE && on !== undefined) {
      for (const [who, pid] of [["local", local.pid!], ["remote", remote.pid!]] as const) {
        tracers.push(spawn("strace", ["-f", "-c", "-o", `/tmp/strace-${who}.txt`, "-p", String(pid)], { stdio: "ignore" }))
      }
      await new Promise((r) => setTimeout(r, 1000))
    }
    const lt0 = threads(local.pid!), rt0 = threads(remote.pid!)
    const l0 = cpu(local.pid!), r0 = cpu(remote.pid!), me0 = process.cpuUsage()
    const t0 = performance.now()
    const ids = await jobs.submitMany(Array.from({ length: jobsN }, () => spec))
    await jobs.wait(ids, { timeout: "600 seconds" })
    const s = (performance.now() - t0) / 1000
    const l = cpu(local.pid!) - l0, r = cpu(remote.pid!) - r0, me = process.cpuUsage(me0)
    for (const t of tracers.splice(0)) t.kill("SIGINT")
    console.log(`  local threads ms/job: ${diff(lt0, threads(local.pid!), jobsN)}`)
    console.log(`  remote threads ms/job: ${diff(rt0, threads(remote.pid!), jobsN)}`)
    console.log(`${label}: ${(jobsN / s).toFixed(0)}/s  local ${(l / jobsN).toFixed(2)} ms/job  remote ${(r / jobsN).toFixed(2)} ms/job  client ${((me.user + me.system) / 1000 / jobsN).toFixed(2)} ms/job`)
  }
  for (let i = 0; i < Number(process.env.R ?? 2); i++) {
    if (!process.env.ONLYREMOTE) await phase("local ", undefined)
    if (process.env.ONLYLOCAL) continue
    await phase("remote", "box")
  }
  // Mailbox messages each side took (one line per message in its spool's delivered.ids).
  for (const file of (Fs.readdirSync(dir.dir, { recursive: true }) as Array<string>).filter((f) => f.endsWith("delivered.ids"))) {
    console.log(`  ${file}: ${Fs.readFileSync(Path.join(dir.dir, file), "utf8").split("\n").filter(Boolean).length} messages`)
  }
  await jobs.close()
  local.kill("SIGTERM"); remote.kill("SIGTERM")
  await new Promise((r) => setTimeout(r, 3000))
  dir.remove()
}
main()
