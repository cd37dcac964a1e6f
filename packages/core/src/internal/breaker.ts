/**
 * The breaker state machine used on the hot path.
 *
 * Why not `effect/persistence` CircuitBreaker for every call: measured here, its `execute` costs ~4.5 µs per call
 * (a scope, an admission effect and a record effect per call), more than twice the whole guard's budget; its rate
 * policy counts the last N calls rather than a time window with a volume threshold; it admits exactly one probe;
 * and it cannot probe actively. This one is a plain object: a closed breaker costs one comparison to pass and
 * two array writes to record. Transitions are reported through a callback (events and metrics).
 *
 * @internal
 */
import type { BreakerPolicy } from "../BreakerPolicy.ts"

/** @internal */
export const CLOSED = 0
/** @internal */
export const HALF_OPEN = 1
/** @internal */
export const OPEN = 2

/** @internal */
export type StateCode = 0 | 1 | 2

/** @internal */
export const stateName = (s: StateCode): "closed" | "half-open" | "open" =>
  s === CLOSED ? "closed" : s === HALF_OPEN ? "half-open" : "open"

/** @internal */
export type Listener = (from: StateCode, to: StateCode, breaker: Breaker) => void

/** Result of `admit`: pass, pass as a probe, or rejected. @internal */
export const PASS = 0
/** @internal */
export const PROBE = 1
/** @internal */
export const REJECT = 2

/** @internal */
export class Breaker {
  state: StateCode = CLOSED
  openUntil = 0
  openings = 0
  lastOpenFor = 0
  resetAt = 0
  probes = 0
  probeSuccesses = 0
  totalOpenings = 0
  /** Successful calls since the breaker last closed (a healthy period ends the backoff). */
  successesSinceClose = 0
  policy: BreakerPolicy
  // Plain arrays of small integers: allocating them costs a quarter of two typed arrays, on every project's first call.
  private readonly ok: Array<number>
  private readonly bad: Array<number>
  private bucketIndex = -1
  private bucketStart = 0
  private bucketEnd = -1
  private current = 0
  private readonly listener: Listener

  constructor(policy: BreakerPolicy, listener: Listener) {
    this.policy = policy
    this.listener = listener
    this.ok = new Array<number>(policy.buckets).fill(0)
    this.bad = new Array<number>(policy.buckets).fill(0)
  }

  /** Decides whether a call may run now. */
  admit(now: number): number {
    if (this.state === CLOSED) return PASS
    if (this.state === OPEN) {
      if (now < this.openUntil) return REJECT
      this.transition(HALF_OPEN)
    }
    if (this.probes >= this.policy.halfOpenProbes) return REJECT
    this.probes++
    return PROBE
  }

  /** Milliseconds until a rejected caller may try again. */
  retryAfter(now: number): number {
    if (this.state === OPEN) return Math.max(1, this.openUntil - now)
    // Half-open with every probe slot taken: the probes finish within an attempt timeout.
    return Math.max(1, Math.min(this.policy.attemptTimeoutMillis, this.policy.resetTimeoutMillis))
  }

  /** Records an outcome. `failure` is an infrastructure failure; caller errors are recorded as success. */
  record(now: number, failure: boolean, probe: boolean): void {
    if (probe) {
      if (this.state !== HALF_OPEN) return
      this.probes--
      if (failure) {
        this.open(now)
        return
      }
      if (++this.probeSuccesses >= this.policy.halfOpenProbes) this.close(now)
      return
    }
    if (this.state !== CLOSED) return
    // Closed long enough, or through enough successful calls, since the last opening: the backoff starts over.
    if (this.openings > 0 && (now >= this.resetAt || this.successesSinceClose >= this.policy.volumeThreshold)) {
      this.openings = 0
    }
    const i = this.rotate(now)
    if (failure) {
      this.bad[i]!++
      this.maybeTrip(now)
    } else {
      this.ok[i]!++
      this.successesSinceClose++
    }
  }

