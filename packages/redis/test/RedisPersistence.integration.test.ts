import { assert, describe, it } from "@effect/vitest"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { CircuitBreaker, RateLimiter, Redis } from "effect/persistence"
import * as Redacted from "effect/Redacted"
import * as Isolation from "@tenantpool/testing/Isolation"
import * as TestServers from "@tenantpool/testing/TestServers"
import * as RedisPersistence from "../src/RedisPersistence.ts"

class Down extends Data.TaggedError("Down") {}

const options = () => ({ url: Redacted.make(TestServers.url("redis")), prefix: Isolation.redisKeyPrefix("cb") })

describe("RedisPersistence", () => {
  it.live("implements Effect's Redis service over ioredis (commands, scripts, reserved connections)", () =>
    Effect.gen(function* () {
      const redis = yield* Redis.Redis
      const key = `${Isolation.redisKeyPrefix("persist")}k`
      yield* redis.send("SET", key, "1")
      assert.strictEqual(yield* redis.send<string>("GET", key), "1")
      const incrBy = Redis.script((k: string, n: number) => [k, n], {
        lua: "return redis.call('INCRBY', KEYS[1], ARGV[1])",
        numberOfKeys: 1
      }).withReturnType<number>()
      assert.strictEqual(yield* redis.eval(incrBy)(key, 41), 42)
      const conn = yield* redis.reserve
      assert.strictEqual(yield* conn.send<string>("PING"), "PONG")
      yield* redis.send("DEL", key)
    }).pipe(Effect.scoped, Effect.provide(RedisPersistence.layer({ url: Redacted.make(TestServers.url("redis")) })))
  )

  it.live("two processes' breakers share one circuit through the Redis store", () =>
    Effect.gen(function* () {
      const opts = options()
      // Two independent store layers (separate connections), as two API servers would have.
      const breaker = Effect.fnUntraced(function* () {
        const store = yield* Layer.build(Layer.fresh(RedisPersistence.layerBreakerStore(opts)))
        return yield* CircuitBreaker.make({
          tripPolicy: CircuitBreaker.consecutive(3),
          openDuration: "30 seconds"
        }).pipe(Effect.provideContext(store))
      })
      const a = yield* breaker()
      const b = yield* breaker()
      for (let i = 0; i < 3; i++)
        yield* Effect.flip(Effect.fail(new Down()).pipe(a.execute({ key: "postgres:target-1" })))
      const state = yield* b.state("postgres:target-1")
      assert.strictEqual(state._tag, "Open")
      const rejected = yield* Effect.flip(Effect.succeed(1).pipe(b.execute({ key: "postgres:target-1" })))
      assert.strictEqual(rejected._tag, "CircuitBreakerError")
    }).pipe(Effect.scoped)
  )

  it.live("rate limits hold across two processes sharing Redis", () =>
    Effect.gen(function* () {
      const opts = options()
      const limiter = () =>
        Effect.gen(function* () {
          const context = yield* Layer.build(
            RateLimiter.layer.pipe(Layer.provide(Layer.fresh(RedisPersistence.layerRateLimiterStore(opts))))
          )
          return yield* Effect.provideContext(RateLimiter.RateLimiter, context)
        })
      const first = yield* limiter()
      const second = yield* limiter()
      const consume = (l: RateLimiter.RateLimiter) =>
        l.consume({ key: "project:acme", limit: 3, window: "10 seconds", onExceeded: "fail" }).pipe(Effect.result)
      const results = [yield* consume(first), yield* consume(second), yield* consume(first), yield* consume(second)]
      assert.deepStrictEqual(
        results.map((r) => r._tag),
        ["Success", "Success", "Success", "Failure"]
      )
    }).pipe(Effect.scoped)
  )
})
