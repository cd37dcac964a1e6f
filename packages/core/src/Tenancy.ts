/**
 * The tenancy service: per-project runtimes created on first use and freed when idle, the guard every engine
 * operation goes through (admission → breakers → attempt timeout and retries → metrics), health checks, events
 * and the observability API of the spec's connection manager.
 *
 * Engine packages register an `EngineAdapter` (driver wiring, error classification, ping) and get an
 * `EngineHandle` whose `run` / `runEffect` guard one operation for the current project.
 *
 * Costs, by design:
 * - a registered but idle project costs its registry entry only: no runtime, no timer, no metric series;
 * - an active project costs one small runtime object, one breaker and one bulkhead per engine it uses;
 * - one sweeper fiber frees idle runtimes for all projects (not a timer per project: `RcMap`/`LayerMap` start
 *   a sleeping fiber per idle key, which is what this avoids);
 * - the guard's fast path allocates one record per call and starts no timer (see `internal/deadlines.ts`).
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as PubSub from "effect/PubSub"
import * as Schedule from "effect/Schedule"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Tracer from "effect/Tracer"
import * as BreakerPolicy from "./BreakerPolicy.ts"
import { CurrentProject, type ProjectHandle } from "./CurrentProject.ts"
import {
  type AttemptSignal,
  type EngineAdapter,
  type EngineHandle,
  isWrite,
  type Operation,
  type PoolStats
} from "./Engine.ts"
import {
  CircuitOpen,
  EngineNotConfigured,
  type GuardError,
  type InvalidConfig,
  type InvalidProjectId,
  isGuardError,
  NoCurrentProject,
  Overloaded,
  type ProjectNotFound,
  type ProtectionError,
  ShuttingDown,
  Timeout,
  UnknownOutcome
} from "./Errors.ts"
import type { TenancyEvent } from "./Events.ts"
import { type ProtectionDetail, Protections } from "./Protections.ts"
import * as Metrics from "./Metrics.ts"
import * as ProjectId from "./ProjectId.ts"
import { type MemoryRegistry, type ProjectConfig, ProjectRegistry } from "./Registry.ts"
import * as RegistryModule from "./Registry.ts"
import type { Target } from "./Target.ts"
import { Tiers, type TierState } from "./Tier.ts"
import * as TierModule from "./Tier.ts"
import { type Engine, engineIndex, engines, type TierName, tierNames, tierRank } from "./Vocabulary.ts"
import { Bulkhead, FairBudget, type FairWaiter, type Waiter } from "./internal/admission.ts"
import { Breaker, CLOSED, HALF_OPEN, OPEN, PROBE, REJECT, type StateCode, stateName } from "./internal/breaker.ts"
import { Deadlines, type Entry } from "./internal/deadlines.ts"
import { CounterCell, HistogramCell } from "./internal/series.ts"

// ---------------------------------------------------------------------------------------------------------------
// Public models
// ---------------------------------------------------------------------------------------------------------------

/**
 * A live (project, engine) pair, as the spec's `getAllConnectionMetadata` returns it.
 *
 * @category models
 * @since 0.1.0
 */
export interface ConnectionMetadata {
  readonly projectId: string
  readonly databaseType: Engine
  readonly tier: TierName
  readonly target: string
  readonly queryCount: number
  readonly errorCount: number
  readonly lastUsed: Date
  readonly createdAt: Date
  readonly breaker: "closed" | "half-open" | "open"
  readonly targetBreaker: "closed" | "half-open" | "open"
  readonly active: number
  readonly queued: number
  readonly pool: PoolStats | undefined
}

/**
 * The result of a health check.
 *
 * @category models
 * @since 0.1.0
 */
export interface HealthResult {
  readonly projectId: string
  readonly engine: Engine
  readonly healthy: boolean
  readonly latencyMillis: number
  readonly error: string | undefined
}

/**
 * Options of the tenancy service.
 *
 * @category models
 * @since 0.1.0
 */
export interface Options {
  /** Breaker policy overrides per engine. */
  readonly breakers?: Partial<Record<Engine, BreakerPolicy.BreakerPolicyOverride>> | undefined
  /** Metric label options. */
  readonly metrics?: Metrics.MetricsOptions | undefined
  /** Spans per operation: `"auto"` (default) only when a tracer other than Effect's native one is installed. */
  readonly spans?: "auto" | "always" | "never" | undefined
  /** Retry schedule for idempotent operations (default: exponential from 50 ms, jittered, at most 2 retries). */
  readonly retry?: Schedule.Schedule<unknown, unknown> | undefined
  /** How often active targets are health-checked (default 30 seconds, ±20 % jitter); 0 disables. */
  readonly healthCheckInterval?: Duration.Input | undefined
  /** Bound of one health check (default 2 seconds). */
  readonly healthCheckTimeout?: Duration.Input | undefined
  /** How often idle runtimes are looked for (default 30 seconds). */
  readonly sweepInterval?: Duration.Input | undefined
  /** How long shutdown waits for in-flight operations (default 10 seconds). */
  readonly shutdownTimeout?: Duration.Input | undefined
  /** How many recent events `recentEvents` keeps (default 100). */
  readonly recentEvents?: number | undefined
}

/**
 * Counters of the service itself (for tests, benchmarks and the status page).
 *
 * @category models
 * @since 0.1.0
 */
export interface Stats {
  readonly liveProjects: number
  readonly liveTargets: number
  readonly inFlight: number
  readonly pendingDeadlines: number
  readonly timerArmed: boolean
  readonly labeledProjects: number
}

// ---------------------------------------------------------------------------------------------------------------
// Internal state
// ---------------------------------------------------------------------------------------------------------------

interface MetricHandles {
  readonly attrs: Readonly<Record<string, string>>
  ok: CounterCell | undefined
  error: CounterCell | undefined
  openTotal: CounterCell | undefined
  acquire: HistogramCell | undefined
  readonly duration: Map<string, HistogramCell>
  readonly errors: Map<string, CounterCell>
}

class TargetState {
  readonly key: string
  readonly label: string
  readonly engine: Engine
  readonly budget: FairBudget
  readonly breaker: Breaker
  readonly users = new Set<ProjectEngine<any, any>>()
  healthy: boolean | undefined = undefined
  ewmaMillis = 1
  constructor(key: string, label: string, engine: Engine, budget: FairBudget, breaker: Breaker) {
    this.key = key
    this.label = label
    this.engine = engine
    this.budget = budget
    this.breaker = breaker
  }
  tier(): TierName {
    let best: TierName = "FREE"
    for (const u of this.users) if (tierRank[u.rt.tier.name] > tierRank[best]) best = u.rt.tier.name
    return best
  }
  any(): ProjectEngine<any, any> | undefined {
    for (const u of this.users) if (!u.closed) return u
    return undefined
  }
}

