/**
 * The tenancy service's state, as plain records (the way `effect/Pool` keeps its state): one `TenancyState` per
 * service, an `EngineState` per registered engine, a `TargetState` per live target, a `ProjectRuntime` per live
 * project and a `ProjectEngine` per live (project, engine). The modules beside this one are functions over these
 * records: `call.ts` (one guarded call), `runtimes.ts` (project lifecycle), `transitions.ts` (breaker events and
 * probes), `metricHandles.ts`, `health.ts` and `guard.ts` (the engine handle). See docs/architecture.md.
 *
 * @internal
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import type * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import type * as Fiber from "effect/Fiber"
import * as FiberSet from "effect/FiberSet"
import * as PubSub from "effect/PubSub"
import type * as Schedule from "effect/Schedule"
import * as Scope from "effect/Scope"
import type { BreakerPolicy } from "../BreakerPolicy.ts"
import type { ProjectHandle } from "../CurrentProject.ts"
import type { EngineAdapter } from "../Engine.ts"
import type { ProjectNotFound } from "../Errors.ts"
import type { ProjectId } from "../ProjectId.ts"
import type { TenancyEvent } from "../Events.ts"
import { type ProjectConfig, ProjectRegistry } from "../Registry.ts"
import type { Target } from "../Target.ts"
import { Tiers, type TierState } from "../Tier.ts"
import { type Engine, type TierName, tierRank } from "../Vocabulary.ts"
import { Bulkhead, type FairBudget } from "./admission.ts"
import type { Breaker } from "./breaker.ts"
import { Deadlines } from "./deadlines.ts"
import { Emitter } from "./events.ts"
import type { FaultPlan } from "./faults.ts"
import type { CounterCell, HistogramCell } from "./series.ts"

/** Options resolved once, when the service is built. @internal */
export interface Settings {
  readonly projectLabel: boolean
  readonly maxProjectSeries: number
  readonly spans: "auto" | "always" | "never"
  readonly retry: Schedule.Schedule<unknown, unknown>
  readonly healthIntervalMillis: number
  readonly healthTimeoutMillis: number
  readonly sweepIntervalMillis: number
  readonly shutdownTimeoutMillis: number
}

/** Why a project's resources are freed. @internal */
export type CloseReason = "idle" | "closeIdleConnections" | "shutdown" | "config-changed"

/** The whole service. @internal */
export interface TenancyState {
  readonly settings: Settings
  readonly tiers: Tiers["Service"]
  readonly registry: ProjectRegistry["Service"]
  readonly clock: Clock.Clock
  /** The layer's context: metric registrations and forked fibers use it. */
  readonly context: Context.Context<never>
  /** Forks background work into the layer's `FiberSet`: closing the layer interrupts it. */
  readonly fork: (effect: Effect.Effect<void>) => Fiber.Fiber<void>
  /** Clock time in milliseconds (deadlines, breaker windows, idle times). */
  readonly now: () => number
  /** Durations: `performance.now()` under the live clock, the clock itself under a `TestClock`. */
  readonly stopwatch: () => number
  readonly deadlines: Deadlines
  readonly events: Emitter
  readonly engines: Array<EngineState<any, any> | undefined>
  readonly projects: Map<string, ProjectRuntime>
  /** Lookups in flight, shared by concurrent first calls of a project. */
  readonly pendingProjects: Map<string, Effect.Effect<ProjectRuntime, ProjectNotFound>>
  /** Runtimes of projects removed from the registry while busy: freed once their work drains. */
  readonly draining: Set<ProjectRuntime>
  /** The parent scope of every runtime (closed after shutdown has drained in-flight work). */
  readonly runtimes: Scope.Closeable
  inFlight: number
  shuttingDown: boolean
  /** Completed when `inFlight` drops to zero during shutdown. */
  drained: Deferred.Deferred<void> | undefined
  labeledProjects: number
  /** Faults injected per project id (see `Faults.ts`); copied to a runtime's `fault` when it is created. */
  readonly faults: Map<string, FaultPlan>
  /** Listeners of this process's target breaker transitions (see `Coordination.ts`). */
  readonly breakerListeners: Set<(change: TargetBreakerChange) => void>
}

/** A target breaker's transition, as reported to other processes. @internal */
export interface TargetBreakerChange {
  readonly engine: Engine
  readonly targetId: string
  readonly label: string
  readonly state: "open" | "half-open" | "closed"
  /** Until when it stays open (open only). */
  readonly untilMillis: number | undefined
}

