/**
 * The hooks a fleet of processes coordinates through (a cluster package implements them over Redis; core has no
 * network code): what this process demands of each target, its target breakers' transitions and the reports of
 * other processes' breakers, and the share of each target's budget this process may use.
 *
 * - `targets` reports, per live target, the operations in flight and queued and the breaker state (demand, for a
 *   coordinator that splits a target's budget between processes).
 * - `onBreakerChange` / `applyBreaker`: a target breaker that opens here is reported; another process's report
 *   opens the breaker here until the same time, and this process leaves the probing to the reporter (it probes
 *   itself only if no close is reported by a probe interval after the open time ends).
 * - `setCapacity` caps the operations this process runs at once against a target (the admission budget), and
 *   `ConnectionShares` tells engines how many connections this process may open to a target.
 *
 * Targets are named by `Target.id` (a hash of the target's key, the same in every process).
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type { Tenancy } from "./Tenancy.ts"
import type { Engine } from "./Vocabulary.ts"
import { stateName } from "./internal/breaker.ts"
import { states, type TargetBreakerChange, type TargetState, type TenancyState } from "./internal/state.ts"

/**
 * A target breaker's transition in some process.
 *
 * @category models
 * @since 0.1.0
 */
export type BreakerChange = TargetBreakerChange

/**
 * What this process demands of a live target.
 *
 * @category models
 * @since 0.1.0
 */
export interface TargetDemand {
  readonly engine: Engine
  readonly targetId: string
  readonly label: string
  /** Operations running now. */
  readonly inFlight: number
  /** Operations waiting for the target's budget. */
  readonly queued: number
  /** The admission budget (operations at once) now. */
  readonly capacity: number
  readonly breaker: "closed" | "half-open" | "open"
}

/**
 * How many connections this process may open to a target (undefined: no limit from the fleet), and a way to hear
 * of changes. Engines read it when they size their pools.
 *
 * @category models
 * @since 0.1.0
 */
export interface Shares {
  readonly get: (engine: Engine, targetId: string) => number | undefined
  /** Calls `listener` after any share changed; returns a function that removes it. */
  readonly subscribe: (listener: () => void) => () => void
}

/**
 * The connection shares of the fleet (default: none, every process sizes its pools alone).
 *
 * @category references
 * @since 0.1.0
 */
export const ConnectionShares = Context.Reference<Shares | undefined>(
  "@tenantpool/core/Coordination/ConnectionShares",
  {
    defaultValue: () => undefined
  }
)

const stateOf = (tenancy: Tenancy["Service"]): TenancyState => {
  const g = states.get(tenancy)
  if (g === undefined) throw new Error("Coordination needs the Tenancy service of this package")
  return g
}

const findTarget = (g: TenancyState, engine: Engine, targetId: string): TargetState | undefined => {
  const es = g.engines.find((e) => e?.engine === engine)
  if (es === undefined) return undefined
  for (const ts of es.targets.values()) if (ts.id === targetId) return ts
  return undefined
}

/**
 * This process's demand on each live target.
 *
 * @category accessors
 * @since 0.1.0
 */
export const targets = (tenancy: Tenancy["Service"]): Effect.Effect<ReadonlyArray<TargetDemand>> =>
  Effect.sync(() => {
    const g = stateOf(tenancy)
    const out: Array<TargetDemand> = []
    for (const es of g.engines) {
      if (es === undefined) continue
      for (const ts of es.targets.values()) {
        out.push({
          engine: es.engine,
          targetId: ts.id,
          label: ts.label,
          inFlight: ts.running,
          queued: ts.budget.queued,
          capacity: ts.budget.capacity,
          breaker: stateName(ts.breaker.state)
        })
      }
    }
    return out
  })

/**
 * Calls `listener` with every transition of this process's target breakers (not those applied from other
 * processes' reports), for the life of the scope.
 *
 * @category combinators
 * @since 0.1.0
 */
export const onBreakerChange = (
  tenancy: Tenancy["Service"],
  listener: (change: BreakerChange) => void
): Effect.Effect<void, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const g = stateOf(tenancy)
      g.breakerListeners.add(listener)
      return g
    }),
    (g) => Effect.sync(() => g.breakerListeners.delete(listener))
  )

/**
 * Applies another process's report: an `open` opens this process's breaker of the target until the same time
 * (unless it is open already), a `closed` closes it if it was opened by a report. Unknown targets (not live here)
 * are ignored. Returns whether anything changed.
 *
 * @category combinators
 * @since 0.1.0
 */
export const applyBreaker = (tenancy: Tenancy["Service"], change: BreakerChange): Effect.Effect<boolean> =>
  Effect.sync(() => {
    const g = stateOf(tenancy)
    const ts = findTarget(g, change.engine, change.targetId)
    if (ts === undefined) return false
    const br = ts.breaker
    const before = br.state
    ts.applyingRemote = true
    try {
      if (change.state === "open" && change.untilMillis !== undefined) {
        br.holdOpen(g.now(), change.untilMillis)
        if (br.state !== before) ts.remoteOpen = true
      } else if (change.state === "closed" && ts.remoteOpen) {
        br.forceClose(g.now())
      }
    } finally {
      ts.applyingRemote = false
    }
    return br.state !== before
  })

/**
 * Caps the operations this process runs at once against a target (its share of the fleet's budget); `undefined`
 * restores the engine's own capacity. A raised cap admits waiting operations at once; a lowered one applies as
 * running operations finish. Returns whether the target is live here.
 *
 * @category combinators
 * @since 0.1.0
 */
export const setCapacity = (
  tenancy: Tenancy["Service"],
  engine: Engine,
  targetId: string,
  capacity: number | undefined
): Effect.Effect<boolean> =>
  Effect.sync(() => {
    const g = stateOf(tenancy)
    const ts = findTarget(g, engine, targetId)
    if (ts === undefined) return false
    const own = ts.ownCapacity
    ts.budget.capacity = Math.max(1, Math.floor(capacity === undefined ? own : Math.min(capacity, own)))
    ts.budget.dispatch()
    return true
  })
