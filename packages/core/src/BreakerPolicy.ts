/**
 * Circuit-breaker policies per engine. The spec's table is the default:
 *
 * | Engine | Attempt timeout | Error threshold | Reset timeout | Volume threshold |
 * | --- | --- | --- | --- | --- |
 * | PostgreSQL | 5 s | 50 % | 30 s | 10 |
 * | MongoDB | 10 s | 60 % | 45 s | 10 |
 * | Redis | 1 s | 70 % | 15 s | 10 |
 *
 * Calls (not attempts: retries are not counted) are counted over a rolling window (10 s in 10 buckets, like
 * opossum); a breaker opens when at least `volumeThreshold` calls in the window failed at `errorThreshold` or
 * more. Only infrastructure errors count. A flapping target stays open longer each time (`backoffFactor`, capped at
 * `maxResetTimeout`): when a probe fails, or when it trips again before it has proved healthy; the backoff starts
 * over once the breaker has seen `volumeThreshold` successful calls or stayed closed as long as it was last open.
 * While open, the target is pinged every `probeInterval` (2 s), so recovery is noticed within seconds whatever
 * the open time. The core README's breaker table lists every rule with its test.
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type { Engine } from "./Vocabulary.ts"
import * as Durations from "./Durations.ts"
import { InvalidConfig } from "./Errors.ts"
import { readFields } from "./internal/input.ts"

/**
 * A resolved breaker policy (durations in milliseconds).
 *
 * @category models
 * @since 0.1.0
 */
export interface BreakerPolicy {
  /** Bound of one attempt (the spec's "timeout"); the attempt is interrupted when it passes. */
  readonly attemptTimeoutMillis: number
  /** Failure ratio in the window that opens the breaker, 0..1. */
  readonly errorThreshold: number
  /** How long the breaker stays open the first time. */
  readonly resetTimeoutMillis: number
  /** Upper bound of the open time of a flapping target. */
  readonly maxResetTimeoutMillis: number
  /** Growth of the open time per consecutive opening. */
  readonly backoffFactor: number
  /** Calls needed in the window before the breaker may open. */
  readonly volumeThreshold: number
  /** Length of the rolling window. */
  readonly windowMillis: number
  /** Buckets of the rolling window. */
  readonly buckets: number
  /** Calls let through at once while half-open; all must succeed to close. */
  readonly halfOpenProbes: number
  /**
   * Probe with the engine's ping while open, every `probeIntervalMillis` and when the open time ends, instead of
   * waiting for (and failing) a caller's call: the breaker closes as soon as the target answers again.
   */
  readonly activeProbe: boolean
  /** How often an open breaker pings its target (the backoff spaces callers' retries, never the recovery). */
  readonly probeIntervalMillis: number
}

/**
 * A partial policy override; durations as `Duration.Input`.
 *
 * @category models
 * @since 0.1.0
 */
export interface BreakerPolicyOverride {
  readonly attemptTimeout?: Duration.Input | undefined
  readonly errorThreshold?: number | undefined
  readonly resetTimeout?: Duration.Input | undefined
  readonly maxResetTimeout?: Duration.Input | undefined
  readonly backoffFactor?: number | undefined
  readonly volumeThreshold?: number | undefined
  readonly window?: Duration.Input | undefined
  readonly buckets?: number | undefined
  readonly halfOpenProbes?: number | undefined
  readonly activeProbe?: boolean | undefined
  readonly probeInterval?: Duration.Input | undefined
}

const base = {
  backoffFactor: 2,
  volumeThreshold: 10,
  windowMillis: 10_000,
  buckets: 10,
  halfOpenProbes: 1,
  activeProbe: true,
  probeIntervalMillis: 2_000
}

/**
 * The spec's policy per engine.
 *
 * @category constants
 * @since 0.1.0
 */
export const defaults: Readonly<Record<Engine, BreakerPolicy>> = {
  postgres: {
    ...base,
    attemptTimeoutMillis: 5_000,
    errorThreshold: 0.5,
    resetTimeoutMillis: 30_000,
    maxResetTimeoutMillis: 240_000
  },
  mongodb: {
    ...base,
    attemptTimeoutMillis: 10_000,
    errorThreshold: 0.6,
    resetTimeoutMillis: 45_000,
    maxResetTimeoutMillis: 360_000
  },
  redis: {
    ...base,
    attemptTimeoutMillis: 1_000,
    errorThreshold: 0.7,
    resetTimeoutMillis: 15_000,
    maxResetTimeoutMillis: 120_000
  }
}

