/**
 * One shared timer for many deadlines, with constant-time insertion however many callers wait.
 *
 * Every guarded operation has an attempt timeout, and every caller waiting in an admission queue has a deadline.
 * A timer per call (what `Effect.timeout` does) costs microseconds on the hot path; here a call links itself into
 * a list and unlinks when it completes, and a single sleeping fiber wakes for the earliest entry. The sleep goes
 * through Effect's `Clock`, so `TestClock` drives it in tests, and the fiber is forked by the owner's `fork` (the
 * tenancy layer's `FiberSet`), so closing the layer stops it. With nothing pending, no fiber and no timer exist.
 *
 * Why lanes: one sorted list is O(1) only while deadlines arrive in order, and they do not when callers with a
 * 10 s tier deadline queue up and running attempts with a 1 s timeout are inserted before all of them (measured:
 * 0.22 µs per insert at 100 waiters, 9.5 µs at 1,000, 50 µs at 10,000). Entries are therefore grouped by the
 * relative timeout that produced them (`key`): within a lane, `at = now + key` grows with `now`, so an insert is
 * an append at the tail. The watcher sleeps until the earliest lane head. An entry that would land out of order
 * in its lane (a retry under its original deadline, a clock that stepped back) goes to a small binary heap
 * instead, O(log n). See docs/architecture.md ("Deadlines").
 *
 * @internal
 */
import type * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Fiber from "effect/Fiber"

/** Something with a deadline. A guarded call is its own entry, so arming a deadline allocates nothing. @internal */
export interface Entry {
  at: number
  /** The lane the entry is linked in; undefined when not linked in a lane. */
  lane: Lane | undefined
  /** The heap node of an out-of-order entry; undefined otherwise. */
  node: HeapNode | undefined
  prev: Entry | undefined
  next: Entry | undefined
  onDeadline(): void
}

/** Entries of one relative timeout, in deadline order (a doubly-linked FIFO). @internal */
export class Lane {
  head: Entry | undefined = undefined
  tail: Entry | undefined = undefined
  readonly key: number
  constructor(key: number) {
    this.key = key
  }
}

/** An out-of-order entry in the heap; `live` turns false when it is cancelled (lazy deletion). @internal */
export interface HeapNode {
  readonly at: number
  readonly seq: number
  readonly entry: Entry
  live: boolean
}

/** A bare entry for one-off deadlines (`Deadlines.add`). */
class Once implements Entry {
  at = 0
  lane: Lane | undefined = undefined
  node: HeapNode | undefined = undefined
  prev: Entry | undefined = undefined
  next: Entry | undefined = undefined
  readonly onDeadline: () => void
  constructor(fire: () => void) {
    this.onDeadline = fire
  }
}

/** @internal */
export class Deadlines {
  private readonly lanes = new Map<number, Lane>()
  // The lane used last: calls of one engine and tier share their keys, so this saves the map lookup.
  private last: Lane | undefined = undefined
  private readonly heap: Array<HeapNode> = []
  private seq = 0
  private count = 0
  private watcher: Fiber.Fiber<void> | undefined = undefined
  private watchingUntil = Infinity
  private generation = 0
  private waking = false
  readonly clock: Clock.Clock
  private readonly fork: (effect: Effect.Effect<void>) => Fiber.Fiber<void>

  constructor(clock: Clock.Clock, fork: (effect: Effect.Effect<void>) => Fiber.Fiber<void>) {
    this.clock = clock
    this.fork = fork
  }

  /** Entries pending (for tests and stats). */
  get size(): number {
    return this.count
  }

  /** Whether a watcher fiber (and so a timer) is alive. */
  get armed(): boolean {
    return this.watcher !== undefined
  }

  /** A one-off deadline (a breaker's probe time): kept in the heap, where any order is fine. */
  add(at: number, fire: () => void): Entry {
    const entry = new Once(fire)
    entry.at = at
    this.push(entry)
    this.count++
    this.armFor(at)
    return entry
  }

  /**
   * Links an entry (not currently linked) to fire at `at`, which the caller computed as a clock reading plus `key`
   * milliseconds (its relative timeout).
   */
  schedule(entry: Entry, at: number, key: number): void {
    entry.at = at
    let lane = this.last
    if (lane === undefined || lane.key !== key) {
      lane = this.lanes.get(key)
      if (lane === undefined) {
        lane = new Lane(key)
        this.lanes.set(key, lane)
      }
      this.last = lane
    }
    const tail = lane.tail
    if (tail === undefined) {
      lane.head = lane.tail = entry
      entry.lane = lane
    } else if (tail.at <= at) {
      tail.next = entry
      entry.prev = tail
      lane.tail = entry
      entry.lane = lane
    } else {
      this.push(entry)
    }
    this.count++
    this.armFor(at)
  }