  /** A probe slot taken by `admit` ended without an outcome (interrupted, or refused later in admission). */
  releaseProbe(): void {
    if (this.state === HALF_OPEN && this.probes > 0) this.probes--
  }

  /**
   * Ends the open time now because an active probe found the target answering: the breaker turns half-open with
   * that probe's success recorded (with one probe slot, it closes).
   */
  recover(now: number): void {
    if (this.state !== OPEN) return
    this.openUntil = now
    if (this.admit(now) === PROBE) this.record(now, false, true)
  }

  /**
   * Opens the breaker until `until` because another process found the target down (cluster coordination): the
   * open time is the other process's, and the backoff count is not touched.
   */
  holdOpen(now: number, until: number): void {
    if (this.state === OPEN || until <= now) return
    this.openUntil = until
    this.lastOpenFor = until - now
    this.probes = 0
    this.probeSuccesses = 0
    this.transition(OPEN)
  }

  /** Closes the breaker because another process's probe found the target answering (cluster coordination). */
  forceClose(now: number): void {
    if (this.state !== CLOSED) this.close(now)
  }

  /** Forces the breaker open (used by health checks that find a target down). */
  trip(now: number): void {
    if (this.state !== OPEN) this.open(now)
  }

  /** Calls and failures in the current window. */
  window(now: number): { readonly calls: number; readonly failures: number } {
    this.rotate(now)
    let calls = 0
    let failures = 0
    for (let i = 0; i < this.ok.length; i++) {
      calls += this.ok[i]! + this.bad[i]!
      failures += this.bad[i]!
    }
    return { calls, failures }
  }

  /** Whether this breaker holds no information worth keeping (closed, empty window, no backoff). */
  isQuiet(now: number): boolean {
    if (this.state !== CLOSED || (this.openings > 0 && now < this.resetAt)) return false
    return this.window(now).calls === 0
  }

  private rotate(now: number): number {
    // Fast path: still inside the current bucket.
    if (now >= this.bucketStart && now < this.bucketEnd) return this.current
    const width = this.policy.windowMillis / this.policy.buckets
    const index = Math.floor(now / width)
    if (index !== this.bucketIndex) {
      const n = this.ok.length
      const steps = this.bucketIndex < 0 ? n : Math.min(n, index - this.bucketIndex)
      for (let k = 1; k <= steps; k++) {
        const j = (((this.bucketIndex + k) % n) + n) % n
        this.ok[j] = 0
        this.bad[j] = 0
      }
      this.bucketIndex = index
    }
    this.bucketStart = index * width
    this.bucketEnd = this.bucketStart + width
    this.current = ((index % this.ok.length) + this.ok.length) % this.ok.length
    return this.current
  }

  private maybeTrip(now: number) {
    let calls = 0
    let failures = 0
    for (let i = 0; i < this.ok.length; i++) {
      calls += this.ok[i]! + this.bad[i]!
      failures += this.bad[i]!
    }
    if (calls >= this.policy.volumeThreshold && failures / calls >= this.policy.errorThreshold) this.open(now)
  }

  private open(now: number) {
    const p = this.policy
    const openFor = Math.min(p.resetTimeoutMillis * Math.pow(p.backoffFactor, this.openings), p.maxResetTimeoutMillis)
    this.openings++
    this.totalOpenings++
    this.lastOpenFor = openFor
    this.openUntil = now + openFor
    this.probes = 0
    this.probeSuccesses = 0
    this.ok.fill(0)
    this.bad.fill(0)
    this.transition(OPEN)
  }

  private close(now: number) {
    this.resetAt = now + this.lastOpenFor
    this.successesSinceClose = 0
    this.probes = 0
    this.probeSuccesses = 0
    this.ok.fill(0)
    this.bad.fill(0)
    this.transition(CLOSED)
  }

  private transition(to: StateCode) {
    const from = this.state
    if (from === to) return
    this.state = to
    this.listener(from, to, this)
  }
}
