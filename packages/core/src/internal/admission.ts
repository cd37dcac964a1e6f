/**
 * Admission: a per-(project, engine) bulkhead and a per-target budget shared fairly across projects.
 *
 * The fast path is two counter comparisons. Waiters exist only under contention:
 * - the bulkhead queue is FIFO (CMAP's fairness rule: newer waiters are never preferred);
 * - the target budget serves waiting projects by weighted fair queueing (start-time fair queueing): a waiter's
 *   tag is `max(virtual time, the project's last tag) + 1 / weight`, the smallest tag is served first, so a
 *   project with weight 8 (ENTERPRISE) gets eight turns for every turn of a weight-1 (FREE) project, and a flood
 *   of FREE projects cannot push an ENTERPRISE waiter back more than a few turns.
 * Cancelled waiters are marked and skipped (O(1) cancel).
 *
 * @internal
 */

/** @internal */
export interface Waiter {
  /** Called once when the waiter gets its slot. */
  grant: (() => void) | undefined
}

/** A FIFO of waiters (array with a moving head; compacted as it drains). @internal */
export class Fifo {
  private items: Array<Waiter | undefined> = []
  private start = 0
  private live = 0

  get length(): number {
    return this.live
  }

  push(w: Waiter): void {
    this.items.push(w)
    this.live++
  }

  cancel(w: Waiter): boolean {
    if (w.grant === undefined) return false
    w.grant = undefined
    this.live--
    return true
  }

  /** Takes the oldest live waiter. */
  shift(): Waiter | undefined {
    while (this.start < this.items.length) {
      const w = this.items[this.start]
      this.items[this.start++] = undefined
      if (this.start > 1024 && this.start * 2 > this.items.length) {
        this.items = this.items.slice(this.start)
        this.start = 0
      }
      if (w !== undefined && w.grant !== undefined) {
        this.live--
        return w
      }
    }
    this.items.length = 0
    this.start = 0
    return undefined
  }
}

/** A bulkhead: at most `limit()` holders, then a FIFO bounded by `maxQueue()`. @internal */
export class Bulkhead {
  active = 0
  readonly queue = new Fifo()

  tryAcquire(limit: number): boolean {
    if (this.active < limit && this.queue.length === 0) {
      this.active++
      return true
    }
    return false
  }

  /** Frees a slot and hands it to the next waiter if the (possibly shrunk) limit allows. */
  release(limit: number): void {
    this.active--
    while (this.active < limit && this.queue.length > 0) {
      const w = this.queue.shift()
      if (w === undefined) return
      this.active++
      const grant = w.grant!
      w.grant = undefined
      grant()
    }
  }

  /** After a limit grows: admits waiters up to the new limit. */
  drain(limit: number): void {
    this.active++
    this.release(limit)
  }
}

/** @internal */
export interface FairWaiter extends Waiter {
  tag: number
  seq: number
}

/** A min-heap of waiters by (tag, seq). @internal */
class Heap {
  private readonly items: Array<FairWaiter> = []

  get size(): number {
    return this.items.length
  }

  clear() {
    this.items.length = 0
  }

  push(w: FairWaiter) {
    const a = this.items
    a.push(w)
    let i = a.length - 1
    while (i > 0) {
      const p = (i - 1) >> 1
      if (less(a[p]!, w)) break
      a[i] = a[p]!
      i = p
    }
    a[i] = w
  }

  pop(): FairWaiter | undefined {
    const a = this.items
    if (a.length === 0) return undefined
    const top = a[0]!
    const last = a.pop()!
    if (a.length > 0) {
      let i = 0
      const n = a.length
      for (;;) {
        const l = 2 * i + 1
        if (l >= n) break
        const r = l + 1
        const c = r < n && less(a[r]!, a[l]!) ? r : l
        if (less(last, a[c]!)) break
        a[i] = a[c]!
        i = c
      }
      a[i] = last
    }
    return top
  }
}

const less = (a: FairWaiter, b: FairWaiter) => a.tag < b.tag || (a.tag === b.tag && a.seq < b.seq)

/** The per-target budget. @internal */
export class FairBudget {
  inUse = 0
  capacity: number
  private virtualTime = 0
  private seq = 0
  private waiting = 0
  private readonly heap = new Heap()

  constructor(capacity: number) {
    this.capacity = capacity
  }

  get queued(): number {
    return this.waiting
  }

  tryAcquire(): boolean {
    if (this.inUse < this.capacity && this.waiting === 0) {
      this.inUse++
      return true
    }
    return false
  }

  /** Queues a waiter for a project whose last tag is `lastTag`; returns the new tag to store on the project. */
  enqueue(w: FairWaiter, lastTag: number, weight: number): number {
    w.tag = Math.max(this.virtualTime, lastTag) + 1 / weight
    w.seq = this.seq++
    this.heap.push(w)
    this.waiting++
    return w.tag
  }

  cancel(w: FairWaiter): void {
    if (w.grant === undefined) return
    w.grant = undefined
    if (--this.waiting === 0) this.heap.clear()
  }

  release(): void {
    this.inUse--
    this.dispatch()
  }

  /** Hands free capacity to waiters, smallest tag first. */
  dispatch(): void {
    while (this.inUse < this.capacity && this.waiting > 0) {
      const w = this.heap.pop()
      if (w === undefined) return
      if (w.grant === undefined) continue
      this.waiting--
      this.virtualTime = w.tag
      this.inUse++
      const grant = w.grant
      w.grant = undefined
      grant()
    }
  }
}
