/**
 * Per-tier request rates, per project and engine: a token bucket that refills at the tier's rate (requests per
 * second) up to its burst. A call over the limit fails at once with `RateLimited` (how long to wait included); it is
 * never queued, so a client that retries too eagerly cannot pile up work behind the limit.
 *
 * Two modes:
 * - `layerMemory`: this process's limits only. The buckets are plain objects refilled lazily from the Clock, kept
 *   in a `WeakMap` keyed by the project's runtime (so an evicted project's buckets go with it). Not Effect's
 *   `RateLimiter` with its memory store, measured (`test/bench/overhead.ts`, Node 22, 2 cores): `consume` costs
 *   0.45 µs per call with a prebuilt window Duration and 0.7–1.1 µs with a string window (half or more of the
 *   guard's whole per-call cost, 0.9 µs), against 0.045 µs for the bucket here; it always allocates an Effect, where
 *   a passing check here returns `undefined` (the whole check of a Redis GET, rate limit and command policy, adds
 *   0.15 µs to a guarded call); and its memory store never forgets a key, which with one key per (project,
 *   engine) grows with every project ever seen.
 * - `layerStore` / `layerRedis`: Effect's `RateLimiter` (token-bucket algorithm, `onExceeded: "fail"`) over a
 *   shared `RateLimiterStore`, so several processes enforce one limit. A network round trip per call; when the store
 *   fails or takes longer than `storeTimeout` the call is let through and counted
 *   (`tenantpool_protection_rate_limit_store_errors_total`): a coordination outage must not stop every project's
 *   database traffic.
 * - `makeFleet` / `layerFleet` (what `@tenantpool/cluster` installs): the same shared limiter, but a process takes
 *   tokens from it in leases of `lease` worth of the rate (50 ms: 3 tokens for FREE, 50 for PRO) and spends them
 *   locally, so the hot path is the local check and the store sees one round trip per lease. The fleet never
 *   admits more than the tier's rate (leased tokens are taken from the shared bucket; a process drops what it has
 *   not spent after a second, which can only under-admit). A refusal is remembered until its `retryAfter`. When
 *   the store fails, the process limits locally at the rate divided by the fleet's last known size, for a second,
 *   then asks the store again.
 *
 * Default rates (sustained per second / burst), the same for every engine unless overridden per engine:
 *
 * | Tier | Rate | Burst | Why |
 * | --- | --- | --- | --- |
 * | FREE | 50 | 100 | a hobby app's API traffic; 20 concurrent × 10 ms queries could otherwise send 2,000/s |
 * | STARTER | 200 | 400 | 4 × FREE, in line with the tier's 2.5 × concurrency |
 * | PRO | 1,000 | 2,000 | a production app on its own; 200 concurrent slots at ~200 ms each |
 * | ENTERPRISE | 5,000 | 10,000 | a guard-rail against runaway loops rather than a quota |
 *
 * The burst is two seconds of the rate: a page load or a cold cache fans out into many queries at once.
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import { RateLimiter } from "effect/persistence"
import type { Redis } from "effect/persistence"
import type { ProjectHandle } from "@tenantpool/core/CurrentProject"
import * as Durations from "@tenantpool/core/Durations"
import { type Engine, engines } from "@tenantpool/core/Engine"
import { InvalidConfig } from "@tenantpool/core/Errors"
import { RateLimited } from "@tenantpool/core/Errors"
import { type TierName, tierNames } from "@tenantpool/core/Tier"
import * as RedisPersistence from "@tenantpool/redis/RedisPersistence"
import * as ProtectionMetrics from "./ProtectionMetrics.ts"
import { take, TokenBucket } from "./internal/tokenBucket.ts"

/**
 * A sustained rate and the burst above it.
 *
 * @category models
 * @since 0.1.0
 */
export interface Rate {
  /** Requests per second, sustained. */
  readonly perSecond: number
  /** Requests admitted at once from a full bucket (at least 1). */
  readonly burst: number
}

