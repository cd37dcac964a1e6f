import { assert, describe, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Result from "effect/Result"
import * as Scope from "effect/Scope"
import { TestClock } from "effect/testing"
import { CurrentProject } from "../src/CurrentProject.ts"
import * as Registry from "../src/Registry.ts"
import { MemoryRegistry } from "../src/Registry.ts"
import * as Tenancy from "../src/Tenancy.ts"
import * as Tier from "../src/Tier.ts"
import * as Fake from "./fixtures/FakeEngine.ts"
import * as H from "./fixtures/Harness.ts"

const setup = Effect.gen(function* () {
  const server = Fake.makeServer()
  const tenancy = yield* Tenancy.Tenancy
  const engine = yield* tenancy.register(Fake.adapter(server))
  const run = (project: string, millis = 0) =>
    engine.runEffect(Fake.get, Fake.op(server, millis)).pipe(tenancy.withProject(project))
  return { server, tenancy, engine, run }
})

describe("Lifecycle", () => {
  describe("idle eviction", () => {
    it.effect("frees an idle project's runtime after 5 minutes (30 s sweeps), not before", () =>
      Effect.gen(function* () {
        const { server, tenancy, run } = yield* setup
        yield* H.registerAll(["acme"], "FREE")
        assert.strictEqual(yield* run("acme"), "ok")
        assert.strictEqual(server.bindings, 1)
        yield* TestClock.adjust("4 minutes")
        assert.strictEqual(server.bindings, 1)
        yield* TestClock.adjust("59 seconds")
        assert.strictEqual(server.bindings, 1, "alive at 4 min 59 s")
        assert.strictEqual((yield* tenancy.stats).liveProjects, 1)
        yield* TestClock.adjust("31 seconds")
        assert.strictEqual(server.bindings, 0, "gone by 5 min 30 s")
        const stats = yield* tenancy.stats
        assert.deepInclude(stats, { liveProjects: 0, liveTargets: 0, inFlight: 0 })
        const events = (yield* tenancy.recentEvents).filter(
          (e) => e._tag === "PoolClosed" || e._tag === "ProjectEvicted"
        )
        assert.deepStrictEqual(
          events.map((e) => [e._tag, "reason" in e ? e.reason : undefined, e.at]),
          [
            ["PoolClosed", "idle", 300_000],
            ["ProjectEvicted", "idle", 300_000]
          ]
        )
        // It comes back on the next call, with a fresh binding.
        assert.strictEqual(yield* run("acme"), "ok")
        assert.deepStrictEqual([server.bindings, server.bindingsCreated], [1, 2])
      }).pipe(H.provide())
    )

    it.effect("counts idle time from the end of the last operation", () =>
      Effect.gen(function* () {
        const { server, run } = yield* setup
        yield* H.registerAll(["acme"], "PRO")
        const long = yield* Effect.forkChild(run("acme", 50_000))
        yield* TestClock.adjust("50 seconds")
        assert.strictEqual(yield* Fiber.join(long), "ok")
        yield* TestClock.adjust("4 minutes")
        assert.strictEqual(server.bindings, 1, "busy for 50 s, then idle for 4 min: still alive")
        yield* TestClock.adjust("90 seconds")
        assert.strictEqual(server.bindings, 0)
      }).pipe(H.provide({ breakers: { redis: { attemptTimeout: "1 minute" } } }))
    )

    it.effect("never evicts a project with work in flight", () =>
      Effect.gen(function* () {
        const { server, run } = yield* setup
        yield* H.registerAll(["acme"], "ENTERPRISE")
        // Idle timeout 10 s, one call running for 110 s: eleven sweeps find the project busy.
        const long = yield* Effect.forkChild(run("acme", 110_000))
        yield* TestClock.adjust("110 seconds")
        assert.strictEqual(yield* Fiber.join(long), "ok")
        assert.deepStrictEqual([server.bindings, server.bindingsCreated, server.usedClosed], [1, 1, 0])
        yield* TestClock.adjust("30 seconds")
        assert.strictEqual(server.bindings, 0, "and frees it once idle")
      }).pipe(
        H.provide({
          breakers: { redis: { attemptTimeout: "2 minutes" } },
          tiers: { ENTERPRISE: { idleTimeout: "10 seconds" } }
        })
      )
    )

    it.effect("keeps an idle project whose breaker is open, so the open circuit is not forgotten", () =>
      Effect.gen(function* () {
        const server = Fake.makeServer()
        const tenancy = yield* Tenancy.Tenancy
        const engine = yield* tenancy.register(
          Fake.adapter(server, { engine: "mongodb", policy: { resetTimeout: "3 minutes", activeProbe: false } })
        )
        yield* H.registerAll(["acme"], "FREE", "mongodb://mongo/acme", "mongodb")
        const run = engine.runEffect(Fake.set, Fake.op(server, 0)).pipe(tenancy.withProject("acme"), Effect.result)
        server.down = true
        for (let i = 0; i < 10; i++) yield* run
        assert.strictEqual(yield* tenancy.breakerState("acme", "mongodb"), "open")
        yield* TestClock.adjust("90 seconds") // idle for longer than FREE's 1 minute
        assert.strictEqual(yield* tenancy.breakerState("acme", "mongodb"), "open")
        const calls = server.calls
        const refused = yield* run
        assert.strictEqual(Result.isFailure(refused) && refused.failure._tag, "CircuitOpen")
        assert.strictEqual(server.calls, calls, "the dead server was not called again")
        // Once the open time is over, the idle project goes as usual.
        yield* TestClock.adjust("3 minutes")
        assert.strictEqual((yield* tenancy.stats).liveProjects, 0)
      }).pipe(H.provide({ tiers: { FREE: { idleTimeout: "1 minute" } } }))
    )

    it.effect("honours a per-tier idleTimeout override", () =>
      Effect.gen(function* () {
        const { server, tenancy, run } = yield* setup
        yield* H.registerAll(["cheap"], "FREE")
        yield* H.registerAll(["paying"], "PRO")
        yield* run("cheap")
        yield* run("paying")
        assert.strictEqual(server.bindings, 2)
        yield* TestClock.adjust("59 seconds")
        assert.strictEqual(server.bindings, 2)
        yield* TestClock.adjust("31 seconds")
        assert.deepStrictEqual(
          (yield* tenancy.connections).map((c) => c.projectId),
          ["paying"],
          "FREE (1 minute) is gone, PRO (default 5 minutes) is not"
        )
        yield* TestClock.adjust("4 minutes")
        assert.strictEqual(server.bindings, 0)
      }).pipe(H.provide({ tiers: { FREE: { idleTimeout: "1 minute" } } }))
    )
  })

  describe("closeIdleConnections", () => {
    it.effect("returns how many (project, engine) connections it closed, and closes only unused ones", () =>
      Effect.gen(function* () {
        const { server: redis, tenancy, engine: redisEngine, run } = yield* setup
        const pg = Fake.makeServer()
        const pgEngine = yield* tenancy.register(Fake.adapter(pg, { engine: "postgres" }))
        const registry = yield* MemoryRegistry
        yield* registry.register({ id: "both", tier: "FREE", redis: "redis://cache/0", postgres: "postgres://db/both" })
        yield* H.registerAll(["old", "recent", "busy"], "FREE")
        yield* redisEngine.runEffect(Fake.get, Fake.op(redis, 0)).pipe(tenancy.withProject("both"))
        yield* pgEngine.runEffect(Fake.get, Fake.op(pg, 0)).pipe(tenancy.withProject("both"))
        yield* run("old")
        yield* TestClock.adjust("3 minutes")
        yield* run("recent")
        const busy = yield* Effect.forkChild(run("busy", 900))
        yield* Effect.yieldNow
        assert.deepStrictEqual([redis.bindings, pg.bindings], [4, 1])

        assert.strictEqual(yield* tenancy.closeIdleConnections(), 0, "nothing idle for its tier's 5 minutes")
        assert.strictEqual(yield* tenancy.closeIdleConnections({ idleFor: "2 minutes" }), 3, "both (2) and old (1)")
        assert.deepStrictEqual([redis.bindings, pg.bindings], [2, 0])
        assert.strictEqual(yield* tenancy.closeIdleConnections({ idleFor: 0 }), 1, "recent; busy is in use")
        assert.strictEqual(redis.bindings, 1)
        yield* TestClock.adjust(900)
        assert.strictEqual(yield* Fiber.join(busy), "ok")
        assert.strictEqual(redis.usedClosed, 0)
        assert.strictEqual(yield* tenancy.closeIdleConnections({ idleFor: 0 }), 1)
        assert.deepStrictEqual([redis.bindings, pg.bindings], [0, 0])
        const reasons = (yield* tenancy.recentEvents).flatMap((e) => (e._tag === "PoolClosed" ? [e.reason] : []))
        assert.deepStrictEqual(reasons, Array(5).fill("closeIdleConnections"))
      }).pipe(H.provide())
    )

    it.effect("keeps a project held by withProject even when it has no call running", () =>
      Effect.gen(function* () {
        const { server, tenancy, engine } = yield* setup
        yield* H.registerAll(["acme"], "FREE")
        yield* Effect.gen(function* () {
          yield* engine.runEffect(Fake.get, Fake.op(server, 0))
          assert.strictEqual(yield* tenancy.closeIdleConnections({ idleFor: 0 }), 0)
          assert.strictEqual(yield* engine.runEffect(Fake.get, Fake.op(server, 0)), "ok")
        }).pipe(tenancy.withProject("acme"))
        assert.strictEqual(server.usedClosed, 0)
        assert.strictEqual(yield* tenancy.closeIdleConnections({ idleFor: 0 }), 1)
      }).pipe(H.provide())
    )
  })

  describe("a request racing an eviction", () => {
    it.effect("a captured CurrentProject used after its runtime was evicted gets a fresh runtime", () =>
      Effect.gen(function* () {
        const { server, tenancy, engine } = yield* setup
        yield* H.registerAll(["acme"], "FREE")
        const handle = yield* CurrentProject.pipe(tenancy.withProject("acme"))
        yield* engine.runEffect(Fake.get, Fake.op(server, 0)).pipe(Effect.provideService(CurrentProject, handle))
        assert.strictEqual(yield* tenancy.closeIdleConnections({ idleFor: 0 }), 1)
        assert.strictEqual(server.bindings, 0)
        const result = yield* engine
          .runEffect(Fake.get, Fake.op(server, 0))
          .pipe(Effect.provideService(CurrentProject, handle))
        assert.strictEqual(result, "ok")
        assert.deepStrictEqual([server.bindings, server.bindingsCreated, server.usedClosed], [1, 2, 0])
        assert.strictEqual((yield* tenancy.stats).liveProjects, 1)
      }).pipe(H.provide())
    )

    it.effect("a fiber forked inside withProject that outlives it runs on a fresh binding after idle eviction", () =>
      Effect.gen(function* () {
        const { server, tenancy, engine } = yield* setup
        yield* H.registerAll(["acme"], "FREE")
        const late = yield* Effect.gen(function* () {
          yield* engine.runEffect(Fake.get, Fake.op(server, 0))
          return yield* Effect.forkDetach(
            Effect.andThen(Effect.sleep("10 minutes"), engine.runEffect(Fake.get, Fake.op(server, 0)))
          )
        }).pipe(tenancy.withProject("acme"))
        yield* TestClock.adjust("6 minutes")
        assert.strictEqual(server.bindings, 0, "evicted while the fiber slept")
        yield* TestClock.adjust("4 minutes")
        assert.strictEqual(yield* Fiber.join(late), "ok")
        assert.deepStrictEqual([server.bindingsCreated, server.usedClosed], [2, 0])
      }).pipe(H.provide())
    )
  })

  describe("idle cost", () => {
    it.effect("10,000 registered idle projects create no runtime, no binding and no timer", () =>
      Effect.gen(function* () {
        const { server, tenancy, run } = yield* setup
        yield* H.registerAll(H.ids("p", 10_000), "FREE")
        const idle = { liveProjects: 0, liveTargets: 0, inFlight: 0, pendingDeadlines: 0, timerArmed: false }
        assert.deepInclude(yield* tenancy.stats, idle)
        yield* TestClock.adjust("10 minutes")
        assert.deepInclude(yield* tenancy.stats, idle)
        assert.strictEqual(server.bindings, 0)
        // After some work, once its attempt timeouts have passed, the shared timer is gone again.
        for (let i = 0; i < 100; i++) yield* run(`p-${i}`)
        assert.deepInclude(yield* tenancy.stats, { inFlight: 0, pendingDeadlines: 0 })
        yield* TestClock.adjust("1 second")
        assert.deepInclude(yield* tenancy.stats, { inFlight: 0, pendingDeadlines: 0, timerArmed: false })
      }).pipe(H.provide())
    )
  })

  describe("shutdown", () => {
    // The service in a scope of the test's own, so that closing it (shutdown) can be observed.
    const build = (options: H.LayerOptions, tier: "FREE" | "ENTERPRISE" = "FREE") =>
      Effect.gen(function* () {
        const scope = yield* Scope.make()
        const context = yield* Layer.buildWithScope(
          Tenancy.layerMemory({ healthCheckInterval: 0, ...options }),
          scope
        ).pipe(Effect.provideService(Metric.MetricRegistry, new Map()))
        const tenancy = Context.get(context, Tenancy.Tenancy)
        const registry = Context.get(context, MemoryRegistry)
        yield* registry.register({ id: "acme", tier, redis: "redis://cache/0" })
        yield* registry.register({ id: "idle", tier, redis: "redis://cache/1" })
        const server = Fake.makeServer()
        const engine = yield* tenancy.register(Fake.adapter(server, { policy: { attemptTimeout: "10 minutes" } }))
        const run = (project: string, millis: number) =>
          engine.runEffect(Fake.get, Fake.op(server, millis)).pipe(tenancy.withProject(project), Effect.result)
        const shutdown = Effect.forkChild(Scope.close(scope, Exit.void))
        return { server, tenancy, engine, run, shutdown }
      })

    it.effect("stops listening to a registry and a tier table that outlive it", () =>
      Effect.gen(function* () {
        const { registry, memory } = yield* Registry.makeMemory()
        const tiers = yield* Tier.make()
        const listeners = { registry: 0, tiers: 0 }
        const countedRegistry = Registry.ProjectRegistry.of({
          lookup: registry.lookup,
          subscribe: (listener) => {
            listeners.registry++
            const off = registry.subscribe(listener)
            return () => {
              listeners.registry--
              off()
            }
          }
        })
        const countedTiers = Tier.Tiers.of({
          ...tiers,
          onChange: (listener) => {
            listeners.tiers++
            const off = tiers.onChange(listener)
            return () => {
              listeners.tiers--
              off()
            }
          }
        })
        const scope = yield* Scope.make()
        yield* Layer.buildWithScope(Tenancy.layer({ healthCheckInterval: 0 }), scope).pipe(
          Effect.provideService(Registry.ProjectRegistry, countedRegistry),
          Effect.provideService(Tier.Tiers, countedTiers),
          Effect.provideService(Metric.MetricRegistry, new Map())
        )
        assert.deepStrictEqual(listeners, { registry: 1, tiers: 1 })
        yield* Scope.close(scope, Exit.void)
        assert.deepStrictEqual(listeners, { registry: 0, tiers: 0 })
        yield* memory.register({ id: "later", tier: "FREE", redis: "redis://cache/0" })
      })
    )

    it.effect("waits for in-flight work, rejects new work with ShuttingDown, and frees every binding", () =>
      Effect.gen(function* () {
        const { server, tenancy, run, shutdown } = yield* build({ shutdownTimeout: "10 seconds" })
        yield* run("idle", 0)
        const inFlight = yield* Effect.forkChild(run("acme", 800))
        yield* Effect.yieldNow
        assert.strictEqual(server.bindings, 2)

        const closing = yield* shutdown
        yield* Effect.yieldNow
        assert.isFalse(H.isDone(closing), "waiting for the in-flight call")
        const rejected = yield* run("acme", 0)
        assert.strictEqual(Result.isFailure(rejected) && rejected.failure._tag, "ShuttingDown")
        assert.include(Result.isFailure(rejected) ? rejected.failure.message : "", "shutting down")
        assert.strictEqual(server.bindings, 2)

        yield* TestClock.adjust(800)
        assert.isTrue(Result.isSuccess(yield* Fiber.join(inFlight)), "the in-flight call completed")
        yield* Fiber.join(closing)
        assert.deepStrictEqual([server.bindings, server.running, server.usedClosed], [0, 0, 0])
        const reasons = (yield* tenancy.recentEvents).flatMap((e) => (e._tag === "PoolClosed" ? [e.reason] : []))
        assert.deepStrictEqual(reasons, ["shutdown", "shutdown"])
        assert.deepInclude(yield* tenancy.stats, { liveProjects: 0, inFlight: 0 })
      })
    )

    it.effect("stops waiting after shutdownTimeout; work still running then is abandoned, not left hanging", () =>
      Effect.gen(function* () {
        const { server, tenancy, run, shutdown } = yield* build({ shutdownTimeout: "5 seconds" }, "ENTERPRISE")
        const stuck = yield* Effect.forkChild(run("acme", 60_000))
        yield* Effect.yieldNow
        const closing = yield* shutdown
        yield* TestClock.adjust("5 seconds")
        assert.isTrue(H.isDone(closing), "shutdown took shutdownTimeout, no longer")
        assert.strictEqual(server.bindings, 0)
        yield* Effect.yieldNow
        assert.isTrue(H.isDone(stuck), "the caller was not left waiting on a closed binding")
        const result = yield* Fiber.join(stuck)
        assert.strictEqual(Result.isFailure(result) && result.failure._tag, "ShuttingDown")
        assert.deepStrictEqual([server.running, server.usedClosed], [0, 0])
        assert.deepInclude(yield* tenancy.stats, { inFlight: 0, pendingDeadlines: 0, timerArmed: false })
      })
    )

    it.effect(
      "a call still queued when shutdown begins is refused with ShuttingDown, never run on a closed binding",
      () =>
        Effect.gen(function* () {
          const { server, tenancy, run, shutdown } = yield* build({
            shutdownTimeout: "10 seconds",
            tiers: { FREE: { maxConcurrent: 1 } }
          })
          const first = yield* Effect.forkChild(run("acme", 1_000))
          const queued = yield* Effect.forkChild(run("acme", 1_000))
          yield* Effect.yieldNow
          assert.strictEqual((yield* tenancy.connections)[0]!.queued, 1)
          const closing = yield* shutdown
          yield* TestClock.adjust("1 second")
          assert.isTrue(Result.isSuccess(yield* Fiber.join(first)))
          yield* TestClock.adjust("1 second")
          yield* Fiber.join(closing)
          const second = yield* Fiber.join(queued)
          assert.strictEqual(Result.isFailure(second) && second.failure._tag, "ShuttingDown")
          assert.deepStrictEqual([server.bindings, server.running, server.usedClosed, server.calls], [0, 0, 0, 1])
          assert.deepInclude(yield* tenancy.stats, { inFlight: 0, pendingDeadlines: 0 })
        })
    )
  })
})
