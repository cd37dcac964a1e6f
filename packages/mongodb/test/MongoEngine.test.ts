/**
 * The engine's options, checked when its layer is built (no server needed): a duration that is not one is a typed
 * `InvalidConfig` naming the option, before any client exists.
 */
import { assert, describe, it } from "@effect/vitest"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { InvalidConfig } from "@tenantpool/core/Errors"
import * as Tenancy from "@tenantpool/core/Tenancy"
import * as MongoEngine from "../src/MongoEngine.ts"

// Builds the engine's layer with `options` and a factory that counts the clients it is asked for.
const build = (options: MongoEngine.Options) => {
  let clients = 0
  const factory: MongoEngine.ClientFactory = () => {
    clients++
    throw new Error("no client in this test")
  }
  return Layer.build(MongoEngine.layerWith(factory, options)).pipe(
    Effect.provide(Tenancy.layerMemory({ healthCheckInterval: 0 })),
    Effect.scoped,
    Effect.exit,
    Effect.map((exit) => ({ exit, clients }))
  )
}

describe("MongoEngine options", () => {
  const bad: ReadonlyArray<readonly [string, MongoEngine.Options, string]> = [
    ["negative", { retireTimeout: -1 }, "mongodb.retireTimeout"],
    ["not a duration", { maxIdleTime: "soon" as Duration.Input }, "mongodb.maxIdleTime"],
    ["zero where it means nothing", { serverSelectionTimeout: 0 }, "mongodb.serverSelectionTimeout"],
    ["infinite", { healthCheckTimeout: Infinity }, "mongodb.healthCheckTimeout"],
    ["a bad optional one", { heartbeatFrequency: -5 }, "mongodb.heartbeatFrequency"]
  ]
  for (const [label, options, field] of bad) {
    it.effect(`a duration option that is ${label} fails the layer with InvalidConfig naming it`, () =>
      Effect.gen(function* () {
        const { exit, clients } = yield* build(options)
        assert.isTrue(exit._tag === "Failure", "the layer did not build")
        const error = exit._tag === "Failure" ? exit.cause.reasons[0] : undefined
        assert.strictEqual(error?._tag, "Fail", "a typed failure, not a defect")
        const value = error?._tag === "Fail" ? error.error : undefined
        assert.instanceOf(value, InvalidConfig)
        assert.strictEqual((value as InvalidConfig).field, field)
        assert.strictEqual(clients, 0, "no client was made")
      })
    )
  }

  it.effect("zero is accepted where the driver reads it as no limit", () =>
    Effect.gen(function* () {
      const { exit, clients } = yield* build({
        maxIdleTime: 0,
        waitQueueTimeout: 0,
        connectTimeout: 0,
        retireTimeout: 0
      })
      assert.strictEqual(exit._tag, "Success")
      assert.strictEqual(clients, 0, "clients are made on first use, not when the layer is built")
    })
  )
})