/**
 * The default rates (see the module comment).
 *
 * @category constants
 * @since 0.1.0
 */
export const defaults: Readonly<Record<TierName, Rate>> = {
  FREE: { perSecond: 50, burst: 100 },
  STARTER: { perSecond: 200, burst: 400 },
  PRO: { perSecond: 1_000, burst: 2_000 },
  ENTERPRISE: { perSecond: 5_000, burst: 10_000 }
}

/**
 * Overrides of the default rates: per tier for every engine, then per engine and tier.
 *
 * @category models
 * @since 0.1.0
 */
export interface Options {
  readonly tiers?: Partial<Record<TierName, Partial<Rate>>> | undefined
  readonly engines?: Partial<Record<Engine, Partial<Record<TierName, Partial<Rate>>>>> | undefined
}

/**
 * Options of the shared-store mode.
 *
 * @category models
 * @since 0.1.0
 */
export interface StoreOptions extends Options {
  /** Prefix of the limiter's keys inside the store (default `tenantpool:`); the key is `<prefix><project>:<engine>`. */
  readonly keyPrefix?: string | undefined
  /** How long a check may wait for the store before the call is let through (default 250 ms). */
  readonly storeTimeout?: Duration.Input | undefined
}

/**
 * The rate limiter.
 *
 * @category services
 * @since 0.1.0
 */
export class RateLimit extends Context.Service<
  RateLimit,
  {
    readonly mode: "memory" | "store" | "fleet"
    /** The rate that applies to a tier on an engine. */
    readonly rate: (tier: TierName, engine: Engine) => Rate
    /** Takes one request from the project's bucket for the engine: `undefined` when admitted synchronously. */
    readonly check: (project: ProjectHandle, engine: Engine) => Effect.Effect<void, RateLimited> | undefined
  }
>()("@tenantpool/protections/RateLimit") {}

type RateTable = Readonly<Record<Engine, Readonly<Record<TierName, Rate>>>>

const validRate = (field: string, rate: Rate): Effect.Effect<Rate, InvalidConfig> =>
  !(Number.isFinite(rate.perSecond) && rate.perSecond > 0)
    ? Effect.fail(new InvalidConfig({ field: `${field}.perSecond`, reason: "must be a positive number" }))
    : !(Number.isFinite(rate.burst) && rate.burst >= 1)
      ? Effect.fail(new InvalidConfig({ field: `${field}.burst`, reason: "must be at least 1" }))
      : Effect.succeed(rate)

/**
 * Resolves the rate table: defaults, then `tiers`, then `engines`; fails with `InvalidConfig` on a rate that is not
 * positive or a burst under 1.
 *
 * @category constructors
 * @since 0.1.0
 */
export const rates = (options?: Options | undefined): Effect.Effect<RateTable, InvalidConfig> =>
  Effect.gen(function* () {
    const table = {} as Record<Engine, Record<TierName, Rate>>
    for (const engine of engines) {
      const row = {} as Record<TierName, Rate>
      for (const tier of tierNames) {
        row[tier] = yield* validRate(`${engine}.${tier}`, {
          ...defaults[tier],
          ...options?.tiers?.[tier],
          ...options?.engines?.[engine]?.[tier]
        })
      }
      table[engine] = row
    }
    return table
  })

const engineSlot: Readonly<Record<Engine, number>> = { postgres: 0, redis: 1, mongodb: 2 }

/**
 * The in-process limiter (see the module comment).
 *
 * @category constructors
 * @since 0.1.0
 */