class ProjectRuntime implements ProjectHandle {
  readonly id: ProjectId.ProjectId
  config: ProjectConfig
  tier: TierState
  readonly createdAt: number
  lastUsed: number
  refs = 0
  closed = false
  readonly scope: Scope.Closeable
  readonly engines: Array<ProjectEngine<any, any> | undefined> = [undefined, undefined, undefined]
  readonly pending: Array<Effect.Effect<ProjectEngine<any, any>, any> | undefined> = [undefined, undefined, undefined]
  readonly retired: Array<ProjectEngine<any, any>> = []
  labelSlot: string | undefined = undefined
  constructor(id: ProjectId.ProjectId, config: ProjectConfig, tier: TierState, now: number, scope: Scope.Closeable) {
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

class ProjectEngine<B, E> {
  readonly rt: ProjectRuntime
  readonly es: EngineState<B, E>
  readonly ts: TargetState
  readonly target: Target
  readonly binding: B
  readonly scope: Scope.Closeable
  readonly bulkhead = new Bulkhead()
  readonly breaker: Breaker
  readonly createdAt: number
  lastUsed: number
  lastTag = 0
  queryCount = 0
  errorCount = 0
  running = 0
  ewmaMillis = 1
  closed = false
  handles: MetricHandles | undefined = undefined
  gauges: Array<Metric.Registration> | undefined = undefined
  constructor(
    rt: ProjectRuntime,
    es: EngineState<B, E>,
    ts: TargetState,
    target: Target,
    binding: B,
    scope: Scope.Closeable,
    breaker: Breaker,
    now: number
  ) {
    this.rt = rt
    this.es = es
    this.ts = ts
    this.target = target
    this.binding = binding
    this.scope = scope
    this.breaker = breaker
    this.createdAt = now
    this.lastUsed = now
  }
  busy(): boolean {
    return this.bulkhead.active > 0 || this.bulkhead.queue.length > 0 || this.running > 0
  }
}

interface EngineState<B, E> {
  readonly engine: Engine
  readonly adapter: EngineAdapter<B, E>
  readonly policy: BreakerPolicy.BreakerPolicy
  readonly targets: Map<string, TargetState>
  readonly active: Record<TierName, number>
  readonly open: Record<TierName, number>
  readonly halfOpen: Record<TierName, number>
  readonly shared: Partial<Record<TierName, MetricHandles>>
  readonly overflow: Partial<Record<TierName, MetricHandles>>
}

// ---------------------------------------------------------------------------------------------------------------
// The service
// ---------------------------------------------------------------------------------------------------------------

/**
 * The tenancy service.
 *
 * @category services
 * @since 0.1.0
 */
export class Tenancy extends Context.Service<
  Tenancy,
  {
    /** Registers an engine; its handle guards the engine's operations. */
    readonly register: <B, E>(adapter: EngineAdapter<B, E>) => Effect.Effect<EngineHandle<B, E>, InvalidConfig>
    /** Runs an effect as the given project (validated, looked up, kept alive while it runs). */
    readonly withProject: (
      id: string
    ) => <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E | ProjectNotFound | InvalidProjectId, R>
    /** The project's runtime for the current scope (what `layerProject` provides). */
    readonly acquireProject: (
      id: string
    ) => Effect.Effect<ProjectHandle, ProjectNotFound | InvalidProjectId, Scope.Scope>
    /** Metadata of every live (project, engine). */
    readonly connections: Effect.Effect<ReadonlyArray<ConnectionMetadata>>
    /** Pings a project's engine now. */
    readonly checkHealth: (
      id: string,
      engine: Engine
    ) => Effect.Effect<HealthResult, ProjectNotFound | InvalidProjectId | EngineNotConfigured>
    /**
     * Frees the runtimes (and their connections) of projects with no work in progress that have been idle at
     * least `idleFor` (default: their tier's idle timeout; `0` frees every unused one). Returns how many
     * (project, engine) connections it closed.
     */
    readonly closeIdleConnections: (options?: {
      readonly idleFor?: Duration.Input | undefined
    }) => Effect.Effect<number>
    /** Every event from now on. */
    readonly events: Stream.Stream<TenancyEvent>
    /** The most recent events, oldest first. */
    readonly recentEvents: Effect.Effect<ReadonlyArray<TenancyEvent>>
    /** Counters of the service itself. */
    readonly stats: Effect.Effect<Stats>
    /** Breaker state of a live (project, engine), or closed if it is not live. */
    readonly breakerState: (id: string, engine: Engine) => Effect.Effect<"closed" | "half-open" | "open">
  }
>()("@tenantpool/core/Tenancy") {}

/**
 * Builds the tenancy service (scoped: shutdown closes everything).
 *
 * @category constructors
 * @since 0.1.0
 */
export const make = (options?: Options | undefined) =>
  Effect.gen(function* () {
    const tiers = yield* Tiers
    const registry = yield* ProjectRegistry
    const clock = yield* Clock.Clock
    const layerScope = yield* Effect.scope
    const context = yield* Effect.context<never>()
    const runFork = Effect.runForkWith(context)
    const fork = (effect: Effect.Effect<void>): Fiber.Fiber<void> => runFork(effect)
    const deadlines = new Deadlines(clock, fork)
    const now = () => clock.currentTimeMillisUnsafe()
    // Durations: `performance.now()` (sub-millisecond) under the live Clock, the Clock itself under any other (a
    // TestClock), so that measured latencies, breaker times and idle times follow the same clock as deadlines.
    const stopwatch: () => number = clock === Context.get(Context.empty(), Clock.Clock) ? () => performance.now() : now

    const metricsOptions = options?.metrics ?? {}
    const projectLabel = metricsOptions.projectLabel === true
    const maxProjectSeries = metricsOptions.maxProjectSeries ?? 1000
    let labeledProjects = 0
    const spans = options?.spans ?? "auto"
    const retrySchedule: Schedule.Schedule<unknown, unknown> =
      options?.retry ??
      (Schedule.exponential("50 millis").pipe(Schedule.jittered, Schedule.upTo({ times: 2 })) as Schedule.Schedule<
        unknown,
        unknown
      >)
    const healthInterval = Duration.toMillis(Duration.fromInputUnsafe(options?.healthCheckInterval ?? "30 seconds"))
    const healthTimeout = Duration.fromInputUnsafe(options?.healthCheckTimeout ?? "2 seconds")
    const sweepInterval = Duration.fromInputUnsafe(options?.sweepInterval ?? "30 seconds")
    const shutdownTimeout = Duration.fromInputUnsafe(options?.shutdownTimeout ?? "10 seconds")
    const recentMax = options?.recentEvents ?? 100

    const engineStates: Array<EngineState<any, any> | undefined> = [undefined, undefined, undefined]
    const projects = new Map<string, ProjectRuntime>()
    const pendingProjects = new Map<string, Effect.Effect<ProjectRuntime, ProjectNotFound>>()
    // Runtimes of projects removed from the registry while busy: freed once their work drains.
    const draining = new Set<ProjectRuntime>()
    // Runtimes live in a child scope made here, before the shutdown finalizer is added: scopes close their children
    // and finalizers in reverse order, so shutdown waits for in-flight work before any binding is closed.
    const runtimes = Scope.forkUnsafe(layerScope)
    let inFlight = 0
    let shuttingDown = false
    let drained: Deferred.Deferred<void> | undefined

    // ---- events --------------------------------------------------------------------------------------------
    const pubsub = yield* PubSub.sliding<TenancyEvent>(1024)
    const recent: Array<TenancyEvent> = []
    const emit = (event: TenancyEvent) => {
      recent.push(event)
      if (recent.length > recentMax) recent.shift()
      PubSub.publishUnsafe(pubsub, event)
    }

    // ---- metrics -------------------------------------------------------------------------------------------
    const makeHandles = (engine: Engine, tier: TierName, projectId: string | undefined): MetricHandles => ({
      attrs:
        projectId === undefined
          ? { database_type: engine, tier }
          : { database_type: engine, tier, project_id: projectId },
      ok: undefined,
      error: undefined,
      openTotal: undefined,
      acquire: undefined,
      duration: new Map(),
      errors: new Map()
    })
    const handlesOf = (pe: ProjectEngine<any, any>): MetricHandles => {
      if (pe.handles !== undefined) return pe.handles
      const tier = pe.rt.tier.name
      const slot = pe.rt.labelSlot
      if (slot === undefined || slot === Metrics.overflowProject) {
        const pool = slot === undefined ? pe.es.shared : pe.es.overflow
        return (pe.handles = pool[tier] ?? (pool[tier] = makeHandles(pe.es.engine, tier, slot)))
      }
      return (pe.handles = makeHandles(pe.es.engine, tier, slot))
    }
    const okCell = (h: MetricHandles) =>
      (h.ok ??= new CounterCell(Metrics.queriesTotal, { ...h.attrs, status: "success" }, context))
    const errorCell = (h: MetricHandles) =>
      (h.error ??= new CounterCell(Metrics.queriesTotal, { ...h.attrs, status: "error" }, context))
    const openTotalCell = (h: MetricHandles) =>
      (h.openTotal ??= new CounterCell(Metrics.circuitBreakerOpenTotal, { ...h.attrs, scope: "project" }, context))
    const acquireCell = (h: MetricHandles) =>
      (h.acquire ??= new HistogramCell(Metrics.acquireDuration, Metrics.durationBoundaries, h.attrs, context))
    const durationCell = (h: MetricHandles, op: string) => {
      let m = h.duration.get(op)
      if (m === undefined) {
        m = new HistogramCell(Metrics.queryDuration, Metrics.durationBoundaries, { ...h.attrs, operation: op }, context)
        h.duration.set(op, m)
      }
      return m
    }
    const countError = (pe: ProjectEngine<any, any>, errorType: string) => {
      const h = handlesOf(pe)
      errorCell(h).n++
      let m = h.errors.get(errorType)
      if (m === undefined) {
        m = new CounterCell(Metrics.errorsTotal, { ...h.attrs, error_type: errorType }, context)
        h.errors.set(errorType, m)
      }
      m.n++
    }
    const removeProjectSeries = (pe: ProjectEngine<any, any>) => {
      if (pe.gauges !== undefined) for (const g of pe.gauges) g.remove()
      pe.gauges = undefined
      const h = pe.handles
      pe.handles = undefined
      if (h === undefined || h.attrs.project_id === undefined || h.attrs.project_id === Metrics.overflowProject) return
      for (const cell of [h.ok, h.error, h.openTotal, h.acquire, ...h.duration.values(), ...h.errors.values()]) {
        cell?.registration.remove()
      }
    }
    const registerProjectGauges = (pe: ProjectEngine<any, any>) => {
      if (pe.rt.labelSlot === undefined || pe.rt.labelSlot === Metrics.overflowProject) return
      const attrs = { database_type: pe.es.engine, tier: pe.rt.tier.name, project_id: pe.rt.labelSlot }
      pe.gauges = [
        Metric.registerUnsafe(
          Metric.withAttributes(Metrics.activeConnections, attrs),
          context,
          gaugeHooks(() => pe.running)
        ),
        Metric.registerUnsafe(
          Metric.withAttributes(Metrics.circuitBreakerState, {
            database_type: pe.es.engine,
            project_id: pe.rt.labelSlot
          }),
          context,
          gaugeHooks(() => pe.breaker.state)
        )
      ]
    }

    // ---- breakers ------------------------------------------------------------------------------------------
    const onProjectTransition = (pe: ProjectEngine<any, any>) => (from: StateCode, to: StateCode, br: Breaker) => {
      const tier = pe.rt.tier.name
      adjustBreakerCounts(pe.es, tier, from, to)
      emitTransition(pe.es.engine, "project", pe.rt.id, pe.ts.label, to, br)
      if (to === OPEN) {
        openTotalCell(handlesOf(pe)).n++
        scheduleProbe(br, () => (pe.closed ? undefined : pe))
      }
    }
    const onTargetTransition =
      (es: EngineState<any, any>, ts: TargetState) => (from: StateCode, to: StateCode, br: Breaker) => {
        const tier = ts.tier()
        adjustBreakerCounts(es, tier, from, to)
        emitTransition(es.engine, "target", undefined, ts.label, to, br)
        if (to === OPEN) {
          Metric.withAttributes(Metrics.circuitBreakerOpenTotal, {
            database_type: es.engine,
            tier,
            scope: "target"
          }).updateUnsafe(1, context)
          scheduleProbe(br, () => ts.any())
        }
      }
    const adjustBreakerCounts = (es: EngineState<any, any>, tier: TierName, from: StateCode, to: StateCode) => {
      if (from === OPEN) es.open[tier]--
      if (from === HALF_OPEN) es.halfOpen[tier]--
      if (to === OPEN) es.open[tier]++
      if (to === HALF_OPEN) es.halfOpen[tier]++
    }
    const emitTransition = (
      engine: Engine,
      scope: "project" | "target",
      projectId: string | undefined,
      target: string,
      to: StateCode,
      br: Breaker
    ) =>
      emit({
        _tag: to === OPEN ? "CircuitOpen" : to === HALF_OPEN ? "CircuitHalfOpen" : "CircuitClosed",
        at: now(),
        engine,
        scope,
        projectId,
        target,
        openForMillis: to === OPEN ? br.lastOpenFor : undefined
      })
    // Active probing: when the open time ends, ping instead of waiting for (and failing) a caller's call.
    const scheduleProbe = (br: Breaker, pick: () => ProjectEngine<any, any> | undefined) => {
      if (!br.policy.activeProbe) return
      deadlines.add(br.openUntil, () => {
        if (br.state !== OPEN || shuttingDown) return
        const pe = pick()
        if (pe === undefined) return
        if (br.admit(now()) !== PROBE) return
        fork(
          pe.es.adapter.ping(pe.binding).pipe(
            Effect.timeout(Duration.millis(pe.es.policy.attemptTimeoutMillis)),
            Effect.exit,
            Effect.flatMap((exit) =>
              Effect.sync(() => {
                if (exit._tag === "Success") br.record(now(), false, true)
                else if (Cause.hasInterruptsOnly(exit.cause)) br.releaseProbe()
                else br.record(now(), true, true)
              })
            )
          )
        )
      })
    }

    // ---- project runtimes ----------------------------------------------------------------------------------
    const createRuntime = (id: ProjectId.ProjectId): Effect.Effect<ProjectRuntime, ProjectNotFound> => {
      const pending = pendingProjects.get(id)
      if (pending !== undefined) return pending
      const load = registry.lookup(id).pipe(
        Effect.map((config) => {
          const live = projects.get(id)
          if (live !== undefined) return live
          const rt = new ProjectRuntime(id, config, tiers.get(config.tier), now(), Scope.forkUnsafe(runtimes))
          if (projectLabel) {
            if (labeledProjects < maxProjectSeries) {
              labeledProjects++
              rt.labelSlot = id
            } else {
              rt.labelSlot = Metrics.overflowProject
            }
          }
          projects.set(id, rt)
          return rt
        }),
        Effect.ensuring(Effect.sync(() => pendingProjects.delete(id)))
      )
      const shared = Effect.runSync(Effect.cached(load))
      pendingProjects.set(id, shared)
      return shared
    }
    const acquireRuntime = (id: ProjectId.ProjectId): Effect.Effect<ProjectRuntime, ProjectNotFound> => {
      const rt = projects.get(id)
      if (rt !== undefined) {
        rt.refs++
        return Effect.succeed(rt)
      }
      return Effect.map(createRuntime(id), (rt) => {
        rt.refs++
        return rt
      })
    }
    const releaseRuntime = (rt: ProjectRuntime) =>
      Effect.sync(() => {
        rt.refs--
        rt.lastUsed = now()
      })

    const withProject =
      (id: string) =>
      <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E | ProjectNotFound | InvalidProjectId, R> =>
        Effect.flatMap(ProjectId.decode(id), (pid) =>
          Effect.acquireUseRelease(
            acquireRuntime(pid),
            (rt) => self.pipe(Effect.provideService(CurrentProject, rt), Effect.annotateLogs("project_id", pid)),
            releaseRuntime
          )
        )

    const acquireProject = (id: string) =>
      Effect.flatMap(ProjectId.decode(id), (pid) =>
        Effect.acquireRelease(acquireRuntime(pid), releaseRuntime)
      ) as Effect.Effect<ProjectHandle, ProjectNotFound | InvalidProjectId, Scope.Scope>

    // Engine binding for a runtime, created once (concurrent first calls share the creation).
    const ensureEngine = <B, E>(
      rt: ProjectRuntime,
      es: EngineState<B, E>
    ): Effect.Effect<ProjectEngine<B, E>, E | EngineNotConfigured> => {
      const i = engineIndex[es.engine]
      const pending = rt.pending[i]
      if (pending !== undefined) return pending
      const target = rt.config.targets[es.engine]
      if (target === undefined) return Effect.fail(new EngineNotConfigured({ projectId: rt.id, engine: es.engine }))
      const create = Effect.gen(function* () {
        const scope = Scope.forkUnsafe(rt.scope)
        const exit = yield* Effect.exit(Scope.provide(es.adapter.bind(rt, target), scope))
        if (exit._tag === "Failure") {
          yield* Scope.close(scope, exit)
          return yield* Effect.failCause(exit.cause)
        }
        let ts = es.targets.get(target.key)
        if (ts === undefined) {
          const budget = new FairBudget(Math.max(1, es.adapter.targetCapacity(target)))
          const breakerRef: { ts?: TargetState } = {}
          const breaker = new Breaker(es.policy, (from, to, br) => onTargetTransition(es, breakerRef.ts!)(from, to, br))
          ts = new TargetState(target.key, target.label, es.engine, budget, breaker)
          breakerRef.ts = ts
          es.targets.set(target.key, ts)
        }
        const peRef: { pe?: ProjectEngine<B, E> } = {}
        const breaker = new Breaker(es.policy, (from, to, br) => onProjectTransition(peRef.pe!)(from, to, br))
        const pe = new ProjectEngine<B, E>(rt, es, ts, target, exit.value, scope, breaker, now())
        peRef.pe = pe
        ts.users.add(pe)
        rt.engines[i] = pe
        registerProjectGauges(pe)
        emit({ _tag: "PoolCreated", at: now(), engine: es.engine, projectId: rt.id, target: target.label })
        return pe
      }).pipe(
        Effect.onExit((exit) =>
          Effect.sync(() => {
            if (exit._tag === "Failure") rt.pending[i] = undefined
          })
        )
      )
      const shared = Effect.runSync(Effect.cached(create))
      rt.pending[i] = shared
      return shared
    }

    const closeEngine = (
      pe: ProjectEngine<any, any>,
      reason: "idle" | "closeIdleConnections" | "shutdown" | "config-changed"
    ) => {
      if (pe.closed) return Effect.void
      pe.closed = true
      pe.ts.users.delete(pe)
      const tier = pe.rt.tier.name
      if (pe.breaker.state === OPEN) pe.es.open[tier]--
      else if (pe.breaker.state === HALF_OPEN) pe.es.halfOpen[tier]--
      removeProjectSeries(pe)
      if (pe.ts.users.size === 0) {
        const ts = pe.ts
        if (ts.breaker.state === OPEN) pe.es.open[ts.tier()]--
        else if (ts.breaker.state === HALF_OPEN) pe.es.halfOpen[ts.tier()]--
        pe.es.targets.delete(ts.key)
      }
      emit({
        _tag: "PoolClosed",
        at: now(),
        engine: pe.es.engine,
        projectId: pe.rt.id,
        target: pe.target.label,
        reason
      })
      return Scope.close(pe.scope, Exit.void)
    }

    const evict = (rt: ProjectRuntime, reason: "idle" | "closeIdleConnections" | "shutdown" | "config-changed") =>
      Effect.gen(function* () {
        if (rt.closed) return 0
        rt.closed = true
        if (projects.get(rt.id) === rt) projects.delete(rt.id)
        let closed = 0
        for (const pe of [...rt.engines, ...rt.retired]) {
          if (pe === undefined) continue
          yield* closeEngine(pe, reason)
          closed++
        }
        if (rt.labelSlot !== undefined && rt.labelSlot !== Metrics.overflowProject) labeledProjects--
        yield* Scope.close(rt.scope, Exit.void)
        emit({ _tag: "ProjectEvicted", at: now(), projectId: rt.id, reason })
        return closed
      })

    // A breaker that is rejecting calls (open, or half-open) outlives idleness: evicting its project would forget
    // that the database is down and let the next calls through to it. Once its open time is over it may go.
    const rejecting = (br: Breaker, t: number) => br.state === HALF_OPEN || (br.state === OPEN && t < br.openUntil)
    const holdsRejectingBreaker = (rt: ProjectRuntime, t: number): boolean => {
      for (const pe of rt.engines) {
        if (pe === undefined) continue
        if (rejecting(pe.breaker, t) || (pe.ts.users.size === 1 && rejecting(pe.ts.breaker, t))) return true
      }
      return false
    }
    const sweep = (idleFor: number | undefined, reason: "idle" | "closeIdleConnections") =>
      Effect.gen(function* () {
        const t = now()
        let closed = 0
        for (const rt of [...draining]) {
          if (rt.busy()) continue
          draining.delete(rt)
          closed += yield* evict(rt, "config-changed")
        }
        for (const rt of [...projects.values()]) {
          // Retired engines (after a target change) close as soon as their work has drained.
          for (let k = rt.retired.length - 1; k >= 0; k--) {
            const pe = rt.retired[k]!
            if (!pe.busy()) {
              rt.retired.splice(k, 1)
              yield* closeEngine(pe, "config-changed")
              closed++
            }
          }
          if (rt.busy() || holdsRejectingBreaker(rt, t)) continue
          const ttl = idleFor ?? rt.tier.limits.idleTimeoutMillis
          if (t - rt.lastUsed >= ttl) closed += yield* evict(rt, reason)
        }
        return closed
      })

    // Registry changes: a new tier applies at once; a changed target retires the old binding.
    const unsubscribeRegistry = registry.subscribe((id) => {
      const rt = projects.get(id)
      if (rt === undefined) return
      fork(
        registry.lookup(id).pipe(
          Effect.matchEffect({
            onFailure: () =>
              Effect.sync(() => {
                // Removed: new calls no longer find it; the runtime goes as soon as its work drains.
                projects.delete(id)
                if (rt.busy()) draining.add(rt)
                else fork(Effect.asVoid(evict(rt, "config-changed")))
              }),
            onSuccess: (config) =>
              Effect.sync(() => {
                rt.config = config
                if (rt.tier.name !== config.tier) {
                  for (const pe of rt.engines) {
                    if (pe === undefined) continue
                    moveTier(pe, rt.tier.name, config.tier)
                  }
                  rt.tier = tiers.get(config.tier)
                  // A higher limit admits queued waiters now, as a raised tier limit does.
                  const limit = rt.tier.limits.maxConcurrent
                  for (const pe of rt.engines) {
                    if (pe !== undefined && pe.bulkhead.queue.length > 0) pe.bulkhead.drain(limit)
                  }
                }
                for (const engine of engines) {
                  const i = engineIndex[engine]
                  const pe = rt.engines[i]
                  if (pe !== undefined && config.targets[engine]?.key !== pe.target.key) {
                    rt.engines[i] = undefined
                    rt.pending[i] = undefined
                    rt.retired.push(pe)
                  }
                }
              })
          })
        )
      )
    })
    // Tier changes: a raised maxConcurrent admits the tier's queued waiters at once (a lowered one needs nothing:
    // bulkheads read the live limit, so they admit new work only as running work drains below it).
    const unlistenTiers = tiers.onChange((tier, previous) => {
      emit({ _tag: "TierChanged", at: now(), tier: tier.name })
      const limit = tier.limits.maxConcurrent
      if (limit <= previous.maxConcurrent) return
      for (const rt of projects.values()) {
        if (rt.tier !== tier) continue
        for (const pe of rt.engines) if (pe !== undefined && pe.bulkhead.queue.length > 0) pe.bulkhead.drain(limit)
      }
    })
    yield* Scope.addFinalizer(
      layerScope,
      Effect.sync(() => {
        unlistenTiers()
        unsubscribeRegistry()
      })
    )
    const moveTier = (pe: ProjectEngine<any, any>, from: TierName, to: TierName) => {
      const state = pe.breaker.state
      if (state === OPEN) {
        pe.es.open[from]--
        pe.es.open[to]++
      } else if (state === HALF_OPEN) {
        pe.es.halfOpen[from]--
        pe.es.halfOpen[to]++
      }
      pe.es.active[from] -= pe.running
      pe.es.active[to] += pe.running
      removeProjectSeries(pe)
      registerProjectGauges(pe)
    }

    // ---- the guard -----------------------------------------------------------------------------------------
    const spansOn = (fiber: Fiber.Fiber<any, any>) =>
      spans === "always" || (spans === "auto" && fiber.getRef(Tracer.Tracer) !== Tracer.nativeTracer)

    const tierWaitEstimate = (queued: number, limit: number, ewma: number) => ((queued + 1) / limit) * ewma

    /**
     * One admitted attempt. States: 0 waiting for the project slot, 1 waiting for the target slot, 2 running,
     * 3 done. Every path that leaves state 2 or an earlier state releases exactly what it holds.
     */
    const attempt = <A, B, E>(
      pe: ProjectEngine<B, E>,
      op: Operation<B>,
      t: number,
      deadline: number,
      extraMillis: number,
      start: (pe: ProjectEngine<B, E>, call: Call<A, E>) => void,
      retries: boolean
    ): Effect.Effect<A, E | GuardError> => {
      // The caller's clock reading serves the first attempt; a retry reads the clock again.
      let first = t
      return Effect.callback<A, E | GuardError>((resume) => {
        const call = new Call<A, E>(pe, op, deadline, resume)
        call.extraMillis = extraMillis
        call.retries = retries
        call.begin(first >= 0 ? first : now(), start)
        first = -1
        if (call.state === 3) return
        return Effect.sync(() => call.interrupt())
      })
    }

    class Call<A, E> implements Waiter, FairWaiter, AttemptSignal, Entry {
      state = 0
      grant: (() => void) | undefined = undefined
      tag = 0
      seq = 0
      // The call is its own deadline entry (see internal/deadlines.ts).
      at = 0
      linked = false
      prev: Entry | undefined = undefined
      next: Entry | undefined = undefined
      attemptBudget: "attempt" | "deadline" = "attempt"
      probe = false
      targetProbe = false
      startedAt = 0
      extraMillis = 0
      retries = false
      cancelOnAbandon: (() => void) | undefined = undefined
      readonly pe: ProjectEngine<any, E>
      readonly op: Operation<any>
      readonly deadline: number
      readonly resume: (effect: Effect.Effect<A, E | GuardError>) => void
      runner: ((pe: ProjectEngine<any, E>, call: Call<A, E>) => void) | undefined = undefined
      constructor(
        pe: ProjectEngine<any, E>,
        op: Operation<any>,
        deadline: number,
        resume: (effect: Effect.Effect<A, E | GuardError>) => void
      ) {
        this.pe = pe
        this.op = op
        this.deadline = deadline
        this.resume = resume
      }

      get active(): boolean {
        return this.state === 2
      }

      onDeadline() {
        if (this.state === 2) this.timeout(this.attemptBudget)
        else this.expireWaiting()
      }

      begin(t: number, start: (pe: ProjectEngine<any, E>, call: Call<A, E>) => void) {
        this.runner = start
        const pe = this.pe
        if (shuttingDown) return this.finish(Effect.fail(new ShuttingDown({ engine: pe.es.engine })))
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
        // Project bulkhead.
        const limits = pe.rt.tier.limits
        if (pe.bulkhead.tryAcquire(limits.maxConcurrent)) return this.admitTarget(t)
        const queued = pe.bulkhead.queue.length
        if (queued >= limits.maxQueue) {
          return this.overloaded("project", "queue-full", tierWaitEstimate(queued, limits.maxConcurrent, pe.ewmaMillis))
        }
        const wait = tierWaitEstimate(queued, limits.maxConcurrent, pe.ewmaMillis)
        if (t + wait > this.deadline) return this.overloaded("project", "deadline", wait)
        this.grant = () => {
          deadlines.cancel(this)
          this.admitTarget(now())
        }
        pe.bulkhead.queue.push(this)
        deadlines.schedule(this, this.deadline)
      }

      admitTarget(t: number) {
        const pe = this.pe
        // Admitted from the project queue after shutdown began: refuse rather than start on a closing binding.
        if (shuttingDown) {
          pe.bulkhead.release(pe.rt.tier.limits.maxConcurrent)
          return this.refuse()
        }
        this.state = 1
        const budget = pe.ts.budget
        if (budget.tryAcquire()) return this.run(t)
        const wait = ((budget.queued + 1) / budget.capacity) * pe.ts.ewmaMillis
        if (t + wait > this.deadline) {
          pe.bulkhead.release(pe.rt.tier.limits.maxConcurrent)
          return this.overloaded("target", "deadline", wait)
        }
        this.grant = () => {
          deadlines.cancel(this)
          this.run(now())
        }
        pe.lastTag = budget.enqueue(this, pe.lastTag, pe.rt.tier.weight)
        deadlines.schedule(this, this.deadline)
      }

      run(t: number) {
        const pe = this.pe
        if (shuttingDown) {
          pe.ts.budget.release()
          pe.bulkhead.release(pe.rt.tier.limits.maxConcurrent)
          return this.refuse()
        }
        this.state = 2
        pe.running++
        pe.es.active[pe.rt.tier.name]++
        inFlight++
        const attemptAt = Math.min(t + pe.es.policy.attemptTimeoutMillis + this.extraMillis, this.deadline)
        this.attemptBudget = attemptAt === this.deadline ? "deadline" : "attempt"
        deadlines.schedule(this, attemptAt)
        this.startedAt = stopwatch()
        this.runner!(pe, this)
      }

      /** The attempt finished (success or the engine's error). */
      complete(exit: Exit.Exit<A, E>) {
        if (this.state !== 2) return
        deadlines.cancel(this)
        const pe = this.pe
        const elapsed = stopwatch() - this.startedAt
        const t = now()
        this.release()
        pe.ewmaMillis += (elapsed - pe.ewmaMillis) * 0.1
        pe.ts.ewmaMillis += (elapsed - pe.ts.ewmaMillis) * 0.05
        pe.queryCount++
        pe.lastUsed = t
        const h = handlesOf(pe)
        durationCell(h, this.op.name).observe(elapsed / 1000)
        if (exit._tag === "Success") {
          okCell(h).n++
          pe.breaker.record(t, false, this.probe)
          pe.ts.breaker.record(t, false, this.targetProbe)
          return this.finish(exit)
        }
        const error = Cause.findErrorOption(exit.cause)
        if (error._tag === "None") {
          // A defect or an interruption of the attempt fiber: no outcome for the breakers.
          if (this.probe) pe.breaker.releaseProbe()
          if (this.targetProbe) pe.ts.breaker.releaseProbe()
          pe.errorCount++
          countError(pe, "defect")
          return this.finish(exit)
        }
        const c = pe.es.adapter.classify(error.value)
        pe.errorCount++
        countError(pe, c.errorType)
        pe.breaker.record(t, c.infrastructure, this.probe)
        pe.ts.breaker.record(t, c.infrastructure, this.targetProbe)
        // Non-idempotent writes are never retried: their outcome is unknown now. Idempotent ones are settled by
        // the retry loop (a later success settles them; giving up reports them unknown).
        if (c.infrastructure && c.sent && !this.op.idempotent && isWrite(this.op)) {
          return this.finish(
            Effect.fail(
              new UnknownOutcome({
                projectId: pe.rt.id,
                engine: pe.es.engine,
                operation: this.op.name,
                cause: error.value
              })
            )
          )
        }
        this.finish(exit)
      }

      /** The attempt ran out of time: abandon it, free what it held, report. */
      timeout(budget: "attempt" | "deadline") {
        if (this.state !== 2) return
        const pe = this.pe
        const t = now()
        this.release()
        this.abandon()
        pe.queryCount++
        pe.errorCount++
        countError(pe, "timeout")
        pe.breaker.record(t, true, this.probe)
        // A timeout may be one project's slow query rather than a sick server (MongoDB's SDAM makes the same call):
        // it counts against the project's breaker only. A hung server still opens the target's breaker through
        // the health checks, whose pings time out for everyone.
        if (this.targetProbe) pe.ts.breaker.releaseProbe()
        this.targetProbe = false
        const after =
          budget === "attempt" ? pe.es.policy.attemptTimeoutMillis + this.extraMillis : pe.rt.tier.limits.timeoutMillis
        const timeout = new Timeout({
          projectId: pe.rt.id,
          engine: pe.es.engine,
          operation: this.op.name,
          budget,
          afterMillis: after
        })
        this.finish(
          Effect.fail(
            this.op.idempotent || !isWrite(this.op)
              ? timeout
              : new UnknownOutcome({
                  projectId: pe.rt.id,
                  engine: pe.es.engine,
                  operation: this.op.name,
                  cause: timeout
                })
          )
        )
      }

      expireWaiting() {
        const pe = this.pe
        if (this.state === 0) pe.bulkhead.queue.cancel(this)
        else if (this.state === 1) {
          pe.ts.budget.cancel(this)
          pe.bulkhead.release(pe.rt.tier.limits.maxConcurrent)
        } else return
        this.releaseProbes()
        countError(pe, "timeout")
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

      refuse() {
        this.releaseProbes()
        this.finish(Effect.fail(new ShuttingDown({ engine: this.pe.es.engine })))
      }

      /** Shutdown stopped waiting: abandon the attempt or the wait, free what it holds, tell the caller. */
      abort() {
        const pe = this.pe
        switch (this.state) {
          case 0:
            pe.bulkhead.queue.cancel(this)
            return this.refuse()
          case 1:
            pe.ts.budget.cancel(this)
            pe.bulkhead.release(pe.rt.tier.limits.maxConcurrent)
            return this.refuse()
          case 2: {
            this.release()
            this.abandon()
            this.releaseProbes()
            const refused = new ShuttingDown({ engine: pe.es.engine })
            return this.finish(
              Effect.fail(
                !isWrite(this.op)
                  ? refused
                  : new UnknownOutcome({
                      projectId: pe.rt.id,
                      engine: pe.es.engine,
                      operation: this.op.name,
                      cause: refused
                    })
              )
            )
          }
        }
      }

      /** The caller's fiber was interrupted. */
      interrupt() {
        const pe = this.pe
        switch (this.state) {
          case 0:
            pe.bulkhead.queue.cancel(this)
            deadlines.cancel(this)
            this.releaseProbes()
            break
          case 1:
            pe.ts.budget.cancel(this)
            deadlines.cancel(this)
            pe.bulkhead.release(pe.rt.tier.limits.maxConcurrent)
            this.releaseProbes()
            break
          case 2:
            deadlines.cancel(this)
            this.release()
            this.abandon()
            this.releaseProbes()
            break
        }
        this.state = 3
      }

      release() {
        const pe = this.pe
        this.state = 3
        pe.running--
        pe.es.active[pe.rt.tier.name]--
        if (--inFlight === 0 && drained !== undefined) Deferred.doneUnsafe(drained, Exit.void)
        pe.ts.budget.release()
        pe.bulkhead.release(pe.rt.tier.limits.maxConcurrent)
      }

      abandon() {
        if (this.cancelOnAbandon !== undefined) this.cancelOnAbandon()
        if (this.op.cancel !== undefined) this.op.cancel(this.pe.binding)
      }

      releaseProbes() {
        if (this.probe) this.pe.breaker.releaseProbe()
        if (this.targetProbe) this.pe.ts.breaker.releaseProbe()
        this.probe = this.targetProbe = false
      }

      rejectOpen(scope: "project" | "target", br: Breaker, t: number) {
        const pe = this.pe
        countError(pe, "circuit_open")
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

      overloaded(scope: "project" | "target", reason: "queue-full" | "deadline", retryAfter: number) {
        const pe = this.pe
        this.releaseProbes()
        countError(pe, "overloaded")
        emit({ _tag: "Overloaded", at: now(), engine: pe.es.engine, projectId: pe.rt.id, scope })
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

      finish(effect: Effect.Effect<A, E | GuardError>) {
        this.state = 3
        // The first attempt of an idempotent operation hands its failure to the retry loop; the success path
        // pays nothing for retries (no `Effect.catch` around every call).
        if (this.retries && Exit.isExit(effect) && effect._tag === "Failure") {
          const error = Cause.findErrorOption(effect.cause)
          if (error._tag === "Some") return this.resume(retryFrom<A, E>(this, error.value as E | GuardError))
        }
        this.resume(effect)
      }
    }

    // An attempt that timed out, or failed on the way after its request was sent, may have been applied.
    const mayHaveApplied = (es: EngineState<any, any>, error: unknown): boolean => {
      if (error instanceof Timeout) return error.budget === "attempt"
      if (error instanceof UnknownOutcome) return true
      if (isGuardError(error)) return false
      const c = es.adapter.classify(error)
      return c.infrastructure && c.sent
    }

    const isRetryable = (es: EngineState<any, any>, op: Operation<any>, error: unknown): boolean => {
      if (!op.idempotent) return false
      if (error instanceof Timeout) return error.budget === "attempt"
      if (isGuardError(error)) return false
      return es.adapter.classify(error).infrastructure
    }

    // Retries: only after a failure, so the success path pays nothing for them.
    // Retries: entered from the first attempt's failure only (see `Call.finish`). Later attempts are plain.
    const retryFrom = <A, E>(call: Call<A, E>, first: E | GuardError): Effect.Effect<A, E | GuardError> => {
      const { deadline, op, pe } = call
      const es = pe.es
      // Whether some attempt may have applied the write: then giving up is an unknown outcome, not a failure.
      let applied = isWrite(op) && mayHaveApplied(es, first)
      const giveUp = (error: E | GuardError): Effect.Effect<never, E | GuardError> =>
        Effect.fail(
          applied
            ? new UnknownOutcome({ projectId: pe.rt.id, engine: es.engine, operation: op.name, cause: error })
            : error
        )
      if (!isRetryable(es, op, first)) return giveUp(first)
      const once = attempt<A, any, E>(pe, op, -1, deadline, call.extraMillis, call.runner!, false)
      return Effect.gen(function* () {
        const step = yield* Schedule.toStep(retrySchedule)
        let error: E | GuardError = first
        for (;;) {
          const next = yield* Effect.exit(step(now(), error))
          if (next._tag === "Failure") return yield* giveUp(error)
          const delay = Duration.toMillis(next.value[1])
          if (now() + delay >= deadline) return yield* giveUp(error)
          yield* Effect.sleep(Duration.millis(delay))
          const result = yield* Effect.result(once)
          if (result._tag === "Success") return result.success
          error = result.failure
          applied = applied || (isWrite(op) && mayHaveApplied(es, error))
          if (!isRetryable(es, op, error)) return yield* giveUp(error)
        }
      })
    }

    const resolve = <B, E>(
      fiber: Fiber.Fiber<any, any>,
      es: EngineState<B, E>
    ): ProjectEngine<B, E> | Effect.Effect<ProjectEngine<B, E>, E | GuardError> => {
      const handle = fiber.getRef(CurrentProject)
      if (handle === undefined) return Effect.fail(new NoCurrentProject({ engine: es.engine }))
      if (!(handle instanceof ProjectRuntime)) {
        return Effect.die(new Error("CurrentProject holds a value not made by this Tenancy service"))
      }
      if (handle.closed) {
        // A fiber that outlived its project's scope: run on a fresh runtime, never a closed one.
        return Effect.flatMap(acquireRuntime(handle.id), (rt) => {
          rt.refs--
          return ensureEngine(rt, es)
        })
      }
      const pe = handle.engines[engineIndex[es.engine]] as ProjectEngine<B, E> | undefined
      return pe !== undefined ? pe : ensureEngine(handle, es)
    }

    // One guarded call once its project engine is known: no closure per call on this path.
    const guardOn = <A, B, E>(
      fiber: Fiber.Fiber<any, any>,
      es: EngineState<B, E>,
      op: Operation<B>,
      extraMillis: number,
      start: (pe: ProjectEngine<B, E>, call: Call<A, E>) => void,
      pe: ProjectEngine<B, E>
    ): Effect.Effect<A, E | GuardError> => {
      const t = now()
      const deadline = t + pe.rt.tier.limits.timeoutMillis
      const guarded = attempt<A, B, E>(pe, op, t, deadline, extraMillis, start, op.idempotent)
      if (!spansOn(fiber)) return guarded
      return Effect.withSpan(guarded, `tenantpool.${es.engine}.${op.name}`, {
        attributes: {
          "db.system": es.engine,
          "db.operation": op.name,
          "tenantpool.project_id": pe.rt.id,
          "tenantpool.tier": pe.rt.tier.name
        }
      })
    }

    // Protections: once per call (not per attempt), before admission, only for calls that pass a detail.
    const checkedOn = <A, B, E>(
      fiber: Fiber.Fiber<any, any>,
      es: EngineState<B, E>,
      op: Operation<B>,
      extraMillis: number,
      detail: ProtectionDetail | undefined,
      start: (pe: ProjectEngine<B, E>, call: Call<A, E>) => void,
      pe: ProjectEngine<B, E>
    ): Effect.Effect<A, E | GuardError | ProtectionError> => {
      if (detail !== undefined) {
        const pending = fiber.getRef(Protections)?.check(pe.rt, es.engine, op.name, detail)
        if (pending !== undefined) return Effect.flatMap(pending, () => guardOn(fiber, es, op, extraMillis, start, pe))
      }
      return guardOn(fiber, es, op, extraMillis, start, pe)
    }

    const guard = <A, B, E, R>(
      es: EngineState<B, E>,
      op: Operation<B>,
      extraMillis: number,
      detail: ProtectionDetail | undefined,
      start: (pe: ProjectEngine<B, E>, call: Call<A, E>) => void
    ): Effect.Effect<A, E | GuardError | ProtectionError, R> =>
      Effect.withFiber((fiber) => {
        const resolved = resolve(fiber, es)
        return (
          Effect.isEffect(resolved)
            ? Effect.flatMap(resolved, (pe) => checkedOn(fiber, es, op, extraMillis, detail, start, pe))
            : checkedOn(fiber, es, op, extraMillis, detail, start, resolved)
        ) as Effect.Effect<A, E | GuardError | ProtectionError, R>
      })

    // ---- engine registration -------------------------------------------------------------------------------
    const register = <B, E>(adapter: EngineAdapter<B, E>): Effect.Effect<EngineHandle<B, E>, InvalidConfig> =>
      Effect.gen(function* () {
        const policy = yield* BreakerPolicy.make(adapter.engine, {
          ...adapter.policy,
          ...options?.breakers?.[adapter.engine]
        })
        const zero = () => ({ FREE: 0, STARTER: 0, PRO: 0, ENTERPRISE: 0 })
        const es: EngineState<B, E> = {
          engine: adapter.engine,
          adapter,
          policy,
          targets: new Map(),
          active: zero(),
          open: zero(),
          halfOpen: zero(),
          shared: {},
          overflow: {}
        }
        engineStates[engineIndex[adapter.engine]] = es
        for (const tier of tierNames) {
          const attrs = { database_type: adapter.engine, tier }
          Metric.registerUnsafe(
            Metric.withAttributes(Metrics.activeConnections, attrs),
            context,
            gaugeHooks(() => es.active[tier])
          )
          Metric.registerUnsafe(
            Metric.withAttributes(Metrics.circuitBreakerState, attrs),
            context,
            gaugeHooks(() => (es.open[tier] > 0 ? 2 : es.halfOpen[tier] > 0 ? 1 : 0))
          )
          for (const status of ["total", "available", "pending"] as const) {
            Metric.registerUnsafe(
              Metric.withAttributes(Metrics.poolSize, { ...attrs, status }),
              context,
              gaugeHooks(() => poolStat(es, tier, status))
            )
          }
        }
        const handle: EngineHandle<B, E> = {
          engine: adapter.engine,
          policy,
          run: (<A>(
            op: Operation<B>,
            f: (binding: B, signal: AttemptSignal) => PromiseLike<A>,
            mapError: (cause: unknown) => E,
            extraMillis?: number,
            detail?: ProtectionDetail
          ) =>
            guard<A, B, E, never>(es, op, extraMillis ?? 0, detail, (pe, call) => {
              let promise: PromiseLike<A>
              try {
                promise = f(pe.binding, call)
              } catch (e) {
                return call.complete(Exit.fail(mapError(e)))
              }
              promise.then(
                (a) => call.complete(Exit.succeed(a)),
                (e) => call.complete(Exit.fail(mapError(e)))
              )
            })) as EngineHandle<B, E>["run"],
          runEffect: (<A, R>(
            op: Operation<B>,
            f: (binding: B) => Effect.Effect<A, E, R>,
            extraMillis?: number,
            detail?: ProtectionDetail
          ) =>
            Effect.withFiber((parent) =>
              guard<A, B, E, R>(es, op, extraMillis ?? 0, detail, (pe, call) => {
                const child = Effect.runForkWith(parent.context as Context.Context<R>)(f(pe.binding))
                call.cancelOnAbandon = () => child.interruptUnsafe()
                child.addObserver((exit) => call.complete(exit))
              })
            )) as EngineHandle<B, E>["runEffect"],
          binding: Effect.withFiber((fiber) => {
            const resolved = resolve(fiber, es)
            const out = (pe: ProjectEngine<B, E>) => ({ binding: pe.binding, project: pe.rt as ProjectHandle })
            return Effect.isEffect(resolved) ? Effect.map(resolved, out) : Effect.succeed(out(resolved))
          }),
          recordAcquire: (project, seconds) => {
            if (!(project instanceof ProjectRuntime)) return
            const pe = project.engines[engineIndex[adapter.engine]]
            if (pe !== undefined) acquireCell(handlesOf(pe)).observe(seconds)
          }
        }
        return handle
      })

    const poolStat = (es: EngineState<any, any>, tier: TierName, status: "total" | "available" | "pending") => {
      const stats = es.adapter.stats
      if (stats === undefined) return 0
      let sum = 0
      for (const ts of es.targets.values()) {
        if (ts.tier() !== tier) continue
        const pe = ts.any()
        if (pe === undefined) continue
        const s = stats(pe.binding)
        sum += status === "total" ? s.size : status === "available" ? s.available : s.pending
      }
      return sum
    }

    // ---- health --------------------------------------------------------------------------------------------
    const ping = (pe: ProjectEngine<any, any>) =>
      Effect.gen(function* () {
        const started = performance.now()
        const exit = yield* Effect.exit(pe.es.adapter.ping(pe.binding).pipe(Effect.timeout(healthTimeout)))
        const latencyMillis = performance.now() - started
        const error =
          exit._tag === "Success"
            ? undefined
            : Cause.hasInterruptsOnly(exit.cause)
              ? "interrupted"
              : errorText(Cause.squash(exit.cause))
        return { healthy: exit._tag === "Success", latencyMillis, error }
      })

    const noteHealth = (
      pe: ProjectEngine<any, any>,
      result: { healthy: boolean; latencyMillis: number; error: string | undefined }
    ) => {
      const ts = pe.ts
      const t = now()
      if (ts.breaker.state === CLOSED) ts.breaker.record(t, !result.healthy, false)
      if (ts.healthy !== result.healthy) {
        ts.healthy = result.healthy
        emit({
          _tag: "HealthChanged",
          at: t,
          engine: pe.es.engine,
          target: ts.label,
          projectId: pe.rt.id,
          healthy: result.healthy,
          latencyMillis: result.latencyMillis,
          error: result.error
        })
      }
    }

    const checkHealth = (id: string, engine: Engine) =>
      Effect.gen(function* () {
        const es = engineStates[engineIndex[engine]]
        const pid = yield* ProjectId.decode(id)
        if (es === undefined) return yield* Effect.fail(new EngineNotConfigured({ projectId: pid, engine }))
        return yield* Effect.acquireUseRelease(
          acquireRuntime(pid),
          (rt) =>
            Effect.gen(function* () {
              const bound = yield* Effect.exit(ensureEngine(rt, es))
              if (bound._tag === "Failure") {
                const error = Cause.squash(bound.cause)
                if (error instanceof EngineNotConfigured) return yield* Effect.fail(error)
                return { projectId: pid, engine, healthy: false, latencyMillis: 0, error: errorText(error) }
              }
              const pe = bound.value
              const result = yield* ping(pe)
              noteHealth(pe, result)
              return { projectId: pid, engine, ...result }
            }),
          releaseRuntime
        )
      }) as Effect.Effect<HealthResult, ProjectNotFound | InvalidProjectId | EngineNotConfigured>

    const healthLoop = Effect.gen(function* () {
      for (;;) {
        yield* Effect.sleep(Duration.millis(healthInterval * (0.8 + Math.random() * 0.4)))
        for (const es of engineStates) {
          if (es === undefined) continue
          for (const ts of [...es.targets.values()]) {
            const pe = ts.any()
            if (pe === undefined) continue
            noteHealth(pe, yield* ping(pe))
          }
        }
      }
    })
    if (healthInterval > 0) yield* Effect.forkIn(healthLoop, layerScope)
    yield* Effect.forkIn(
      Effect.forever(Effect.andThen(Effect.sleep(sweepInterval), sweep(undefined, "idle"))),
      layerScope
    )

    // ---- shutdown ------------------------------------------------------------------------------------------
    yield* Scope.addFinalizer(
      layerScope,
      Effect.gen(function* () {
        shuttingDown = true
        if (inFlight > 0) {
          drained = Deferred.makeUnsafe<void>()
          yield* Effect.timeoutOption(Deferred.await(drained), shutdownTimeout)
        }
        // Work still running or waiting after the grace period is abandoned before its binding closes (its
        // deadline would never fire once the watcher stops): the caller hears ShuttingDown, or UnknownOutcome for
        // a write that may have been applied.
        for (const entry of deadlines.drain()) if (entry instanceof Call) entry.abort()
        for (const rt of [...projects.values(), ...draining]) yield* evict(rt, "shutdown")
        deadlines.stop()
      })
    )

    const connections = Effect.sync(() => {
      const out: Array<ConnectionMetadata> = []
      for (const rt of projects.values()) {
        for (const pe of rt.engines) {
          if (pe === undefined) continue
          out.push({
            projectId: rt.id,
            databaseType: pe.es.engine,
            tier: rt.tier.name,
            target: pe.target.label,
            queryCount: pe.queryCount,
            errorCount: pe.errorCount,
            lastUsed: new Date(pe.lastUsed),
            createdAt: new Date(pe.createdAt),
            breaker: stateName(pe.breaker.state),
            targetBreaker: stateName(pe.ts.breaker.state),
            active: pe.bulkhead.active,
            queued: pe.bulkhead.queue.length,
            pool: pe.es.adapter.stats?.(pe.binding)
          })
        }
      }
      return out
    })

    return Tenancy.of({
      register,
      withProject,
      acquireProject,
      connections,
      checkHealth,
      closeIdleConnections: (opts) =>
        sweep(
          opts?.idleFor === undefined ? undefined : Duration.toMillis(Duration.fromInputUnsafe(opts.idleFor)),
          "closeIdleConnections"
        ),
      events: Stream.fromPubSub(pubsub),
      recentEvents: Effect.sync(() => recent.slice()),
      stats: Effect.sync(() => ({
        liveProjects: projects.size,
        liveTargets: engineStates.reduce((n, es) => n + (es?.targets.size ?? 0), 0),
        inFlight,
        pendingDeadlines: deadlines.size,
        timerArmed: deadlines.armed,
        labeledProjects
      })),
      breakerState: (id, engine) =>
        Effect.sync(() => {
          const pe = projects.get(id)?.engines[engineIndex[engine]]
          return pe === undefined ? "closed" : stateName(pe.breaker.state)
        })
    })
  })

const gaugeHooks = (get: () => number): Metric.Metric.Hooks<number, any> => ({
  get: () => ({ value: get() }),
  update: () => {},
  modify: () => {}
})

const errorText = (e: unknown): string => (e instanceof Error ? e.message : typeof e === "string" ? e : "error")

/**
 * The tenancy service as a layer. Needs `Tiers` and a `ProjectRegistry`.
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = (options?: Options | undefined): Layer.Layer<Tenancy, never, Tiers | ProjectRegistry> =>
  Layer.effect(Tenancy, make(options))

/**
 * Runs an effect as a project (see `Tenancy.withProject`).
 *
 * @category combinators
 * @since 0.1.0
 */
export const withProject =
  (id: string) =>
  <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E | ProjectNotFound | InvalidProjectId, R | Tenancy> =>
    Effect.flatMap(Tenancy, (t) => t.withProject(id)(self))

/**
 * A layer that makes `id` the current project for everything it is provided to (kept alive while the layer is).
 *
 * @category layers
 * @since 0.1.0
 */
export const layerProject = (id: string): Layer.Layer<never, ProjectNotFound | InvalidProjectId, Tenancy> =>
  Layer.effect(
    CurrentProject,
    Effect.flatMap(Tenancy, (t) => t.acquireProject(id))
  ) as Layer.Layer<never, ProjectNotFound | InvalidProjectId, Tenancy>

/**
 * Everything core needs in one layer: the tier table (defaults plus overrides), an in-memory registry and the
 * tenancy service. Provides `Tenancy`, `Tiers`, `ProjectRegistry` and `MemoryRegistry`.
 *
 * @category layers
 * @since 0.1.0
 */
export const layerMemory = (
  options?: (Options & { readonly tiers?: Parameters<typeof TierModule.layer>[0] }) | undefined
): Layer.Layer<Tenancy | Tiers | ProjectRegistry | MemoryRegistry, InvalidConfig> =>
  layer(options).pipe(
    Layer.provideMerge(Layer.mergeAll(TierModule.layer(options?.tiers), RegistryModule.layerMemory()))
  )
