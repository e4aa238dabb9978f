import * as Duration from "effect/Duration"
import * as Either from "effect/Either"
import * as Net from "node:net"
import { defaultMaxFrameBytes } from "../protocol/Frame.js"
import { ListenFailed } from "../transport/Errors.js"
import * as Config from "./Config.js"
import * as Dispatch from "./dispatch/Dispatch.js"
import { Closed, Empty, Full, InvalidItem } from "./Errors.js"
import { broadcastSeq, ItemQueue, type Origin } from "./ItemQueue.js"
import { Peer, type PeerClosed, type PeerHandler, type PeerOptions } from "./Peer.js"
import * as Status from "./Status.js"
import { MessagePoll, Waiters } from "./Waiters.js"
import * as Wire from "./Wire.js"

/** Where a Net Queue server or client sends its log lines; the Effect API routes them to Effect's logger. */
export type LogFunction = (level: "debug" | "info" | "warning", message: string) => void

/** The result callback of a waiting call. */
export type Callback<A, E> = (result: Either.Either<A, E>) => void

/** How a server dispatches, holds and watches. Every field has a default; a config file may set them too. */
export interface ServerOptions {
  /** The dispatch policy: a built-in's name (default "round-robin"), a policy, or a function. */
  readonly policy?: Dispatch.PolicyName | Dispatch.DispatchPolicy | Dispatch.ChooseFunction | undefined
  /** Items a Troupe child may have unacknowledged, and a plain child may have waiting to be written; default 1000. */
  readonly window?: number | undefined
  /** Bytes a plain child's socket may have buffered before it counts as full; default 1 MiB. */
  readonly plainWindowBytes?: number | undefined
  /** Items the server holds (for local `get`, or waiting for a child); default 10,000. */
  readonly capacity?: number | undefined
  /** PING every child this often; default 5 s. */
  readonly pingInterval?: Duration.DurationInput | undefined
  /** Drop a child that sent no PONG for this long; default 15 s. */
  readonly pingTimeout?: Duration.DurationInput | undefined
  /** The largest frame accepted; default 16 MiB. */
  readonly maxFrameBytes?: number | undefined
  /** A config file to load ("" for none; default `./server_conf`, if it exists). */
  readonly configFile?: string | undefined
  /** The class for per-client state (the seed's ClientConn subclass). */
  readonly clientType?: (new(id: number, address: string) => ClientConn) | undefined
  readonly log?: LogFunction | undefined
}

/**
 * The server's view of one connected client: its address, its last STATUS and the state read from
 * it. Subclass it (and pass `clientType`) to keep more; `handleClientStatus` fills it.
 */
export class ClientConn implements Dispatch.Candidate {
  /** The last STATUS text, if any. */
  status: string | undefined = undefined
  /** The fields read from the last STATUS (see Status.ts). */
  fields: Status.StatusFields = {}
  /** A producer gets no dispatches (STATUS `producer`). */
  producer = false
  /** The client said it is full (STATUS `full=1`): no dispatches until it says otherwise. */
  full = false
  /** The load the client reported (STATUS `load`, or a bare number). */
  reportedLoad = 0
  /** Its weight for the weighted policy (STATUS `weight`). */
  weight = 1
  /** The window the client asked for (STATUS `window`); the server uses the smaller of this and its own. */
  requestedWindow: number | undefined = undefined
  /**
   * The client may get items: it sent its STATUS, or answered the server's first PING, or 200 ms
   * passed since CONN. A client sends its STATUS (if any) on the server's CONN, before that PONG,
   * so a producer is not sent items before it has said it is one.
   */
  greeted = false
  /** @internal */
  peer!: Peer

  constructor(readonly id: number, readonly address: string) {}

  /** The client speaks Troupe: it acknowledges items, and those in flight to it are dispatched again if it is lost. */
  get troupe(): boolean {
    return this.peer.troupe
  }

  /** Items sent or queued to this client and not yet finished by it. */
  get inFlight(): number {
    return this.peer.outstanding
  }

