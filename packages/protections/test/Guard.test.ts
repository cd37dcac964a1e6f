/**
 * The protections through core's guard: which calls are checked (those with a detail), what reaches the engine
 * when a check refuses (nothing), once per call rather than per retry, asynchronous checks, `unprotected`, and the
 * rejection metric and events.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import type * as Metric from "effect/Metric"
import { PrometheusMetrics } from "effect/observability"
import * as Schedule from "effect/Schedule"
import { TestClock } from "effect/testing"
import type { ProjectHandle } from "@tenantpool/core/CurrentProject"
import * as Protections from "@tenantpool/core/Protections"
import * as Tenancy from "@tenantpool/core/Tenancy"
import * as ApiProtections from "../src/ApiProtections.ts"
import * as G from "./fixtures/Guarded.ts"

const protections = ApiProtections.layerWith({
  rateLimit: { tiers: { FREE: { perSecond: 1, burst: 2 } } },
  sql: false,
  mongo: false
})

const sample = (text: string, name: string, labels: Record<string, string>): number | undefined => {
  const want = Object.entries(labels)
    .map(([k, v]) => `${k}="${v}"`)
    .join(",")
  for (const line of text.split("\n")) {
    if (!line.startsWith(`${name}{`)) continue
    const [series, value] = line.split(" ")
    const body = series!.slice(name.length + 1, -1)
    if (want.split(",").every((pair) => body.split(",").includes(pair))) return Number(value)
  }
  return undefined
}

describe("Protections through the guard", () => {
  it.effect("refuses a rate-limited call before admission: the engine never runs it", () => {
    const registry: Metric.MetricRegistry = new Map()
    return Effect.gen(function* () {
      const { handle, driver } = yield* G.register("redis")
      yield* G.registerProject("acme", "FREE", "redis")
      const tenancy = yield* Tenancy.Tenancy
      const detail = { command: "GET" }
      const results = yield* Effect.forEach([1, 2, 3], () =>
        G.call(handle, detail).pipe(Effect.result, tenancy.withProject("acme"))
      )
      assert.deepStrictEqual(
        results.map((r) => (r._tag === "Success" ? r.success : r.failure._tag)),
        ["ok", "ok", "RateLimited"]
      )
      assert.strictEqual(driver.calls, 2)
      const refused = results[2]!
      assert.isTrue(refused._tag === "Failure" && refused.failure._tag === "RateLimited")
      if (refused._tag === "Failure" && refused.failure._tag === "RateLimited") {
        assert.strictEqual(refused.failure.projectId, "acme")
        assert.strictEqual(refused.failure.engine, "redis")
        assert.strictEqual(refused.failure.tier, "FREE")
        assert.strictEqual(refused.failure.retryAfterMillis, 1000)
      }
      const text = yield* PrometheusMetrics.format()
      assert.strictEqual(
        sample(text, "tenantpool_protection_rejections_total", {
          database_type: "redis",
          tier: "FREE",
          rule: "rate-limit"
        }),
        1
      )
      const events = yield* (yield* ApiProtections.ApiProtections).recentEvents
      assert.deepStrictEqual(
        events.map((e) => [e._tag, e.projectId, e.engine, e.tier, e.operation, e.rule]),
        [["Rejected", "acme", "redis", "FREE", "get", "rate-limit"]]
      )
    }).pipe(Effect.provide(protections), G.provide(registry))
  })

  it.effect("checks only the calls that pass a detail", () =>
    Effect.gen(function* () {
      const { handle, driver } = yield* G.register("redis")
      yield* G.registerProject("acme", "FREE", "redis")
      const tenancy = yield* Tenancy.Tenancy
      for (let i = 0; i < 5; i++) assert.strictEqual(yield* G.call(handle).pipe(tenancy.withProject("acme")), "ok")
      assert.strictEqual(driver.calls, 5)
    }).pipe(Effect.provide(protections), G.provide())
  )

  it.effect("with no protections installed, a detail changes nothing", () =>
    Effect.gen(function* () {
      const { handle, driver } = yield* G.register("redis")
      yield* G.registerProject("acme", "FREE", "redis")
      const tenancy = yield* Tenancy.Tenancy
      for (let i = 0; i < 5; i++) {
        assert.strictEqual(yield* G.call(handle, { command: "KEYS" }).pipe(tenancy.withProject("acme")), "ok")
      }
      assert.strictEqual(driver.calls, 5)
    }).pipe(G.provide())
  )

  it.effect("a query rejection reaches the caller typed, with its rule, and is counted", () => {
    const registry: Metric.MetricRegistry = new Map()
    return Effect.gen(function* () {
      const { handle, driver } = yield* G.register("redis")
      yield* G.registerProject("acme", "PRO", "redis")
      const tenancy = yield* Tenancy.Tenancy
      const error = yield* Effect.flip(G.call(handle, { command: "FLUSHALL" }).pipe(tenancy.withProject("acme")))
      assert.strictEqual(error._tag, "QueryRejected")
      if (error._tag !== "QueryRejected") return
      assert.strictEqual(error.rule, "redis-command")
      assert.strictEqual(error.engine, "redis")
      assert.strictEqual(error.tier, "PRO")
      assert.include(error.message, "FLUSHALL is blocked")
      assert.strictEqual(driver.calls, 0)
      assert.strictEqual(yield* G.call(handle, { command: "SORT" }).pipe(tenancy.withProject("acme")), "ok")
      const text = yield* PrometheusMetrics.format()
      assert.strictEqual(
        sample(text, "tenantpool_protection_rejections_total", {
          database_type: "redis",
          tier: "PRO",
          rule: "redis-command"
        }),
        1
      )
    }).pipe(Effect.provide(protections), G.provide(registry))
  })

  it.effect("checks once per call, not once per retry", () =>
    Effect.gen(function* () {
      const seen: Array<string> = []
      const counting: Protections.ProtectionsShape = {
        check: (project: ProjectHandle, engine, operation) => {
          seen.push(`${project.id}/${project.tierName}/${engine}/${operation}`)
          return undefined
        }
      }
      const { handle, driver } = yield* G.register("postgres")
      yield* G.registerProject("acme", "STARTER", "postgres")
      const tenancy = yield* Tenancy.Tenancy
      driver.failNext = 2
      const result = yield* G.call(handle, { statement: "SELECT 1" }).pipe(
        tenancy.withProject("acme"),
        Effect.provide(Protections.layer(counting))
      )
      assert.strictEqual(result, "ok")
      assert.strictEqual(driver.calls, 3, "two retries")
      assert.deepStrictEqual(seen, ["acme/STARTER/postgres/get"])
    }).pipe(G.provide(new Map(), { retry: Schedule.recurs(2) }))
  )

  it.effect("an asynchronous check holds the call back until it completes", () =>
    Effect.gen(function* () {
      const slow: Protections.ProtectionsShape = { check: () => Effect.sleep("1 second") }
      const { handle, driver } = yield* G.register("mongodb")
      yield* G.registerProject("acme", "PRO", "mongodb")
      const tenancy = yield* Tenancy.Tenancy
      const fiber = yield* G.call(handle, { collection: "docs" }).pipe(
        tenancy.withProject("acme"),
        Effect.provide(Protections.layer(slow)),
        Effect.forkChild
      )
      yield* TestClock.adjust("999 millis")
      assert.strictEqual(driver.calls, 0)
      yield* TestClock.adjust("1 millis")
      assert.strictEqual(yield* Fiber.join(fiber), "ok")
      assert.strictEqual(driver.calls, 1)
    }).pipe(G.provide())
  )

  it.effect(
    "`unprotected` turns the protections off for the effect it wraps, and `check` applies them outside the guard",
    () =>
      Effect.gen(function* () {
        const { handle, driver } = yield* G.register("redis")
        yield* G.registerProject("acme", "FREE", "redis")
        const tenancy = yield* Tenancy.Tenancy
        const keys = { command: "KEYS" }
        assert.strictEqual(yield* Protections.unprotected(G.call(handle, keys)).pipe(tenancy.withProject("acme")), "ok")
        assert.strictEqual(driver.calls, 1)
        const outside = yield* Effect.flip(Protections.check("redis", "keys", keys).pipe(tenancy.withProject("acme")))
        assert.strictEqual(outside._tag, "QueryRejected")
        assert.isUndefined(
          yield* Protections.check("redis", "keys", keys),
          "no current project: nothing to check against"
        )
      }).pipe(Effect.provide(protections), G.provide())
  )

  it.effect("installs with Layer: provided to a program, the reference reaches every call in it", () =>
    Effect.gen(function* () {
      const { handle } = yield* G.register("redis")
      yield* G.registerProject("acme", "ENTERPRISE", "redis")
      const tenancy = yield* Tenancy.Tenancy
      const program = G.call(handle, { command: "DEBUG" }).pipe(tenancy.withProject("acme"), Effect.flip)
      const error = yield* program.pipe(Effect.provide(Layer.fresh(protections)))
      assert.strictEqual(error._tag, "QueryRejected")
    }).pipe(G.provide())
  )
})
