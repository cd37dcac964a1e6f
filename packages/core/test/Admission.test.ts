import { assert, describe, it } from "@effect/vitest"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Result from "effect/Result"
import { TestClock } from "effect/testing"
import type { Overloaded, Timeout } from "../src/Errors.ts"
import { MemoryRegistry } from "../src/Registry.ts"
import * as Tenancy from "../src/Tenancy.ts"
import type * as EngineContract from "../src/Engine.ts"
import * as Tier from "../src/Tier.ts"
import * as Fake from "./fixtures/FakeEngine.ts"
import * as H from "./fixtures/Harness.ts"

type Handle = EngineContract.EngineHandle<Fake.Binding, Fake.FakeError>

const call = (engine: Handle, server: Fake.FakeServer, project: string, millis: number) =>
  Effect.flatMap(Tenancy.Tenancy, (t) =>
    engine.runEffect(Fake.get, Fake.op(server, millis)).pipe(t.withProject(project), Effect.result)
  )

// A call that reports when it started and ended (TestClock time).
const timed = (engine: Handle, server: Fake.FakeServer, project: string, millis: number) =>
  Effect.gen(function* () {
    const start = yield* Clock.currentTimeMillis
    const result = yield* call(engine, server, project, millis)
    return { project, result, start, end: yield* Clock.currentTimeMillis }
  })

const forkMany = <A, E, R>(n: number, effect: Effect.Effect<A, E, R>) =>
  Effect.forEach(Array.from({ length: n }), () => Effect.forkChild(effect))

const failureOf = <A, E>(r: Result.Result<A, E>): E | undefined => (Result.isFailure(r) ? r.failure : undefined)

const metaOf = (project: string) =>
  Effect.map(Tenancy.Tenancy, (t) => t.connections).pipe(
    Effect.flatten,
    Effect.map((all) => all.find((m) => m.projectId === project)!)
  )

// Attempts are not cut short in these tests: the tier deadline is the only clock that matters.
const slowAttempts = { redis: { attemptTimeout: "10 minutes" } } as const

