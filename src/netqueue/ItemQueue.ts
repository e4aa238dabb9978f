/**
 * Items on their way through a node, each with where it came from: the peer to acknowledge once
 * the item has left this node (`origin`, the parent link) and its number on that connection.
 * Two structures: a FIFO of items held by the node (`ItemQueue`), and the items sent to one peer
 * and not yet acknowledged, by item number (`InFlight`). Both are plain arrays with a moving head:
 * no allocation per item beyond the arrays' growth.
 */

/** Who to tell when an item has left this node. */
export interface Origin {
  /** The item numbered `seq` on this origin's connection has left the node. */
  readonly itemDone: (seq: number) => void
}

/** Marks an item sent to every child (`sendAll`): never dispatched again if a child is lost. */
export const broadcastSeq = -1

/** A FIFO of items with their origins. */
export class ItemQueue {
  private items: Array<string> = []
  private origins: Array<Origin | undefined> = []
  private seqs: Array<number> = []
  private head = 0

  /** Items held. */
  get length(): number {
    return this.items.length - this.head
  }

  /** Adds an item at the back. */
  push(item: string, origin: Origin | undefined, seq: number): void {
    this.items.push(item)
    this.origins.push(origin)
    this.seqs.push(seq)
  }

  /** Puts items back at the front, in their order (items taken back from a lost peer). */
  pushFront(items: ReadonlyArray<string>, origins: ReadonlyArray<Origin | undefined>, seqs: ReadonlyArray<number>): void {
    if (items.length === 0) return
    this.items = [...items, ...this.items.slice(this.head)]
    this.origins = [...origins, ...this.origins.slice(this.head)]
    this.seqs = [...seqs, ...this.seqs.slice(this.head)]
    this.head = 0
  }

  /** The origin of the front item (only when length > 0). */
  get frontOrigin(): Origin | undefined {
    return this.origins[this.head]
  }

  /** The origin's number of the front item (only when length > 0). */
  get frontSeq(): number {
    return this.seqs[this.head]!
  }

  /** Removes and returns the front item; read `frontOrigin`/`frontSeq` first if they matter. */
  shift(): string {
    const item = this.items[this.head]!
    this.origins[this.head] = undefined
    this.head++
    if (this.head === this.items.length) {
      this.items = []
      this.origins = []
      this.seqs = []
      this.head = 0
    } else if (this.head >= 4096 && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head)
      this.origins = this.origins.slice(this.head)
      this.seqs = this.seqs.slice(this.head)
      this.head = 0
    }
    return item
  }

  /** Forgets every item, without telling their origins. */
  clear(): void {
    this.items = []
    this.origins = []
    this.seqs = []
    this.head = 0
  }

  /** Removes and returns the front item and tells its origin it has left the node. */
  take(): string {
    const origin = this.origins[this.head]
    const seq = this.seqs[this.head]!
    const item = this.shift()
    if (origin !== undefined) origin.itemDone(seq)
    return item
  }
}

/** The items sent to one peer and not yet acknowledged, by the item's number on that connection. */
export class InFlight {
  private items: Array<string | undefined> = []
  private origins: Array<Origin | undefined> = []
  private seqs: Array<number> = []
  private head = 0
  /** The number of the item at index 0 of the arrays; 0 until the first item is tracked. */
  private base = 0
  private outstanding = 0

  /** Items not yet acknowledged. */
  get count(): number {
    return this.outstanding
  }

  /** Tracks the item numbered `seq` (numbers are consecutive from the first tracked one). */
  add(seq: number, item: string, origin: Origin | undefined, originSeq: number): void {
    if (this.base === 0) this.base = seq
    this.items.push(item)
    this.origins.push(origin)
    this.seqs.push(originSeq)
    this.outstanding++
  }

  /** Acknowledges items `first .. first+count-1`; numbers never tracked or already acknowledged are ignored. */
  ack(first: number, count: number): void {
    if (this.base === 0) return
    const from = Math.max(first, this.base + this.head)
    const to = Math.min(first + count, this.base + this.items.length)
    for (let seq = from; seq < to; seq++) {
      const index = seq - this.base
      if (this.items[index] === undefined) continue
      this.items[index] = undefined
      this.outstanding--
      const origin = this.origins[index]
      this.origins[index] = undefined
      if (origin !== undefined) origin.itemDone(this.seqs[index]!)
    }
    while (this.head < this.items.length && this.items[this.head] === undefined) this.head++
    if (this.head === this.items.length) {
      this.base += this.head
      this.items = []
      this.origins = []
      this.seqs = []
      this.head = 0
    } else if (this.head >= 4096 && this.head * 2 >= this.items.length) {
      this.base += this.head
      this.items = this.items.slice(this.head)
      this.origins = this.origins.slice(this.head)
      this.seqs = this.seqs.slice(this.head)
      this.head = 0
    }
  }

  /** Removes and returns every unacknowledged item, oldest first (for a lost peer). */
  drain(): { readonly items: Array<string>; readonly origins: Array<Origin | undefined>; readonly seqs: Array<number> } {
    const items: Array<string> = []
    const origins: Array<Origin | undefined> = []
    const seqs: Array<number> = []
    for (let index = this.head; index < this.items.length; index++) {
      const item = this.items[index]
      if (item === undefined) continue
      items.push(item)
      origins.push(this.origins[index])
      seqs.push(this.seqs[index]!)
    }
    this.items = []
    this.origins = []
    this.seqs = []
    this.head = 0
    this.outstanding = 0
    return { items, origins, seqs }
  }
}
