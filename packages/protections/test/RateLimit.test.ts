/**
 * The per-tier rate limiter under the TestClock: bursts, refill, per-(project, engine) buckets, tier rates, tier
 * changes, configuration errors, and the same behaviour through Effect's RateLimiter (the shared-store mode) over
 * its memory store.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { RateLimiter } from "effect/persistence"
import * as Fiber from "effect/Fiber"
import { TestClock } from "effect/testing"
import type { Engine } from "@tenantpool/core/Engine"
import type { ProjectHandle } from "@tenantpool/core/CurrentProject"
import * as RateLimit from "../src/RateLimit.ts"
import { project } from "./fixtures/Projects.ts"

const small = { tiers: { FREE: { perSecond: 2, burst: 4 }, PRO: { perSecond: 100, burst: 200 } } }

/** Runs one check to completion: "ok", or the RateLimited error. */
const consume = (limiter: RateLimit.RateLimit["Service"], p: ProjectHandle, engine: Engine = "postgres") =>
  Effect.suspend(() => limiter.check(p, engine) ?? Effect.void).pipe(
    Effect.as("ok" as const),
    Effect.catchTag("RateLimited", Effect.succeed)
  )

const admitted = (limiter: RateLimit.RateLimit["Service"], p: ProjectHandle, n: number, engine?: Engine) =>
  Effect.gen(function* () {
    let ok = 0
    for (let i = 0; i < n; i++) if ((yield* consume(limiter, p, engine)) === "ok") ok++
    return ok
  })

const storeLimiter = (options: RateLimit.StoreOptions) =>
  Effect.map(
    Layer.build(RateLimit.layerStore(options).pipe(Layer.provide(RateLimiter.layerStoreMemory))),
    Context.get(RateLimit.RateLimit)
  )

describe("RateLimit (memory)", () => {
  it.effect(
    "admits a full burst, then refuses at once with RateLimited carrying project, engine, tier and retry-after",
    () =>
      Effect.gen(function* () {
        const limiter = yield* RateLimit.makeMemory(small)
        const p = project("acme", "FREE")
        assert.strictEqual(yield* admitted(limiter, p, 4), 4)
        const refused = yield* consume(limiter, p)
        assert.notStrictEqual(refused, "ok")
        if (refused === "ok") return
        assert.strictEqual(refused._tag, "RateLimited")
        assert.strictEqual(refused.projectId, "acme")
        assert.strictEqual(refused.engine, "postgres")
        assert.strictEqual(refused.tier, "FREE")
        assert.strictEqual(refused.limit, 2)
        assert.strictEqual(refused.retryAfterMillis, 500, "one token at 2/s")
        assert.strictEqual(Duration.toMillis(refused.retryAfter), 500)
        assert.include(refused.message, "retry after 500 ms")
      })
  )

  it.effect("passes synchronously: a check within the limit returns no Effect", () =>
    Effect.gen(function* () {
      const limiter = yield* RateLimit.makeMemory(small)
      const p = project("acme", "FREE")
      assert.isUndefined(limiter.check(p, "redis"))
      for (let i = 0; i < 3; i++) limiter.check(p, "redis")
      assert.isDefined(limiter.check(p, "redis"), "the fifth is refused")
    })
  )

  it.effect("refills at the tier's rate as the clock advances, up to the burst", () =>
    Effect.gen(function* () {
      const limiter = yield* RateLimit.makeMemory(small)
      const p = project("acme", "FREE")
      assert.strictEqual(yield* admitted(limiter, p, 10), 4)
      yield* TestClock.adjust("499 millis")
      assert.strictEqual(yield* admitted(limiter, p, 1), 0, "not yet a whole token")
      yield* TestClock.adjust("1 millis")
      assert.strictEqual(yield* admitted(limiter, p, 5), 1)
      yield* TestClock.adjust("1 hour")
      assert.strictEqual(yield* admitted(limiter, p, 10), 4, "an idle bucket holds no more than the burst")
    })
  )

  it.effect("keeps one bucket per project and engine", () =>
    Effect.gen(function* () {
      const limiter = yield* RateLimit.makeMemory(small)
      const a = project("a", "FREE")
      const b = project("b", "FREE")
      assert.strictEqual(yield* admitted(limiter, a, 10, "postgres"), 4)
      assert.strictEqual(yield* admitted(limiter, a, 10, "redis"), 4, "another engine, another bucket")
      assert.strictEqual(yield* admitted(limiter, b, 10, "postgres"), 4, "another project, another bucket")
    })
  )

  it.effect("applies each tier's rate, and a tier change at once", () =>
    Effect.gen(function* () {
      const limiter = yield* RateLimit.makeMemory(small)
      const p = project("acme", "PRO")
      assert.strictEqual(yield* admitted(limiter, p, 250), 200)
      p.tierName = "FREE"
      yield* TestClock.adjust("1 second")
      assert.strictEqual(yield* admitted(limiter, p, 10), 2, "FREE's rate refills the bucket now")
    })
  )

  it.effect("uses the documented defaults and per-engine overrides", () =>
    Effect.gen(function* () {
      const limiter = yield* RateLimit.makeMemory({ engines: { redis: { FREE: { perSecond: 500 } } } })
      assert.deepStrictEqual(limiter.rate("FREE", "postgres"), { perSecond: 50, burst: 100 })
      assert.deepStrictEqual(limiter.rate("FREE", "redis"), { perSecond: 500, burst: 100 })
      assert.deepStrictEqual(limiter.rate("ENTERPRISE", "mongodb"), { perSecond: 5_000, burst: 10_000 })
      assert.strictEqual(yield* admitted(limiter, project("acme", "FREE"), 150), 100)
    })
  )

  it.effect("refuses a rate that is not positive or a burst under 1", () =>
    Effect.gen(function* () {
      const zero = yield* Effect.flip(RateLimit.makeMemory({ tiers: { PRO: { perSecond: 0 } } }))
      assert.strictEqual(zero._tag, "InvalidConfig")
      assert.strictEqual(zero.field, "postgres.PRO.perSecond")
      const burst = yield* Effect.flip(RateLimit.makeMemory({ engines: { mongodb: { FREE: { burst: 0.5 } } } }))
      assert.strictEqual(burst.field, "mongodb.FREE.burst")
    })
  )
})

