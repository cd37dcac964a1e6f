/**
 * One guarded call, as a state machine: begin (breakers, then the project's bulkhead) → admit (the target's fair
 * budget) → run (the attempt, under its attempt timeout) → complete, time out, or be interrupted; then, for an
 * idempotent operation that failed on infrastructure, retry by the service's `Schedule` within the deadline.
 *
 * States: 0 waiting for the project slot, 1 waiting for the target slot, 2 running, 3 done. Every path out of a
 * state releases exactly what that state holds (bulkhead slot, budget slot, probe slots, the deadline entry).
 * The call is its own deadline entry and its own queue waiter, so the fast path (no wait, success) allocates this
 * one object and starts no timer. See docs/architecture.md ("The request path").
 *
 * @internal
 */
import * as Cause from "effect/Cause"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import { type AttemptSignal, type Classification, isWrite, type Operation } from "../Engine.ts"
import { CircuitOpen, type GuardError, Overloaded, ShuttingDown, Timeout, UnknownOutcome } from "../Errors.ts"
import type { FairWaiter, Waiter } from "./admission.ts"
import { type Breaker, PROBE, REJECT } from "./breaker.ts"
import type { Entry, HeapNode, Lane } from "./deadlines.ts"
import { type FaultKind, take } from "./faults.ts"
import { countError, durationCell, handlesOf, okCell } from "./metricHandles.ts"
import type { EngineState, ProjectEngine, TenancyState } from "./state.ts"

/** The retry loop a first attempt's failure goes to (see `attempt.ts`). @internal */
export type Retry = <A, E>(call: Call<A, E>, error: unknown) => Effect.Effect<A, E | GuardError>

/** Starts the driver work of a running call; reports through `call.complete`. @internal */
export type Runner<A, B, E> = (pe: ProjectEngine<B, E>, call: Call<A, E>) => void

const WAIT_PROJECT = 0
const WAIT_TARGET = 1
const RUNNING = 2
/** @internal */
export const DONE = 3

// Progress of a running attempt, as the engine reports it through the attempt signal. UNTRACKED: the engine says
// nothing, so the request may have been sent from the start.
const UNTRACKED = 0
const WAITING = 1
const SENDING = 2

// An engine's `classify` meets only its own errors, except through a lease, whose holder may fail with anything: an
// error it cannot classify is the caller's (counts nowhere), never a crash of the guard.
const classifySafely = (es: EngineState<any, any>, error: unknown): Classification => {
  try {
    return es.adapter.classify(error)
  } catch {
    return { infrastructure: false, errorType: "unknown", sent: true }
  }
}

/**
 * Expected wait of a caller with `ahead` callers before it for `slots` busy slots: the rest of the running attempts
 * (a slot's service time is the recent mean attempt duration, or, before any attempt completed, the running ones'
 * mean age), then one service time per full round of the callers ahead. Exact for uniform durations.
 */
const drainMillis = (
  ahead: number,
  slots: number,
  ewma: number,
  running: number,
  startedSum: number,
  now: number
): number => {
  const age = running > 0 ? now - startedSum / running : 0
  const service = ewma > 0 ? ewma : age
  return Math.max(1, Math.max(service - age, 0) + Math.floor(ahead / slots) * service)
}

/** One attempt of a guarded call. @internal */
export class Call<A, E> implements Waiter, FairWaiter, AttemptSignal, Entry {
  state = WAIT_PROJECT
  grant: (() => void) | undefined = undefined
  // Fair-queueing position at the target's budget.
  tag = 0
  seq = 0
  // Deadline entry (see deadlines.ts).
  at = 0
  lane: Lane | undefined = undefined
  node: HeapNode | undefined = undefined
  prev: Entry | undefined = undefined
  next: Entry | undefined = undefined
  /** Which budget the armed entry stands for while running. */
  attemptBudget: "attempt" | "deadline" = "attempt"
  probe = false
  targetProbe = false
  startedAt = 0
  /** The wall clock when the attempt started (`now()` at the end is this plus the stopwatch's elapsed time). */
  ranAt = 0
  /** Stops an effectful attempt (`runEffect`) when it is abandoned. */
  cancelOnAbandon: (() => void) | undefined = undefined
  progress = UNTRACKED
  resource: string | undefined = undefined
  /** Whether some attempt of the operation may have been applied (kept on the first attempt's call). */
  applied = false
  /**
   * For a lease (see `lease.ts`): completed with the guard's verdict when the lease's time is up (the deadline,
   * shutdown). A lease is granted when it starts running; it ends when its holder's scope closes (`settle`).
   */
  expiry: Deferred.Deferred<never, GuardError> | undefined = undefined
  granted = false
  /** The attempt failed in this process before sending (see `threw`): not retried. */
  local = false
  /** An injected fault that `run` applies (tests only). */
  fault: FaultKind | undefined = undefined
  readonly g: TenancyState
  readonly pe: ProjectEngine<any, E>
  readonly op: Operation<any>
  /** When the whole operation must be over, and the tier timeout that set it (its deadline lane). */
  readonly deadline: number
  readonly span: number
  readonly extraMillis: number
  /** Where a failure goes to be retried (first attempts of idempotent operations; see `attempt.ts`). */
  readonly retry: Retry | undefined
  /** The first attempt's call, for a retry; undefined for the first attempt, whose outcome the breakers count. */
  readonly first: Call<A, E> | undefined
  readonly runner: Runner<A, any, E>
  readonly resume: (effect: Effect.Effect<A, E | GuardError>) => void

