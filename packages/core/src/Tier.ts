/**
 * Pricing tiers and their limits. The spec's table is the default; every value can be overridden at start-up
 * and changed at runtime. A change takes effect without a restart: limits that grow apply to the next call,
 * limits that shrink apply as in-flight work drains (nothing running is cut off).
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import { InvalidConfig } from "./Errors.ts"
import { guard, readFields } from "./internal/input.ts"
import { type TierName, tierNames } from "./Vocabulary.ts"

// The names live in the leaf module `Vocabulary.ts` (errors use them too); this module re-exports them.
export { TierName, tierNames, tierRank } from "./Vocabulary.ts"

/**
 * Scheduling priority of a tier when projects compete for a shared database.
 *
 * @category models
 * @since 0.1.0
 */
export const Priority = Schema.Literals(["low", "medium", "high", "critical"])

/**
 * @category models
 * @since 0.1.0
 */
export type Priority = typeof Priority.Type

/**
 * The share of a contended database a tier gets relative to `low` (weighted fair queueing).
 *
 * @category constants
 * @since 0.1.0
 */
export const priorityWeight: Readonly<Record<Priority, number>> = { low: 1, medium: 2, high: 4, critical: 8 }

const NonNegativeInt = Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))
const PositiveInt = Schema.Int.check(Schema.isGreaterThanOrEqualTo(1))
const PositiveMillis = Schema.Number.check(Schema.isGreaterThan(0), Schema.isLessThanOrEqualTo(86_400_000))

/**
 * A tier's limits. Durations are milliseconds.
 *
 * - `minPool` / `maxPool`: connections kept warm / allowed for a project that has its own database
 *   (projects on a shared server add their share to the server's pool instead).
 * - `maxConcurrent`: operations of one project on one engine running at once.
 * - `maxQueue`: operations allowed to wait for a slot beyond that (default: `maxConcurrent`).
 * - `timeoutMillis`: the deadline of a whole operation, waits and retries included.
 * - `idleTimeoutMillis`: how long a project may stay unused before its resources are freed (default 5 minutes).
 *
 * @category models
 * @since 0.1.0
 */
export const TierLimits = Schema.Struct({
  minPool: NonNegativeInt,
  maxPool: PositiveInt,
  maxConcurrent: PositiveInt,
  maxQueue: NonNegativeInt,
  timeoutMillis: PositiveMillis,
  priority: Priority,
  idleTimeoutMillis: PositiveMillis
}).check(
  Schema.makeFilter((l) => l.minPool <= l.maxPool || "minPool must not exceed maxPool", {
    title: "minPool <= maxPool"
  })
)

/**
 * @category models
 * @since 0.1.0
 */
export interface TierLimits extends Schema.Schema.Type<typeof TierLimits> {}

const fiveMinutes = 5 * 60_000

/**
 * The spec's tier table.
 *
 * | Tier | Min pool | Max pool | Max concurrent | Timeout | Priority |
 * | --- | --- | --- | --- | --- | --- |
 * | FREE | 2 | 5 | 20 | 10 s | low |
 * | STARTER | 5 | 10 | 50 | 30 s | medium |
 * | PRO | 10 | 50 | 200 | 60 s | high |
 * | ENTERPRISE | 20 | 100 | 500 | 120 s | critical |
 *
 * @category constants
 * @since 0.1.0
 */
export const defaults: Readonly<Record<TierName, TierLimits>> = {
  FREE: {
    minPool: 2,
    maxPool: 5,
    maxConcurrent: 20,
    maxQueue: 20,
    timeoutMillis: 10_000,
    priority: "low",
    idleTimeoutMillis: fiveMinutes
  },
  STARTER: {
    minPool: 5,
    maxPool: 10,
    maxConcurrent: 50,
    maxQueue: 50,
    timeoutMillis: 30_000,
    priority: "medium",
    idleTimeoutMillis: fiveMinutes
  },
  PRO: {
    minPool: 10,
    maxPool: 50,
    maxConcurrent: 200,
    maxQueue: 200,
    timeoutMillis: 60_000,
    priority: "high",
    idleTimeoutMillis: fiveMinutes
  },
  ENTERPRISE: {
    minPool: 20,
    maxPool: 100,
    maxConcurrent: 500,
    maxQueue: 500,
    timeoutMillis: 120_000,
    priority: "critical",
    idleTimeoutMillis: fiveMinutes
  }
}