/** The state behind each tenancy service, for the modules that extend it from outside (`Faults.ts`). @internal */
export const states = new WeakMap<object, TenancyState>()

/** A registered engine. @internal */
export interface EngineState<B, E> {
  readonly engine: Engine
  readonly adapter: EngineAdapter<B, E>
  readonly policy: BreakerPolicy
  readonly targets: Map<string, TargetState>
  /**
   * Per tier, the projects without series of their own (all of them when the project label is off, those beyond
   * the labeled-series budget when it is on): running operations and project breakers, read by the aggregate
   * gauges. A labeled project counts only in its own series, so no sum counts a project twice.
   */
  readonly aggregates: Record<TierName, Aggregate>
  /** Per tier (the highest tier among a target's users), the target breakers open and half-open. */
  readonly targetBreakers: Record<TierName, Aggregate>
  /** Counter series shared by unlabeled projects (label off), and by projects beyond the budget (`_other`). */
  readonly shared: Partial<Record<TierName, MetricHandles>>
  readonly overflow: Partial<Record<TierName, MetricHandles>>
  /** Histograms, per tier only (a histogram per project would multiply a scrape by its buckets). */
  readonly histograms: Partial<Record<TierName, HistogramHandles>>
}

/** Running operations and breakers in the open / half-open state, counted for one gauge series. @internal */
export interface Aggregate {
  active: number
  open: number
  halfOpen: number
}

/** The counter series one (project, engine) writes to, made on first use. @internal */
export interface MetricHandles {
  readonly attrs: Readonly<Record<string, string>>
  ok: CounterCell | undefined
  error: CounterCell | undefined
  openTotal: CounterCell | undefined
  readonly errors: Map<string, CounterCell>
}

/** The histograms of one (engine, tier). @internal */
export interface HistogramHandles {
  readonly attrs: Readonly<Record<string, string>>
  acquire: HistogramCell | undefined
  readonly duration: Map<string, HistogramCell>
}

/** A live target of an engine: its shared budget, its breaker, the (project, engine) pairs using it. @internal */
export class TargetState {
  readonly key: string
  readonly label: string
  readonly engine: Engine
  readonly budget: FairBudget
  breaker!: Breaker
  readonly users = new Set<ProjectEngine<any, any>>()
  healthy: boolean | undefined = undefined
  /** The tier under which the breaker's state is counted now (`EngineState.targetBreakers`). */
  breakerTier: TierName = "FREE"
  /** The engine's own capacity for the target (the budget's capacity without a fleet's cap). */
  ownCapacity = 1
  /** A stable id of the target for other processes (a hash of `key`; see `Coordination.targetId`). */
  id = ""
  /** The breaker was opened by another process's report (that process probes; see `Coordination.ts`). */
  remoteOpen = false
  /** Set while a remote report is applied, so the transition is not reported back. */
  applyingRemote = false
  /** Mean attempt duration (0 until the first completes), attempts running, and the sum of their start times. */
  ewmaMillis = 0
  running = 0
  startedSum = 0
  constructor(key: string, label: string, engine: Engine, budget: FairBudget) {
    this.key = key
    this.label = label
    this.engine = engine
    this.budget = budget
  }
  /** The highest tier among the target's users (the tier its aggregate metrics are counted under). */
  tier(): TierName {
    let best: TierName = "FREE"
    for (const u of this.users) if (tierRank[u.rt.tier.name] > tierRank[best]) best = u.rt.tier.name
    return best
  }
  /** A live user, to ping the target through. */
  any(): ProjectEngine<any, any> | undefined {
    for (const u of this.users) if (!u.closed) return u
    return undefined
  }
}

/** A live project: what `CurrentProject` holds while the project runs. @internal */
export class ProjectRuntime implements ProjectHandle {
  readonly owner: TenancyState
  readonly id: ProjectId
  config: ProjectConfig
  tier: TierState
  readonly createdAt: number
  lastUsed: number
  /** Scopes (withProject, layerProject) holding the runtime. */
  refs = 0
  closed = false
  readonly scope: Scope.Closeable
  readonly engines: Array<ProjectEngine<any, any> | undefined> = [undefined, undefined, undefined]
  readonly pending: Array<Effect.Effect<ProjectEngine<any, any>, any> | undefined> = [undefined, undefined, undefined]
  /** Bindings replaced after a target change, closed once their work has drained. */
  readonly retired: Array<ProjectEngine<any, any>> = []
  /** The `project_id` label value, when the project label is on. */
  labelSlot: string | undefined = undefined
  /** A fault injected into this project's calls (tests only; see `Faults.ts`). */
  fault: FaultPlan | undefined = undefined
  constructor(
    owner: TenancyState,
    id: ProjectId,
    config: ProjectConfig,
    tier: TierState,
    now: number,
    scope: Scope.Closeable
  ) {
    this.owner = owner
    this.id = id
    this.config = config
    this.tier = tier
    this.createdAt = now
    this.lastUsed = now
    this.scope = scope
  }
  get tierName(): TierName {
    return this.tier.name
  }
  busy(): boolean {
    if (this.refs > 0) return true
    for (const pe of this.engines) if (pe !== undefined && pe.busy()) return true
    for (const pe of this.retired) if (pe.busy()) return true
    return false
  }
}