  constructor(
    g: TenancyState,
    pe: ProjectEngine<any, E>,
    op: Operation<any>,
    deadline: number,
    span: number,
    extraMillis: number,
    retry: Retry | undefined,
    first: Call<A, E> | undefined,
    runner: Runner<A, any, E>,
    resume: (effect: Effect.Effect<A, E | GuardError>) => void
  ) {
    this.first = first
    this.g = g
    this.pe = pe
    this.op = op
    this.deadline = deadline
    this.span = span
    this.extraMillis = extraMillis
    this.retry = retry
    this.runner = runner
    this.resume = resume
  }

  /** The attempt signal: false once the attempt has been abandoned. */
  get active(): boolean {
    return this.state === RUNNING
  }

  waitingFor(resource: string): void {
    if (this.state !== RUNNING) return
    this.progress = WAITING
    this.resource = resource
  }

  sending(): void {
    if (this.state === RUNNING) this.progress = SENDING
  }

  /** Breakers count calls, not attempts: the first attempt's outcome, and every probe's. */
  private record(t: number, failure: boolean, shared: boolean) {
    const pe = this.pe
    const counts = this.first === undefined
    if (counts || this.probe) pe.breaker.record(t, failure, this.probe)
    if (counts || this.targetProbe) pe.ts.breaker.record(t, shared, this.targetProbe)
  }

  private noteApplied() {
    const first = this.first ?? this
    first.applied = true
  }

  onDeadline() {
    if (this.state === RUNNING) this.timeout(this.attemptBudget)
    else this.expireWaiting()
  }

  begin(t: number) {
    const pe = this.pe
    if (this.g.shuttingDown) return this.finish(Effect.fail(new ShuttingDown({ engine: pe.es.engine })))
    if (pe.rt.fault !== undefined && this.first === undefined && this.injected(t)) return
    // Breakers first: an open circuit rejects at once rather than after a wait in a queue. The target's first,
    // so that a project's breaker does not turn half-open (and burn its probe) while the whole target is down.
    const q = pe.ts.breaker.admit(t)
    if (q === REJECT) return this.rejectOpen("target", pe.ts.breaker, t)
    this.targetProbe = q === PROBE
    const p = pe.breaker.admit(t)
    if (p === REJECT) {
      if (this.targetProbe) pe.ts.breaker.releaseProbe()
      this.targetProbe = false
      return this.rejectOpen("project", pe.breaker, t)
    }
    this.probe = p === PROBE
    const limits = pe.rt.tier.limits
    if (pe.bulkhead.tryAcquire(limits.maxConcurrent)) return this.admitTarget(t)
    const queued = pe.bulkhead.queue.length
    const wait = drainMillis(queued, limits.maxConcurrent, pe.ewmaMillis, pe.running, pe.startedSum, this.g.stopwatch())
    if (queued >= limits.maxQueue) return this.overloaded("project", "queue-full", wait)
    if (t + wait > this.deadline) return this.overloaded("project", "deadline", wait)
    this.grant = () => this.admitTarget(this.g.now())
    pe.bulkhead.queue.push(this)
    this.g.deadlines.schedule(this, this.deadline, this.span)
  }

