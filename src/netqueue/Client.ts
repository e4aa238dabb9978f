import type * as Duration from "effect/Duration"
import * as Either from "effect/Either"
import * as Net from "node:net"
import { defaultMaxFrameBytes } from "../protocol/Frame.js"
import { ConnectFailed } from "../transport/Errors.js"
import * as Config from "./Config.js"
import { Closed, Empty } from "./Errors.js"
import { ItemQueue } from "./ItemQueue.js"
import { Peer, type PeerClosed, type PeerHandler, type PeerOptions } from "./Peer.js"
import { type Callback, invalidItem, type LogFunction, millis, type ServerReport, toPromise } from "./Server.js"
import * as Status from "./Status.js"
import { MessagePoll, Waiters } from "./Waiters.js"
import * as Wire from "./Wire.js"

/** How a client connects and what it announces. Every field has a default; a config file may set them too. */
export interface ClientOptions {
  /** Announce `producer=1`: the server sends this client no items. Default false (a consumer). */
  readonly producer?: boolean | undefined
  /** Ask the server to keep at most this many items in flight to this client. */
  readonly window?: number | undefined
  /** Announce `troupe=1` and use Troupe's acknowledgements with a Troupe server; default true. */
  readonly troupe?: boolean | undefined
  /** How long connecting (and the CONN exchange) may take; default 5 s. */
  readonly connectTimeout?: Duration.DurationInput | undefined
  /** PING the server this often; default 5 s. */
  readonly pingInterval?: Duration.DurationInput | undefined
  /** Close the connection when no PONG came for this long; default 15 s. */
  readonly pingTimeout?: Duration.DurationInput | undefined
  /** The largest frame accepted; default 16 MiB. */
  readonly maxFrameBytes?: number | undefined
  /** A config file to load ("" for none; default `./client_conf`, if it exists). */
  readonly configFile?: string | undefined
  readonly log?: LogFunction | undefined
}

/**
 * A Net Queue client (the seed's Client, Promise facade): it connects to one server, receives the
 * items the server dispatches to it into a local queue, and puts items to the server. Subclass it
 * to override `getStatus`, `handleServerStatus`, `handleServerEnqueue` and `loadConfig`.
 *
 * With a Troupe server (both sides announce `troupe=1`), every item received is acknowledged once
 * it is taken from the local queue (or handled by an overriding `handleServerEnqueue`), so items
 * this client never took go to another client if it closes or is lost.
 */
export class NetQueueClient {
  /** The loaded config values (the seed's `self.config`). */
  config: Config.ConfigValues = {}
  /** Items received and not yet taken (the seed's `self.local_queue`). */
  protected readonly localQueue = new ItemQueue()

  private readonly options: ClientOptions
  private peer: Peer | undefined
  private readonly gets = new Waiters()
  private readonly polls = new Waiters()
  private readonly flushes = new Waiters()
  private readonly reports: Array<(report: ServerReport | undefined) => void> = []
  // What `poll` has to look at: messages that arrived since the last poll saw them.
  private readonly arrivals = new MessagePoll()
  private closedBy: PeerClosed | undefined
  private delivery: { readonly first: number; claimed: boolean } | undefined
  private serverIsTroupe = false
  private address = ""

  constructor(options: ClientOptions = {}) {
    this.options = options
    if (options.configFile !== "") this.loadConfig(options.configFile ?? Config.defaultClientFile, options.configFile === undefined)
  }

  /** Whether this client announces itself a producer. */
  get producer(): boolean {
    return this.options.producer ?? Config.boolean(this.config, "producer") ?? false
  }

  /** True once connected to a server that speaks Troupe (acknowledgements, reports). */
  get troupeServer(): boolean {
    return this.serverIsTroupe
  }

  /** True while the connection is open. */
  get connected(): boolean {
    return this.peer !== undefined && !this.peer.isClosed
  }

  /** Items received and not yet taken. */
  get pending(): number {
    return this.localQueue.length
  }

  // ----- the seed's API

  /** Loads config values into `config`; override to read your own format. */
  loadConfig(path: string, optional = false): void {
    this.config = Either.getOrThrow(Config.load(path, optional))
  }