/**
 * A partial override of a tier's limits; durations may be given as `Duration.Input` (`"30 seconds"`).
 *
 * @category models
 * @since 0.1.0
 */
export interface TierOverride {
  readonly minPool?: number | undefined
  readonly maxPool?: number | undefined
  readonly maxConcurrent?: number | undefined
  readonly maxQueue?: number | undefined
  readonly timeout?: Duration.Input | undefined
  readonly priority?: Priority | undefined
  readonly idleTimeout?: Duration.Input | undefined
}

const decodeLimits = Schema.decodeUnknownEffect(TierLimits)

// undefined: not given; null: given but not a duration.
const durationMillis = (input: Duration.Input | undefined): number | undefined | null => {
  if (input === undefined) return undefined
  const d = Duration.fromInput(input)
  return d._tag === "None" ? null : Duration.toMillis(d.value)
}

/**
 * Applies an override to a tier's limits, validating the result.
 *
 * @category constructors
 * @since 0.1.0
 */
export const override = (
  tier: TierName,
  base: TierLimits,
  patch: TierOverride
): Effect.Effect<TierLimits, InvalidConfig> => {
  if (!isTierName(tier)) return Effect.fail(new InvalidConfig({ field: "tier", reason: "not a tier name" }))
  const read = readFields(tier, patch, overrideFields)
  if (read instanceof InvalidConfig) return Effect.fail(read)
  return overrideRead(tier, base, read as TierOverride)
}

const overrideFields = [
  "minPool",
  "maxPool",
  "maxConcurrent",
  "maxQueue",
  "timeout",
  "priority",
  "idleTimeout"
] as const satisfies ReadonlyArray<keyof TierOverride>

const isTierName = (u: unknown): u is TierName =>
  typeof u === "string" && (tierNames as ReadonlyArray<string>).includes(u)

const overrideRead = (
  tier: TierName,
  base: TierLimits,
  patch: TierOverride
): Effect.Effect<TierLimits, InvalidConfig> => {
  const timeout = guard(`${tier}.timeout`, () => durationMillis(patch.timeout))
  if (timeout === null) return Effect.fail(new InvalidConfig({ field: `${tier}.timeout`, reason: "not a duration" }))
  if (timeout instanceof InvalidConfig) return Effect.fail(timeout)
  const idle = guard(`${tier}.idleTimeout`, () => durationMillis(patch.idleTimeout))
  if (idle === null) return Effect.fail(new InvalidConfig({ field: `${tier}.idleTimeout`, reason: "not a duration" }))
  if (idle instanceof InvalidConfig) return Effect.fail(idle)
  const candidate = {
    minPool: patch.minPool ?? base.minPool,
    maxPool: patch.maxPool ?? base.maxPool,
    maxConcurrent: patch.maxConcurrent ?? base.maxConcurrent,
    maxQueue: patch.maxQueue ?? patch.maxConcurrent ?? base.maxQueue,
    timeoutMillis: timeout ?? base.timeoutMillis,
    priority: patch.priority ?? base.priority,
    idleTimeoutMillis: idle ?? base.idleTimeoutMillis
  }
  return decodeLimits(candidate, { errors: "all" }).pipe(Effect.mapError((e) => toInvalidConfig(tier, e.message)))
}

// The option names users write, for the schema's field names.
const publicName: Readonly<Record<string, string>> = { timeoutMillis: "timeout", idleTimeoutMillis: "idleTimeout" }