/** A live (project, engine): the engine's binding, the project's bulkhead and breaker, counters. @internal */
export class ProjectEngine<B, E> {
  readonly rt: ProjectRuntime
  readonly es: EngineState<B, E>
  readonly ts: TargetState
  readonly target: Target
  readonly binding: B
  readonly scope: Scope.Closeable
  readonly bulkhead = new Bulkhead()
  breaker!: Breaker
  readonly createdAt: number
  lastUsed: number
  /** The project's last fair-queueing tag at the target's budget. */
  lastTag = 0
  queryCount = 0
  errorCount = 0
  running = 0
  /** Mean attempt duration (0 until the first completes) and the sum of the running attempts' start times. */
  ewmaMillis = 0
  startedSum = 0
  closed = false
  handles: MetricHandles | undefined = undefined
  /** Its tier's histograms (cached: the per-call path reads them). */
  histograms: HistogramHandles | undefined = undefined
  gauges: Array<{ remove(): void }> | undefined = undefined
  /** Where its running operations and breaker state are counted (its tier's aggregate, or its own). */
  agg: Aggregate = { active: 0, open: 0, halfOpen: 0 }
  constructor(
    rt: ProjectRuntime,
    es: EngineState<B, E>,
    ts: TargetState,
    target: Target,
    binding: B,
    scope: Scope.Closeable,
    now: number
  ) {
    this.rt = rt
    this.es = es
    this.ts = ts
    this.target = target
    this.binding = binding
    this.scope = scope
    this.createdAt = now
    this.lastUsed = now
  }
  busy(): boolean {
    return this.bulkhead.active > 0 || this.bulkhead.queue.length > 0 || this.running > 0
  }
}

/** Per-tier aggregates, all zero. @internal */
export const aggregatesPerTier = (): Record<TierName, Aggregate> => ({
  FREE: { active: 0, open: 0, halfOpen: 0 },
  STARTER: { active: 0, open: 0, halfOpen: 0 },
  PRO: { active: 0, open: 0, halfOpen: 0 },
  ENTERPRISE: { active: 0, open: 0, halfOpen: 0 }
})

/**
 * A fresh state in the current scope. Order matters: scopes close children and finalizers in reverse order, so
 * the runtimes' scope is made first and the fiber set next; a shutdown finalizer added after this (run first) then
 * drains in-flight work while the deadline watcher still runs, before any fiber is interrupted or binding closed.
 *
 * @internal
 */
export const makeState = (
  settings: Settings,
  recentEvents: number
): Effect.Effect<TenancyState, never, Tiers | ProjectRegistry | Scope.Scope> =>
  Effect.gen(function* () {
    const clock = yield* Clock.Clock
    const runtimes = Scope.forkUnsafe(yield* Effect.scope)
    const fork = yield* FiberSet.makeRuntime<never, void, never>()
    const now = () => clock.currentTimeMillisUnsafe()
    return {
      settings,
      tiers: yield* Tiers,
      registry: yield* ProjectRegistry,
      clock,
      context: yield* Effect.context<never>(),
      fork: (effect) => fork(effect),
      now,
      // `performance.now()` (sub-millisecond) under the live Clock, the Clock itself under any other (a
      // TestClock), so that latencies, breaker times and idle times follow the same clock as deadlines.
      stopwatch: clock === Context.get(Context.empty(), Clock.Clock) ? () => performance.now() : now,
      deadlines: new Deadlines(clock, (effect) => fork(effect)),
      events: new Emitter(yield* PubSub.sliding<TenancyEvent>(1024), recentEvents),
      engines: [undefined, undefined, undefined],
      projects: new Map(),
      pendingProjects: new Map(),
      draining: new Set(),
      runtimes,
      inFlight: 0,
      shuttingDown: false,
      drained: undefined,
      labeledProjects: 0,
      faults: new Map(),
      breakerListeners: new Set()
    }
  })
