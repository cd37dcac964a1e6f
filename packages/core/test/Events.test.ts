import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Stream from "effect/Stream"
import { TestClock } from "effect/testing"
import { specName, type TenancyEvent } from "../src/Events.ts"
import { MemoryRegistry } from "../src/Registry.ts"
import * as Tenancy from "../src/Tenancy.ts"
import { Tiers } from "../src/Tier.ts"
import * as Fake from "./fixtures/FakeEngine.ts"
import * as H from "./fixtures/Harness.ts"

const canary = "CANARY-7f3e-p@ss/#"

/** Collects the `events` stream from now on. */
const subscribe = Effect.gen(function* () {
  const tenancy = yield* Tenancy.Tenancy
  const seen: Array<TenancyEvent> = []
  yield* tenancy.events.pipe(
    Stream.runForEach((e) => Effect.sync(() => seen.push(e))),
    Effect.forkChild
  )
  yield* Effect.yieldNow
  return seen
})

describe("Events", () => {
  it.effect(
    "the stream carries the lifecycle: pool created, circuit open/half-open/closed, overloaded, closed, evicted",
    () =>
      Effect.gen(function* () {
        const server = Fake.makeServer()
        const tenancy = yield* Tenancy.Tenancy
        const registry = yield* MemoryRegistry
        const seen = yield* subscribe
        yield* registry.register({
          id: "acme",
          tier: "FREE",
          redis: `redis://default:${encodeURIComponent(canary)}@cache.internal:6379/0`
        })
        const engine = yield* tenancy.register(Fake.adapter(server))
        const run = (millis: number, outcome: Fake.Outcome = "ok") =>
          engine.runEffect(Fake.set, Fake.op(server, millis, outcome)).pipe(tenancy.withProject("acme"), Effect.result)

        yield* run(0)
        for (let i = 0; i < 10; i++) yield* run(0, "down")
        yield* TestClock.adjust("15 seconds") // the active probes ping and close both breakers, the target's first
        const busy = yield* Effect.forkChild(run(100))
        yield* Effect.yieldNow
        yield* run(100) // maxConcurrent 1, no queue: refused
        yield* TestClock.adjust(100)
        yield* Fiber.join(busy)
        yield* TestClock.adjust("6 minutes")
        yield* Effect.yieldNow

        const tags = seen.map((e) => ("scope" in e && e._tag !== "Overloaded" ? `${e._tag}:${e.scope}` : e._tag))
        assert.deepStrictEqual(tags, [
          "PoolCreated",
          "CircuitOpen:project",
          "CircuitOpen:target",
          "CircuitHalfOpen:target",
          "CircuitClosed:target",
          "CircuitHalfOpen:project",
          "CircuitClosed:project",
          "Overloaded",
          "PoolClosed",
          "ProjectEvicted"
        ])
        assert.deepInclude(seen[0], { _tag: "PoolCreated", engine: "redis", projectId: "acme" })
        assert.deepInclude(seen[1], { projectId: "acme", openForMillis: 15_000, at: 0 })
        assert.deepInclude(seen[7], { _tag: "Overloaded", projectId: "acme", scope: "project" })
        assert.deepInclude(seen[8], { _tag: "PoolClosed", reason: "idle" })
        assert.deepInclude(seen[9], { _tag: "ProjectEvicted", projectId: "acme", reason: "idle" })
        assert.deepStrictEqual(seen, [...(yield* tenancy.recentEvents)], "recentEvents saw the same")
        const text = JSON.stringify(seen)
        for (const fragment of ["CANARY", encodeURIComponent(canary)]) assert.notInclude(text, fragment)
        assert.include(text, "redis://default@cache.internal:6379/0", "events carry the safe label")
        assert.deepStrictEqual(
          seen.map(specName).slice(0, 3),
          ["pool-created", "circuit-open", "circuit-open"],
          "the spec's names"
        )
      }).pipe(H.provide({ tiers: { FREE: { maxConcurrent: 1, maxQueue: 0 } } }))
  )

  it.effect("a tier change is an event", () =>
    Effect.gen(function* () {
      const tenancy = yield* Tenancy.Tenancy
      const seen = yield* subscribe
      yield* (yield* Tiers).update("PRO", { maxConcurrent: 250 })
      yield* Effect.yieldNow
      assert.deepStrictEqual(
        seen.map((e) => [e._tag, "tier" in e ? e.tier : undefined]),
        [["TierChanged", "PRO"]]
      )
      assert.strictEqual((yield* tenancy.recentEvents).length, 1)
    }).pipe(H.provide())
  )

  it.effect("recentEvents keeps the last N, oldest first", () =>
    Effect.gen(function* () {
      const server = Fake.makeServer()
      const tenancy = yield* Tenancy.Tenancy
      const seen = yield* subscribe
      const engine = yield* tenancy.register(Fake.adapter(server))
      const ids = H.ids("p", 8)
      yield* H.registerAll(ids, "FREE")
      for (const id of ids) yield* engine.runEffect(Fake.get, Fake.op(server, 0)).pipe(tenancy.withProject(id))
      yield* Effect.yieldNow
      assert.strictEqual(seen.length, 8)
      const recent = yield* tenancy.recentEvents
      assert.strictEqual(recent.length, 5)
      assert.deepStrictEqual(recent, seen.slice(-5))
      assert.deepStrictEqual(
        recent.map((e) => (e._tag === "PoolCreated" ? e.projectId : "")),
        ["p-3", "p-4", "p-5", "p-6", "p-7"]
      )
    }).pipe(H.provide({ recentEvents: 5 }))
  )
})
