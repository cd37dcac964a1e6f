/**
 * The engine's options, checked when its layer is built (no server needed): a duration that is not one is a typed
 * `InvalidConfig` naming the option, not an exception thrown later from inside a pool.
 */
import { assert, describe, it } from "@effect/vitest"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Tenancy from "@tenantpool/core/Tenancy"
import * as PgEngine from "../src/PgEngine.ts"

const build = (options: PgEngine.Options) =>
  Layer.build(PgEngine.layer(options).pipe(Layer.provide(Tenancy.layerMemory({ healthCheckInterval: 0 }))))

describe("PgEngine options", () => {
  it.effect("a duration, count or share option that is not one fails the layer with InvalidConfig naming it", () =>
    Effect.gen(function* () {
      const cases: ReadonlyArray<readonly [string, PgEngine.Options]> = [
        ["postgres.idleTimeout", { idleTimeout: -1 }],
        ["postgres.connectTimeout", { connectTimeout: Number.NaN }],
        ["postgres.connectionTTL", { connectionTTL: "soon" as Duration.Input }],
        ["postgres.keepAlive", { keepAlive: -5 }],
        ["postgres.resizeInterval", { resizeInterval: "0 millis" }],
        ["postgres.slowStatement", { slowStatement: "slow" as Duration.Input }],
        ["postgres.multiplexConcurrency", { multiplexConcurrency: 0 }],
        ["postgres.maxConnections", { maxConnections: 1.5 }],
        ["postgres.targetCapacity", { targetCapacity: Number.NaN }],
        ["postgres.serverShare", { serverShare: 2 }]
      ]
      for (const [field, options] of cases) {
        const error = yield* Effect.flip(build(options))
        assert.strictEqual(error._tag, "InvalidConfig")
        assert.strictEqual(error._tag === "InvalidConfig" ? error.field : undefined, field)
      }
    })
  )

  it.effect("valid durations, zero keep-alive included, build the engine", () =>
    Effect.gen(function* () {
      const context = yield* build({ idleTimeout: "30 seconds", keepAlive: 0, connectionTTL: "1 hour" })
      assert.isDefined(context)
    })
  )
})
