/**
 * Spare worker processes, one for JavaScript modules and one for TypeScript (started only once a
 * TypeScript module has been loaded), already past Node's start-up and, for TypeScript, past the
 * loader's. A load takes the spare and a new one is started once that load is over, so that a
 * reload or a restart after a crash pays only for the module's own import.
 */
import { type WorkerEvents, WorkerProcess } from "./WorkerProcess.js"

/** The spare workers of one module server. */
export class Standby {
  private readonly spares = new Map<boolean, WorkerProcess>()
  private closed = false

  constructor(private readonly enabled: boolean) {}

  /** A worker for a module: the spare if there is a live one, else a new process. */
  take(typescript: boolean, events: WorkerEvents): WorkerProcess {
    const spare = this.spares.get(typescript)
    this.spares.delete(typescript)
    if (spare !== undefined && spare.alive && spare.inFlight === 0) return spare.attach(events)
    spare?.kill()
    return new WorkerProcess(events, { typescript })
  }

  /** Starts a new spare of the kind, if there is none (called once a load is over, so as not to slow it). */
  refill(typescript: boolean): void {
    if (!this.enabled || this.closed) return
    const spare = this.spares.get(typescript)
    if (spare !== undefined && spare.alive) return
    const worker: WorkerProcess = new WorkerProcess({
      onLog: () => {},
      onFiles: () => {},
      onExit: () => {
        if (this.spares.get(typescript) === worker) this.spares.delete(typescript)
      }
    }, { typescript })
    this.spares.set(typescript, worker)
  }

  /** Stops the spares. */
  close(): void {
    this.closed = true
    for (const spare of this.spares.values()) spare.kill()
    this.spares.clear()
  }
}