const millis = (field: string, input: Duration.Input | undefined, fallback: number): number => {
  const ms = Durations.millisOrError(field, input, fallback)
  if (typeof ms !== "number") throw ms
  return ms
}

const check = (field: string, ok: boolean, reason: string) => {
  if (!ok) throw new InvalidConfig({ field, reason })
}

/**
 * Applies an override to an engine's default policy, validating it.
 *
 * @category constructors
 * @since 0.1.0
 */
export const make = (
  engine: Engine,
  patch?: BreakerPolicyOverride | undefined
): Effect.Effect<BreakerPolicy, InvalidConfig> =>
  Effect.suspend(() => {
    if (typeof engine !== "string" || !Object.hasOwn(defaults, engine)) {
      return Effect.fail(new InvalidConfig({ field: "engine", reason: "must be postgres, redis or mongodb" }))
    }
    const d = defaults[engine]
    const read = readFields(engine, patch, overrideFields, { optional: true })
    if (read instanceof InvalidConfig) return Effect.fail(read)
    const p = read as BreakerPolicyOverride
    try {
      const policy: BreakerPolicy = {
        attemptTimeoutMillis: millis(`${engine}.attemptTimeout`, p.attemptTimeout, d.attemptTimeoutMillis),
        errorThreshold: p.errorThreshold ?? d.errorThreshold,
        resetTimeoutMillis: millis(`${engine}.resetTimeout`, p.resetTimeout, d.resetTimeoutMillis),
        maxResetTimeoutMillis: millis(`${engine}.maxResetTimeout`, p.maxResetTimeout, d.maxResetTimeoutMillis),
        backoffFactor: p.backoffFactor ?? d.backoffFactor,
        volumeThreshold: p.volumeThreshold ?? d.volumeThreshold,
        windowMillis: millis(`${engine}.window`, p.window, d.windowMillis),
        buckets: p.buckets ?? d.buckets,
        halfOpenProbes: p.halfOpenProbes ?? d.halfOpenProbes,
        activeProbe: p.activeProbe ?? d.activeProbe,
        probeIntervalMillis: millis(`${engine}.probeInterval`, p.probeInterval, d.probeIntervalMillis)
      }
      const isNumber = (u: unknown) => typeof u === "number" && Number.isFinite(u)
      check(`${engine}.errorThreshold`, isNumber(policy.errorThreshold), "must be a number")
      check(`${engine}.backoffFactor`, isNumber(policy.backoffFactor), "must be a finite number")
      check(`${engine}.activeProbe`, typeof policy.activeProbe === "boolean", "must be a boolean")
      check(`${engine}.errorThreshold`, policy.errorThreshold > 0 && policy.errorThreshold <= 1, "must be in (0, 1]")
      check(`${engine}.backoffFactor`, policy.backoffFactor >= 1, "must be at least 1")
      check(
        `${engine}.volumeThreshold`,
        Number.isInteger(policy.volumeThreshold) && policy.volumeThreshold >= 1,
        "must be an integer >= 1"
      )
      check(
        `${engine}.buckets`,
        Number.isInteger(policy.buckets) && policy.buckets >= 1 && policy.buckets <= 600,
        "must be an integer in 1..600"
      )
      check(
        `${engine}.halfOpenProbes`,
        Number.isInteger(policy.halfOpenProbes) && policy.halfOpenProbes >= 1,
        "must be an integer >= 1"
      )
      check(
        `${engine}.maxResetTimeout`,
        policy.maxResetTimeoutMillis >= policy.resetTimeoutMillis,
        "must be at least resetTimeout"
      )
      return Effect.succeed(policy)
    } catch (e) {
      return Effect.fail(
        e instanceof InvalidConfig ? e : new InvalidConfig({ field: engine, reason: "could not be read" })
      )
    }
  })

const overrideFields = [
  "attemptTimeout",
  "errorThreshold",
  "resetTimeout",
  "maxResetTimeout",
  "backoffFactor",
  "volumeThreshold",
  "window",
  "buckets",
  "halfOpenProbes",
  "activeProbe",
  "probeInterval"
] as const satisfies ReadonlyArray<keyof BreakerPolicyOverride>
