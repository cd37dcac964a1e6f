import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { MemoryRegistry } from "@tenantpool/core/Registry"
import * as Tenancy from "@tenantpool/core/Tenancy"
import * as TestServers from "@tenantpool/testing/TestServers"
import { RedisEngine } from "../src/RedisEngine.ts"
import * as RedisEngineModule from "../src/RedisEngine.ts"

const layer = RedisEngineModule.layer().pipe(Layer.provideMerge(Tenancy.layerMemory({ healthCheckInterval: 0 })))

describe("RedisEngine", () => {
  it.live("sets and gets through the guard for the current project", () =>
    Effect.gen(function* () {
      const url = TestServers.url("redis")
      const registry = yield* MemoryRegistry
      yield* registry.register({ id: "smoke-a", tier: "PRO", redis: url })
      const redis = yield* RedisEngine
      const tenancy = yield* Tenancy.Tenancy
      const got = yield* Effect.gen(function* () {
        yield* redis.set("k", "v1", { ttl: "1 minute" })
        return yield* redis.get("k")
      }).pipe(tenancy.withProject("smoke-a"))
      assert.strictEqual(got, "v1")
    }).pipe(Effect.provide(layer))
  )
})