  /**
   * Connects: CONN, the server's CONN, then STATUS if this client has one. A Troupe client then
   * sends a PING and waits for its PONG, by which time a Troupe server has announced itself.
   * Rejects with ConnectFailed.
   */
  connect(host: string, port: number): Promise<void> {
    const url = `framed://${host.includes(":") ? `[${host}]` : host}:${port}`
    const timeoutMs = millis(this.options.connectTimeout) ?? Config.duration(this.config, "connect_timeout") ?? 5000
    return new Promise((resolve, reject) => {
      let settled = false
      const failed = (reason: ConnectFailed["reason"], detail: string) => {
        if (settled) return
        settled = true
        clearTimeout(timer)
        socket.destroy()
        reject(new ConnectFailed({ url, reason, detail, message: `cannot connect to ${url}: ${detail}` }))
      }
      const socket = Net.connect({ host, port, noDelay: true })
      const timer = setTimeout(() => failed("timeout", `no answer within ${timeoutMs} ms`), timeoutMs)
      socket.once("error", (error: NodeJS.ErrnoException) =>
        failed(error.code === "ECONNREFUSED" ? "refused" : "other", error.code === "ECONNREFUSED" ? "connection refused" : error.message)
      )
      socket.once("connect", () => {
        socket.removeAllListeners("error")
        this.address = url
        const peer = new Peer(socket, url, this.peerOptions(), this.handler)
        this.peer = peer
        this.onHandshake = (ok, detail) => {
          if (!ok) return failed("protocol", detail)
          if (settled) return
          settled = true
          clearTimeout(timer)
          resolve()
        }
        peer.start()
        peer.send(Wire.conn)
      })
    })
  }

  /**
   * Reports messages: block=false, true if any arrived since the last poll; block=true waits up to
   * `timeout` (forever without one) for one.
   */
  poll(block = false, timeout?: Duration.DurationInput): Promise<boolean> {
    return toPromise((callback) => this.pollAsync(block, millis(timeout), callback))
  }

  /**
   * Takes the next item received. block=true (the default) waits up to `timeout` (forever without
   * one); rejects with Empty when none came, or Closed when the connection ended and none is left.
   */
  get(block = true, timeout?: Duration.DurationInput): Promise<string> {
    return toPromise((callback) => this.getAsync(block, millis(timeout), callback))
  }

  /** Takes every item received so far. */
  getAll(): Array<string> {
    const items: Array<string> = []
    while (this.localQueue.length > 0) items.push(this.localQueue.take())
    return items
  }

  /** Sends items to the server (written with this turn's other frames). Throws InvalidItem or Closed. */
  put(items: string | ReadonlyArray<string>): void {
    const list = typeof items === "string" ? [items] : items
    const invalid = invalidItem(list)
    if (invalid !== undefined) throw invalid
    const peer = this.peer
    if (peer === undefined || peer.isClosed) throw new Closed({ message: "the client is not connected" })
    for (const item of list) peer.sendItem(item, undefined, 0)
  }

  /**
   * Waits until every item put so far is safe: acknowledged by a Troupe server (it holds them), or
   * written to the socket for a plain one. Rejects with Empty after `timeout`, Closed if the
   * connection ends first.
   */
  flush(timeout?: Duration.DurationInput): Promise<void> {
    return toPromise((callback) => this.flushAsync(millis(timeout), callback))
  }

  /**
   * Closes the client; with `signalDisconn` (the default) it sends DISCONN first. Items received
   * from a Troupe server and not taken are dropped here: the server dispatches them again.
   */
  close(signalDisconn = true): Promise<void> {
    const peer = this.peer
    if (peer === undefined || peer.isClosed) return Promise.resolve()
    if (peer.troupe) this.localQueue.clear()
    return new Promise((resolve) => {
      peer.socket.once("close", () => resolve())
      peer.close("closed", "the client closed", signalDisconn)
    })
  }

