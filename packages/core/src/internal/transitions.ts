/**
 * What happens around a breaker's state changes: the per-tier counts behind `circuit_breaker_state`, the
 * `circuit_breaker_open_total` counters, the `CircuitOpen` / `CircuitHalfOpen` / `CircuitClosed` events, and the
 * active probe (when the open time ends, ping the target instead of waiting for, and failing, a caller's call).
 *
 * Two breakers guard each call: the project's (fed by every infrastructure failure and timeout of that project
 * on that engine) and the target's (fed by infrastructure failures only, so one project's slow or bad queries
 * never open it for everyone). The state machine itself is `breaker.ts`.
 *
 * @internal
 */
import * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Exit from "effect/Exit"
import { Breaker, HALF_OPEN, OPEN, PROBE, type StateCode, stateName } from "./breaker.ts"
import { countTargetOpen, handlesOf, openTotalCell } from "./metricHandles.ts"
import type { Aggregate, EngineState, ProjectEngine, TargetState, TenancyState } from "./state.ts"

/** A target's breaker, reporting its transitions. @internal */
export const targetBreaker = (g: TenancyState, es: EngineState<any, any>, ts: TargetState): Breaker =>
  new Breaker(es.policy, (from, to, br) => {
    // Counted under the target's highest tier now; the state leaves the tier it was counted under before.
    const tier = ts.tier()
    uncount(es.targetBreakers[ts.breakerTier], from)
    count(es.targetBreakers[tier], to)
    ts.breakerTier = tier
    emitTransition(g, es, "target", undefined, ts.label, to, br)
    if (to !== OPEN) ts.remoteOpen = false
    if (!ts.applyingRemote && g.breakerListeners.size > 0) {
      const change = {
        engine: es.engine,
        targetId: ts.id,
        label: ts.label,
        state: stateName(to),
        untilMillis: to === OPEN ? br.openUntil : undefined
      }
      for (const listener of g.breakerListeners) listener(change)
    }
    if (to !== OPEN) return
    countTargetOpen(g, es.engine, tier)
    // Opened on another process's report: that process probes; this one probes only once the open time is over
    // by a probe interval (the other process may be gone).
    if (ts.applyingRemote) return scheduleLateProbe(g, br, ts)
    scheduleProbe(g, br, () => ts.any(), undefined)
  })

/** A (project, engine)'s breaker, reporting its transitions. @internal */
export const projectBreaker = (g: TenancyState, pe: ProjectEngine<any, any>): Breaker =>
  new Breaker(pe.es.policy, (from, to, br) => {
    uncount(pe.agg, from)
    count(pe.agg, to)
    emitTransition(g, pe.es, "project", pe.rt.id, pe.ts.label, to, br)
    if (to !== OPEN) return
    openTotalCell(g, handlesOf(pe)).n++
    scheduleProbe(g, br, () => (pe.closed ? undefined : pe), pe.ts.breaker)
  })

const count = (agg: Aggregate, state: StateCode) => {
  if (state === OPEN) agg.open++
  else if (state === HALF_OPEN) agg.halfOpen++
}

const uncount = (agg: Aggregate, state: StateCode) => {
  if (state === OPEN) agg.open--
  else if (state === HALF_OPEN) agg.halfOpen--
}

/** Removes a breaker that goes away (its project evicted, its target unused) from the counts. @internal */
export const forgetBreaker = (agg: Aggregate, br: Breaker): void => uncount(agg, br.state)

/** Moves a (project, engine)'s running operations and breaker state to another aggregate (a tier change). @internal */
export const moveAggregate = (pe: ProjectEngine<any, any>, to: Aggregate): void => {
  if (pe.agg === to) return
  uncount(pe.agg, pe.breaker.state)
  pe.agg.active -= pe.running
  count(to, pe.breaker.state)
  to.active += pe.running
  pe.agg = to
}

const emitTransition = (
  g: TenancyState,
  es: EngineState<any, any>,
  scope: "project" | "target",
  projectId: string | undefined,
  target: string,
  to: StateCode,
  br: Breaker
) =>
  g.events.emit({
    _tag: to === OPEN ? "CircuitOpen" : to === HALF_OPEN ? "CircuitHalfOpen" : "CircuitClosed",
    at: g.now(),
    engine: es.engine,
    scope,
    projectId,
    target,
    openForMillis: to === OPEN ? br.lastOpenFor : undefined
  })

// Active probing: while open, ping every probe interval (and when the open time ends) instead of waiting for, and
// failing, a caller's call. A ping that succeeds before the open time is over ends it (`recover`); one that fails
// changes nothing but the next ping's time. At the end of the open time the ping is the half-open probe itself,
// and its failure re-opens the breaker for longer. A project's breaker leaves the probing to its target's breaker
// while that one is open too (one ping per target, not one per project).
const scheduleProbe = (
  g: TenancyState,
  br: Breaker,
  pick: () => ProjectEngine<any, any> | undefined,
  target: Breaker | undefined
) => {
  if (!br.policy.activeProbe) return
  const now = g.now()
  const next =
    br.openUntil > now
      ? Math.min(br.openUntil, now + br.policy.probeIntervalMillis)
      : now + br.policy.probeIntervalMillis
  const opened = br.totalOpenings
  g.deadlines.add(next, () => {
    if (br.state !== OPEN || br.totalOpenings !== opened || g.shuttingDown) return
    const pe = pick()
    if (pe === undefined) return
    if (target !== undefined && target.state === OPEN) return scheduleProbe(g, br, pick, target)
    const t = g.now()
    if (t < br.openUntil) {
      return g.fork(
        ping(pe).pipe(
          Effect.flatMap((exit) =>
            Effect.sync(() => {
              if (br.state !== OPEN || br.totalOpenings !== opened) return
              if (exit._tag === "Success") br.recover(g.now())
              else scheduleProbe(g, br, pick, target)
            })
          )
        )
      )
    }
    if (br.admit(t) !== PROBE) return
    g.fork(
      ping(pe).pipe(
        Effect.flatMap((exit) =>
          Effect.sync(() => {
            if (exit._tag === "Success") br.record(g.now(), false, true)
            else if (Cause.hasInterruptsOnly(exit.cause)) br.releaseProbe()
            else br.record(g.now(), true, true)
          })
        )
      )
    )
  })
}

const scheduleLateProbe = (g: TenancyState, br: Breaker, ts: TargetState) => {
  const opened = br.totalOpenings
  const until = br.openUntil
  g.deadlines.add(until + br.policy.probeIntervalMillis, () => {
    if (br.state === OPEN && br.openUntil === until && br.totalOpenings === opened) {
      scheduleProbe(g, br, () => ts.any(), undefined)
    }
  })
}

// One ping, bounded by the attempt timeout.
const ping = (pe: ProjectEngine<any, any>): Effect.Effect<Exit.Exit<void, unknown>> =>
  Effect.exit(pe.es.adapter.ping(pe.binding).pipe(Effect.timeout(Duration.millis(pe.es.policy.attemptTimeoutMillis))))