describe("Admission", () => {
  it.effect("a project runs at most its tier's maxConcurrent at once, the rest wait in FIFO order", () =>
    Effect.gen(function* () {
      const server = Fake.makeServer()
      const tenancy = yield* Tenancy.Tenancy
      yield* H.registerAll(["acme"], "FREE")
      const engine = yield* tenancy.register(Fake.adapter(server))
      const order: Array<number> = []
      const fibers = yield* Effect.forEach(Array.from({ length: 40 }), (_, i) =>
        engine
          .runEffect(Fake.get, (b) =>
            Effect.andThen(
              Effect.sync(() => order.push(i)),
              Fake.op(server, 100)(b)
            )
          )
          .pipe(tenancy.withProject("acme"), Effect.forkChild)
      )
      yield* Effect.yieldNow
      assert.strictEqual(server.running, 20)
      const meta = yield* metaOf("acme")
      assert.deepStrictEqual([meta.active, meta.queued], [20, 20])
      yield* TestClock.adjust(100)
      assert.strictEqual(server.running, 20)
      yield* TestClock.adjust(100)
      assert.deepStrictEqual(yield* Fiber.joinAll(fibers), Array(40).fill("ok"))
      assert.strictEqual(server.peak, 20, "peak concurrency is the tier's limit")
      assert.deepStrictEqual(
        order,
        Array.from({ length: 40 }, (_, i) => i),
        "waiters are admitted oldest first"
      )
      const after = yield* metaOf("acme")
      assert.deepStrictEqual([after.active, after.queued], [0, 0])
    }).pipe(H.provide())
  )

  it.effect("the limit is per project and per engine", () =>
    Effect.gen(function* () {
      const redis = Fake.makeServer()
      const pg = Fake.makeServer()
      const tenancy = yield* Tenancy.Tenancy
      const registry = yield* MemoryRegistry
      yield* H.registerAll(["a", "b"], "FREE")
      yield* registry.register({ id: "both", tier: "FREE", redis: "redis://cache/1", postgres: "postgres://db/both" })
      const redisEngine = yield* tenancy.register(Fake.adapter(redis))
      const pgEngine = yield* tenancy.register(Fake.adapter(pg, { engine: "postgres" }))
      const fibers = [
        ...(yield* forkMany(30, call(redisEngine, redis, "a", 100))),
        ...(yield* forkMany(30, call(redisEngine, redis, "b", 100))),
        ...(yield* forkMany(30, call(redisEngine, redis, "both", 100))),
        ...(yield* forkMany(30, call(pgEngine, pg, "both", 100)))
      ]
      yield* Effect.yieldNow
      assert.strictEqual(redis.running, 60, "20 for each project")
      assert.strictEqual(pg.running, 20, "and 20 more for the same project on another engine")
      yield* TestClock.adjust(200)
      assert.isTrue((yield* Fiber.joinAll(fibers)).every(Result.isSuccess))
    }).pipe(H.provide())
  )

  it.effect("a full queue rejects at once with Overloaded (queue-full, retryAfter > 0)", () =>
    Effect.gen(function* () {
      const server = Fake.makeServer()
      const tenancy = yield* Tenancy.Tenancy
      yield* H.registerAll(["acme"], "FREE")
      const engine = yield* tenancy.register(Fake.adapter(server))
      const fibers = yield* forkMany(40, call(engine, server, "acme", 100))
      yield* Effect.yieldNow
      const extra = yield* Effect.forkChild(call(engine, server, "acme", 100))
      yield* Effect.yieldNow
      assert.isTrue(H.isDone(extra), "rejected without waiting")
      const error = failureOf(yield* Fiber.join(extra)) as Overloaded
      assert.strictEqual(error._tag, "Overloaded")
      assert.strictEqual(error.reason, "queue-full")
      assert.strictEqual(error.scope, "project")
      assert.strictEqual(error.projectId, "acme")
      assert.isAbove(error.retryAfterMillis, 0)
      assert.include(error.message, "the wait queue is full")
      assert.strictEqual(server.calls, 20, "it never reached the server")
      const events = (yield* tenancy.recentEvents).filter((e) => e._tag === "Overloaded")
      assert.strictEqual(events.length, 1)
      yield* TestClock.adjust(200)
      yield* Fiber.joinAll(fibers)
    }).pipe(H.provide())
  )

  it.effect("Retry-After is the queue's expected drain time: a caller that waits that long is admitted at once", () =>
    Effect.gen(function* () {
      const server = Fake.makeServer()
      const tenancy = yield* Tenancy.Tenancy
      yield* H.registerAll(["acme"], "FREE")
      const engine = yield* tenancy.register(Fake.adapter(server, { policy: slowAttempts.redis }))
      // Two 1 s calls teach the guard how long a call takes; then 2 run and 4 wait (the queue is full).
      const warm = yield* forkMany(2, call(engine, server, "acme", 1_000))
      yield* TestClock.adjust(1_000)
      yield* Fiber.joinAll(warm)
      const load = yield* forkMany(6, call(engine, server, "acme", 1_000))
      yield* TestClock.adjust(500)
      const refused = failureOf(yield* call(engine, server, "acme", 1_000)) as Overloaded
      assert.strictEqual(refused.reason, "queue-full")
      // 500 ms left of the running pair, then two rounds of 1 s for the four ahead.
      assert.strictEqual(refused.retryAfterMillis, 2_500)
      assert.include(refused.message, "retry after 2500 ms")
      yield* TestClock.adjust(refused.retryAfterMillis)
      const retried = yield* Effect.forkChild(timed(engine, server, "acme", 1_000))
      yield* Effect.yieldNow
      assert.strictEqual((yield* metaOf("acme")).queued, 0, "admitted without waiting")
      yield* TestClock.adjust(1_000)
      assert.isTrue(Result.isSuccess((yield* Fiber.join(retried)).result))
      yield* Fiber.joinAll(load)
    }).pipe(H.provide({ tiers: { FREE: { maxConcurrent: 2, maxQueue: 4 } } }))
  )

  it.effect("when the expected wait cannot fit the deadline, rejects at once with Overloaded (deadline)", () =>
    Effect.gen(function* () {
      const server = Fake.makeServer()
      const tenancy = yield* Tenancy.Tenancy
      yield* H.registerAll(["acme"], "FREE")
      const engine = yield* tenancy.register(Fake.adapter(server, { policy: slowAttempts.redis }))
      // Learn the latency: operations take 4 s.
      for (let i = 0; i < 30; i++) {
        const f = yield* Effect.forkChild(call(engine, server, "acme", 4_000))
        yield* TestClock.adjust(4_000)
        assert.isTrue(Result.isSuccess(yield* Fiber.join(f)))
      }
      // One running and two waiting: a fourth would wait about 3 × 4 s, past the 10 s deadline.
      const running = yield* Effect.forkChild(call(engine, server, "acme", 4_000))
      const waiting = yield* forkMany(2, call(engine, server, "acme", 4_000))
      yield* Effect.yieldNow
      assert.strictEqual((yield* metaOf("acme")).queued, 2)
      const before = yield* Clock.currentTimeMillis
      const late = yield* Effect.forkChild(call(engine, server, "acme", 4_000))
      yield* Effect.yieldNow
      assert.isTrue(H.isDone(late), "rejected without waiting")
      assert.strictEqual(yield* Clock.currentTimeMillis, before, "the clock did not move")
      const error = failureOf(yield* Fiber.join(late)) as Overloaded
      assert.strictEqual(error._tag, "Overloaded")
      assert.strictEqual(error.reason, "deadline")
      assert.strictEqual(error.scope, "project")
      assert.isAbove(error.retryAfterMillis, 10_000)
      assert.strictEqual((yield* metaOf("acme")).queued, 2, "the waiters ahead are untouched")
      yield* TestClock.adjust("12 seconds")
      assert.isTrue(Result.isSuccess(yield* Fiber.join(running)))
      yield* Fiber.joinAll(waiting)
    }).pipe(H.provide({ tiers: { FREE: { maxConcurrent: 1, maxQueue: 100 } } }))
  )

  it.effect(
    "when the expected wait for the shared target cannot fit the deadline, rejects at once (scope target)",
    () =>
      Effect.gen(function* () {
        const server = Fake.makeServer()
        const tenancy = yield* Tenancy.Tenancy
        yield* H.registerAll(["big"], "ENTERPRISE")
        yield* H.registerAll(H.ids("small", 3), "FREE")
        const engine = yield* tenancy.register(Fake.adapter(server, { capacity: 1, policy: slowAttempts.redis }))
        // The target learns that operations take 4 s.
        for (let i = 0; i < 80; i++) {
          const f = yield* Effect.forkChild(call(engine, server, "big", 4_000))
          yield* TestClock.adjust(4_000)
          yield* Fiber.join(f)
        }
        const holder = yield* Effect.forkChild(call(engine, server, "big", 4_000))
        const waiting = [
          yield* Effect.forkChild(call(engine, server, "small-0", 4_000)),
          yield* Effect.forkChild(call(engine, server, "small-1", 4_000))
        ]
        yield* Effect.yieldNow
        const before = yield* Clock.currentTimeMillis
        const late = yield* Effect.forkChild(call(engine, server, "small-2", 4_000))
        yield* Effect.yieldNow
        assert.isTrue(H.isDone(late))
        assert.strictEqual(yield* Clock.currentTimeMillis, before)
        const error = failureOf(yield* Fiber.join(late)) as Overloaded
        assert.deepInclude(error, { _tag: "Overloaded", scope: "target", reason: "deadline", projectId: "small-2" })
        assert.include(error.message, "the database's shared budget")
        assert.strictEqual((yield* metaOf("small-2")).active, 0, "its project slot was given back")
        yield* TestClock.adjust("12 seconds")
        yield* Fiber.join(holder)
        yield* Fiber.joinAll(waiting)
      }).pipe(H.provide())
  )

  it.effect("a waiter in the project queue whose deadline passes gets Timeout (deadline) and frees its place", () =>
    Effect.gen(function* () {
      const server = Fake.makeServer()
      const tenancy = yield* Tenancy.Tenancy
      const tiers = yield* Tier.Tiers
      yield* H.registerAll(["acme"], "FREE")
      const engine = yield* tenancy.register(Fake.adapter(server, { policy: slowAttempts.redis }))
      const running = yield* Effect.forkChild(call(engine, server, "acme", 20_000))
      yield* Effect.yieldNow
      yield* tiers.update("FREE", { timeout: "5 seconds" }) // later calls get a shorter deadline
      yield* TestClock.adjust("1 second")
      const waiter = yield* Effect.forkChild(call(engine, server, "acme", 1_000))
      yield* Effect.yieldNow
      assert.strictEqual((yield* metaOf("acme")).queued, 1)
      yield* TestClock.adjust("4999 millis")
      assert.isFalse(H.isDone(waiter))
      yield* TestClock.adjust("1 milli")
      assert.isTrue(H.isDone(waiter), "expired at its deadline, 5 s after it was submitted")
      const error = failureOf(yield* Fiber.join(waiter)) as Timeout
      assert.strictEqual(error._tag, "Timeout")
      assert.strictEqual(error.budget, "deadline")
      assert.strictEqual(error.afterMillis, 5_000)
      assert.strictEqual(server.calls, 1, "the waiter never reached the server")
      const meta = yield* metaOf("acme")
      assert.deepStrictEqual([meta.active, meta.queued], [1, 0], "its place in the queue is free again")
      // The queue (maxQueue 1) takes a new waiter: the expired one no longer counts.
      const next = yield* Effect.forkChild(call(engine, server, "acme", 1_000))
      yield* Effect.yieldNow
      assert.isFalse(H.isDone(next))
      yield* TestClock.adjust("14 seconds")
      assert.isTrue(Result.isSuccess(yield* Fiber.join(running)))
      // It waited (and, the slot being held for 20 s, ran out of time too) instead of being refused.
      assert.strictEqual(failureOf(yield* Fiber.join(next))?._tag, "Timeout")
      assert.strictEqual((yield* tenancy.stats).pendingDeadlines, 0)
    }).pipe(H.provide({ tiers: { FREE: { maxConcurrent: 1, maxQueue: 1, timeout: "60 seconds" } } }))
  )

  it.effect("a waiter for the target budget whose deadline passes gets Timeout (deadline) and frees its slot", () =>
    Effect.gen(function* () {
      const server = Fake.makeServer()
      const tenancy = yield* Tenancy.Tenancy
      yield* H.registerAll(["big"], "ENTERPRISE")
      yield* H.registerAll(["small"], "FREE")
      const engine = yield* tenancy.register(Fake.adapter(server, { capacity: 1, policy: slowAttempts.redis }))
      const holder = yield* Effect.forkChild(call(engine, server, "big", 30_000))
      yield* Effect.yieldNow
      const waiter = yield* Effect.forkChild(call(engine, server, "small", 1_000))
      yield* Effect.yieldNow
      assert.strictEqual((yield* metaOf("small")).active, 1, "past its bulkhead, waiting for the target")
      yield* TestClock.adjust("10 seconds")
      const error = failureOf(yield* Fiber.join(waiter)) as Timeout
      assert.strictEqual(error._tag, "Timeout")
      assert.strictEqual(error.budget, "deadline")
      const meta = yield* metaOf("small")
      assert.deepStrictEqual([meta.active, meta.queued], [0, 0])
      assert.strictEqual(server.calls, 1)
      yield* TestClock.adjust("20 seconds")
      assert.isTrue(Result.isSuccess(yield* Fiber.join(holder)))
      // The target's single slot is free again.
      const after = yield* Effect.forkChild(call(engine, server, "small", 10))
      yield* TestClock.adjust(10)
      assert.isTrue(Result.isSuccess(yield* Fiber.join(after)))
    }).pipe(H.provide())
  )

  it.effect("a FREE flood on a shared target does not hold back an ENTERPRISE project", () =>
    Effect.gen(function* () {
      const server = Fake.makeServer()
      const tenancy = yield* Tenancy.Tenancy
      const free = H.ids("free", 50)
      yield* H.registerAll(free, "FREE")
      yield* H.registerAll(["vip"], "ENTERPRISE")
      const engine = yield* tenancy.register(Fake.adapter(server, { capacity: 10 }))
      // 50 projects × 20 concurrent calls of 50 ms on a target that runs 10 at once: 5 s of backlog.
      const flood = yield* Effect.forEach(free, (id) => forkMany(20, timed(engine, server, id, 50))).pipe(
        Effect.map((f) => f.flat())
      )
      const vip = yield* forkMany(20, timed(engine, server, "vip", 50))
      for (let i = 0; i < 120; i++) yield* TestClock.adjust(50)
      const vipDone = yield* Fiber.joinAll(vip)
      const floodDone = yield* Fiber.joinAll(flood)
      assert.isTrue(vipDone.every((c) => Result.isSuccess(c.result)))
      assert.isTrue(floodDone.every((c) => Result.isSuccess(c.result)))
      assert.strictEqual(server.peak, 10, "the target's capacity was respected")
      const vipLatest = Math.max(...vipDone.map((c) => c.end - c.start))
      const freeEnds = floodDone.map((c) => c.end).sort((a, b) => a - b)
      assert.isAtMost(vipLatest, 1_000, "ENTERPRISE calls finished within a second (deadline 120 s)")
      assert.isAtLeast(freeEnds[freeEnds.length - 1]!, 4_500, "while the FREE backlog took ~5 s")
      const freeBeforeVip = freeEnds.filter((end) => end <= vipLatest).length
      assert.isAtMost(freeBeforeVip, 200, "at most a fifth of the FREE backlog went first")
    }).pipe(H.provide())
  )

  it.effect("under sustained contention the target is shared roughly by tier weight (1 : 2 : 4 : 8)", () =>
    Effect.gen(function* () {
      const server = Fake.makeServer()
      const tenancy = yield* Tenancy.Tenancy
      const tiers: ReadonlyArray<readonly [string, Tier.TierName, number]> = [
        ["f", "FREE", 40],
        ["s", "STARTER", 80],
        ["p", "PRO", 160],
        ["e", "ENTERPRISE", 320]
      ]
      for (const [id, tier] of tiers) yield* H.registerAll([id], tier)
      const engine = yield* tenancy.register(Fake.adapter(server, { capacity: 1 }))
      const fibers = yield* Effect.forEach(tiers, ([id, , n]) => forkMany(n, call(engine, server, id, 10))).pipe(
        Effect.map((f) => f.flat())
      )
      yield* Effect.yieldNow
      for (let i = 0; i < 150; i++) yield* TestClock.adjust(10)
      const share = { f: 0, s: 0, p: 0, e: 0 } as Record<string, number>
      for (const id of server.finished.slice(0, 150)) share[id]!++
      const ratio = (id: string) => share[id]! / share.f!
      assert.isAtLeast(share.f!, 8, JSON.stringify(share))
      assert.approximately(ratio("s"), 2, 0.6, JSON.stringify(share))
      assert.approximately(ratio("p"), 4, 1.2, JSON.stringify(share))
      assert.approximately(ratio("e"), 8, 2.4, JSON.stringify(share))
      for (let i = 0; i < 460; i++) yield* TestClock.adjust(10)
      const results = yield* Fiber.joinAll(fibers)
      assert.isTrue(results.every(Result.isSuccess), "everyone got through before their deadlines")
    }).pipe(H.provide())
  )
})
