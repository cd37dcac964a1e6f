/**
 * Project runtimes and their lifecycle: created on a project's first call (one registry lookup shared by
 * concurrent first calls), an engine binding created on the first call to that engine, kept while in use, freed
 * when idle by one sweeper for all projects, retired when the registry changes a project's target, moved when it
 * changes its tier, and closed on shutdown after in-flight work drains (or is abandoned after the grace period).
 *
 * A registered but idle project costs its registry entry only: no runtime, no timer, no metric series. One
 * sweeper fiber serves every project (`RcMap`/`LayerMap` would keep a sleeping fiber per idle key). See
 * docs/architecture.md ("Lifecycle").
 *
 * @internal
 */
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"
import * as Scope from "effect/Scope"
import { CurrentProject, type ProjectHandle } from "../CurrentProject.ts"
import {
  EngineNotConfigured,
  type GuardError,
  type InvalidProjectId,
  NoCurrentProject,
  type ProjectNotFound
} from "../Errors.ts"
import * as ProjectId from "../ProjectId.ts"
import * as Target from "../Target.ts"
import { engineIndex, engines, type TierName } from "../Vocabulary.ts"
import { FairBudget } from "./admission.ts"
import { type Breaker, HALF_OPEN, OPEN } from "./breaker.ts"
import { Call } from "./call.ts"
import { assignLabel, hasOwnSeries, registerProjectGauges, releaseLabel, removeProjectSeries } from "./metricHandles.ts"
import {
  type CloseReason,
  type EngineState,
  ProjectEngine,
  ProjectRuntime,
  TargetState,
  type TenancyState
} from "./state.ts"
import { forgetBreaker, moveAggregate, projectBreaker, targetBreaker } from "./transitions.ts"

// ---- runtimes ----------------------------------------------------------------------------------------------------

const createRuntime = (g: TenancyState, id: ProjectId.ProjectId): Effect.Effect<ProjectRuntime, ProjectNotFound> => {
  const pending = g.pendingProjects.get(id)
  if (pending !== undefined) return pending
  const load = g.registry.lookup(id).pipe(
    Effect.map((config) => {
      const live = g.projects.get(id)
      if (live !== undefined) return live
      const rt = new ProjectRuntime(g, id, config, g.tiers.get(config.tier), g.now(), Scope.forkUnsafe(g.runtimes))
      assignLabel(g, rt)
      rt.fault = g.faults.get(id)
      g.projects.set(id, rt)
      return rt
    }),
    Effect.ensuring(Effect.sync(() => g.pendingProjects.delete(id)))
  )
  const shared = Effect.runSync(Effect.cached(load))
  g.pendingProjects.set(id, shared)
  return shared
}

/** The project's runtime, created if needed, held (`refs`) until `releaseRuntime`. @internal */
export const acquireRuntime = (
  g: TenancyState,
  id: ProjectId.ProjectId
): Effect.Effect<ProjectRuntime, ProjectNotFound> => {
  const rt = g.projects.get(id)
  if (rt !== undefined) {
    rt.refs++
    return Effect.succeed(rt)
  }
  return Effect.map(createRuntime(g, id), (rt) => {
    rt.refs++
    return rt
  })
}

/** @internal */
export const releaseRuntime = (g: TenancyState, rt: ProjectRuntime): Effect.Effect<void> =>
  Effect.sync(() => {
    rt.refs--
    rt.lastUsed = g.now()
  })

/** Runs an effect as a project (validated, looked up, held while it runs). @internal */
export const withProject =
  (g: TenancyState, id: string) =>
  <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E | ProjectNotFound | InvalidProjectId, R> =>
    Effect.flatMap(ProjectId.decode(id), (pid) =>
      Effect.acquireUseRelease(
        acquireRuntime(g, pid),
        (rt) => self.pipe(Effect.provideService(CurrentProject, rt), Effect.annotateLogs("project_id", pid)),
        (rt) => releaseRuntime(g, rt)
      )
    )

/** The project's runtime for the current scope. @internal */
export const acquireProject = (
  g: TenancyState,
  id: string
): Effect.Effect<ProjectHandle, ProjectNotFound | InvalidProjectId, Scope.Scope> =>
  Effect.flatMap(ProjectId.decode(id), (pid) =>
    Effect.acquireRelease(acquireRuntime(g, pid), (rt) => releaseRuntime(g, rt))
  )

// ---- engine bindings ---------------------------------------------------------------------------------------------