// Names the first offending field (`FREE.maxConcurrent`) and says what is wrong with it in the user's words.
const toInvalidConfig = (tier: TierName, message: string): InvalidConfig => {
  const lines = message.split("\n").map((l) => l.trim())
  const at = lines.findIndex((l) => l.startsWith("at ["))
  const key = at >= 0 ? /^at \["([^"]+)"\]/.exec(lines[at]!)?.[1] : undefined
  const reason = (at > 0 ? lines[at - 1]! : lines[0]!) || "invalid limits"
  return new InvalidConfig({
    field: key === undefined ? tier : `${tier}.${publicName[key] ?? key}`,
    reason: key !== undefined && publicName[key] !== undefined ? `${reason} (milliseconds)` : reason
  })
}

/**
 * The live limits of one tier. The object is shared by every project on the tier, so an update reaches all of
 * them at once; read `limits` on every use rather than caching its fields.
 *
 * @category models
 * @since 0.1.0
 */
export interface TierState {
  readonly name: TierName
  readonly weight: number
  readonly limits: TierLimits
}

/**
 * The tier table of a running process.
 *
 * @category services
 * @since 0.1.0
 */
export class Tiers extends Context.Service<
  Tiers,
  {
    /** The live state of a tier (the same object for the life of the process). */
    readonly get: (name: TierName) => TierState
    /** Every tier's current limits. */
    readonly all: () => Readonly<Record<TierName, TierLimits>>
    /** Changes a tier's limits at runtime; fails with `InvalidConfig` and changes nothing when invalid. */
    readonly update: (name: TierName, patch: TierOverride) => Effect.Effect<TierLimits, InvalidConfig>
    /** Registers a listener called after every change (used by engines to resize pools). */
    readonly onChange: (listener: (tier: TierState, previous: TierLimits) => void) => () => void
  }
>()("@tenantpool/core/Tier/Tiers") {}

/**
 * Builds the tier table from the defaults and optional overrides.
 *
 * @category constructors
 * @since 0.1.0
 */
export const make = (
  overrides?: Partial<Record<TierName, TierOverride>> | undefined
): Effect.Effect<Tiers["Service"], InvalidConfig> =>
  Effect.gen(function* () {
    const states = new Map<TierName, { name: TierName; weight: number; limits: TierLimits }>()
    const read = readFields("tiers", overrides, tierNames, { optional: true })
    if (read instanceof InvalidConfig) return yield* read
    for (const name of tierNames) {
      const patch = read[name] as TierOverride | undefined
      const limits = patch === undefined ? defaults[name] : yield* override(name, defaults[name], patch)
      states.set(name, { name, weight: priorityWeight[limits.priority], limits })
    }
    const listeners = new Set<(tier: TierState, previous: TierLimits) => void>()
    return Tiers.of({
      get: (name) => states.get(name)!,
      all: () => Object.fromEntries([...states].map(([n, s]) => [n, s.limits])) as Record<TierName, TierLimits>,
      update: (name, patch) =>
        Effect.flatMap(
          Effect.suspend(() =>
            isTierName(name)
              ? override(name, states.get(name)!.limits, patch)
              : Effect.fail(new InvalidConfig({ field: "tier", reason: "not a tier name" }))
          ),
          (limits) =>
            Effect.sync(() => {
              const state = states.get(name)!
              const previous = state.limits
              state.limits = limits
              state.weight = priorityWeight[limits.priority]
              for (const listener of listeners) listener(state, previous)
              return limits
            })
        ),
      onChange: (listener) => {
        listeners.add(listener)
        return () => listeners.delete(listener)
      }
    })
  })

/**
 * The tier table as a layer: the spec's defaults with optional overrides.
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = (
  overrides?: Partial<Record<TierName, TierOverride>> | undefined
): Layer.Layer<Tiers, InvalidConfig> => Layer.effect(Tiers, make(overrides))