  /** The reported load plus the items outstanding: what least-loaded compares. */
  get load(): number {
    return this.reportedLoad + this.peer.outstanding
  }

  /** True while the connection is open. */
  get connected(): boolean {
    return !this.peer.isClosed
  }
}

/** The state of one child as a node reports it. */
export interface ChildReport {
  readonly id: number
  readonly address: string
  readonly role: "producer" | "consumer"
  readonly troupe: boolean
  readonly state: "ready" | "full" | "window-full" | "producer"
  readonly load: number
  readonly inFlight: number
  readonly window: number
  readonly status: string | null
}

/** What a node reports about itself (REPORT, and `troupe queue-status`). */
export interface ServerReport {
  readonly address: string
  readonly policy: string
  readonly held: number
  readonly capacity: number
  readonly full: boolean
  readonly children: ReadonlyArray<ChildReport>
  readonly parent?: { readonly address: string; readonly connected: boolean } | undefined
}

/**
 * A Net Queue server (the seed's Server, Promise facade): it accepts clients, holds items, and
 * dispatches each item to one ready consumer child through `chooseDispatch`. Items arriving from
 * clients or from `put` join one FIFO; with no ready child they are held (up to `capacity`) for
 * local `get` or until a child is ready. Subclass it to override `chooseDispatch`, `getStatus`,
 * `handleClientStatus`, `handleClientEnqueue` and `loadConfig`, as the seed's users do.
 */
export class NetQueueServer {
  /** The loaded config values (the seed's `self.config`). */
  config: Config.ConfigValues = {}
  /** Connected clients, in connection order (the seed's `self.clients`). */
  readonly clients: Array<ClientConn> = []
  /** The dispatch policy `chooseDispatch` uses by default. */
  policy: Dispatch.DispatchPolicy

  /** @internal held items, in order */
  protected readonly held = new ItemQueue()
  private readonly options: ServerOptions
  private listener: Net.Server | undefined
  private nextId = 1
  private readonly getWaiters = new WaitersHolder()
  // What `poll` has to look at: messages that arrived since the last poll saw them.
  private readonly arrivals = new MessagePoll()
  private accepted = 0
  private acceptedSeen = 0
  private closed = false
  private lastFull = false
  private boundAddress = ""

  constructor(options: ServerOptions = {}) {
    this.options = options
    if (options.configFile !== "") this.loadConfig(options.configFile ?? Config.defaultServerFile, options.configFile === undefined)
    this.policy = resolvePolicy(options.policy ?? this.config["policy"] as Dispatch.PolicyName | undefined)
    this.capacityValue = Math.max(1, options.capacity ?? Config.integer(this.config, "capacity", 1) ?? 10_000)
    this.windowValue = Math.max(1, options.window ?? Config.integer(this.config, "window", 1) ?? 1000)
    this.plainWindowBytes = options.plainWindowBytes ?? 1024 * 1024
    this.peerOptions = {
      maxFrameBytes: options.maxFrameBytes ?? Config.integer(this.config, "max_frame_bytes", 16) ?? defaultMaxFrameBytes,
      pingIntervalMs: millis(options.pingInterval) ?? Config.duration(this.config, "ping_interval") ?? 5000,
      pingTimeoutMs: millis(options.pingTimeout) ?? Config.duration(this.config, "ping_timeout") ?? 15_000
    }
  }

  /** Items held at most. */
  readonly capacityValue: number
  /** The per-child window. */
  readonly windowValue: number
  private readonly plainWindowBytes: number
  private readonly peerOptions: PeerOptions

  // ----- the seed's API

  /**
   * Loads config values into `config` (the seed's required `load_config`). The default reads the
   * file format in Config.ts; override it to read your own.
   */
  loadConfig(path: string, optional = false): void {
    this.config = Either.getOrThrow(Config.load(path, optional))
  }

