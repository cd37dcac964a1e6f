/**
 * The tenancy service: per-project runtimes created on first use and freed when idle, the guard every engine
 * operation goes through (protections → breakers → admission → attempt timeout and retries → metrics), health
 * checks, events and the observability API of the spec's connection manager.
 *
 * Engine packages register an `EngineAdapter` (see `Engine.ts`) and get an `EngineHandle` whose `run` /
 * `runEffect` guard one operation for the current project. This module is the service, its options and its
 * layers; the machinery is in `internal/` — the state records (`state.ts`), one call (`call.ts`), the project
 * lifecycle (`runtimes.ts`), breaker transitions and probes (`transitions.ts`), metric series
 * (`metricHandles.ts`), health (`health.ts`), the engine handle (`guard.ts`) and the shared deadline timer
 * (`deadlines.ts`). docs/architecture.md draws the request path through them.
 *
 * Costs, by design:
 * - a registered but idle project costs its registry entry only: no runtime, no timer, no metric series;
 * - an active project costs one small runtime object, one breaker and one bulkhead per engine it uses;
 * - one sweeper fiber frees idle runtimes for all projects, one health fiber pings all live targets;
 * - the guard's fast path allocates one record per call and starts no timer.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as BreakerPolicy from "./BreakerPolicy.ts"
import { CurrentProject, type ProjectHandle } from "./CurrentProject.ts"
import * as Durations from "./Durations.ts"
import type { EngineAdapter, EngineHandle, PoolStats } from "./Engine.ts"
import { type EngineNotConfigured, InvalidConfig, type InvalidProjectId, type ProjectNotFound } from "./Errors.ts"
import type { TenancyEvent } from "./Events.ts"
import type * as Metrics from "./Metrics.ts"
import { type MemoryRegistry, ProjectRegistry } from "./Registry.ts"
import * as RegistryModule from "./Registry.ts"
import { Tiers } from "./Tier.ts"
import * as TierModule from "./Tier.ts"
import { type Engine, engineIndex, engines, type TierName } from "./Vocabulary.ts"
import { stateName } from "./internal/breaker.ts"
import { registerEngine } from "./internal/guard.ts"
import { guard, isRecord, readFields } from "./internal/input.ts"
import * as Health from "./internal/health.ts"
import * as Runtimes from "./internal/runtimes.ts"
import { makeState, type Settings, states, type TenancyState } from "./internal/state.ts"

// ---------------------------------------------------------------------------------------------------------------
// Models
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
    ) => Effect.Effect<HealthResult, ProjectNotFound | InvalidProjectId | EngineNotConfigured | InvalidConfig>
    /**
     * Frees the runtimes (and their connections) of projects with no work in progress that have been idle at
     * least `idleFor` (default: their tier's idle timeout; `0` frees every unused one). Returns how many
     * (project, engine) connections it closed.
     */
    readonly closeIdleConnections: (options?: {
      readonly idleFor?: Duration.Input | undefined
    }) => Effect.Effect<number, InvalidConfig>
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

const optionFields = [
  "breakers",
  "metrics",
  "spans",
  "retry",
  "healthCheckInterval",
  "healthCheckTimeout",
  "sweepInterval",
  "shutdownTimeout",
  "recentEvents"
] as const satisfies ReadonlyArray<keyof Options>

const invalid = (field: string, reason: string) => Effect.fail(new InvalidConfig({ field, reason }))

const isPositiveInteger = (u: unknown): u is number => Number.isSafeInteger(u) && (u as number) > 0

// The options, read once into a plain copy and checked (a wrong type, a getter or proxy that throws: InvalidConfig
// naming the option), with the settings made from them.
const settingsOf = (
  input: unknown
): Effect.Effect<{ readonly settings: Settings; readonly options: Options }, InvalidConfig> =>
  Effect.gen(function* () {
    const read = readFields("tenancy", input, optionFields, { optional: true })
    if (read instanceof InvalidConfig) return yield* read
    const options = read as Options
    const metrics = readFields("metrics", options.metrics, ["projectLabel", "maxProjectSeries"], { optional: true })
    if (metrics instanceof InvalidConfig) return yield* metrics
    if (metrics.projectLabel !== undefined && typeof metrics.projectLabel !== "boolean") {
      return yield* invalid("metrics.projectLabel", "must be a boolean")
    }
    if (metrics.maxProjectSeries !== undefined && !isPositiveInteger(metrics.maxProjectSeries)) {
      return yield* invalid("metrics.maxProjectSeries", "must be a positive integer")
    }
    if (options.spans !== undefined && !["auto", "always", "never"].includes(options.spans as string)) {
      return yield* invalid("spans", 'must be "auto", "always" or "never"')
    }
    if (options.retry !== undefined && guard("retry", () => Schedule.isSchedule(options.retry)) !== true) {
      return yield* invalid("retry", "must be a Schedule")
    }
    if (options.recentEvents !== undefined && !isPositiveInteger(options.recentEvents)) {
      return yield* invalid("recentEvents", "must be a positive integer")
    }
    const breakers = readFields("breakers", options.breakers, engines, { optional: true })
    if (breakers instanceof InvalidConfig) return yield* breakers
    const settings: Settings = {
      projectLabel: metrics.projectLabel === true,
      maxProjectSeries: (metrics.maxProjectSeries as number | undefined) ?? 1000,
      spans: options.spans ?? "auto",
      retry:
        options.retry ??
        (Schedule.exponential("50 millis").pipe(Schedule.jittered, Schedule.upTo({ times: 2 })) as Schedule.Schedule<
          unknown,
          unknown
        >),
      healthIntervalMillis: yield* Durations.millis("healthCheckInterval", options.healthCheckInterval, "30 seconds", {
        allowZero: true
      }),
      healthTimeoutMillis: yield* Durations.millis("healthCheckTimeout", options.healthCheckTimeout, "2 seconds"),
      sweepIntervalMillis: yield* Durations.millis("sweepInterval", options.sweepInterval, "30 seconds"),
      shutdownTimeoutMillis: yield* Durations.millis("shutdownTimeout", options.shutdownTimeout, "10 seconds", {
        allowZero: true
      })
    }
    return { settings, options: { ...options, breakers: breakers as Options["breakers"] } }
  })