describe("RateLimit (Effect's RateLimiter over a store)", () => {
  it.effect("admits the burst, refuses with the store's retry-after, and refills with the clock", () =>
    Effect.gen(function* () {
      const limiter = yield* storeLimiter(small)
      assert.strictEqual(limiter.mode, "store")
      const p = project("acme", "FREE")
      assert.strictEqual(yield* admitted(limiter, p, 4), 4)
      const refused = yield* consume(limiter, p)
      assert.isTrue(refused !== "ok" && refused._tag === "RateLimited" && refused.retryAfterMillis === 500)
      yield* TestClock.adjust("500 millis")
      assert.strictEqual(yield* admitted(limiter, p, 3), 1)
      assert.strictEqual(yield* admitted(limiter, project("other", "FREE"), 5), 4, "keys are per project")
    })
  )

  it.effect("refuses a storeTimeout that is not a positive duration with InvalidConfig naming it", () =>
    Effect.gen(function* () {
      for (const storeTimeout of ["soon" as Duration.Input, 0, -5]) {
        const error = yield* Effect.flip(Effect.scoped(storeLimiter({ ...small, storeTimeout })))
        assert.strictEqual(error._tag, "InvalidConfig")
        assert.strictEqual(error.field, "storeTimeout")
      }
    })
  )

  it.effect("lets calls through when the store fails or is slower than storeTimeout", () =>
    Effect.gen(function* () {
      const storeError = new RateLimiter.RateLimiterError({
        reason: new RateLimiter.RateLimitStoreError({ message: "connection lost" })
      })
      let hang = false
      const flaky = Layer.succeed(RateLimiter.RateLimiterStore, {
        fixedWindow: () => Effect.fail(storeError),
        tokenBucket: () => (hang ? Effect.never : Effect.fail(storeError)),
        adaptiveConsume: () => Effect.fail(storeError),
        adaptiveFeedback: () => Effect.fail(storeError)
      })
      const limiter = Context.get(
        yield* Layer.build(RateLimit.layerStore({ ...small, storeTimeout: "100 millis" }).pipe(Layer.provide(flaky))),
        RateLimit.RateLimit
      )
      const p = project("acme", "FREE")
      assert.strictEqual(yield* admitted(limiter, p, 10), 10, "a failing store limits nothing")
      hang = true
      const fiber = yield* Effect.forkChild(consume(limiter, p))
      yield* TestClock.adjust("99 millis")
      assert.isUndefined(fiber.pollUnsafe(), "still waiting for the store")
      yield* TestClock.adjust("1 millis")
      assert.strictEqual(yield* Fiber.join(fiber), "ok")
    })
  )
})
