/**
 * One shared timer for many deadlines.
 *
 * Every guarded operation has a deadline and an attempt timeout, and every waiter in an admission queue has a
 * deadline. A timer per call (what `Effect.timeout` does) costs microseconds on the hot path; here a call adds an
 * entry to a list kept sorted by time and removes it when it completes, both O(1) in the common case (deadlines
 * arrive roughly in order because timeouts are per engine), and a single sleeping fiber wakes for the earliest
 * entry. The sleep goes through Effect's `Clock`, so `TestClock` drives it in tests. With nothing pending, no
 * fiber and no timer exist.
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
  linked: boolean
  prev: Entry | undefined
  next: Entry | undefined
  onDeadline(): void
}

/** @internal */
export class Deadlines {
  private head: Entry | undefined = undefined
  private tail: Entry | undefined = undefined
  private watcher: Fiber.Fiber<void> | undefined = undefined
  private watchingUntil = Infinity
  private generation = 0
  private count = 0
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

  add(at: number, fire: () => void): Entry {
    const entry: Entry = { at, linked: false, prev: undefined, next: undefined, onDeadline: fire }
    this.schedule(entry, at)
    return entry
  }

  /** Links an entry (not currently linked) to fire at `at`. */
  schedule(entry: Entry, at: number): void {
    entry.at = at
    entry.linked = true
    // Walk back from the tail: deadlines mostly arrive in order, so this is usually one step.
    let after = this.tail
    while (after !== undefined && after.at > at) after = after.prev
    if (after === undefined) {
      entry.next = this.head
      if (this.head !== undefined) this.head.prev = entry
      this.head = entry
      if (this.tail === undefined) this.tail = entry
    } else {
      entry.prev = after
      entry.next = after.next
      if (after.next !== undefined) after.next.prev = entry
      else this.tail = entry
      after.next = entry
    }
    this.count++
    if (at < this.watchingUntil) this.arm(at)
  }

  /** Removes an entry; safe to call twice or after it fired. */
  cancel(entry: Entry): void {
    if (!entry.linked) return
    entry.linked = false
    this.unlink(entry)
    // The watcher is left sleeping: it finds nothing due and re-arms for the new head, or stops.
  }

  private unlink(entry: Entry) {
    if (entry.prev !== undefined) entry.prev.next = entry.next
    else this.head = entry.next
    if (entry.next !== undefined) entry.next.prev = entry.prev
    else this.tail = entry.prev
    entry.prev = entry.next = undefined
    this.count--
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
    const now = this.clock.currentTimeMillisUnsafe()
    while (this.head !== undefined && this.head.at <= now) {
      const entry = this.head
      entry.linked = false
      this.unlink(entry)
      try {
        entry.onDeadline()
      } catch {
        // A deadline callback must not stop the others; callbacks are internal and do not throw.
      }
    }
    if (this.head !== undefined) this.arm(this.head.at)
  }

  /** Unlinks and returns every pending entry, without firing it, and stops the watcher (on shutdown). */
  drain(): Array<Entry> {
    const pending: Array<Entry> = []
    while (this.head !== undefined) {
      const entry = this.head
      entry.linked = false
      this.unlink(entry)
      pending.push(entry)
    }
    this.stop()
    return pending
  }

  /** Stops the watcher (on shutdown); pending entries never fire. */
  stop(): void {
    if (this.watcher !== undefined) this.watcher.interruptUnsafe()
    this.generation++
    this.watcher = undefined
    this.watchingUntil = Infinity
  }
}