  /** Binds and listens (port 0 picks a free port; see `port`). Rejects with ListenFailed. */
  bind(host: string, port: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const listener = Net.createServer({ noDelay: true }, this.onConnection)
      const url = `framed://${host.includes(":") ? `[${host}]` : host}:${port}`
      listener.once("error", (error: NodeJS.ErrnoException) => {
        reject(
          new ListenFailed({
            url,
            reason: error.code === "EADDRINUSE" ? "address-in-use" : error.code === "EACCES" ? "permission-denied" : "other",
            message: `cannot listen on ${url}: ${error.message}`,
            cause: error
          })
        )
      })
      listener.listen(port, host, () => {
        listener.removeAllListeners("error")
        listener.on("error", (error) => this.log("warning", `listener error: ${error.message}`))
        this.listener = listener
        const address = listener.address()
        this.boundAddress = typeof address === "object" && address !== null ? `${address.address}:${address.port}` : url
        resolve()
      })
    })
  }

  /** The bound port (after `bind`). */
  get port(): number {
    const address = this.listener?.address()
    return typeof address === "object" && address !== null ? address.port : 0
  }

  /**
   * Messages arrive as the event loop delivers them; `poll` reports them. block=false: true if any
   * arrived since the last poll. block=true: waits up to `timeout` (forever without one) for one.
   */
  poll(block = false, timeout?: Duration.DurationInput): Promise<boolean> {
    return toPromise((callback) => this.pollAsync(block, millis(timeout), callback))
  }

  /**
   * Connections are accepted as they come; this reports them: the number accepted since the last
   * call. block=true waits up to `timeout` for at least one.
   */
  acceptConnections(block = false, timeout?: Duration.DurationInput): Promise<number> {
    return toPromise((callback) => this.acceptAsync(block, millis(timeout), callback))
  }

  /**
   * Takes the next held item. block=true (the default) waits up to `timeout` (forever without
   * one). When none comes: null if `allowNone` (the default), else rejects with Empty.
   */
  get(block = true, timeout?: Duration.DurationInput, allowNone = true): Promise<string | null> {
    return toPromise<string | null, Empty | Closed>((callback) =>
      this.getAsync(block, millis(timeout), (result) =>
        callback(allowNone && Either.isLeft(result) && result.left._tag === "Empty" ? Either.right(null) : result)
      )
    )
  }

  /** Takes every item held now. */
  getAll(): Array<string> {
    const items: Array<string> = []
    while (this.held.length > 0) items.push(this.held.take())
    if (items.length > 0) this.pump()
    return items
  }

  /**
   * Puts items: each is dispatched to a ready child or held while there is room. With sendAll,
   * each item goes to every consumer child instead. When they cannot all be placed: block=false
   * rejects with Full at once; block=true waits up to `timeout` (forever without one), then Full.
   */
  put(
    items: string | ReadonlyArray<string>,
    options: { readonly block?: boolean; readonly timeout?: Duration.DurationInput; readonly sendAll?: boolean } = {}
  ): Promise<void> {
    return toPromise((callback) =>
      this.putAsync(typeof items === "string" ? [items] : items, options.block ?? false, millis(options.timeout), options.sendAll ?? false, callback)
    )
  }

  /**
   * Sends items to one client, bypassing `chooseDispatch`. block=false rejects with Full if its
   * window is full; block=true waits up to `timeout` for room. (The original reversed `block` here.)
   */
  putTo(
    client: ClientConn,
    items: string | ReadonlyArray<string>,
    options: { readonly block?: boolean; readonly timeout?: Duration.DurationInput } = {}
  ): Promise<void> {
    return toPromise((callback) =>
      this.putToAsync(client, typeof items === "string" ? [items] : items, options.block ?? false, millis(options.timeout), callback)
    )
  }

  /** Closes the server: DISCONN to every client (after what is queued to it), then the listener. */
  close(): Promise<void> {
    if (this.closed) return Promise.resolve()
    this.closed = true
    for (const client of this.clients.slice()) client.peer.close("closed", "the server closed", true)
    this.getWaiters.closeAll()
    return new Promise((resolve) => {
      if (this.listener === undefined) return resolve()
      this.listener.close(() => resolve())
    })
  }

  // ----- overridable

  /**
   * Picks the client for one item from the ready ones (connected consumers, not full, window open),
   * or undefined to hold it. The default asks the policy. (The seed's `choose_dispatch`.)
   */
  chooseDispatch(ready: ReadonlyArray<ClientConn>): ClientConn | undefined {
    return this.policy.choose(ready)
  }

  /** This server's status for its clients, or undefined for none (the default). */
  getStatus(): string | undefined {
    return undefined
  }

  /**
   * Reads a client's STATUS into its ClientConn. The default reads Troupe's vocabulary (Status.ts):
   * `producer`, `full`, `load`, `weight`, `window`.
   */
  handleClientStatus(client: ClientConn, _text: string): void {
    const fields = client.fields
    client.producer = Status.flag(fields, "producer") ?? client.producer
    client.full = Status.flag(fields, "full") ?? false
    client.reportedLoad = Status.number(fields, "load") ?? client.reportedLoad
    client.weight = Status.number(fields, "weight") ?? client.weight
    const window = Status.number(fields, "window")
    client.requestedWindow = window !== undefined && window >= 1 ? Math.floor(window) : client.requestedWindow
  }

  /** Handles items a client sent. The default adds them to the server's queue (`enqueue`). */
  handleClientEnqueue(_client: ClientConn, items: ReadonlyArray<string>): void {
    this.enqueue(items)
  }

  // ----- for subclasses and nodes

  /** Adds items to the back of the queue (no capacity check: items from the network are never refused). */
  enqueue(items: ReadonlyArray<string>, origin?: Origin, firstSeq = 0): void {
    for (let i = 0; i < items.length; i++) this.held.push(items[i]!, origin, firstSeq + i)
    this.pump()
  }

  /** Items held now. */
  get heldCount(): number {
    return this.held.length
  }

  /**
   * True when this server cannot take more: its queue is at capacity, or it has consumer children
   * and none of them is ready while items wait. A node reports this to its parent.
   */
  get isFull(): boolean {
    if (this.held.length >= this.capacityValue) return true
    if (this.held.length === 0) return false
    let consumers = 0
    for (const client of this.clients) {
      if (client.producer || !client.greeted) continue
      consumers++
      if (this.isReady(client)) return false
    }
    return consumers > 0
  }

  /** The window in force for a client. */
  windowOf(client: ClientConn): number {
    return Math.min(this.windowValue, client.requestedWindow ?? Infinity)
  }

  /** Called after every change that may flip `isFull` (a node reports it upward). */
  protected onStateChange(_full: boolean): void {}

  /** This server's report: its queue and its children. */
  report(): ServerReport {
    return {
      address: this.boundAddress,
      policy: this.policy.name,
      held: this.held.length,
      capacity: this.capacityValue,
      full: this.isFull,
      children: this.clients.map((client) => ({
        id: client.id,
        address: client.address,
        role: client.producer ? "producer" : "consumer",
        troupe: client.troupe,
        state: client.producer ? "producer" : client.full ? "full" : this.isReady(client) ? "ready" : "window-full",
        load: client.load,
        inFlight: client.inFlight,
        window: this.windowOf(client),
        status: client.status ?? null
      }))
    }
  }

  /** Writes a log line through the configured log function. */
  protected log(level: "debug" | "info" | "warning", message: string): void {
    this.options.log?.(level, message)
  }

  // ----- callback forms (the Promise methods and the Effect API wrap these)

  /** `poll` with a callback; returns a function that cancels the wait. */
  pollAsync(block: boolean, timeoutMs: number | undefined, callback: Callback<boolean, never>): () => void {
    return this.arrivals.poll(this.getWaiters.polls, block, timeoutMs, (arrived) => callback(Either.right(arrived)))
  }

  /** `acceptConnections` with a callback. */
  acceptAsync(block: boolean, timeoutMs: number | undefined, callback: Callback<number, never>): () => void {
    const take = () => {
      const count = this.accepted - this.acceptedSeen
      this.acceptedSeen = this.accepted
      return count
    }
    const arrived = () => {
      if (this.accepted === this.acceptedSeen) return false
      callback(Either.right(take()))
      return true
    }
    if (!block) {
      callback(Either.right(take()))
      return noop
    }
    return this.getWaiters.accepts.add(arrived, () => callback(Either.right(0)), timeoutMs)
  }

  /** `get` with a callback (fails with Empty, or Closed once the server is closed). */
  getAsync(block: boolean, timeoutMs: number | undefined, callback: Callback<string, Empty | Closed>): () => void {
    const take = () => {
      if (this.held.length === 0) return false
      const item = this.held.take()
      callback(Either.right(item))
      this.pumpSoon()
      return true
    }
    if (this.closed && this.held.length === 0) {
      callback(Either.left(new Closed({ message: "the server is closed" })))
      return noop
    }
    if (!block || timeoutMs === 0) {
      if (!take()) callback(Either.left(new Empty({ message: "no item is held" })))
      return noop
    }
    return this.getWaiters.gets.add(
      take,
      () => callback(Either.left(new Empty({ message: "no item arrived before the timeout" }))),
      timeoutMs,
      () => callback(Either.left(new Closed({ message: "the server closed" })))
    )
  }

  /** `put` with a callback. */
  putAsync(
    items: ReadonlyArray<string>,
    block: boolean,
    timeoutMs: number | undefined,
    sendAll: boolean,
    callback: Callback<void, Full | InvalidItem | Closed>
  ): () => void {
    const invalid = invalidItem(items)
    if (invalid !== undefined) return fail(callback, invalid)
    if (this.closed) return fail(callback, new Closed({ message: "the server is closed" }))
    let placed = 0
    const attempt = sendAll
      ? () => {
        const consumers = this.clients.filter((client) => !client.producer && client.greeted && !client.peer.isClosed)
        if (consumers.length === 0) return false
        for (const client of consumers) for (const item of items) client.peer.sendItem(item, undefined, broadcastSeq)
        placed = items.length
        callback(Either.right(undefined))
        return true
      }
      : () => {
        const before = placed
        while (placed < items.length) {
          if (this.held.length >= this.capacityValue) {
            this.dispatchHeld()
            if (this.held.length >= this.capacityValue) break
          }
          this.held.push(items[placed++]!, undefined, 0)
        }
        if (placed > before) {
          if (this.getWaiters.gets.size === 0) this.dispatchHeld()
          this.pumpSoon()
        }
        if (placed < items.length) return false
        callback(Either.right(undefined))
        return true
      }
    const full = () =>
      callback(Either.left(new Full({
        accepted: placed,
        message: sendAll
          ? "no consumer is connected"
          : `${placed} of ${items.length} items placed: no child is ready and the queue is at capacity (${this.capacityValue})`
      })))
    if (!block) {
      if (!attempt()) full()
      return noop
    }
    return this.getWaiters.puts.add(attempt, full, timeoutMs, () => callback(Either.left(new Closed({ message: "the server closed" }))))
  }

  /** `putTo` with a callback. */
  putToAsync(
    client: ClientConn,
    items: ReadonlyArray<string>,
    block: boolean,
    timeoutMs: number | undefined,
    callback: Callback<void, Full | InvalidItem | Closed>
  ): () => void {
    const invalid = invalidItem(items)
    if (invalid !== undefined) return fail(callback, invalid)
    let placed = 0
    const attempt = () => {
      if (!client.connected) {
        callback(Either.left(new Closed({ message: `client ${client.address} is gone` })))
        return true
      }
      while (placed < items.length && client.peer.outstanding < this.windowOf(client)) {
        client.peer.sendItem(items[placed++]!, undefined, 0)
      }
      if (placed < items.length) return false
      callback(Either.right(undefined))
      return true
    }
    const full = () =>
      callback(Either.left(new Full({ accepted: placed, message: `client ${client.address} has its window full` })))
    if (!block) {
      if (!attempt()) full()
      return noop
    }
    return this.getWaiters.puts.add(attempt, full, timeoutMs, () => callback(Either.left(new Closed({ message: "the server closed" }))))
  }

  // ----- private

  private isReady(client: ClientConn): boolean {
    const peer = client.peer
    if (!client.greeted || peer.isClosed || client.producer || client.full) return false
    if (peer.outstanding >= this.windowOf(client)) return false
    return peer.troupe || peer.buffered < this.plainWindowBytes
  }

  private pumpScheduled = false

  private pumpSoon(): void {
    if (this.pumpScheduled) return
    this.pumpScheduled = true
    queueMicrotask(() => {
      this.pumpScheduled = false
      this.pump()
    })
  }

  /** Moves held items on: first to local `get` waiters, then to ready children; then wakes puts and producers. */
  protected pump(): void {
    if (this.pumping) {
      this.pumpAgain = true
      return
    }
    this.pumping = true
    try {
      let rounds = 0
      do {
        this.pumpAgain = false
        this.getWaiters.gets.run()
        this.dispatchHeld()
        this.getWaiters.puts.run()
      } while (this.pumpAgain && ++rounds < 100)
      if (this.held.length < this.capacityValue) {
        for (const client of this.clients) if (client.peer.isPaused) client.peer.resume()
      }
      const full = this.isFull
      if (full !== this.lastFull) {
        this.lastFull = full
        this.onStateChange(full)
      }
    } finally {
      this.pumping = false
    }
  }

  private pumping = false
  private pumpAgain = false

  private dispatchHeld(): void {
    if (this.held.length === 0 || this.clients.length === 0) return
    const ready = this.clients.filter((client) => this.isReady(client))
    while (this.held.length > 0 && ready.length > 0) {
      const client = this.chooseDispatch(ready)
      if (client === undefined) break
      const origin = this.held.frontOrigin
      const seq = this.held.frontSeq
      client.peer.sendItem(this.held.shift(), origin, seq)
      if (!this.isReady(client)) {
        const index = ready.indexOf(client)
        if (index !== -1) ready.splice(index, 1)
      }
    }
  }

  private readonly onConnection = (socket: Net.Socket): void => {
    if (this.closed) {
      socket.destroy()
      return
    }
    const address = `${socket.remoteAddress}:${socket.remotePort}`
    const peer = new Peer(socket, address, this.peerOptions, this.handler)
    peer.start()
  }

  private readonly handler: PeerHandler = {
    onConn: (peer) => {
      const ClientType = this.options.clientType ?? ClientConn
      const client = new ClientType(this.nextId++, peer.address)
      client.peer = peer
      peer.owner = client
      this.clients.push(client)
      peer.send(Wire.conn)
      peer.send(Wire.ping)
      // A client that never answers that PING (one that reads CONN and drops what came with it) still gets items.
      setTimeout(() => this.greet(client), Math.min(greetingMs, this.peerOptions.pingIntervalMs)).unref()
      const status = this.getStatus()
      if (status !== undefined) peer.send(Wire.encodeStatus(status))
      this.accepted++
      this.arrivals.note()
      this.log("debug", `client ${peer.address} connected`)
      this.getWaiters.accepts.run()
      this.getWaiters.polls.run()
      this.pump()
    },
    onStatus: (peer, text) => {
      const client = peer.owner as ClientConn
      client.status = text
      client.fields = Status.parse(text)
      if (!peer.troupe && Status.number(client.fields, "troupe") !== undefined) {
        peer.troupe = true
        const own = this.getStatus()
        peer.send(Wire.encodeStatus(Status.format({ troupe: Wire.troupeVersion }) + (own !== undefined ? ` ${own}` : "")))
      }
      this.handleClientStatus(client, text)
      client.greeted = true
      this.arrivals.note()
      this.getWaiters.polls.run()
      this.pump()
    },
    onItems: (peer, items, firstSeq) => {
      const client = peer.owner as ClientConn
      this.handleClientEnqueue(client, items)
      // A Troupe producer learns that the server holds its items.
      for (let i = 0; i < items.length; i++) peer.itemDone(firstSeq + i)
      // Backpressure on a producer: stop reading it while the queue is at capacity. (A Troupe consumer is
      // still read: its acknowledgements are what reopens the windows.)
      if (this.held.length >= this.capacityValue && (client.producer || !peer.troupe)) peer.pause()
      this.arrivals.note()
      this.getWaiters.polls.run()
    },
    onPong: (peer) => this.greet(peer.owner as ClientConn),
    onReport: (peer) => {
      peer.send(Wire.encodeReport(JSON.stringify(this.report())))
    },
    onWindow: () => this.pump(),
    onClose: (peer, closed, leftover) => this.onPeerClosed(peer, closed, leftover)
  }

  private greet(client: ClientConn): void {
    if (client.greeted || client.peer.isClosed) return
    client.greeted = true
    this.pump()
  }

  private onPeerClosed(peer: Peer, closed: PeerClosed, leftover: { items: Array<string>; origins: Array<Origin | undefined>; seqs: Array<number> }): void {
    const client = peer.owner as ClientConn | undefined
    if (client !== undefined) {
      const index = this.clients.indexOf(client)
      if (index !== -1) this.clients.splice(index, 1)
    }
    const items: Array<string> = []
    const origins: Array<Origin | undefined> = []
    const seqs: Array<number> = []
    for (let i = 0; i < leftover.items.length; i++) {
      if (leftover.seqs[i] === broadcastSeq) continue
      items.push(leftover.items[i]!)
      origins.push(leftover.origins[i])
      seqs.push(leftover.seqs[i]!)
    }
    const again = items.length > 0 ? `; ${items.length} items in flight to it are dispatched again` : ""
    const level = closed.reason === "disconn" || closed.reason === "closed" || closed.reason === "lost" ? "info" : "warning"
    this.log(level, `client ${peer.address} closed (${closed.reason}): ${closed.message}${again}`)
    this.held.pushFront(items, origins, seqs)
    this.arrivals.note()
    this.getWaiters.polls.run()
    if (!this.closed) this.pump()
  }
}