/** The runtime's binding to an engine, created once (concurrent first calls share the creation). @internal */
export const ensureEngine = <B, E>(
  g: TenancyState,
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
      ts = new TargetState(
        target.key,
        target.label,
        es.engine,
        new FairBudget(Math.max(1, es.adapter.targetCapacity(target)))
      )
      ts.id = Target.id(target)
      ts.ownCapacity = ts.budget.capacity
      ts.breaker = targetBreaker(g, es, ts)
      es.targets.set(target.key, ts)
    }
    const pe = new ProjectEngine<B, E>(rt, es, ts, target, exit.value, scope, g.now())
    if (!hasOwnSeries(rt)) pe.agg = es.aggregates[rt.tier.name]
    pe.breaker = projectBreaker(g, pe)
    ts.users.add(pe)
    rt.engines[i] = pe
    registerProjectGauges(g, pe)
    g.events.emit({ _tag: "PoolCreated", at: g.now(), engine: es.engine, projectId: rt.id, target: target.label })
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

type Resolved<B, E> = ProjectEngine<B, E> | Effect.Effect<ProjectEngine<B, E>, E | GuardError>

/**
 * The current project's (project, engine), or the Effect that makes it. A handle this service made and that is
 * still live is used as it is; anything else the fiber carries (a runtime evicted while a forked fiber outlived
 * its project's scope, a runtime of another tenancy service, a `ProjectHandle` built by hand) is looked up by its
 * id, so a call never runs on a closed or foreign runtime.
 *
 * @internal
 */
export const resolve = <B, E>(g: TenancyState, fiber: Fiber.Fiber<any, any>, es: EngineState<B, E>): Resolved<B, E> => {
  const handle = fiber.getRef(CurrentProject)
  if (handle === undefined) return Effect.fail(new NoCurrentProject({ engine: es.engine }))
  if (handle instanceof ProjectRuntime && handle.owner === g && !handle.closed) {
    const pe = handle.engines[engineIndex[es.engine]] as ProjectEngine<B, E> | undefined
    return pe !== undefined ? pe : ensureEngine(g, handle, es)
  }
  return Effect.flatMap(
    Effect.mapError(ProjectId.decode(handle.id), () => new NoCurrentProject({ engine: es.engine })),
    (id) =>
      Effect.flatMap(acquireRuntime(g, id), (rt) => {
        // Held only while the call runs (its bulkhead slot keeps the runtime from the sweeper).
        rt.refs--
        return ensureEngine(g, rt, es)
      })
  )
}

const closeEngine = (g: TenancyState, pe: ProjectEngine<any, any>, reason: CloseReason): Effect.Effect<void> => {
  if (pe.closed) return Effect.void
  pe.closed = true
  const { es, ts } = pe
  ts.users.delete(pe)
  forgetBreaker(pe.agg, pe.breaker)
  removeProjectSeries(pe)
  if (ts.users.size === 0) {
    forgetBreaker(es.targetBreakers[ts.breakerTier], ts.breaker)
    es.targets.delete(ts.key)
  }
  g.events.emit({
    _tag: "PoolClosed",
    at: g.now(),
    engine: es.engine,
    projectId: pe.rt.id,
    target: pe.target.label,
    reason
  })
  return Scope.close(pe.scope, Exit.void)
}

/** Frees a runtime and every binding it holds; returns how many bindings it closed. @internal */
export const evict = (g: TenancyState, rt: ProjectRuntime, reason: CloseReason): Effect.Effect<number> =>
  Effect.gen(function* () {
    if (rt.closed) return 0
    rt.closed = true
    if (g.projects.get(rt.id) === rt) g.projects.delete(rt.id)
    let closed = 0
    for (const pe of [...rt.engines, ...rt.retired]) {
      if (pe === undefined) continue
      yield* closeEngine(g, pe, reason)
      closed++
    }
    releaseLabel(g, rt)
    yield* Scope.close(rt.scope, Exit.void)
    g.events.emit({ _tag: "ProjectEvicted", at: g.now(), projectId: rt.id, reason })
    return closed
  })

// ---- idleness ----------------------------------------------------------------------------------------------------

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

/**
 * Frees runtimes with no work in progress idle at least `idleFor` (default: their tier's idle timeout), drained
 * runtimes of removed projects and retired bindings. Returns how many bindings it closed.
 *
 * @internal
 */
