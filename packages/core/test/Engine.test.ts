import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import { Engine, engines } from "../src/Engine.ts"

describe("Engine", () => {
  it.effect("accepts the three engines and rejects others", () =>
    Effect.gen(function* () {
      for (const e of engines) assert.strictEqual(yield* Schema.decodeUnknownEffect(Engine)(e), e)
      const err = yield* Effect.flip(Schema.decodeUnknownEffect(Engine)("mysql"))
      assert.include(err.message, "postgres")
    })
  )
})