  /** Removes an entry; safe to call twice or after it fired. */
  cancel(entry: Entry): void {
    if (entry.lane !== undefined) {
      this.unlink(entry.lane, entry)
      this.count--
    } else if (entry.node !== undefined) {
      entry.node.live = false
      entry.node = undefined
      this.count--
    }
    // The watcher is left sleeping: it finds nothing due and re-arms for the new earliest entry, or stops.
  }

  /** Unlinks and returns every pending entry, without firing it, in deadline order, and stops the watcher. */
  drain(): Array<Entry> {
    const pending: Array<Entry> = []
    for (const lane of this.lanes.values()) {
      while (lane.head !== undefined) {
        const entry = lane.head
        this.unlink(lane, entry)
        pending.push(entry)
      }
    }
    for (const node of this.heap) {
      if (!node.live) continue
      node.entry.node = undefined
      pending.push(node.entry)
    }
    this.lanes.clear()
    this.last = undefined
    this.heap.length = 0
    this.count = 0
    this.stop()
    return pending.sort((a, b) => a.at - b.at)
  }

  /** Stops the watcher (on shutdown); pending entries never fire. */
  stop(): void {
    if (this.watcher !== undefined) this.watcher.interruptUnsafe()
    this.generation++
    this.watcher = undefined
    this.watchingUntil = Infinity
  }

  private unlink(lane: Lane, entry: Entry) {
    if (entry.prev !== undefined) entry.prev.next = entry.next
    else lane.head = entry.next
    if (entry.next !== undefined) entry.next.prev = entry.prev
    else lane.tail = entry.prev
    entry.prev = entry.next = undefined
    entry.lane = undefined
  }

  private armFor(at: number) {
    // While waking, the earliest entry is found once at the end; arming per callback would fork and interrupt.
    if (!this.waking && at < this.watchingUntil) this.arm(at)
  }

  private arm(at: number) {
    if (this.watcher !== undefined) this.watcher.interruptUnsafe()
    this.watcher = undefined
    const token = ++this.generation
    this.watchingUntil = at
    const delay = Math.max(0, at - this.clock.currentTimeMillisUnsafe())
    const fiber = this.fork(
      Effect.flatMap(this.clock.sleep(Duration.millis(delay)), () => Effect.sync(() => this.wake(token)))
    )
    // The fiber may already have run to completion synchronously (and re-armed).
    if (this.generation === token && this.watchingUntil === at) this.watcher = fiber
  }

  private wake(token: number) {
    if (token !== this.generation) return
    this.generation++
    this.watcher = undefined
    this.watchingUntil = Infinity
    this.waking = true
    let next = Infinity
    try {
      const now = this.clock.currentTimeMillisUnsafe()
      for (const lane of this.lanes.values()) {
        while (lane.head !== undefined && lane.head.at <= now) {
          const entry = lane.head
          this.unlink(lane, entry)
          this.count--
          fire(entry)
        }
        if (lane.head === undefined) {
          this.lanes.delete(lane.key)
          if (this.last === lane) this.last = undefined
        }
      }
      for (let top = this.peek(); top !== undefined && top.at <= now; top = this.peek()) {
        this.pop()
        top.entry.node = undefined
        this.count--
        fire(top.entry)
      }
      // Entries scheduled by the callbacks above are included: they are linked by now.
      for (const lane of this.lanes.values()) if (lane.head !== undefined && lane.head.at < next) next = lane.head.at
      const top = this.peek()
      if (top !== undefined && top.at < next) next = top.at
    } finally {
      this.waking = false
    }
    if (next !== Infinity) this.arm(next)
  }

  // ---- the heap of out-of-order entries (min by `at`, then insertion order) ------------------------------------

  private push(entry: Entry) {
    const node: HeapNode = { at: entry.at, seq: this.seq++, entry, live: true }
    entry.node = node
    const a = this.heap
    let i = a.push(node) - 1
    while (i > 0) {
      const p = (i - 1) >> 1
      if (!before(node, a[p]!)) break
      a[i] = a[p]!
      i = p
    }
    a[i] = node
  }

  /** The earliest live node, dropping cancelled ones from the top. */
  private peek(): HeapNode | undefined {
    while (this.heap.length > 0 && !this.heap[0]!.live) this.pop()
    return this.heap[0]
  }

  private pop() {
    const a = this.heap
    const last = a.pop()!
    if (a.length === 0) return
    let i = 0
    for (;;) {
      const l = 2 * i + 1
      if (l >= a.length) break
      const r = l + 1
      const c = r < a.length && before(a[r]!, a[l]!) ? r : l
      if (!before(a[c]!, last)) break
      a[i] = a[c]!
      i = c
    }
    a[i] = last
  }
}

const before = (a: HeapNode, b: HeapNode) => a.at < b.at || (a.at === b.at && a.seq < b.seq)

const fire = (entry: Entry) => {
  try {
    entry.onDeadline()
  } catch {
    // A deadline callback must not stop the others; callbacks are internal and do not throw.
  }
}