  /** Asks a Troupe server for its report (children, load, state); rejects with Closed if the server is not Troupe. */
  report(timeout?: Duration.DurationInput): Promise<ServerReport> {
    return new Promise((resolve, reject) => {
      const peer = this.peer
      if (peer === undefined || peer.isClosed || !this.serverIsTroupe) {
        return reject(new Closed({ message: "the server does not speak Troupe (no report)" }))
      }
      const ms = millis(timeout) ?? 5000
      const timer = setTimeout(() => reject(new Empty({ message: `no report within ${ms} ms` })), ms)
      this.reports.push((report) => {
        clearTimeout(timer)
        report === undefined ? reject(new Closed({ message: "the connection ended" })) : resolve(report)
      })
      peer.send(Wire.reportRequest)
    })
  }

  /** Sends this client's STATUS again (after its state changed). */
  sendStatus(): void {
    const text = this.statusText()
    if (text !== undefined && this.peer !== undefined && this.peer.connected) this.peer.send(Wire.encodeStatus(text))
  }

  // ----- overridable

  /** This client's own status text, or undefined (the default). Troupe's fields are sent with it. */
  getStatus(): string | undefined {
    return undefined
  }

  /** Troupe fields added to the STATUS (a node adds its load and whether it is full). */
  statusFields(): Record<string, string | number | boolean | undefined> {
    return {}
  }

  /** Handles the server's STATUS text. The default does nothing. */
  handleServerStatus(_text: string): void {}

  /**
   * Handles items the server sent. The default adds them to the local queue (`enqueueLocal`);
   * items an override does not add there count as finished when it returns.
   */
  handleServerEnqueue(items: ReadonlyArray<string>): void {
    this.enqueueLocal(items)
  }

  // ----- for subclasses

  /** Adds the items being delivered to the local queue; they are acknowledged as they are taken. */
  protected enqueueLocal(items: ReadonlyArray<string>): void {
    const { first, origin } = this.claimDelivery()
    for (let i = 0; i < items.length; i++) this.localQueue.push(items[i]!, origin, first + i)
    this.gets.run()
  }

  /**
   * Takes over the items being delivered (during `handleServerEnqueue`): returns the connection to
   * acknowledge them on and the first item's number; call `origin.itemDone(first + i)` when item i
   * is finished.
   */
  protected claimDelivery(): { readonly first: number; readonly origin: Peer } {
    const delivery = this.delivery
    if (delivery === undefined || this.peer === undefined) throw new Error("claimDelivery outside handleServerEnqueue")
    delivery.claimed = true
    return { first: delivery.first, origin: this.peer }
  }

  /** Called once when the connection ends, with the reason. */
  protected disconnected(_reason: string): void {}

  /** Writes a log line through the configured log function. */
  protected log(level: "debug" | "info" | "warning", message: string): void {
    this.options.log?.(level, message)
  }

  // ----- callback forms

  /** `poll` with a callback. */
  pollAsync(block: boolean, timeoutMs: number | undefined, callback: Callback<boolean, never>): () => void {
    return this.arrivals.poll(this.polls, block, timeoutMs, (arrived) => callback(Either.right(arrived)))
  }

  /** `get` with a callback. */
  getAsync(block: boolean, timeoutMs: number | undefined, callback: Callback<string, Empty | Closed>): () => void {
    const take = () => {
      if (this.localQueue.length > 0) {
        callback(Either.right(this.localQueue.take()))
        return true
      }
      if (this.closedBy !== undefined || this.peer === undefined) {
        callback(Either.left(this.closedError()))
        return true
      }
      return false
    }
    if (!block || timeoutMs === 0) {
      if (!take()) callback(Either.left(new Empty({ message: "no item has arrived" })))
      return noop
    }
    return this.gets.add(take, () => callback(Either.left(new Empty({ message: "no item arrived before the timeout" }))), timeoutMs)
  }

