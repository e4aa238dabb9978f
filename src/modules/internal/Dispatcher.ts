/**
 * The calls of one module: at most `concurrency` running at once (across worker generations, so a
 * reload never runs more than the limit), the rest queued in order, each sent to the worker that
 * is active when its turn comes. A worker replaced by a reload retires once its last call ends.
 * Plain code on purpose: it is the hot path of every call.
 *
 * Clients with a direct route call the active worker without passing through here, so the worker
 * enforces the limit itself, over the server's calls and the direct ones (WorkerMain.ts). This
 * dispatcher gives it the slots: `concurrency` less those still held by retiring workers, which
 * report each one they give back.
 */
import type { Call, CallResult, WorkerProcess } from "./WorkerProcess.js"

/** What happens to calls while the module cannot take them. */
export type Refusal = CallResult & { readonly ok: false }

/** Queues and runs the calls of one module. */
export class Dispatcher {
  private queue: Array<Call> = []
  private head = 0
  private readonly retiring = new Set<WorkerProcess>()
  private idleWaiters: Array<() => void> = []
  private active: WorkerProcess | undefined
  /** Calls running now, in any worker. */
  running = 0
  /** While set, new calls are answered with it at once (the module is restarting, failed or stopped). */
  refusal: Refusal | undefined

  constructor(
    public concurrency: number,
    public maxQueue: number,
    /** Stops a worker that was replaced and has no call left. */
    private readonly retire: (worker: WorkerProcess) => void
  ) {}

  /** Calls waiting for a free slot. */
  get queued(): number {
    return this.queue.length - this.head
  }

  /** The worker new calls go to. */
  get current(): WorkerProcess | undefined {
    return this.active
  }

  /** Runs the call now if a slot is free, queues it otherwise, or answers it at once when refusing. */
  submit(call: Call): void {
    if (this.refusal !== undefined) return call.done(this.refusal)
    if (this.running < this.concurrency && this.active !== undefined && this.queued === 0) return this.run(call, this.active)
    if (this.queued >= this.maxQueue) {
      return call.done({
        ok: false,
        reason: "overloaded",
        message: `${this.maxQueue} calls are already waiting for this module`,
        traceback: ""
      })
    }
    this.queue.push(call)
  }

  /** Takes a call out of the queue (its caller went away); false when it already runs. */
  cancel(call: Call): boolean {
    const at = this.queue.indexOf(call, this.head)
    if (at === -1) return false
    this.queue.splice(at, 1)
    return true
  }

  /**
   * Makes `worker` the one new calls go to and starts queued calls on it; the previous worker
   * (if any) retires when its last call ends. Clears the refusal.
   */
  install(worker: WorkerProcess): Promise<void> {
    const previous = this.active
    this.active = worker
    this.refusal = undefined
    let reported = Promise.resolve()
    if (previous !== undefined && previous !== worker) {
      this.retiring.add(previous)
      reported = previous.retire()
    }
    this.regrant()
    if (previous !== undefined && previous !== worker) this.retireIfIdle(previous)
    this.pump()
    return reported
  }

  /** Forgets the active worker (it died): nothing is sent until the next `install`. */
  lose(worker: WorkerProcess): void {
    if (this.active === worker) this.active = undefined
    this.retiring.delete(worker)
    this.regrant()
  }

  /** A retiring worker gave slots back: they go to the active one, and the retiring one may stop. */
  slotsChanged(worker: WorkerProcess): void {
    this.regrant()
    if (this.retiring.has(worker)) this.retireIfIdle(worker)
  }

  /** Answers every queued call with `result`. */
  failQueued(result: CallResult): void {
    const waiting = this.queue.slice(this.head)
    this.queue = []
    this.head = 0
    for (const call of waiting) call.done(result)
  }

  /** Applies new limits, starting queued calls if the limit grew. */
  resize(concurrency: number, maxQueue: number): void {
    this.concurrency = concurrency
    this.maxQueue = maxQueue
    this.regrant()
    this.pump()
  }

  /** Resolves once no call is running. */
  idle(): Promise<void> {
    return this.running === 0 ? Promise.resolve() : new Promise((resolve) => this.idleWaiters.push(resolve))
  }

  /** Workers replaced by a reload that still have calls running. */
  get retiringWorkers(): ReadonlyArray<WorkerProcess> {
    return Array.from(this.retiring)
  }

  private run(call: Call, worker: WorkerProcess): void {
    this.running++
    worker.call({
      fn: call.fn,
      args: call.args,
      clientIp: call.clientIp,
      done: (result) => {
        this.running--
        call.done(result)
        if (this.retiring.has(worker)) this.retireIfIdle(worker)
        this.pump()
        if (this.running === 0 && this.idleWaiters.length > 0) for (const wake of this.idleWaiters.splice(0)) wake()
      }
    })
  }

  private pump(): void {
    while (this.running < this.concurrency && this.active !== undefined && this.head < this.queue.length) {
      const call = this.queue[this.head++]!
      if (this.head > 1024 && this.head * 2 > this.queue.length) {
        this.queue = this.queue.slice(this.head)
        this.head = 0
      }
      this.run(call, this.active)
    }
    if (this.head === this.queue.length && this.head > 0) {
      this.queue = []
      this.head = 0
    }
  }

  // The active worker's limit: the module's concurrency less the slots retiring workers still hold.
  private regrant(): void {
    if (this.active === undefined) return
    let held = 0
    for (const worker of this.retiring) held += worker.held
    this.active.setLimit(Math.max(0, this.concurrency - held))
  }

  private retireIfIdle(worker: WorkerProcess): void {
    if (worker.inFlight > 0 || worker.held > 0) return
    this.retiring.delete(worker)
    this.retire(worker)
  }
}
