import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import { TestClock } from "effect/testing"
import * as Tenancy from "../src/Tenancy.ts"
import * as Tier from "../src/Tier.ts"
import * as Fake from "./fixtures/FakeEngine.ts"
import * as H from "./fixtures/Harness.ts"

describe("Tier", () => {
  it("has the spec's table: min pool, max pool, max concurrent, timeout, priority", () => {
    const row = (name: Tier.TierName) => {
      const l = Tier.defaults[name]
      return [l.minPool, l.maxPool, l.maxConcurrent, l.timeoutMillis, l.priority]
    }
    assert.deepStrictEqual(row("FREE"), [2, 5, 20, 10_000, "low"])
    assert.deepStrictEqual(row("STARTER"), [5, 10, 50, 30_000, "medium"])
    assert.deepStrictEqual(row("PRO"), [10, 50, 200, 60_000, "high"])
    assert.deepStrictEqual(row("ENTERPRISE"), [20, 100, 500, 120_000, "critical"])
    for (const name of Tier.tierNames) assert.strictEqual(Tier.defaults[name].idleTimeoutMillis, 5 * 60_000)
    assert.deepStrictEqual(Tier.priorityWeight, { low: 1, medium: 2, high: 4, critical: 8 })
  })

  it.effect("the tier service starts from the spec's table and applies valid overrides", () =>
    Effect.gen(function* () {
      const tiers = yield* Tier.make()
      assert.deepStrictEqual(tiers.all(), Tier.defaults)
      const custom = yield* Tier.make({ PRO: { maxConcurrent: 300, timeout: "90 seconds", priority: "critical" } })
      assert.strictEqual(custom.get("PRO").limits.maxConcurrent, 300)
      assert.strictEqual(custom.get("PRO").limits.maxQueue, 300, "maxQueue follows maxConcurrent unless given")
      assert.strictEqual(custom.get("PRO").limits.timeoutMillis, 90_000)
      assert.strictEqual(custom.get("PRO").weight, 8)
      assert.deepStrictEqual(custom.get("FREE").limits, Tier.defaults.FREE)
    })
  )

  describe("rejects invalid overrides with InvalidConfig naming the field", () => {
    const cases: ReadonlyArray<readonly [string, Tier.TierOverride, ReadonlyArray<string>]> = [
      ["minPool > maxPool", { minPool: 10, maxPool: 5 }, ["minPool", "maxPool"]],
      ["a negative maxConcurrent", { maxConcurrent: -1 }, ["maxConcurrent"]],
      ["a negative minPool", { minPool: -2 }, ["minPool"]],
      ["a non-integer maxPool", { maxPool: 2.5 }, ["maxPool"]],
      ["a non-integer maxQueue", { maxQueue: 1.5 }, ["maxQueue"]],
      ["a bad duration", { timeout: "soon" as never }, ["timeout"]],
      ["a negative duration", { timeout: "-5 seconds" as never }, ["timeout"]],
      ["a zero idle timeout", { idleTimeout: 0 }, ["idleTimeout"]],
      ["an unknown priority", { priority: "urgent" as never }, ["priority"]]
    ]
    for (const [name, patch, fields] of cases) {
      it.effect(name, () =>
        Effect.gen(function* () {
          const error = yield* Effect.flip(Tier.make({ STARTER: patch }))
          assert.strictEqual(error._tag, "InvalidConfig")
          assert.isTrue(error.field.startsWith("STARTER"), error.field)
          for (const field of fields) assert.include(`${error.field} ${error.message}`, field)
        })
      )
    }
  })

  it.effect("Tiers.update changes nothing and notifies no one on bad input", () =>
    Effect.gen(function* () {
      const tiers = yield* Tier.make()
      let notified = 0
      tiers.onChange(() => notified++)
      const before = tiers.get("FREE").limits
      for (const patch of [{ minPool: 6 }, { maxConcurrent: 0 }, { maxConcurrent: 3.5 }, { timeout: "x" as never }]) {
        const error = yield* Effect.flip(tiers.update("FREE", patch))
        assert.strictEqual(error._tag, "InvalidConfig")
      }
      assert.strictEqual(tiers.get("FREE").limits, before)
      assert.deepStrictEqual(tiers.all().FREE, Tier.defaults.FREE)
      assert.strictEqual(notified, 0)
      const after = yield* tiers.update("FREE", { maxConcurrent: 30, priority: "medium" })
      assert.strictEqual(after.maxConcurrent, 30)
      assert.strictEqual(tiers.get("FREE").limits.maxConcurrent, 30)
      assert.strictEqual(tiers.get("FREE").weight, 2)
      assert.strictEqual(tiers.get("FREE").limits.minPool, 2, "fields not in the patch keep their value")
      assert.strictEqual(notified, 1)
    })
  )

  describe("runtime updates", () => {
    // Slow operations (1 s on the TestClock) whose attempts are not cut short.
    const options: H.LayerOptions = {
      tiers: { FREE: { maxConcurrent: 2, maxQueue: 10, timeout: "60 seconds" } },
      breakers: { redis: { attemptTimeout: "60 seconds" } }
    }

    it.effect("a raised maxConcurrent admits queued waiters at once", () =>
      Effect.gen(function* () {
        const server = Fake.makeServer()
        const tenancy = yield* Tenancy.Tenancy
        const tiers = yield* Tier.Tiers
        yield* H.registerAll(["acme"], "FREE")
        const engine = yield* tenancy.register(Fake.adapter(server))
        const fibers = yield* Effect.forEach(Array.from({ length: 6 }), () =>
          engine.runEffect(Fake.get, Fake.op(server, 1_000)).pipe(tenancy.withProject("acme"), Effect.forkChild)
        )
        yield* Effect.yieldNow
        assert.strictEqual(server.running, 2)
        const [meta] = yield* tenancy.connections
        assert.strictEqual(meta!.queued, 4)

        yield* tiers.update("FREE", { maxConcurrent: 6 })
        yield* Effect.yieldNow
        // No time has passed: the waiters were admitted by the update itself.
        assert.strictEqual(server.running, 6)
        assert.strictEqual((yield* tenancy.connections)[0]!.queued, 0)

        yield* TestClock.adjust("1 second")
        assert.deepStrictEqual(yield* Fiber.joinAll(fibers), Array(6).fill("ok"))
      }).pipe(H.provide(options))
    )

    it.effect("a lowered maxConcurrent lets running work finish and admits new work only as it drains", () =>
      Effect.gen(function* () {
        const server = Fake.makeServer()
        const tenancy = yield* Tenancy.Tenancy
        const tiers = yield* Tier.Tiers
        yield* H.registerAll(["acme"], "FREE")
        yield* tiers.update("FREE", { maxConcurrent: 4, maxQueue: 10 })
        const engine = yield* tenancy.register(Fake.adapter(server))
        const fibers = yield* Effect.forEach(Array.from({ length: 8 }), () =>
          engine.runEffect(Fake.get, Fake.op(server, 1_000)).pipe(tenancy.withProject("acme"), Effect.forkChild)
        )
        yield* Effect.yieldNow
        assert.strictEqual(server.running, 4)

        yield* tiers.update("FREE", { maxConcurrent: 2 })
        yield* Effect.yieldNow
        assert.strictEqual(server.running, 4, "nothing running is cut off")
        server.peak = 0

        const runningEachSecond: Array<number> = []
        for (let i = 0; i < 3; i++) {
          yield* TestClock.adjust("1 second")
          runningEachSecond.push(server.running)
        }
        assert.deepStrictEqual(runningEachSecond, [2, 2, 0])
        assert.strictEqual(server.peak, 2, "never more than the new limit once the old work drained")
        assert.deepStrictEqual(yield* Fiber.joinAll(fibers), Array(8).fill("ok"))
      }).pipe(H.provide(options))
    )
  })
})
