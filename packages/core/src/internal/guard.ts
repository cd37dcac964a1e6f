/**
 * The guard as engines see it: `makeHandle` builds an engine's `EngineHandle`, whose `run` / `runEffect` find the
 * current project's binding (`resolve`), let the installed protections check the call (`checked`), open a span when
 * a tracer wants one, and start the call's state machine (`call.ts`).
 *
 * The fast path, for a project whose binding exists: one fiber-reference read, one clock read, one `Call` object,
 * no timer, no closure beyond the runner. See docs/architecture.md ("The request path").
 *
 * @internal
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"
import * as Tracer from "effect/Tracer"
import type { ProjectHandle } from "../CurrentProject.ts"
import * as BreakerPolicy from "../BreakerPolicy.ts"
import type { AttemptSignal, EngineAdapter, EngineHandle, Operation } from "../Engine.ts"
import type { GuardError, InvalidConfig, ProtectionError } from "../Errors.ts"
import { type ProtectionDetail, Protections } from "../Protections.ts"
import { engineIndex } from "../Vocabulary.ts"
import { attempt } from "./attempt.ts"
import type { Runner } from "./call.ts"
import { acquireCell, registerEngineGauges } from "./metricHandles.ts"
import { lease } from "./lease.ts"
import { resolve } from "./runtimes.ts"
import { type EngineState, ProjectEngine, ProjectRuntime, type TenancyState, aggregatesPerTier } from "./state.ts"

const spansOn = (g: TenancyState, fiber: Fiber.Fiber<any, any>): boolean =>
  g.settings.spans === "always" || (g.settings.spans === "auto" && fiber.getRef(Tracer.Tracer) !== Tracer.nativeTracer)

// One guarded call once its (project, engine) is known.
const guarded = <A, B, E>(
  g: TenancyState,
  fiber: Fiber.Fiber<any, any>,
  op: Operation<B>,
  extraMillis: number,
  runner: Runner<A, B, E>,
  pe: ProjectEngine<B, E>
): Effect.Effect<A, E | GuardError> => {
  const t = g.now()
  const span = pe.rt.tier.limits.timeoutMillis
  const call = attempt<A, B, E>(g, pe, op, t, t + span, span, extraMillis, runner, op.idempotent)
  if (!spansOn(g, fiber)) return call
  return Effect.withSpan(call, `tenantpool.${pe.es.engine}.${op.name}`, {
    attributes: {
      "db.system": pe.es.engine,
      "db.operation": op.name,
      "tenantpool.project_id": pe.rt.id,
      "tenantpool.tier": pe.rt.tier.name
    }
  })
}

// Protections: once per call (not per attempt), before admission, only for calls that pass a detail.
const checked = <A, B, E>(
  g: TenancyState,
  fiber: Fiber.Fiber<any, any>,
  op: Operation<B>,
  extraMillis: number,
  detail: ProtectionDetail | undefined,
  runner: Runner<A, B, E>,
  pe: ProjectEngine<B, E>
): Effect.Effect<A, E | GuardError | ProtectionError> => {
  if (detail !== undefined) {
    const pending = fiber.getRef(Protections)?.check(pe.rt, pe.es.engine, op.name, detail)
    if (pending !== undefined) return Effect.flatMap(pending, () => guarded(g, fiber, op, extraMillis, runner, pe))
  }
  return guarded(g, fiber, op, extraMillis, runner, pe)
}

const guard = <A, B, E, R>(
  g: TenancyState,
  es: EngineState<B, E>,
  op: Operation<B>,
  extraMillis: number,
  detail: ProtectionDetail | undefined,
  runner: Runner<A, B, E>
): Effect.Effect<A, E | GuardError | ProtectionError, R> =>
  Effect.withFiber((fiber) => {
    const resolved = resolve(g, fiber, es)
    // `instanceof` rather than `Effect.isEffect`: a property lookup on the hot path, the other a symbol probe.
    return (
      resolved instanceof ProjectEngine
        ? checked(g, fiber, op, extraMillis, detail, runner, resolved)
        : Effect.flatMap(resolved, (pe) => checked(g, fiber, op, extraMillis, detail, runner, pe))
    ) as Effect.Effect<A, E | GuardError | ProtectionError, R>
  })

/** The guard bound to a registered engine. @internal */
export const makeHandle = <B, E>(g: TenancyState, es: EngineState<B, E>): EngineHandle<B, E> => ({
  engine: es.engine,
  policy: es.policy,
  run: (<A>(
    op: Operation<B>,
    f: (binding: B, signal: AttemptSignal) => PromiseLike<A>,
    mapError: (cause: unknown) => E,
    extraMillis?: number,
    detail?: ProtectionDetail
  ) =>
    guard<A, B, E, never>(g, es, op, extraMillis ?? 0, detail, (pe, call) => {
      let promise: PromiseLike<A>
      try {
        promise = f(pe.binding, call)
      } catch (e) {
        return call.threw(mapError(e))
      }
      promise.then(
        (a) => call.complete(Exit.succeed(a)),
        (e) => call.complete(Exit.fail(mapError(e)))
      )
    })) as EngineHandle<B, E>["run"],
  runEffect: (<A, R>(
    op: Operation<B>,
    f: (binding: B, signal: AttemptSignal) => Effect.Effect<A, E, R>,
    extraMillis?: number,
    detail?: ProtectionDetail
  ) =>
    Effect.withFiber((parent) =>
      guard<A, B, E, R>(g, es, op, extraMillis ?? 0, detail, (pe, call) => {
        const child = Effect.runForkWith(parent.context as Context.Context<R>)(f(pe.binding, call))
        call.cancelOnAbandon = () => child.interruptUnsafe()
        child.addObserver((exit) => call.complete(exit))
      })
    )) as EngineHandle<B, E>["runEffect"],
  lease: ((op: Operation<B>, detail?: ProtectionDetail) => lease(g, es, op, detail)) as EngineHandle<B, E>["lease"],
  binding: Effect.withFiber((fiber) => {
    const resolved = resolve(g, fiber, es)
    const out = (pe: ProjectEngine<B, E>) => ({ binding: pe.binding, project: pe.rt as ProjectHandle })
    return Effect.isEffect(resolved) ? Effect.map(resolved, out) : Effect.succeed(out(resolved))
  }),
  recordAcquire: (project, seconds) => {
    if (!(project instanceof ProjectRuntime) || project.owner !== g) return
    const pe = project.engines[engineIndex[es.engine]]
    if (pe !== undefined) acquireCell(g, pe).observe(seconds)
  }
})

/**
 * Registers an engine (its breaker policy: the spec's defaults, the adapter's overrides, then the user's) and
 * returns its guard.
 *
 * @internal
 */
export const registerEngine = <B, E>(
  g: TenancyState,
  adapter: EngineAdapter<B, E>,
  overrides?: BreakerPolicy.BreakerPolicyOverride | undefined
): Effect.Effect<EngineHandle<B, E>, InvalidConfig> =>
  Effect.map(BreakerPolicy.make(adapter.engine, { ...adapter.policy, ...overrides }), (policy) => {
    const es: EngineState<B, E> = {
      engine: adapter.engine,
      adapter,
      policy,
      targets: new Map(),
      aggregates: aggregatesPerTier(),
      targetBreakers: aggregatesPerTier(),
      shared: {},
      overflow: {},
      histograms: {}
    }
    g.engines[engineIndex[adapter.engine]] = es
    registerEngineGauges(g, es)
    return makeHandle(g, es)
  })
