/**
 * Breakers see only what says the server is unhealthy (R17): a thousand duplicate-key violations leave every
 * breaker closed. A server that stops under load (R5) opens the project's and the target's breakers, after which
 * calls fail at once with `CircuitOpen` without touching the driver; when the server is back, the active probe
 * closes them and work succeeds again. The policy is lowered for speed (1 s attempt timeout, 1 s reset).
 */
import { assert, describe, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import { MemoryRegistry } from "@tenantpool/core/Registry"
import * as Tenancy from "@tenantpool/core/Tenancy"
import * as Servers from "@tenantpool/testing/Servers"
import * as TestServers from "@tenantpool/testing/TestServers"
import { MongoEngine } from "../src/MongoEngine.ts"
import { MongoError } from "../src/MongoError.ts"
import * as Fx from "./fixtures/Mongo.ts"

describe("MongoEngine breakers", () => {
  it.live("1,000 duplicate-key violations never open a breaker", () =>
    Effect.gen(function* () {
      const url = TestServers.url("mongodb")
      const observer = yield* Fx.raw(url)
      const db = yield* Fx.database(observer, url, "brk_dup")
      const registry = yield* MemoryRegistry
      const tenancy = yield* Tenancy.Tenancy
      const mongo = yield* MongoEngine
      const id = Fx.projectId("dup")
      yield* registry.register({ id, tier: "PRO", mongodb: db.url })
      const accounts = mongo.collection<{ email: string }>("accounts")
      yield* accounts.createIndex({ email: 1 }, { unique: true }).pipe(tenancy.withProject(id))
      yield* accounts.insertOne({ email: "taken@example.com" }).pipe(tenancy.withProject(id))

      const errors = yield* Effect.forEach(
        Array.from({ length: 1_000 }, (_, i) => i),
        () => Effect.flip(accounts.insertOne({ email: "taken@example.com" })),
        { concurrency: 50 }
      ).pipe(tenancy.withProject(id))
      assert.strictEqual(errors.length, 1_000)
      for (const e of errors) {
        assert.instanceOf(e, MongoError)
        assert.strictEqual((e as MongoError).kind, "duplicate_key")
      }
      assert.strictEqual(yield* tenancy.breakerState(id, "mongodb"), "closed")
      const [meta] = yield* tenancy.connections
      assert.strictEqual(meta?.breaker, "closed")
      assert.strictEqual(meta?.targetBreaker, "closed")
      assert.strictEqual(meta?.errorCount, 1_000)
      const events = yield* tenancy.recentEvents
      assert.isFalse(
        events.some((e) => e._tag === "CircuitOpen"),
        "no breaker transition at all"
      )
      const ok = yield* accounts.insertOne({ email: "new@example.com" }).pipe(tenancy.withProject(id))
      assert.isTrue(ok.acknowledged, "the project still writes")
    }).pipe(Effect.provide(Fx.layer()))
  )

  it.live("a server stopped under load opens the breakers and calls fail fast; a restart closes them again", () =>
    Effect.gen(function* () {
      const server = yield* Servers.acquirePrivate("mongodb")
      const registry = yield* MemoryRegistry
      const tenancy = yield* Tenancy.Tenancy
      const mongo = yield* MongoEngine
      const id = Fx.projectId("outage")
      yield* registry.register({ id, tier: "PRO", mongodb: Fx.withDatabase(server.url, "outage") })
      const items = mongo.collection<{ n: number }>("items")
      yield* items.insertOne({ n: 1 }).pipe(tenancy.withProject(id))

      // Ten workers read in a loop; each call's outcome is counted by error tag.
      const outcomes = new Map<string, number>()
      let stop = false
      const worker = Effect.gen(function* () {
        while (!stop) {
          const exit = yield* Effect.exit(items.findOne({ n: 1 }))
          const failure = exit._tag === "Failure" ? Cause.findErrorOption(exit.cause) : undefined
          const tag =
            failure === undefined
              ? "ok"
              : failure._tag === "Some"
                ? String((failure.value as { _tag?: unknown })._tag)
                : "defect"
          outcomes.set(tag, (outcomes.get(tag) ?? 0) + 1)
          if (tag === "CircuitOpen") yield* Effect.sleep("20 millis")
        }
      }).pipe(tenancy.withProject(id))
      const load = yield* Effect.forEach(Array.from({ length: 10 }), () => Effect.forkChild(worker))
      yield* Fx.eventually(
        "reads succeed under load",
        Effect.sync(() => (outcomes.get("ok") ?? 0) > 100)
      )

      yield* Servers.stop(server)
      const [, openedAfter] = yield* Fx.timed(
        Fx.eventually(
          "the project's breaker opens",
          Effect.map(tenancy.breakerState(id, "mongodb"), (s) => s === "open"),
          "15 seconds"
        )
      )
      assert.isTrue(openedAfter < 5_000, `opened ${Math.round(openedAfter)} ms after the stop`)
      const [rejected, ms] = yield* Fx.timed(Effect.flip(items.findOne({ n: 1 }).pipe(tenancy.withProject(id))))
      assert.strictEqual((rejected as { _tag: string })._tag, "CircuitOpen")
      assert.isTrue(ms < 50, `rejected in ${ms.toFixed(1)} ms`)

      yield* Servers.start(server)
      yield* Fx.eventually(
        "the breaker closes and reads succeed again",
        Effect.map(Effect.exit(items.findOne({ n: 1 }).pipe(tenancy.withProject(id))), (e) => e._tag === "Success"),
        "20 seconds"
      )
      assert.strictEqual(yield* tenancy.breakerState(id, "mongodb"), "closed")
      stop = true
      yield* Effect.forEach(load, Fiber.join)
      assert.isTrue((outcomes.get("CircuitOpen") ?? 0) > 0, "workers were turned away while it was open")
      const tags = [...outcomes.keys()].sort()
      assert.includeMembers(
        ["CircuitOpen", "MongoError", "Timeout", "ok"],
        tags,
        `outcomes: ${JSON.stringify([...outcomes])}`
      )
      const events = yield* tenancy.recentEvents
      const transitions = events.flatMap((e) =>
        e._tag === "CircuitOpen" || e._tag === "CircuitClosed" ? [`${e.scope}:${e._tag}`] : []
      )
      assert.include(transitions, "project:CircuitOpen")
      assert.include(transitions, "target:CircuitOpen", "the server's breaker opened too (infrastructure errors)")
      assert.include(transitions, "project:CircuitClosed")
    }).pipe(
      Effect.provide(
        Fx.layer({
          tenancy: {
            breakers: {
              mongodb: {
                resetTimeout: "1 second",
                attemptTimeout: "1 second",
                maxResetTimeout: "2 seconds",
                // The successes of the last window dilute the failures: a short window opens sooner.
                window: "2 seconds"
              }
            }
          },
          // As with the defaults (5 s selection, 10 s attempt), finding no server fails before the attempt times out.
          engine: { heartbeatFrequency: "500 millis", serverSelectionTimeout: "500 millis" }
        })
      )
    )
  )
})
