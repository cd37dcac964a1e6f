/**
 * The hot path in fleet mode does not talk to Redis per call: guarded calls with the protections' rate limit,
 * counted in the Redis server's own statistics (a private server, so other test files do not count). Times are
 * printed, not asserted (`test/bench/guardCost.ts` is the benchmark; README has its figures).
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Servers from "@tenantpool/testing/Servers"
import { measure } from "./bench/guardCost.ts"

describe("Fleet mode's hot path", () => {
  it.live(
    "a guarded call is checked locally: Redis sees one round trip per rate-limit lease and per sync, not per call",
    () =>
      Effect.gen(function* () {
        const redis = yield* Servers.acquirePrivate("redis")
        const f = yield* measure(redis.url, { calls: 20_000, rounds: 3 })
        console.log(`[hot path] ${JSON.stringify(f)}`)
        assert.strictEqual(f.refused, 0)
        assert.deepStrictEqual(f.modes, ["memory", "fleet"])
        assert.strictEqual(f.coordinated.length, 1, "the target is coordinated (demand sampled, share applied)")
        // Leases of 50,000 calls: the round trips are the syncs (one a second) and a lease or two per round.
        assert.isBelow(f.redisCommandsPerCall, 0.001)
        // Leases of 50 calls (PRO's default rate): one round trip per 50 calls, plus the syncs.
        assert.isAtLeast(f.smallLeaseCommandsPerCall, 1 / 60)
        assert.isBelow(f.smallLeaseCommandsPerCall, 1 / 40)
      }),
    60_000
  )
})
