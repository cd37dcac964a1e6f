import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import { TestClock } from "effect/testing"
import type { ProjectId } from "../src/ProjectId.ts"
import * as Registry from "../src/Registry.ts"
import * as Tenancy from "../src/Tenancy.ts"
import * as Fake from "./fixtures/FakeEngine.ts"
import * as H from "./fixtures/Harness.ts"

const id = (s: string) => s as ProjectId

// The in-memory registry behind a counter (and, optionally, a lookup latency on the TestClock).
const counting = (latencyMillis = 0) =>
  Effect.gen(function* () {
    const { memory, registry } = yield* Registry.makeMemory()
    const counter = { lookups: 0 }
    const backing = Registry.ProjectRegistry.of({
      lookup: (projectId) =>
        Effect.suspend(() => {
          counter.lookups++
          return latencyMillis > 0
            ? Effect.andThen(Effect.sleep(latencyMillis), registry.lookup(projectId))
            : registry.lookup(projectId)
        }),
      subscribe: registry.subscribe
    })
    return { memory, backing, counter }
  })

describe("Registry", () => {
  it.effect("an unknown project fails with ProjectNotFound", () =>
    Effect.gen(function* () {
      const { registry, memory } = yield* Registry.makeMemory()
      const error = yield* Effect.flip(registry.lookup(id("ghost")))
      assert.strictEqual(error._tag, "ProjectNotFound")
      assert.strictEqual(error.projectId, "ghost")
      assert.include(error.message, '"ghost" is not registered')
      yield* memory.register({ id: "acme", tier: "PRO", redis: "redis://cache/0" })
      const found = yield* registry.lookup(id("acme"))
      assert.strictEqual(found.tier, "PRO")
      assert.strictEqual(found.targets.redis?.host, "cache")
      assert.isTrue(yield* memory.remove(id("acme")))
      assert.strictEqual((yield* Effect.flip(registry.lookup(id("acme"))))._tag, "ProjectNotFound")
      assert.isFalse(yield* memory.remove(id("acme")))
    })
  )

  it.effect("register validates the id and the connection strings", () =>
    Effect.gen(function* () {
      const { memory } = yield* Registry.makeMemory()
      assert.strictEqual((yield* Effect.flip(memory.register({ id: "Bad", tier: "FREE" })))._tag, "InvalidProjectId")
      const bad = yield* Effect.flip(memory.register({ id: "ok", tier: "FREE", postgres: "postgres://h:0/db" }))
      assert.strictEqual(bad._tag, "InvalidConnectionString")
      assert.strictEqual(yield* memory.size, 0)
    })
  )

  it.effect("register and put refuse what a hostile caller could pass past the types, and change nothing", () =>
    Effect.gen(function* () {
      const { memory, registry } = yield* Registry.makeMemory()
      const gold = yield* Effect.flip(memory.register({ id: "acme", tier: "GOLD" as never }))
      assert.deepInclude(gold, { _tag: "InvalidConfig", field: "tier" })
      for (const input of [null, undefined, "acme", 42]) {
        const error = yield* Effect.flip(memory.register(input as never))
        assert.strictEqual(error._tag, "InvalidConfig")
      }
      for (const cs of [42, {}, null, ["redis://h"]]) {
        const error = yield* Effect.flip(memory.register({ id: "acme", tier: "FREE", redis: cs as never }))
        assert.deepInclude(error, { _tag: "InvalidConnectionString", field: "connection string" })
      }
      const valid = yield* memory.register({ id: "beta", tier: "FREE" })
      const forged = yield* Effect.flip(memory.put({ ...valid, tier: "GOLD" as never }))
      assert.strictEqual(forged._tag, "InvalidConfig")
      assert.strictEqual(yield* memory.size, 1)
      assert.strictEqual((yield* registry.lookup(id("beta"))).tier, "FREE")
    })
  )

  it.effect("projects on one server share one interned target object", () =>
    Effect.gen(function* () {
      const { registry, memory } = yield* Registry.makeMemory()
      yield* memory.register({ id: "a", tier: "FREE", redis: "redis://:pw@cache/0" })
      yield* memory.register({ id: "b", tier: "FREE", redis: "redis://:pw@CACHE:6379/0" })
      const a = yield* registry.lookup(id("a"))
      const b = yield* registry.lookup(id("b"))
      assert.strictEqual(a.targets.redis, b.targets.redis)
    })
  )

  describe("cached", () => {
    it.effect("repeated lookups of an unknown id hit the backing store once within negativeTtl", () =>
      Effect.gen(function* () {
        const { backing, counter } = yield* counting()
        const cached = yield* Registry.cached(backing, { negativeTtl: "10 seconds" })
        for (let i = 0; i < 100; i++) {
          assert.strictEqual((yield* Effect.flip(cached.lookup(id("ghost"))))._tag, "ProjectNotFound")
        }
        assert.strictEqual(counter.lookups, 1)
        yield* TestClock.adjust("9 seconds")
        yield* Effect.flip(cached.lookup(id("ghost")))
        assert.strictEqual(counter.lookups, 1)
        yield* TestClock.adjust("1 second")
        yield* Effect.flip(cached.lookup(id("ghost")))
        assert.strictEqual(counter.lookups, 2, "asked again once the negative entry expired")
        yield* Effect.flip(cached.lookup(id("ghost")))
        assert.strictEqual(counter.lookups, 2)
      })
    )

    it.effect("a found project is served from the cache for ttl", () =>
      Effect.gen(function* () {
        const { backing, counter, memory } = yield* counting()
        yield* memory.register({ id: "acme", tier: "FREE", redis: "redis://cache/0" })
        const cached = yield* Registry.cached(backing, { ttl: "30 seconds" })
        for (let i = 0; i < 10; i++) assert.strictEqual((yield* cached.lookup(id("acme"))).tier, "FREE")
        assert.strictEqual(counter.lookups, 1)
        yield* TestClock.adjust("30 seconds")
        yield* cached.lookup(id("acme"))
        assert.strictEqual(counter.lookups, 2)
      })
    )

    it.effect("concurrent lookups share one backing call", () =>
      Effect.gen(function* () {
        const { backing, counter, memory } = yield* counting(50)
        yield* memory.register({ id: "acme", tier: "STARTER", redis: "redis://cache/0" })
        const cached = yield* Registry.cached(backing)
        const found = yield* Effect.forEach(Array.from({ length: 20 }), () => cached.lookup(id("acme")), {
          concurrency: "unbounded"
        }).pipe(Effect.forkChild)
        const missing = yield* Effect.forEach(
          Array.from({ length: 20 }),
          () => Effect.flip(cached.lookup(id("ghost"))),
          { concurrency: "unbounded" }
        ).pipe(Effect.forkChild)
        yield* TestClock.adjust(50)
        assert.isTrue((yield* Fiber.join(found)).every((c) => c.tier === "STARTER"))
        assert.isTrue((yield* Fiber.join(missing)).every((e) => e._tag === "ProjectNotFound"))
        assert.strictEqual(counter.lookups, 2, "one call per id")
      })
    )

    it.effect("an interrupted first caller does not break the shared lookup for the others", () =>
      Effect.gen(function* () {
        const { backing, counter, memory } = yield* counting(50)
        yield* memory.register({ id: "acme", tier: "STARTER", redis: "redis://cache/0" })
        const cached = yield* Registry.cached(backing)
        const first = yield* Effect.forkChild(cached.lookup(id("acme")))
        const second = yield* Effect.forkChild(cached.lookup(id("acme")))
        yield* Effect.yieldNow
        yield* Fiber.interrupt(first)
        yield* TestClock.adjust(50)
        assert.strictEqual((yield* Fiber.join(second)).tier, "STARTER")
        assert.strictEqual(counter.lookups, 1)
      })
    )

    it.effect("a change notification invalidates at once, positive and negative entries alike", () =>
      Effect.gen(function* () {
        const { backing, counter, memory } = yield* counting()
        yield* memory.register({ id: "acme", tier: "FREE", redis: "redis://cache/0" })
        const cached = yield* Registry.cached(backing, { ttl: "1 hour", negativeTtl: "1 hour" })
        const changes: Array<string> = []
        cached.subscribe((changed) => changes.push(changed))
        assert.strictEqual((yield* cached.lookup(id("acme"))).tier, "FREE")
        yield* Effect.flip(cached.lookup(id("newcomer")))
        yield* memory.register({ id: "acme", tier: "PRO", redis: "redis://cache/0" })
        yield* memory.register({ id: "newcomer", tier: "FREE", redis: "redis://cache/0" })
        assert.strictEqual((yield* cached.lookup(id("acme"))).tier, "PRO")
        assert.strictEqual((yield* cached.lookup(id("newcomer"))).tier, "FREE")
        assert.deepStrictEqual(changes, ["acme", "newcomer"], "subscribers of the cache hear of the change too")
        assert.strictEqual(counter.lookups, 4)
        yield* memory.remove(id("acme"))
        assert.strictEqual((yield* Effect.flip(cached.lookup(id("acme"))))._tag, "ProjectNotFound")
      })
    )

    it.effect("keeps at most `capacity` entries", () =>
      Effect.gen(function* () {
        const { backing, counter } = yield* counting()
        const cached = yield* Registry.cached(backing, { capacity: 100 })
        for (let i = 0; i < 1_000; i++) yield* Effect.flip(cached.lookup(id(`ghost-${i}`)))
        assert.strictEqual(counter.lookups, 1_000)
        // The newest 100 are still cached, the oldest were dropped.
        yield* Effect.flip(cached.lookup(id("ghost-999")))
        assert.strictEqual(counter.lookups, 1_000)
        yield* Effect.flip(cached.lookup(id("ghost-0")))
        assert.strictEqual(counter.lookups, 1_001)
      })
    )
  })

  describe("changes reach live projects", () => {
    it.effect("a registry change of tier applies to a live project without restart", () =>
      Effect.gen(function* () {
        const server = Fake.makeServer()
        const tenancy = yield* Tenancy.Tenancy
        const registry = yield* Registry.MemoryRegistry
        yield* registry.register({ id: "acme", tier: "FREE", redis: "redis://cache/0" })
        const engine = yield* tenancy.register(Fake.adapter(server, { policy: { attemptTimeout: "1 minute" } }))
        const burst = (n: number) =>
          Effect.forEach(Array.from({ length: n }), () =>
            engine.runEffect(Fake.get, Fake.op(server, 1_000)).pipe(tenancy.withProject("acme"), Effect.forkChild)
          )
        const first = yield* burst(30)
        yield* Effect.yieldNow
        assert.strictEqual(server.running, 20, "FREE: 20 at once")
        yield* TestClock.adjust("2 seconds")
        yield* Fiber.joinAll(first)

        // Again 30 at once on FREE: 20 run, 10 wait. Moving to PRO admits the waiters at once.
        const queued = yield* burst(30)
        yield* Effect.yieldNow
        assert.strictEqual((yield* tenancy.connections)[0]!.queued, 10)
        yield* registry.register({ id: "acme", tier: "PRO", redis: "redis://cache/0" })
        yield* Effect.yieldNow
        assert.strictEqual(server.running, 30, "the waiters were admitted by the change itself")
        yield* TestClock.adjust("1 second")
        yield* Fiber.joinAll(queued)
        const [meta] = yield* tenancy.connections
        assert.strictEqual(meta!.tier, "PRO")
        assert.strictEqual(server.bindingsCreated, 1, "same runtime, same binding")
        server.peak = 0
        const second = yield* burst(150)
        yield* Effect.yieldNow
        assert.strictEqual(server.running, 150, "PRO: 200 at once")
        yield* TestClock.adjust("1 second")
        yield* Fiber.joinAll(second)
      }).pipe(H.provide())
    )

    it.effect("a changed target retires the old binding once its work drains", () =>
      Effect.gen(function* () {
        const server = Fake.makeServer()
        const tenancy = yield* Tenancy.Tenancy
        const registry = yield* Registry.MemoryRegistry
        yield* registry.register({ id: "acme", tier: "FREE", redis: "redis://old-cache/0" })
        const engine = yield* tenancy.register(Fake.adapter(server, { policy: { attemptTimeout: "1 minute" } }))
        const targetOf = engine.binding.pipe(
          Effect.map(({ binding }) => binding.target.host),
          tenancy.withProject("acme")
        )
        assert.strictEqual(yield* targetOf, "old-cache")
        const slow = yield* engine
          .runEffect(Fake.get, Fake.op(server, 5_000))
          .pipe(tenancy.withProject("acme"), Effect.forkChild)
        yield* Effect.yieldNow

        yield* registry.register({ id: "acme", tier: "FREE", redis: "redis://new-cache/0" })
        assert.strictEqual(yield* targetOf, "new-cache", "new calls go to the new target at once")
        assert.strictEqual(server.bindings, 2, "the old binding lives while its work runs")

        yield* TestClock.adjust("5 seconds")
        assert.strictEqual(yield* Fiber.join(slow), "ok")
        assert.strictEqual(server.usedClosed, 0)
        yield* TestClock.adjust("30 seconds") // one sweep
        assert.strictEqual(server.bindings, 1, "the old binding is freed after the drain")
        const closed = (yield* tenancy.recentEvents).filter((e) => e._tag === "PoolClosed")
        assert.deepStrictEqual(
          closed.map((e) => (e._tag === "PoolClosed" ? [e.target, e.reason] : [])),
          [["redis://old-cache:6379/0", "config-changed"]]
        )
        assert.strictEqual((yield* tenancy.connections)[0]!.target, "redis://new-cache:6379/0")
      }).pipe(H.provide())
    )

    it.effect("a project removed from the registry stops being found and is freed once idle", () =>
      Effect.gen(function* () {
        const server = Fake.makeServer()
        const tenancy = yield* Tenancy.Tenancy
        const registry = yield* Registry.MemoryRegistry
        const config = yield* registry.register({ id: "acme", tier: "FREE", redis: "redis://cache/0" })
        const engine = yield* tenancy.register(Fake.adapter(server))
        const run = engine.runEffect(Fake.get, Fake.op(server, 0)).pipe(tenancy.withProject("acme"))
        assert.strictEqual(yield* run, "ok")
        assert.strictEqual(server.bindings, 1)
        yield* registry.remove(config.id)
        yield* Effect.yieldNow
        assert.strictEqual(server.bindings, 0)
        assert.strictEqual((yield* Effect.flip(run))._tag, "ProjectNotFound")
      }).pipe(H.provide())
    )
  })
})
