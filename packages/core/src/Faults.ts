/**
 * Faults on demand, for testing your own code against what tenantpool can answer: make a project's calls time out,
 * be refused as overloaded, meet an open circuit, end with an unknown outcome, or run late — through the real
 * guard, the real engines and your real handlers, with no database misbehaving. The verdicts are the guard's own
 * (`Timeout`, `Overloaded`, `CircuitOpen`, `UnknownOutcome`), with their metrics, events and breaker effects, so
 * what your code sees is what it would see in production.
 *
 * Provide `Faults.layer` next to the tenancy service in your tests, inject with `Faults.inject`, and drive time with
 * `TestClock` (the guard's deadlines and the breakers' clocks are Effect's `Clock`). Recipes are in the core README
 * ("Testing your code against faults"). A project with no fault pays one property read per call.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { InvalidConfig } from "./Errors.ts"
import type * as ProjectId from "./ProjectId.ts"
import * as ProjectIdModule from "./ProjectId.ts"
import { Tenancy } from "./Tenancy.ts"
import type { Engine } from "./Vocabulary.ts"
import type { FaultKind, FaultPlan } from "./internal/faults.ts"
import { states } from "./internal/state.ts"

/**
 * A fault: what happens to a matching call.
 *
 * - `timeout`: the driver is not called; the attempt ends with `Timeout` at its attempt timeout (a write: with
 *   `UnknownOutcome`), counted by the project's breaker as a real timeout would be.
 * - `latency(millis)`: the driver is called `millis` late (a real `Timeout` if that exceeds the attempt timeout).
 * - `overloaded(retryAfter)`: refused at once with `Overloaded` (`queue-full`).
 * - `circuitOpen`: the project's breaker is opened; the call, and others until the breaker closes again, meet
 *   `CircuitOpen` (its active probe closes it within seconds once the fault is cleared or used up).
 * - `unknownOutcome`: the call ends with `UnknownOutcome` without reaching the driver.
 *
 * @category models
 * @since 0.1.0
 */
export type Fault = FaultKind

/**
 * The fault `timeout`.
 *
 * @category constructors
 * @since 0.1.0
 */
export const timeout: Fault = { _tag: "Timeout" }

/**
 * The fault `latency`: the driver call starts `millis` late.
 *
 * @category constructors
 * @since 0.1.0
 */
export const latency = (millis: number): Fault => ({ _tag: "Latency", millis })

/**
 * The fault `overloaded`, with the `retryAfter` the refusal carries (default 1 second).
 *
 * @category constructors
 * @since 0.1.0
 */
export const overloaded = (retryAfterMillis = 1000): Fault => ({ _tag: "Overloaded", retryAfterMillis })

/**
 * The fault `circuitOpen`.
 *
 * @category constructors
 * @since 0.1.0
 */
export const circuitOpen: Fault = { _tag: "CircuitOpen" }

/**
 * The fault `unknownOutcome`.
 *
 * @category constructors
 * @since 0.1.0
 */
export const unknownOutcome: Fault = { _tag: "UnknownOutcome" }

/**
 * Which calls a fault applies to.
 *
 * @category models
 * @since 0.1.0
 */
export interface Options {
  /** Only this engine's calls (default: every engine). */
  readonly engine?: Engine | undefined
  /** Only these operations (`get`, `query`, `find`, …; default: every operation). */
  readonly operations?: ReadonlyArray<string> | undefined
  /** How many calls (default: every call until `clear`). */
  readonly times?: number | undefined
}

/**
 * Injects faults into the calls of the tenancy service it is provided with.
 *
 * @category services
 * @since 0.1.0
 */
export class Faults extends Context.Service<
  Faults,
  {
    /** Applies a fault to a project's matching calls from now on (replacing the project's previous fault). */
    readonly inject: (
      projectId: string,
      fault: Fault,
      options?: Options | undefined
    ) => Effect.Effect<void, InvalidConfig>
    /** Removes a project's fault, or every fault. */
    readonly clear: (projectId?: string | undefined) => Effect.Effect<void>
  }
>()("@tenantpool/core/Faults") {}

const invalid = (field: string, reason: string) => new InvalidConfig({ field, reason })

const planOf = (fault: Fault, options: Options | undefined): FaultPlan | InvalidConfig => {
  const times = options?.times ?? Infinity
  if (!(times === Infinity || (Number.isInteger(times) && times >= 1))) {
    return invalid("times", "must be a positive integer")
  }
  if (fault._tag === "Latency" && !(Number.isFinite(fault.millis) && fault.millis >= 0)) {
    return invalid("latency", "must be a finite, non-negative number of milliseconds")
  }
  if (fault._tag === "Overloaded" && !(Number.isFinite(fault.retryAfterMillis) && fault.retryAfterMillis >= 1)) {
    return invalid("retryAfter", "must be at least 1 millisecond")
  }
  return {
    kind: fault,
    engine: options?.engine,
    operations: options?.operations === undefined ? undefined : new Set(options.operations),
    remaining: times
  }
}

/**
 * The fault injector for the `Tenancy` service in context.
 *
 * @category constructors
 * @since 0.1.0
 */
export const make: Effect.Effect<Faults["Service"], never, Tenancy> = Effect.gen(function* () {
  const tenancy = yield* Tenancy
  const g = states.get(tenancy)
  if (g === undefined) return yield* Effect.die(new Error("Faults needs the Tenancy service of this package"))
  const set = (id: ProjectId.ProjectId, plan: FaultPlan | undefined) => {
    if (plan === undefined) g.faults.delete(id)
    else g.faults.set(id, plan)
    const rt = g.projects.get(id)
    if (rt !== undefined) rt.fault = plan
  }
  return Faults.of({
    inject: (projectId, fault, options) =>
      Effect.gen(function* () {
        const id = yield* Effect.mapError(ProjectIdModule.decode(projectId), (e) => invalid("projectId", e.reason))
        const plan = planOf(fault, options)
        if (plan instanceof InvalidConfig) return yield* plan
        set(id, plan)
      }),
    clear: (projectId) =>
      Effect.sync(() => {
        if (projectId !== undefined) return set(projectId as ProjectId.ProjectId, undefined)
        for (const id of [...g.faults.keys()]) set(id as ProjectId.ProjectId, undefined)
      })
  })
})

/**
 * The fault injector as a layer, over the `Tenancy` service it is provided with.
 *
 * @category layers
 * @since 0.1.0
 */
export const layer: Layer.Layer<Faults, never, Tenancy> = Layer.effect(Faults, make)

/**
 * Injects a fault (see `Faults.inject`).
 *
 * @category combinators
 * @since 0.1.0
 */
export const inject = (
  projectId: string,
  fault: Fault,
  options?: Options | undefined
): Effect.Effect<void, InvalidConfig, Faults> => Effect.flatMap(Faults, (f) => f.inject(projectId, fault, options))

/**
 * Removes a project's fault, or every fault (see `Faults.clear`).
 *
 * @category combinators
 * @since 0.1.0
 */
export const clear = (projectId?: string | undefined): Effect.Effect<void, never, Faults> =>
  Effect.flatMap(Faults, (f) => f.clear(projectId))