export const makeMemory = (options?: Options | undefined): Effect.Effect<RateLimit["Service"], InvalidConfig> =>
  Effect.gen(function* () {
    const table = yield* rates(options)
    const clock = yield* Clock.Clock
    const buckets = new WeakMap<ProjectHandle, Array<TokenBucket | undefined>>()
    return RateLimit.of({
      mode: "memory",
      rate: (tier, engine) => table[engine][tier],
      check: (project, engine) => {
        const tier = project.tierName
        const rate = table[engine][tier]
        const now = clock.currentTimeMillisUnsafe()
        let slots = buckets.get(project)
        if (slots === undefined) {
          slots = [undefined, undefined, undefined]
          buckets.set(project, slots)
        }
        const i = engineSlot[engine]
        const bucket = slots[i] ?? (slots[i] = new TokenBucket(rate.burst, now))
        const wait = take(bucket, now, rate.perSecond, rate.burst)
        if (wait === 0) return undefined
        return Effect.fail(
          new RateLimited({
            projectId: project.id,
            engine,
            tier,
            limit: rate.perSecond,
            retryAfterMillis: wait
          })
        )
      }
    })
  })

/** Counts a check the store could not answer, per engine and tier (the series made once). */
const storeErrorCounter = (context: Context.Context<never>) => {
  const storeErrors = new Map<string, Metric.Metric<number, unknown>>()
  return (engine: Engine, tier: TierName) => {
    const key = `${engine}:${tier}`
    let m = storeErrors.get(key)
    if (m === undefined) {
      m = Metric.withAttributes(ProtectionMetrics.rateLimitStoreErrorsTotal, { database_type: engine, tier })
      storeErrors.set(key, m)
    }
    m.updateUnsafe(1, context)
  }
}

/**
 * The shared-store limiter, on Effect's `RateLimiter` (see the module comment).
 *
 * @category constructors
 * @since 0.1.0
 */
export const makeStore = (
  options?: StoreOptions | undefined
): Effect.Effect<RateLimit["Service"], InvalidConfig, RateLimiter.RateLimiter> =>
  Effect.gen(function* () {
    const table = yield* rates(options)
    const limiter = yield* RateLimiter.RateLimiter
    const context = yield* Effect.context<never>()
    const keyPrefix = options?.keyPrefix ?? "tenantpool:"
    const storeTimeout = yield* Durations.millis("storeTimeout", options?.storeTimeout, "250 millis")
    // The token bucket of Effect's limiter holds `limit` tokens and adds one every `window / limit`.
    const windows = {} as Record<Engine, Record<TierName, Duration.Duration>>
    for (const engine of engines) {
      windows[engine] = {} as Record<TierName, Duration.Duration>
      for (const tier of tierNames) {
        const rate = table[engine][tier]
        windows[engine][tier] = Duration.millis((rate.burst * 1000) / rate.perSecond)
      }
    }
    const countStoreError = storeErrorCounter(context)
    return RateLimit.of({
      mode: "store",
      rate: (tier, engine) => table[engine][tier],
      check: (project, engine) => {
        const tier = project.tierName
        const rate = table[engine][tier]
        return limiter
          .consume({
            key: `${keyPrefix}${project.id}:${engine}`,
            limit: Math.floor(rate.burst),
            window: windows[engine][tier],
            algorithm: "token-bucket",
            onExceeded: "fail",
            tokens: 1
          })
          .pipe(
            Effect.timeoutOption(storeTimeout),
            Effect.flatMap((admitted) => {
              if (admitted._tag === "None") countStoreError(engine, tier)
              return Effect.void
            }),
            Effect.catch((error) => {
              if (error.reason._tag === "RateLimitExceeded") {
                return Effect.fail(
                  new RateLimited({
                    projectId: project.id,
                    engine,
                    tier,
                    limit: rate.perSecond,
                    retryAfterMillis: Math.max(1, Duration.toMillis(error.reason.retryAfter))
                  })
                )
              }
              countStoreError(engine, tier)
              return Effect.void
            })
          )
      }
    })
  })

/**
 * Options of the fleet mode.
 *
 * @category models
 * @since 0.1.0
 */
export interface FleetOptions extends StoreOptions {
  /**
   * How many processes share the limits now (the fleet's last known size): while the store cannot be reached, each
   * limits locally at the rate divided by it (default 1).
   */
  readonly instances?: (() => number) | undefined
  /** How much of the rate a process takes from the store at once (default 50 ms worth; 1 to a quarter of the burst). */
  readonly lease?: Duration.Input | undefined
}