// An adapter, read once and checked: an object with a known engine and the functions the guard calls.
const readAdapter = <B, E>(adapter: unknown): EngineAdapter<B, E> | InvalidConfig => {
  const read = readFields("adapter", adapter, [
    "engine",
    "policy",
    "bind",
    "classify",
    "ping",
    "targetCapacity",
    "stats"
  ])
  if (read instanceof InvalidConfig) return read
  if (typeof read.engine !== "string" || !(engines as ReadonlyArray<string>).includes(read.engine)) {
    return new InvalidConfig({ field: "adapter.engine", reason: "must be postgres, redis or mongodb" })
  }
  for (const name of ["bind", "classify", "ping", "targetCapacity"] as const) {
    if (typeof read[name] !== "function")
      return new InvalidConfig({ field: `adapter.${name}`, reason: "must be a function" })
  }
  if (read.stats !== undefined && typeof read.stats !== "function") {
    return new InvalidConfig({ field: "adapter.stats", reason: "must be a function" })
  }
  return read as unknown as EngineAdapter<B, E>
}

// The `idleFor` of `closeIdleConnections`, read inside the Effect.
const idleForOf = (opts: unknown): Effect.Effect<number | undefined, InvalidConfig> =>
  Effect.suspend(() => {
    const read = readFields("options", opts, ["idleFor"], { optional: true })
    if (read instanceof InvalidConfig) return Effect.fail(read)
    return read.idleFor === undefined
      ? Effect.succeed(undefined)
      : Durations.millis("idleFor", read.idleFor as Duration.Input, 0, { allowZero: true })
  })

/**
 * Builds the tenancy service (scoped: closing the scope shuts it down, waiting for in-flight work up to
 * `shutdownTimeout`, then closes every binding; background fibers belong to the scope).
 *
 * @category constructors
 * @since 0.1.0
 */
export const make = (
  options?: Options | undefined
): Effect.Effect<Tenancy["Service"], InvalidConfig, Tiers | ProjectRegistry | Scope.Scope> =>
  Effect.gen(function* () {
    const { settings, options: read } = yield* settingsOf(options)
    const g = yield* makeState(settings, read.recentEvents ?? 100)
    yield* Runtimes.followRegistry(g)
    yield* Runtimes.followTiers(g)
    if (settings.healthIntervalMillis > 0) g.fork(Health.healthLoop(g))
    g.fork(Runtimes.sweeper(g))
    yield* Effect.addFinalizer(() => Runtimes.shutdown(g))
    const service = Tenancy.of({
      register: (input) =>
        Effect.suspend(() => {
          const adapter = readAdapter<any, any>(input)
          if (adapter instanceof InvalidConfig) return Effect.fail(adapter)
          return registerEngine(g, adapter, read.breakers?.[adapter.engine])
        }),
      withProject: (id) => Runtimes.withProject(g, id),
      acquireProject: (id) => Runtimes.acquireProject(g, id),
      connections: Effect.sync(() => connections(g)),
      checkHealth: (id, engine) => Health.checkHealth(g, id, engine),
      closeIdleConnections: (opts) =>
        Effect.flatMap(idleForOf(opts), (idleFor) => Runtimes.sweep(g, idleFor, "closeIdleConnections")),
      events: Stream.fromPubSub(g.events.pubsub),
      recentEvents: Effect.sync(() => g.events.recent()),
      stats: Effect.sync(() => ({
        liveProjects: g.projects.size,
        liveTargets: g.engines.reduce((n, es) => n + (es?.targets.size ?? 0), 0),
        inFlight: g.inFlight,
        pendingDeadlines: g.deadlines.size,
        timerArmed: g.deadlines.armed,
        labeledProjects: g.labeledProjects
      })),
      breakerState: (id, engine) =>
        Effect.sync(() => {
          const pe = g.projects.get(id)?.engines[engineIndex[engine]]
          return pe === undefined ? "closed" : stateName(pe.breaker.state)
        })
    })
    states.set(service, g)
    return service
  })

const connections = (g: TenancyState): Array<ConnectionMetadata> => {
  const out: Array<ConnectionMetadata> = []
  for (const rt of g.projects.values()) {
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
}

/**
 * The tenancy service as a layer. Needs `Tiers` and a `ProjectRegistry`.
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = (options?: Options | undefined): Layer.Layer<Tenancy, InvalidConfig, Tiers | ProjectRegistry> =>
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
): Layer.Layer<Tenancy | Tiers | ProjectRegistry | MemoryRegistry, InvalidConfig> => {
  // Read once here (a getter or proxy that throws is the layer's InvalidConfig); `layer` checks the rest.
  const tiers = guard("tenancy.tiers", () => (isRecord(options) ? options.tiers : undefined))
  const tierLayer = tiers instanceof InvalidConfig ? Layer.effect(Tiers, Effect.fail(tiers)) : TierModule.layer(tiers)
  return layer(options).pipe(Layer.provideMerge(Layer.mergeAll(tierLayer, RegistryModule.layerMemory())))
}
