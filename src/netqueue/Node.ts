import { NetQueueClient, type ClientOptions } from "./Client.js"
import { NetQueueServer, type ServerOptions, type ServerReport } from "./Server.js"

/**
 * A queue node in a tree: the server for its children and, through a `ParentLink`, a client of its
 * parent. Items flow down: what the parent dispatches to this node joins the node's queue and is
 * dispatched on to its ready children (or held for local `get` when it has none), and is
 * acknowledged to the parent only once it has left this node. The node tells its parent its load
 * and whether it is full in its STATUS, so the parent dispatches elsewhere while it is full.
 */
export class NetQueueNode extends NetQueueServer {
  private parentLink: ParentLink | undefined
  private statusTimer: NodeJS.Timeout | undefined
  private lastLoad = -1

  constructor(options: ServerOptions & { readonly statusIntervalMs?: number } = {}) {
    super(options)
    const interval = options.statusIntervalMs ?? 250
    // Load changes often; it goes to the parent at most this often (fullness goes at once).
    this.statusTimer = setInterval(() => {
      const load = this.load
      if (load !== this.lastLoad) this.parentLink?.sendStatus()
    }, interval)
    this.statusTimer.unref()
  }

  /** The node's load: items held plus items outstanding to its children. */
  get load(): number {
    let load = this.heldCount
    for (const client of this.clients) load += client.inFlight
    return load
  }

  /** Makes a client of the parent whose items feed this node; connect it, then `attachParent`. */
  makeParentLink(options: ClientOptions = {}): ParentLink {
    return new ParentLink(this, options)
  }

  /** Uses a connected parent link. */
  attachParent(link: ParentLink): void {
    this.parentLink = link
  }

  /** Forgets a parent link that has closed. */
  detachParent(link: ParentLink): void {
    if (this.parentLink === link) this.parentLink = undefined
  }

  override report(): ServerReport {
    const link = this.parentLink
    return { ...super.report(), ...(link !== undefined ? { parent: { address: link.url, connected: link.connected } } : {}) }
  }

  override close(): Promise<void> {
    if (this.statusTimer !== undefined) clearInterval(this.statusTimer)
    this.statusTimer = undefined
    return super.close()
  }

  protected override onStateChange(full: boolean): void {
    this.log("debug", full ? "node is full: telling the parent" : "node has room again")
    this.parentLink?.sendStatus()
  }

  /** @internal the fields the parent link sends */
  statusFieldsForParent(): Record<string, string | number | boolean> {
    const load = this.load
    this.lastLoad = load
    return { full: this.isFull, load }
  }
}

/** A node's connection to its parent: a consumer whose items go into the node's queue. */
export class ParentLink extends NetQueueClient {
  url = ""
  /** Called once when the connection to the parent ends. */
  onDisconnected: (reason: string) => void = () => {}

  constructor(private readonly node: NetQueueNode, options: ClientOptions) {
    super({ configFile: "", ...options, producer: false })
  }

  override loadConfig(): void {
    this.config = {}
  }

  override connect(host: string, port: number): Promise<void> {
    this.url = `framed://${host}:${port}`
    return super.connect(host, port)
  }

  override statusFields(): Record<string, string | number | boolean | undefined> {
    return this.node.statusFieldsForParent()
  }

  protected override disconnected(reason: string): void {
    this.onDisconnected(reason)
  }

  override handleServerEnqueue(items: ReadonlyArray<string>): void {
    const { first, origin } = this.claimDelivery()
    this.node.enqueue(items, origin, first)
  }
}
