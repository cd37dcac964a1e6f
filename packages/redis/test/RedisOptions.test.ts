/**
 * Durations given to the engine, without a server: a bad option fails the layer with a typed `InvalidConfig` naming
 * it, and a bad duration argument fails its call with a `RedisError` the caller made (never sent, never a throw).
 */
import { assert, describe, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { type GuardError, InvalidConfig } from "@tenantpool/core/Errors"
import * as Tenancy from "@tenantpool/core/Tenancy"
import * as RedisEngine from "../src/RedisEngine.ts"
import { RedisError } from "../src/RedisError.ts"

const build = (options: RedisEngine.Options) =>
  Layer.build(RedisEngine.layer(options).pipe(Layer.provideMerge(Tenancy.layerMemory({ healthCheckInterval: 0 }))))

describe("RedisEngine options", () => {
  it.effect("a duration option that is not a positive duration fails the layer with InvalidConfig naming it", () =>
    Effect.gen(function* () {
      const cases: ReadonlyArray<readonly [RedisEngine.Options, string]> = [
        [{ connectTimeout: "soon" as Duration.Input }, "redis.connectTimeout"],
        [{ connectTimeout: 0 }, "redis.connectTimeout"],
        [{ connectTimeout: Duration.infinity }, "redis.connectTimeout"],
        [{ dedicatedIdleTimeout: -1 }, "redis.dedicatedIdleTimeout"],
        [{ dedicatedIdleTimeout: "a while" as Duration.Input }, "redis.dedicatedIdleTimeout"]
      ]
      for (const [options, field] of cases) {
        const error = yield* Effect.flip(Effect.scoped(build(options)))
        assert.instanceOf(error, InvalidConfig, field)
        if (error instanceof InvalidConfig) assert.strictEqual(error.field, field)
      }
    })
  )

  it.effect("accepts durations in any form, and no idle time for dedicated connections", () =>
    Effect.scoped(
      Effect.gen(function* () {
        yield* build({ connectTimeout: Duration.seconds(2), dedicatedIdleTimeout: 0 })
        yield* build({ connectTimeout: "250 millis", dedicatedIdleTimeout: "5 minutes" })
      })
    )
  )

  it.effect("a TTL or timeout argument that is not a duration fails its call as the caller's error, never sent", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const redis = Context.get(yield* build({}), RedisEngine.RedisEngine)
        // No project is current: the calls fail before the guard would ask for one.
        const calls: ReadonlyArray<readonly [string, Effect.Effect<unknown, RedisError | GuardError>]> = [
          ["set", redis.set("k", "v", { ttl: "soon" as Duration.Input })],
          ["expire", redis.expire("k", -5)],
          ["blpop", redis.blpop(["q"], Duration.infinity)]
        ]
        for (const [command, call] of calls) {
          const error = yield* Effect.flip(call)
          assert.instanceOf(error, RedisError, command)
          if (error instanceof RedisError) {
            assert.strictEqual(error.kind, "argument")
            assert.strictEqual(error.command, command)
            assert.isFalse(error.sent)
            assert.isFalse(error.isInfrastructure, "a caller's mistake never counts toward a breaker")
          }
        }
      })
    )
  )
})
