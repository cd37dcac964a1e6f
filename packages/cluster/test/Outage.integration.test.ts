import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Metric from "effect/Metric"
import * as Servers from "@tenantpool/testing/Servers"
import { baseOptions, load, makeServer, member, waitFor } from "./fixtures/Members.ts"

describe("Fleet without its coordinator", () => {
  it.live(
    "members keep serving on min(last share, budget / instances) while Redis is stopped, and rejoin when it returns",
    () =>
      Effect.gen(function* () {
        const redis = yield* Servers.acquirePrivate("redis")
        const server = makeServer()
        const options = { ...baseOptions(redis.url, "fleet:"), rateLimits: { tiers: { PRO: { perSecond: 100_000 } } } }
        const a = yield* member(server, { ...options, instanceId: "a" })
        const b = yield* member(server, { ...options, instanceId: "b" })
        // Skewed demand: a holds more than half, b less.
        const loads = [yield* load(a, 60), yield* load(b, 10)]
        yield* waitFor(
          "a skewed split",
          Effect.sync(() => a.share() >= 8 && b.share() >= 1 && a.share() + b.share() === 12)
        )
        const before = { a: a.share(), b: b.share() }
        // The sum of the shares, sampled through the outage and the rejoin: after Redis restarts empty, the first
        // member back must not take the budget the other still holds.
        let most = 0
        const sampler = yield* Effect.forkChild(
          Effect.forever(
            Effect.sync(() => void (most = Math.max(most, a.share() + b.share()))).pipe(
              Effect.andThen(Effect.sleep("5 millis"))
            )
          )
        )

        yield* Servers.stop(redis)
        yield* waitFor(
          "both to notice",
          Effect.map(Effect.all([a.fleet.status, b.fleet.status]), (all) => all.every((s) => !s.connected))
        )
        assert.strictEqual(a.share(), 6, "the last share, never more than budget / instances")
        assert.strictEqual(b.share(), Math.min(before.b, 6))
        // Still serving: calls complete, and the rate limit is checked locally.
        const calls = server.calls
        yield* Effect.sleep("500 millis")
        assert.isAbove(server.calls - calls, 100, "calls keep completing")
        const handle = yield* a.tenancy.acquireProject("alpha")
        const checked = yield* Effect.exit(a.rateLimit!.check(handle, "postgres") ?? Effect.void)
        assert.isTrue(Exit.isSuccess(checked), "admitted by the local fallback limit")
        assert.isAtMost(a.share() + b.share(), 12)

        yield* Servers.start(redis)
        yield* waitFor(
          "both to rejoin",
          Effect.map(Effect.all([a.fleet.status, b.fleet.status]), (all) =>
            all.every((s) => s.connected && s.instances === 2)
          ),
          10_000
        )
        yield* waitFor(
          "the skewed split again",
          Effect.sync(() => a.share() >= 8 && a.share() + b.share() === 12),
          10_000
        )
        yield* Fiber.interrupt(sampler)
        assert.isAtMost(most, 12, "the shares never added up to more than the budget, the rejoin included")
        for (const f of loads) yield* Fiber.interrupt(f)
      }).pipe(Effect.provideService(Metric.MetricRegistry, new Map())),
    60_000
  )

  it.live(
    "a member that starts while Redis is unreachable serves on budget / fallbackInstances and joins later",
    () =>
      Effect.gen(function* () {
        const redis = yield* Servers.acquirePrivate("redis")
        yield* Servers.stop(redis)
        const server = makeServer()
        const options = { ...baseOptions(redis.url, "fleet:"), fallbackInstances: 3, rateLimits: false as const }
        const a = yield* member(server, { ...options, instanceId: "a" })
        const busy = yield* load(a, 20)
        yield* waitFor(
          "a to serve",
          Effect.sync(() => server.calls > 50)
        )
        assert.strictEqual(a.share(), 4, "12 / 3")
        assert.isFalse((yield* a.fleet.status).connected)
        yield* Servers.start(redis)
        yield* waitFor(
          "a to join and take the budget",
          Effect.sync(() => a.share() === 12),
          10_000
        )
        yield* Fiber.interrupt(busy)
      }).pipe(Effect.provideService(Metric.MetricRegistry, new Map())),
    60_000
  )
})
