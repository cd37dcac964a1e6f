import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Metric from "effect/Metric"
import type { ProjectHandle } from "@tenantpool/core/CurrentProject"
import { freshRedisPrefix } from "@tenantpool/testing/Isolation"
import { baseOptions, makeServer, type Member, member, redisUrl } from "./fixtures/Members.ts"

// Checks `project`'s limit as fast as the member can for `millis`; counts what is admitted.
const hammer = (m: Member, project: ProjectHandle, millis: number) =>
  Effect.gen(function* () {
    const limit = m.rateLimit!
    const end = Date.now() + millis
    let admitted = 0
    let refused = 0
    while (Date.now() < end) {
      const check = limit.check(project, "postgres")
      if (check === undefined) admitted++
      else if (Exit.isSuccess(yield* Effect.exit(check))) admitted++
      else {
        refused++
        yield* Effect.sleep("2 millis")
      }
      if ((admitted + refused) % 64 === 0) yield* Effect.yieldNow
    }
    return { admitted, refused }
  })

describe("Fleet rate limits", () => {
  it.live(
    "two members together admit what the tier says (burst + rate × time), not twice that",
    () =>
      Effect.gen(function* () {
        const prefix = yield* freshRedisPrefix(redisUrl(), "fleet")
        const server = makeServer()
        const options = {
          ...baseOptions(redisUrl(), prefix),
          rateLimits: { tiers: { PRO: { perSecond: 400, burst: 400 } } }
        }
        const a = yield* member(server, { ...options, instanceId: "a" })
        const b = yield* member(server, { ...options, instanceId: "b" })
        const pa = yield* a.tenancy.acquireProject("alpha")
        const pb = yield* b.tenancy.acquireProject("alpha")
        const started = Date.now()
        const [ra, rb] = yield* Effect.all([hammer(a, pa, 2_000), hammer(b, pb, 2_000)], { concurrency: 2 })
        const seconds = (Date.now() - started) / 1000
        const total = ra.admitted + rb.admitted
        const allowed = 400 + 400 * seconds
        assert.isAtMost(total, allowed + 1, `admitted ${total} in ${seconds.toFixed(2)} s`)
        assert.isAtLeast(total, 0.75 * allowed, "and not much less")
        assert.isAbove(ra.admitted, 0.2 * total, "both members were admitted")
        assert.isAbove(rb.admitted, 0.2 * total, "both members were admitted")
        assert.isAbove(ra.refused + rb.refused, 0)
      }).pipe(Effect.provideService(Metric.MetricRegistry, new Map())),
    30_000
  )
})