  admitTarget(t: number) {
    const pe = this.pe
    // Admitted from the project queue after shutdown began: refuse rather than start on a closing binding.
    if (this.g.shuttingDown) {
      pe.bulkhead.release(pe.rt.tier.limits.maxConcurrent)
      return this.refuse()
    }
    this.state = WAIT_TARGET
    const budget = pe.ts.budget
    if (budget.tryAcquire()) return this.run(t)
    const ts = pe.ts
    const wait = drainMillis(
      budget.queued,
      budget.capacity,
      ts.ewmaMillis,
      ts.running,
      ts.startedSum,
      this.g.stopwatch()
    )
    if (t + wait > this.deadline) {
      pe.bulkhead.release(pe.rt.tier.limits.maxConcurrent)
      return this.overloaded("target", "deadline", wait)
    }
    this.grant = () => this.run(this.g.now())
    pe.lastTag = budget.enqueue(this, pe.lastTag, pe.rt.tier.weight)
    // A call that waited for its project slot keeps the deadline entry it has.
    if (!this.linked()) this.g.deadlines.schedule(this, this.deadline, this.span)
  }

  run(t: number) {
    const pe = this.pe
    const g = this.g
    if (g.shuttingDown) {
      pe.ts.budget.release()
      pe.bulkhead.release(pe.rt.tier.limits.maxConcurrent)
      return this.refuse()
    }
    this.state = RUNNING
    pe.running++
    pe.agg.active++
    g.inFlight++
    const key = pe.es.policy.attemptTimeoutMillis + this.extraMillis
    // A lease (a stream, a reserved connection) is bounded by the deadline, not by one attempt's timeout.
    if (t + key < this.deadline && this.expiry === undefined) {
      this.attemptBudget = "attempt"
      if (this.linked()) g.deadlines.cancel(this)
      g.deadlines.schedule(this, t + key, key)
    } else {
      // The deadline comes first: the entry that already waits for it (if any) stays as it is.
      this.attemptBudget = "deadline"
      if (!this.linked()) g.deadlines.schedule(this, this.deadline, this.span)
    }
    this.ranAt = t
    const startedAt = (this.startedAt = g.stopwatch())
    pe.startedSum += startedAt
    pe.ts.running++
    pe.ts.startedSum += startedAt
    if (this.expiry !== undefined) this.granted = true
    if (this.fault === undefined) return this.runner(pe, this)
    // An injected fault: no driver call (the attempt times out), or a driver call made late.
    if (this.fault._tag === "Latency") {
      g.fork(
        Effect.as(Effect.sleep(Duration.millis(this.fault.millis)), undefined).pipe(
          Effect.andThen(
            Effect.sync(() => {
              if (this.state === RUNNING) this.runner(pe, this)
            })
          )
        )
      )
    }
  }

  /** The attempt finished (success or the engine's error). */
  complete(exit: Exit.Exit<A, E>) {
    if (this.state !== RUNNING) return
    const g = this.g
    g.deadlines.cancel(this)
    const pe = this.pe
    const elapsed = g.stopwatch() - this.startedAt
    // One clock read, not two: under the live Clock the stopwatch is `performance.now()` and the wall clock moved
    // as much; under a TestClock both are the clock itself.
    const t = this.ranAt + elapsed
    this.release()
    pe.ewmaMillis = pe.ewmaMillis === 0 ? elapsed : pe.ewmaMillis + (elapsed - pe.ewmaMillis) * 0.1
    pe.ts.ewmaMillis = pe.ts.ewmaMillis === 0 ? elapsed : pe.ts.ewmaMillis + (elapsed - pe.ts.ewmaMillis) * 0.05
    pe.queryCount++
    pe.lastUsed = t
    durationCell(g, pe, this.op.name).observe(elapsed / 1000)
    if (exit._tag === "Success") {
      okCell(g, handlesOf(pe)).n++
      this.record(t, false, false)
      return this.finish(exit)
    }
    const error = Cause.findErrorOption(exit.cause)
    if (error._tag === "None") {
      // A defect or an interruption of the attempt fiber: no outcome for the breakers.
      this.releaseProbes()
      pe.errorCount++
      countError(g, pe, "defect")
      return this.finish(exit)
    }
    const c = classifySafely(pe.es, error.value)
    pe.errorCount++
    countError(g, pe, c.errorType)
    this.record(t, c.infrastructure, c.infrastructure && c.shared !== false)
    // Sent: what the engine said of the attempt's progress, refined by the error (refused at connect: not sent).
    const sent = c.sent && this.progress !== WAITING
    if (!(c.infrastructure && sent)) return this.finish(exit)
    this.noteApplied()
    // Non-idempotent writes are never retried: their outcome is unknown now. Idempotent ones are settled by
    // the retry loop (a later success settles them; giving up reports them unknown).
    if (!this.op.idempotent && isWrite(this.op)) return this.finish(Effect.fail(this.unknownOutcome(error.value)))
    this.finish(exit)
  }

