import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import { TestClock } from "effect/testing"
import { MemoryRegistry } from "../src/Registry.ts"
import * as Tenancy from "../src/Tenancy.ts"
import * as Fake from "./fixtures/FakeEngine.ts"

const setup = (options?: Parameters<typeof Tenancy.layerMemory>[0]) =>
  Effect.provide(Tenancy.layerMemory({ healthCheckInterval: 0, ...options }))

describe("Tenancy", () => {
  it.effect("runs an operation for the current project and frees the project after 5 idle minutes", () =>
    Effect.gen(function* () {
      const server = Fake.makeServer()
      const tenancy = yield* Tenancy.Tenancy
      const registry = yield* MemoryRegistry
      yield* registry.register({ id: "acme", tier: "FREE", redis: "redis://127.0.0.1:6379/0" })
      const engine = yield* tenancy.register(Fake.adapter(server))
      const get = { name: "get", idempotent: true } as const
      const result = yield* engine
        .runEffect(get, Fake.op(server, 5))
        .pipe(tenancy.withProject("acme"), Effect.forkChild)
      yield* TestClock.adjust("5 millis")
      assert.strictEqual(yield* Fiber.join(result), "ok")
      assert.strictEqual(server.bindings, 1)
      assert.strictEqual((yield* tenancy.stats).liveProjects, 1)
      yield* TestClock.adjust("4 minutes")
      assert.strictEqual(server.bindings, 1)
      yield* TestClock.adjust("2 minutes")
      assert.strictEqual(server.bindings, 0)
      assert.strictEqual((yield* tenancy.stats).liveProjects, 0)
    }).pipe(setup())
  )
})