  /** `flush` with a callback. */
  flushAsync(timeoutMs: number | undefined, callback: Callback<void, Empty | Closed>): () => void {
    let written = false
    const done = () => {
      const peer = this.peer
      if (peer === undefined || peer.isClosed) {
        callback(Either.left(this.closedError()))
        return true
      }
      if (peer.troupe ? peer.outstanding > 0 : !written) return false
      callback(Either.right(undefined))
      return true
    }
    const peer = this.peer
    if (peer !== undefined && !peer.isClosed && !peer.troupe) {
      // A plain server sends no acknowledgements: safe means written out of this process.
      peer.flush()
      peer.socket.write(new Uint8Array(0), () => {
        written = true
        this.flushes.run()
      })
    }
    return this.flushes.add(done, () => callback(Either.left(new Empty({ message: "items put were not acknowledged before the timeout" }))), timeoutMs)
  }

  // ----- private

  private onHandshake: (ok: boolean, detail: string) => void = noop
  private awaitingBarrier = false

  private peerOptions(): PeerOptions {
    return {
      maxFrameBytes: this.options.maxFrameBytes ?? Config.integer(this.config, "max_frame_bytes", 16) ?? defaultMaxFrameBytes,
      pingIntervalMs: millis(this.options.pingInterval) ?? Config.duration(this.config, "ping_interval") ?? 5000,
      pingTimeoutMs: millis(this.options.pingTimeout) ?? Config.duration(this.config, "ping_timeout") ?? 15_000
    }
  }

  private get troupe(): boolean {
    return this.options.troupe ?? Config.boolean(this.config, "troupe") ?? true
  }

  private statusText(): string | undefined {
    const window = this.options.window ?? Config.integer(this.config, "window", 1)
    const fields = Status.format({
      ...(this.troupe ? { troupe: Wire.troupeVersion } : {}),
      ...(this.producer ? { producer: 1 } : {}),
      ...(window !== undefined ? { window } : {}),
      ...this.statusFields()
    })
    const own = this.getStatus()
    const text = [fields, own ?? ""].filter((part) => part.length > 0).join(" ")
    return text.length > 0 ? text : undefined
  }

  private closedError(): Closed {
    return new Closed({ message: this.closedBy === undefined ? "the client is not connected" : `the connection to ${this.address} ended: ${this.closedBy.message}` })
  }

  private readonly handler: PeerHandler = {
    onConn: (peer) => {
      const status = this.statusText()
      if (status !== undefined) peer.send(Wire.encodeStatus(status))
      if (this.troupe) {
        // PING as a barrier: a Troupe server answers our STATUS with its own before this PONG.
        this.awaitingBarrier = true
        peer.send(Wire.ping)
      } else {
        this.onHandshake(true, "")
      }
      this.arrivals.note()
    },
    onStatus: (peer, text) => {
      if (!peer.troupe && this.troupe && Status.number(Status.parse(text), "troupe") !== undefined) {
        peer.troupe = true
        this.serverIsTroupe = true
      }
      this.handleServerStatus(text)
      this.arrivals.note()
      this.polls.run()
    },
    onItems: (peer, items, first) => {
      this.delivery = { first, claimed: false }
      try {
        this.handleServerEnqueue(items)
      } finally {
        const delivery = this.delivery
        this.delivery = undefined
        if (!delivery.claimed) for (let i = 0; i < items.length; i++) peer.itemDone(first + i)
      }
      this.arrivals.note()
      this.gets.run()
      this.polls.run()
    },
    onReport: (_peer, data) => {
      const waiter = this.reports.shift()
      if (waiter === undefined) return
      try {
        waiter(JSON.parse(Buffer.from(data).toString("utf8")) as ServerReport)
      } catch {
        waiter(undefined)
      }
    },
    onPong: () => {
      if (!this.awaitingBarrier) return
      this.awaitingBarrier = false
      this.onHandshake(true, "")
    },
    onWindow: () => this.flushes.run(),
    onClose: (peer, closed) => {
      this.closedBy = closed
      const level = closed.reason === "disconn" || closed.reason === "closed" ? "info" : "warning"
      this.log(level, `connection to ${peer.address} closed (${closed.reason}): ${closed.message}`)
      this.onHandshake(false, `the server closed the connection during the handshake (${closed.message})`)
      for (const waiter of this.reports.splice(0)) waiter(undefined)
      this.gets.run()
      this.flushes.run()
      this.polls.closeAll()
      this.disconnected(closed.message)
    }
  }
}

const noop = (): void => {}
