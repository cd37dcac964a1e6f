import { assert, describe, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Durations from "../src/Durations.ts"
import { InvalidConfig } from "../src/Errors.ts"

describe("Durations", () => {
  it.effect("turns a duration option into milliseconds, with a fallback", () =>
    Effect.gen(function* () {
      assert.strictEqual(yield* Durations.millis("a", "2 seconds", "1 second"), 2000)
      assert.strictEqual(yield* Durations.millis("a", Duration.minutes(1), "1 second"), 60_000)
      assert.strictEqual(yield* Durations.millis("a", 250, "1 second"), 250)
      assert.strictEqual(yield* Durations.millis("a", undefined, "1 second"), 1000)
      assert.strictEqual(yield* Durations.millis("a", 0, "1 second", { allowZero: true }), 0)
    })
  )

  it.effect("refuses what is not a positive, finite duration with InvalidConfig naming the option", () =>
    Effect.gen(function* () {
      for (const bad of ["soon" as Duration.Input, -5, 0, Number.NaN, Duration.infinity]) {
        const error = yield* Effect.flip(Durations.millis("redis.connectTimeout", bad, "1 second"))
        assert.instanceOf(error, InvalidConfig)
        assert.strictEqual(error.field, "redis.connectTimeout")
      }
      assert.instanceOf(Durations.millisOrError("x", -1, "1 second", { allowZero: true }), InvalidConfig)
    })
  )
})