  /** The attempt ran out of time: abandon it, free what it held, report. */
  timeout(budget: "attempt" | "deadline") {
    if (this.state !== RUNNING) return
    const pe = this.pe
    const g = this.g
    const t = g.now()
    this.release()
    this.abandon()
    pe.queryCount++
    pe.errorCount++
    countError(g, pe, "timeout")
    const after =
      budget === "attempt" ? pe.es.policy.attemptTimeoutMillis + this.extraMillis : pe.rt.tier.limits.timeoutMillis
    const waiting = this.progress === WAITING
    const timeout = new Timeout({
      projectId: pe.rt.id,
      engine: pe.es.engine,
      operation: this.op.name,
      budget,
      afterMillis: after,
      waitingFor: waiting ? this.resource : undefined
    })
    if (waiting) {
      // Still waiting for the engine's own resource: nothing was sent, and nothing about the server is known.
      this.releaseProbes()
      return this.finish(Effect.fail(timeout))
    }
    // A timeout may be one project's slow query rather than a sick server (MongoDB's SDAM makes the same call):
    // it counts against the project's breaker only. A hung server still opens the target's breaker through
    // the health checks, whose pings time out for everyone.
    if (this.first === undefined || this.probe) pe.breaker.record(t, true, this.probe)
    if (this.targetProbe) pe.ts.breaker.releaseProbe()
    this.targetProbe = false
    this.noteApplied()
    this.finish(Effect.fail(this.op.idempotent || !isWrite(this.op) ? timeout : this.unknownOutcome(timeout)))
  }

  /** The deadline passed while the call waited for a slot. */
  expireWaiting() {
    const pe = this.pe
    if (this.state === WAIT_PROJECT) pe.bulkhead.queue.cancel(this)
    else if (this.state === WAIT_TARGET) {
      pe.ts.budget.cancel(this)
      pe.bulkhead.release(pe.rt.tier.limits.maxConcurrent)
    } else return
    this.releaseProbes()
    countError(this.g, pe, "timeout")
    this.finish(
      Effect.fail(
        new Timeout({
          projectId: pe.rt.id,
          engine: pe.es.engine,
          operation: this.op.name,
          budget: "deadline",
          afterMillis: pe.rt.tier.limits.timeoutMillis
        })
      )
    )
  }

  /** Shutdown stopped waiting: abandon the attempt or the wait, free what it holds, tell the caller. */
  abort() {
    const pe = this.pe
    switch (this.state) {
      case WAIT_PROJECT:
        pe.bulkhead.queue.cancel(this)
        return this.refuse()
      case WAIT_TARGET:
        pe.ts.budget.cancel(this)
        pe.bulkhead.release(pe.rt.tier.limits.maxConcurrent)
        return this.refuse()
      case RUNNING: {
        this.release()
        this.abandon()
        this.releaseProbes()
        const refused = new ShuttingDown({ engine: pe.es.engine })
        if (!isWrite(this.op) || this.progress === WAITING) return this.finish(Effect.fail(refused))
        this.noteApplied()
        return this.finish(Effect.fail(this.unknownOutcome(refused)))
      }
    }
  }

  /** The caller's fiber was interrupted. */
  interrupt() {
    if (this.state === DONE) return
    const pe = this.pe
    this.g.deadlines.cancel(this)
    switch (this.state) {
      case WAIT_PROJECT:
        pe.bulkhead.queue.cancel(this)
        break
      case WAIT_TARGET:
        pe.ts.budget.cancel(this)
        pe.bulkhead.release(pe.rt.tier.limits.maxConcurrent)
        break
      case RUNNING:
        this.release()
        this.abandon()
        break
    }
    this.releaseProbes()
    this.state = DONE
  }

  private linked(): boolean {
    return this.lane !== undefined || this.node !== undefined
  }

  private refuse() {
    this.g.deadlines.cancel(this)
    this.releaseProbes()
    this.finish(Effect.fail(new ShuttingDown({ engine: this.pe.es.engine })))
  }

  /**
   * Applies an injected fault (tests only). Returns true when the call ended here; otherwise the call goes on, with
   * `fault` set for `run` (Timeout: the driver is not called, so the attempt times out; Latency: it is called late).
   */
  private injected(t: number): boolean {
    const kind = take(this.pe.rt.fault!, this.pe.es.engine, this.op.name)
    if (kind === undefined) return false
    switch (kind._tag) {
      case "Overloaded":
        this.overloaded("project", "queue-full", kind.retryAfterMillis)
        return true
      case "UnknownOutcome":
        this.finish(Effect.fail(this.unknownOutcome(new Error("injected fault"))))
        return true
      case "CircuitOpen":
        this.pe.breaker.trip(t)
        return false
      case "Timeout":
      case "Latency":
        this.fault = kind
        return false
    }
  }

