import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { EngineNotConfigured } from "../../src/Errors.ts"
import { OPEN } from "../../src/internal/breaker.ts"
import { checkHealth } from "../../src/internal/health.ts"
import { withState } from "../fixtures/State.ts"

describe("health", () => {
  it.effect("pings a project's engine, reports health changes once, and failed pings open the target's breaker", () =>
    withState(({ g, project, server }) =>
      Effect.gen(function* () {
        const pe = yield* project("acme")
        assert.deepInclude(yield* checkHealth(g, "acme", "redis"), { projectId: "acme", healthy: true })
        server.down = true
        for (let i = 0; i < 10; i++) {
          const result = yield* checkHealth(g, "acme", "redis")
          assert.isFalse(result.healthy)
          assert.isString(result.error)
        }
        const changes = g.events.recent().filter((e) => e._tag === "HealthChanged")
        assert.deepStrictEqual(
          changes.map((e) => (e as { healthy: boolean }).healthy),
          [true, false]
        )
        assert.strictEqual(pe.ts.breaker.state, OPEN, "10 failed pings in the window open the target's breaker")
      })
    )
  )

  it.effect("an engine the project has no database for is EngineNotConfigured", () =>
    withState(({ g, project }) =>
      Effect.gen(function* () {
        yield* project("acme")
        const error = yield* Effect.flip(checkHealth(g, "acme", "postgres"))
        assert.instanceOf(error, EngineNotConfigured)
      })
    )
  )
})