// ---------------------------------------------------------------------------------------------
// private

class WaitersHolder {
  readonly gets = new Waiters()
  readonly puts = new Waiters()
  readonly polls = new Waiters()
  readonly accepts = new Waiters()

  closeAll(): void {
    this.gets.closeAll()
    this.puts.closeAll()
    this.polls.closeAll()
    this.accepts.closeAll()
  }
}

const noop = (): void => {}

const greetingMs = 200

const fail = <E>(callback: Callback<never, E>, error: E): () => void => {
  callback(Either.left(error))
  return noop
}

/** The first item that cannot travel (it contains a newline), as an error. */
export const invalidItem = (items: ReadonlyArray<string>): InvalidItem | undefined => {
  for (let i = 0; i < items.length; i++) {
    if (items[i]!.includes("\n")) {
      return new InvalidItem({ message: `item ${i} contains a newline, the ENQUEUE item separator` })
    }
  }
  return undefined
}

/** A Duration option in milliseconds, or undefined. */
export const millis = (value: Duration.DurationInput | undefined): number | undefined =>
  value === undefined ? undefined : Duration.toMillis(Duration.decode(value))

/** Adapts a callback-style call to a Promise. */
export const toPromise = <A, E>(run: (callback: Callback<A, E>) => unknown): Promise<A> =>
  new Promise((resolve, reject) => {
    run((result) => (Either.isRight(result) ? resolve(result.right) : reject(result.left)))
  })

const resolvePolicy = (
  policy: Dispatch.PolicyName | Dispatch.DispatchPolicy | Dispatch.ChooseFunction | undefined
): Dispatch.DispatchPolicy => {
  if (policy === undefined) return Dispatch.make("round-robin")
  if (typeof policy === "function") return Dispatch.fromFunction(policy)
  if (typeof policy === "string") {
    if (!Dispatch.isName(policy)) throw new Error(`unknown dispatch policy "${policy}" (${Dispatch.names.join(", ")})`)
    return Dispatch.make(policy)
  }
  return policy
}
