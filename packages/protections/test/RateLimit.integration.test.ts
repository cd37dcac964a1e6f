/**
 * Rate limits shared through Redis: two limiters built from independent layers (each with its own connection, as
 * two processes would have) enforce one limit per project and engine; in-process limiters would not.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Isolation from "@tenantpool/testing/Isolation"
import * as TestServers from "@tenantpool/testing/TestServers"
import type { ProjectHandle } from "@tenantpool/core/CurrentProject"
import * as RateLimit from "../src/RateLimit.ts"
import { project } from "./fixtures/Projects.ts"

// One request per 10 s after a burst of 10: nothing refills while the test runs.
const slow = { tiers: { FREE: { perSecond: 0.1, burst: 10 } } }

/** A limiter with its own Redis connection, alive until the test's scope closes (one "process"). */
const processLimiter = (prefix: string) =>
  Effect.map(
    Layer.build(RateLimit.layerRedis({ url: Redacted.make(TestServers.url("redis")), prefix, ...slow })),
    Context.get(RateLimit.RateLimit)
  )

const attempt = (limiter: RateLimit.RateLimit["Service"], p: ProjectHandle) =>
  Effect.suspend(() => limiter.check(p, "redis") ?? Effect.void).pipe(
    Effect.as(undefined),
    Effect.catchTag("RateLimited", Effect.succeed)
  )

describe("RateLimit (Redis store)", () => {
  it.live("two processes sharing Redis admit one burst between them, not one each", () =>
    Effect.gen(function* () {
      const prefix = yield* Isolation.freshRedisPrefix(TestServers.url("redis"), "ratelimit")
      const a = yield* processLimiter(prefix)
      const b = yield* processLimiter(prefix)
      const p = project("shared-proj", "FREE")
      const outcomes = []
      for (let i = 0; i < 10; i++) {
        outcomes.push(yield* attempt(a, p))
        outcomes.push(yield* attempt(b, p))
      }
      const admitted = outcomes.filter((o) => o === undefined).length
      assert.strictEqual(admitted, 10)
      const refused = outcomes.find((o) => o !== undefined)
      assert.isDefined(refused)
      assert.strictEqual(refused!.tier, "FREE")
      assert.strictEqual(refused!.engine, "redis")
      assert.isTrue(
        refused!.retryAfterMillis > 5_000 && refused!.retryAfterMillis <= 10_000,
        `${refused!.retryAfterMillis}`
      )

      const other = yield* Effect.forEach(Array.from({ length: 12 }), () => attempt(b, project("other-proj", "FREE")))
      assert.strictEqual(other.filter((o) => o === undefined).length, 10, "each project has its own limit")
    })
  )

  it.live("limiters with different prefixes, or in-process ones, do not share", () =>
    Effect.gen(function* () {
      const url = TestServers.url("redis")
      const a = yield* processLimiter(yield* Isolation.freshRedisPrefix(url, "ratelimit-a"))
      const b = yield* processLimiter(yield* Isolation.freshRedisPrefix(url, "ratelimit-b"))
      const p = project("split-proj", "FREE")
      let admitted = 0
      for (let i = 0; i < 12; i++) {
        if ((yield* attempt(a, p)) === undefined) admitted++
        if ((yield* attempt(b, p)) === undefined) admitted++
      }
      assert.strictEqual(admitted, 20)
      const local1 = yield* RateLimit.makeMemory(slow)
      const local2 = yield* RateLimit.makeMemory(slow)
      let localAdmitted = 0
      for (let i = 0; i < 12; i++) {
        if ((yield* attempt(local1, p)) === undefined) localAdmitted++
        if ((yield* attempt(local2, p)) === undefined) localAdmitted++
      }
      assert.strictEqual(localAdmitted, 20, "two in-process limiters admit a burst each")
    })
  )
})