  /** Frees the running attempt's slots and counters. */
  private release() {
    const pe = this.pe
    const g = this.g
    this.state = DONE
    pe.running--
    pe.startedSum -= this.startedAt
    pe.ts.running--
    pe.ts.startedSum -= this.startedAt
    pe.agg.active--
    if (--g.inFlight === 0 && g.drained !== undefined) Deferred.doneUnsafe(g.drained, Exit.void)
    pe.ts.budget.release()
    pe.bulkhead.release(pe.rt.tier.limits.maxConcurrent)
  }

  /** Stops the abandoned work on the server (cancel request, interruption of an effectful attempt). */
  private abandon() {
    if (this.cancelOnAbandon !== undefined) this.cancelOnAbandon()
    if (this.op.cancel !== undefined) this.op.cancel(this.pe.binding)
  }

  private releaseProbes() {
    if (this.probe) this.pe.breaker.releaseProbe()
    if (this.targetProbe) this.pe.ts.breaker.releaseProbe()
    this.probe = this.targetProbe = false
  }

  private unknownOutcome(cause: unknown): UnknownOutcome {
    const pe = this.pe
    return new UnknownOutcome({ projectId: pe.rt.id, engine: pe.es.engine, operation: this.op.name, cause })
  }

  private rejectOpen(scope: "project" | "target", br: Breaker, t: number) {
    const pe = this.pe
    countError(this.g, pe, "circuit_open")
    const retryAfter = br.retryAfter(t)
    this.finish(
      Effect.fail(
        new CircuitOpen({
          projectId: pe.rt.id,
          engine: pe.es.engine,
          scope,
          untilMillis: t + retryAfter,
          retryAfterMillis: retryAfter
        })
      )
    )
  }

  private overloaded(scope: "project" | "target", reason: "queue-full" | "deadline", retryAfter: number) {
    const pe = this.pe
    this.g.deadlines.cancel(this)
    this.releaseProbes()
    countError(this.g, pe, "overloaded")
    this.g.events.emit({ _tag: "Overloaded", at: this.g.now(), engine: pe.es.engine, projectId: pe.rt.id, scope })
    this.finish(
      Effect.fail(
        new Overloaded({
          projectId: pe.rt.id,
          engine: pe.es.engine,
          scope,
          reason,
          retryAfterMillis: Math.max(1, Math.ceil(retryAfter))
        })
      )
    )
  }

  /**
   * The driver call threw before returning a promise: nothing was sent, and what went wrong is in this process (a
   * caller's bad argument, most likely). A definite failure, counted by no breaker and not retried.
   */
  threw(error: E) {
    if (this.state !== RUNNING) return
    const g = this.g
    g.deadlines.cancel(this)
    this.release()
    this.releaseProbes()
    this.pe.errorCount++
    countError(g, this.pe, "caller")
    this.local = true
    this.finish(Effect.fail(error))
  }

  /** A lease's holder is done with it (its scope closed): record the outcome, free what it held. */
  settle(exit: Exit.Exit<unknown, unknown>) {
    if (this.state !== RUNNING) return
    if (exit._tag === "Failure" && Cause.hasInterruptsOnly(exit.cause)) return this.interrupt()
    this.complete(exit as Exit.Exit<A, E>)
  }

  private finish(effect: Effect.Effect<A, E | GuardError>) {
    // A granted lease's verdict goes to its holder through `expiry` (its acquisition has long resumed).
    if (this.expiry !== undefined && this.granted) {
      this.state = DONE
      if (Exit.isExit(effect) && effect._tag === "Failure")
        Deferred.doneUnsafe(this.expiry, effect as Exit.Exit<never, GuardError>)
      return
    }
    this.state = DONE
    // The first attempt of an idempotent operation hands its failure to the retry loop; the success path
    // pays nothing for retries (no `Effect.catch` around every call).
    if (this.retry !== undefined && !this.local && Exit.isExit(effect) && effect._tag === "Failure") {
      const error = Cause.findErrorOption(effect.cause)
      if (error._tag === "Some") return this.resume(this.retry(this, error.value))
    }
    this.resume(effect)
  }
}
