import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as Coordination from "@tenantpool/core/Coordination"
import { freshRedisPrefix } from "@tenantpool/testing/Isolation"
import { baseOptions, makeServer, member, redisUrl, waitFor } from "./fixtures/Members.ts"

const breakerOf = (tenancy: Parameters<typeof Coordination.targets>[0]) =>
  Effect.map(Coordination.targets(tenancy), (targets) => targets[0]?.breaker)

describe("Fleet breakers", () => {
  it.live(
    "a target breaker opened in one member opens in the others within a second; one member probes; all close",
    () =>
      Effect.gen(function* () {
        const prefix = yield* freshRedisPrefix(redisUrl(), "fleet")
        const server = makeServer()
        const options = baseOptions(redisUrl(), prefix)
        const policy = { resetTimeout: "2 seconds", probeInterval: "400 millis" } as const
        const a = yield* member(server, { ...options, instanceId: "a" }, policy)
        const b = yield* member(server, { ...options, instanceId: "b" }, policy)
        const c = yield* member(server, { ...options, instanceId: "c" }, policy)
        for (const m of [a, b, c]) yield* m.call("alpha", 1)

        server.down = true
        for (let i = 0; i < 12; i++) yield* Effect.ignore(a.call("alpha", 1))
        assert.strictEqual(yield* breakerOf(a.tenancy), "open")
        const spread = yield* waitFor(
          "b and c to open",
          Effect.map(Effect.all([breakerOf(b.tenancy), breakerOf(c.tenancy)]), (states) =>
            states.every((s) => s === "open")
          ),
          1_000
        )
        assert.isBelow(spread, 1_000)
        const calls = server.calls
        const refused = yield* Effect.flip(b.call("beta", 1))
        assert.deepInclude(refused as object, { _tag: "CircuitOpen", scope: "target" })
        assert.strictEqual(server.calls, calls, "b failed fast, without reaching the server")

        // While open, the reporter probes; the others leave it to it.
        const before = { ...server.pings }
        yield* Effect.sleep("1500 millis")
        assert.isAtLeast((server.pings["a"] ?? 0) - (before["a"] ?? 0), 2, "a probes")
        assert.strictEqual(server.pings["b"] ?? 0, before["b"] ?? 0, "b does not")
        assert.strictEqual(server.pings["c"] ?? 0, before["c"] ?? 0, "c does not")

        server.down = false
        yield* waitFor(
          "every member closed on a's probe",
          Effect.map(Effect.all([breakerOf(a.tenancy), breakerOf(b.tenancy), breakerOf(c.tenancy)]), (states) =>
            states.every((s) => s === "closed")
          ),
          5_000
        )
        assert.strictEqual(
          server.pings["b"] ?? 0,
          before["b"] ?? 0,
          "b closed on a's report, without a probe of its own"
        )
        yield* b.call("beta", 1)
        const status = yield* a.fleet.status
        assert.isAtLeast(status.breakers.published, 2, "open and closed")
      }).pipe(Effect.provideService(Metric.MetricRegistry, new Map())),
    30_000
  )

  it.live(
    "a member that starts while a target's breaker is open elsewhere learns it from the store",
    () =>
      Effect.gen(function* () {
        const prefix = yield* freshRedisPrefix(redisUrl(), "fleet")
        const server = makeServer()
        const options = baseOptions(redisUrl(), prefix)
        const policy = { resetTimeout: "5 seconds" } as const
        const a = yield* member(server, { ...options, instanceId: "a" }, policy)
        yield* a.call("alpha", 1)
        server.down = true
        for (let i = 0; i < 12; i++) yield* Effect.ignore(a.call("alpha", 1))
        assert.strictEqual(yield* breakerOf(a.tenancy), "open")
        const b = yield* member(server, { ...options, instanceId: "b" }, policy)
        // b's first call makes the target live here and fails (b has not synced since); the next sync applies a's report.
        yield* Effect.ignore(b.call("alpha", 1))
        yield* waitFor(
          "b to learn the open breaker",
          Effect.map(breakerOf(b.tenancy), (s) => s === "open"),
          1_000
        )
      }).pipe(Effect.provideService(Metric.MetricRegistry, new Map())),
    30_000
  )
})
