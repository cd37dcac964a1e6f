import { assert, describe, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import { TestClock } from "effect/testing"
import * as Coordination from "../src/Coordination.ts"
import { MemoryRegistry } from "../src/Registry.ts"
import * as Target from "../src/Target.ts"
import * as Tenancy from "../src/Tenancy.ts"
import * as Fake from "./fixtures/FakeEngine.ts"

const url = "redis://cache.internal:6379/0"

// One "process": a tenancy service of its own over the shared fake server.
const process = (server: Fake.FakeServer) =>
  Effect.gen(function* () {
    const context = yield* Layer.build(Tenancy.layerMemory({ healthCheckInterval: 0, shutdownTimeout: 0 }))
    const tenancy = Context.get(context, Tenancy.Tenancy)
    const registry = Context.get(context, MemoryRegistry)
    yield* registry.register({ id: "acme", tier: "FREE", redis: url })
    const engine = yield* tenancy.register(Fake.adapter(server))
    const get = engine.runEffect(Fake.get, Fake.op(server, 100)).pipe(tenancy.withProject("acme"))
    // Writes are not retried: one call, one outcome, no retry delays to drive.
    const set = engine.runEffect(Fake.set, Fake.op(server, 0)).pipe(tenancy.withProject("acme"))
    return { tenancy, get, set }
  })

const targetId = Target.id(Target.parseSync("redis", url))

describe("Coordination", () => {
  it.effect("a breaker opened in one process opens in the others until the same time; the reporter probes", () =>
    Effect.gen(function* () {
      const server = Fake.makeServer()
      const a = yield* process(server)
      const b = yield* process(server)
      for (const p of [a, b]) {
        const f = yield* Effect.forkChild(p.get)
        yield* TestClock.adjust(100)
        yield* Fiber.join(f)
      }
      yield* Coordination.onBreakerChange(
        a.tenancy,
        (change) => void Effect.runSync(Coordination.applyBreaker(b.tenancy, change))
      )
      const demand = yield* Coordination.targets(a.tenancy)
      assert.deepInclude(demand[0], { engine: "redis", targetId, breaker: "closed", inFlight: 0 })

      server.down = true
      for (let i = 0; i < 10; i++) yield* Effect.ignore(a.set)
      assert.strictEqual((yield* Coordination.targets(b.tenancy))[0]!.breaker, "open", "b learned it at once")
      const refused = yield* Effect.flip(b.set)
      assert.deepInclude(refused, { _tag: "CircuitOpen", scope: "target" })
      const pings = server.pings
      yield* TestClock.adjust("2 seconds")
      assert.strictEqual(server.pings, pings + 1, "one ping: the reporter's, not one per process")
      server.down = false
      yield* TestClock.adjust("2 seconds")
      assert.strictEqual((yield* Coordination.targets(a.tenancy))[0]!.breaker, "closed")
      assert.strictEqual((yield* Coordination.targets(b.tenancy))[0]!.breaker, "closed", "closed on a's report")
    }).pipe(Effect.scoped, Effect.provideService(Metric.MetricRegistry, new Map()))
  )

  it.effect("setCapacity caps the operations a process runs at once against a target", () =>
    Effect.gen(function* () {
      const server = Fake.makeServer()
      const a = yield* process(server)
      const warm = yield* Effect.forkChild(a.get)
      yield* TestClock.adjust(100)
      yield* Fiber.join(warm)
      assert.isTrue(yield* Coordination.setCapacity(a.tenancy, "redis", targetId, 2))
      const fibers = yield* Effect.forEach(Array.from({ length: 6 }), () => Effect.forkChild(a.get))
      yield* Effect.yieldNow
      assert.strictEqual(server.running, 2)
      assert.deepInclude((yield* Coordination.targets(a.tenancy))[0], { inFlight: 2, queued: 4, capacity: 2 })
      yield* Coordination.setCapacity(a.tenancy, "redis", targetId, undefined)
      assert.strictEqual(server.running, 6, "a raised cap admits the waiting at once")
      yield* TestClock.adjust(100)
      yield* Fiber.joinAll(fibers)
      assert.isFalse(yield* Coordination.setCapacity(a.tenancy, "redis", "unknown", 1))
    }).pipe(Effect.scoped, Effect.provideService(Metric.MetricRegistry, new Map()))
  )
})