/** Leased tokens of one (project, engine) in this process. */
class Lease {
  tokens = 0
  /** Tokens not spent by then are dropped (they were taken from the shared bucket: dropping them under-admits). */
  expires = 0
  /** The store refused until then: refused here without asking again. */
  deniedUntil = 0
  /** The store failed: limited locally until then. */
  localUntil = 0
  local: TokenBucket | undefined = undefined
  /** A lease being taken, awaited by the callers that find this one empty. */
  pending: Deferred.Deferred<void> | undefined = undefined
}

/** How long leased tokens live. */
const leaseLifetime = 1_000

/**
 * The fleet limiter: Effect's `RateLimiter` over a shared store, leased (see the module comment).
 *
 * @category constructors
 * @since 0.1.0
 */
export const makeFleet = (
  options?: FleetOptions | undefined
): Effect.Effect<RateLimit["Service"], InvalidConfig, RateLimiter.RateLimiter> =>
  Effect.gen(function* () {
    const table = yield* rates(options)
    const limiter = yield* RateLimiter.RateLimiter
    const clock = yield* Clock.Clock
    const countStoreError = storeErrorCounter(yield* Effect.context<never>())
    const keyPrefix = options?.keyPrefix ?? "tenantpool:"
    const storeTimeout = yield* Durations.millis("storeTimeout", options?.storeTimeout, "250 millis")
    const leaseMillis = yield* Durations.millis("lease", options?.lease, "50 millis")
    const instances = options?.instances ?? (() => 1)
    const leases = new WeakMap<ProjectHandle, Array<Lease | undefined>>()

    const refused = (project: ProjectHandle, engine: Engine, rate: Rate, wait: number) =>
      Effect.fail(
        new RateLimited({
          projectId: project.id,
          engine,
          tier: project.tierName,
          limit: rate.perSecond,
          retryAfterMillis: Math.max(1, Math.ceil(wait))
        })
      )

    // The store cannot be asked: this process's part of the rate, from a local bucket.
    const local = (project: ProjectHandle, engine: Engine, rate: Rate, lease: Lease, now: number) => {
      const n = Math.max(1, instances())
      const perSecond = rate.perSecond / n
      const burst = Math.max(1, rate.burst / n)
      lease.local ??= new TokenBucket(burst, now)
      const wait = take(lease.local, now, perSecond, burst)
      return wait === 0 ? undefined : refused(project, engine, rate, wait)
    }

    const consume = (project: ProjectHandle, engine: Engine, rate: Rate, tokens: number) =>
      limiter.consume({
        key: `${keyPrefix}${project.id}:${engine}`,
        limit: Math.floor(rate.burst),
        window: Duration.millis((rate.burst * 1000) / rate.perSecond),
        algorithm: "token-bucket",
        onExceeded: "fail",
        tokens
      })

    // Takes a lease from the store for the caller that found the lease empty; the others wait for it.
    const renew = (
      project: ProjectHandle,
      engine: Engine,
      rate: Rate,
      lease: Lease
    ): Effect.Effect<void, RateLimited> => {
      const size = Math.max(1, Math.min(Math.ceil((rate.perSecond * leaseMillis) / 1000), Math.floor(rate.burst / 4)))
      const pending = Deferred.makeUnsafe<void>()
      lease.pending = pending
      const exceeded = (error: RateLimiter.RateLimiterError) => error.reason._tag === "RateLimitExceeded"
      return consume(project, engine, rate, size).pipe(
        Effect.as(size),
        // Fewer than a lease left: one token is still worth asking for (this caller's).
        Effect.catchIf(exceeded, (error) =>
          size > 1 ? Effect.as(consume(project, engine, rate, 1), 1) : Effect.fail(error)
        ),
        Effect.timeoutOption(storeTimeout),
        Effect.flatMap((granted): Effect.Effect<void, RateLimited> => {
          const now = clock.currentTimeMillisUnsafe()
          if (granted._tag === "Some") {
            lease.tokens = granted.value - 1
            lease.expires = now + leaseLifetime
            return Effect.void
          }
          countStoreError(engine, project.tierName)
          lease.localUntil = now + leaseLifetime
          return local(project, engine, rate, lease, now) ?? Effect.void
        }),
        Effect.catch((error): Effect.Effect<void, RateLimited> => {
          const now = clock.currentTimeMillisUnsafe()
          if (error._tag === "RateLimited") return Effect.fail(error)
          if (error.reason._tag === "RateLimitExceeded") {
            const wait = Math.max(1, Duration.toMillis(error.reason.retryAfter))
            lease.deniedUntil = now + wait
            return refused(project, engine, rate, wait)
          }
          countStoreError(engine, project.tierName)
          lease.localUntil = now + leaseLifetime
          return local(project, engine, rate, lease, now) ?? Effect.void
        }),
        Effect.ensuring(
          Effect.sync(() => {
            lease.pending = undefined
            Deferred.doneUnsafe(pending, Effect.void)
          })
        )
      )
    }

    const check = (project: ProjectHandle, engine: Engine): Effect.Effect<void, RateLimited> | undefined => {
      const rate = table[engine][project.tierName]
      let slots = leases.get(project)
      if (slots === undefined) {
        slots = [undefined, undefined, undefined]
        leases.set(project, slots)
      }
      const i = engineSlot[engine]
      const lease = slots[i] ?? (slots[i] = new Lease())
      const now = clock.currentTimeMillisUnsafe()
      if (lease.tokens > 0 && now < lease.expires) {
        lease.tokens--
        return undefined
      }
      if (now < lease.deniedUntil) return refused(project, engine, rate, lease.deniedUntil - now)
      if (now < lease.localUntil) return local(project, engine, rate, lease, now)
      if (lease.pending !== undefined) {
        return Effect.flatMap(Deferred.await(lease.pending), () => check(project, engine) ?? Effect.void)
      }
      return renew(project, engine, rate, lease)
    }

    return RateLimit.of({ mode: "fleet", rate: (tier, engine) => table[engine][tier], check })
  })