export const sweep = (
  g: TenancyState,
  idleFor: number | undefined,
  reason: "idle" | "closeIdleConnections"
): Effect.Effect<number> =>
  Effect.gen(function* () {
    const t = g.now()
    let closed = 0
    for (const rt of [...g.draining]) {
      if (rt.busy()) continue
      g.draining.delete(rt)
      closed += yield* evict(g, rt, "config-changed")
    }
    for (const rt of [...g.projects.values()]) {
      for (let k = rt.retired.length - 1; k >= 0; k--) {
        const pe = rt.retired[k]!
        if (pe.busy()) continue
        rt.retired.splice(k, 1)
        yield* closeEngine(g, pe, "config-changed")
        closed++
      }
      if (rt.busy() || holdsRejectingBreaker(rt, t)) continue
      if (t - rt.lastUsed >= (idleFor ?? rt.tier.limits.idleTimeoutMillis)) closed += yield* evict(g, rt, reason)
    }
    return closed
  })

/** The sweeper: one fiber for every project. @internal */
export const sweeper = (g: TenancyState): Effect.Effect<never> =>
  Effect.forever(
    Effect.andThen(Effect.sleep(Duration.millis(g.settings.sweepIntervalMillis)), sweep(g, undefined, "idle"))
  )

// ---- registry and tier changes -----------------------------------------------------------------------------------

/**
 * Follows the registry for the life of the scope: a removed project's runtime goes once its work drains, a new
 * tier applies at once, a changed target retires the old binding.
 *
 * @internal
 */
export const followRegistry = (g: TenancyState): Effect.Effect<void, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => g.registry.subscribe((id) => onRegistryChange(g, id))),
    (unsubscribe) => Effect.sync(unsubscribe)
  )

const onRegistryChange = (g: TenancyState, id: string): void => {
  const rt = g.projects.get(id)
  if (rt === undefined) return
  g.fork(
    Effect.matchEffect(g.registry.lookup(rt.id), {
      onFailure: () =>
        Effect.suspend(() => {
          // Removed: new calls no longer find it; the runtime goes as soon as its work drains.
          if (g.projects.get(id) === rt) g.projects.delete(id)
          if (!rt.busy()) return Effect.asVoid(evict(g, rt, "config-changed"))
          g.draining.add(rt)
          return Effect.void
        }),
      onSuccess: (config) =>
        Effect.sync(() => {
          rt.config = config
          if (rt.tier.name !== config.tier) changeTier(g, rt, config.tier)
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
}

const changeTier = (g: TenancyState, rt: ProjectRuntime, to: TierName) => {
  rt.tier = g.tiers.get(to)
  for (const pe of rt.engines) {
    if (pe === undefined) continue
    if (!hasOwnSeries(rt)) moveAggregate(pe, pe.es.aggregates[to])
    // Series carry the tier: the project's own are made again under the new one.
    removeProjectSeries(pe)
    registerProjectGauges(g, pe)
  }
  // A higher limit admits queued waiters now, as a raised tier limit does.
  const limit = rt.tier.limits.maxConcurrent
  for (const pe of rt.engines) if (pe !== undefined && pe.bulkhead.queue.length > 0) pe.bulkhead.drain(limit)
}

/**
 * Follows the tier table for the life of the scope: a raised `maxConcurrent` admits the tier's queued waiters at
 * once (a lowered one needs nothing: bulkheads read the live limit, so they admit new work only as running work
 * drains below it).
 *
 * @internal
 */
export const followTiers = (g: TenancyState): Effect.Effect<void, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() =>
      g.tiers.onChange((tier, previous) => {
        g.events.emit({ _tag: "TierChanged", at: g.now(), tier: tier.name })
        const limit = tier.limits.maxConcurrent
        if (limit <= previous.maxConcurrent) return
        for (const rt of g.projects.values()) {
          if (rt.tier !== tier) continue
          for (const pe of rt.engines) if (pe !== undefined && pe.bulkhead.queue.length > 0) pe.bulkhead.drain(limit)
        }
      })
    ),
    (unlisten) => Effect.sync(unlisten)
  )

// ---- shutdown ----------------------------------------------------------------------------------------------------

/**
 * Stops admitting work, waits for in-flight work up to the grace period, then abandons what is still running or
 * waiting (the caller hears `ShuttingDown`, or `UnknownOutcome` for a write that may have been applied) before
 * any binding closes, and frees every runtime.
 *
 * @internal
 */
export const shutdown = (g: TenancyState): Effect.Effect<void> =>
  Effect.gen(function* () {
    g.shuttingDown = true
    if (g.inFlight > 0) {
      g.drained = Deferred.makeUnsafe<void>()
      yield* Effect.timeoutOption(Deferred.await(g.drained), Duration.millis(g.settings.shutdownTimeoutMillis))
    }
    for (const entry of g.deadlines.drain()) if (entry instanceof Call) entry.abort()
    for (const rt of [...g.projects.values(), ...g.draining]) yield* evict(g, rt, "shutdown")
  })