/**
 * The in-process limiter as a layer.
 *
 * @category layers
 * @since 0.1.0
 */
export const layerMemory = (options?: Options | undefined): Layer.Layer<RateLimit, InvalidConfig> =>
  Layer.effect(RateLimit, makeMemory(options))

/**
 * The shared-store limiter over any `RateLimiterStore` (Effect's memory store for tests, its Redis store in
 * production).
 *
 * @category layers
 * @since 0.1.0
 */
export const layerStore = (
  options?: StoreOptions | undefined
): Layer.Layer<RateLimit, InvalidConfig, RateLimiter.RateLimiterStore> =>
  Layer.effect(RateLimit, makeStore(options)).pipe(Layer.provide(RateLimiter.layer))

/**
 * The shared-store limiter in Redis (`RedisPersistence.layerRateLimiterStore`): every process with the same Redis
 * and `prefix` shares the limits.
 *
 * @category layers
 * @since 0.1.0
 */
export const layerRedis = (
  options: StoreOptions & RedisPersistence.Options & { readonly prefix?: string | undefined }
): Layer.Layer<RateLimit, InvalidConfig | Redis.RedisError> =>
  layerStore(options).pipe(Layer.provide(RedisPersistence.layerRateLimiterStore(options)))

/**
 * The fleet limiter over any `RateLimiterStore` (Effect's Redis store in production: `@tenantpool/cluster`
 * installs it on the fleet's coordinator).
 *
 * @category layers
 * @since 0.1.0
 */
export const layerFleet = (
  options?: FleetOptions | undefined
): Layer.Layer<RateLimit, InvalidConfig, RateLimiter.RateLimiterStore> =>
  Layer.effect(RateLimit, makeFleet(options)).pipe(Layer.provide(RateLimiter.layer))
