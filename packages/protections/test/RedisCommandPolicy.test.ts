/**
 * The Redis command policy's defaults, read from the Redis command table: each tier blocks what it blocked when the
 * lists were written here, and overrides still replace them.
 */
import { assert, describe, it } from "@effect/vitest"
import type { TierName } from "@tenantpool/core/Tier"
import * as RedisCommandPolicy from "../src/RedisCommandPolicy.ts"
import { project } from "./fixtures/Projects.ts"

// The lists as they were written in this module before the command table: the verdicts the defaults must keep.
const dangerous = ["KEYS", "FLUSHALL", "FLUSHDB", "CONFIG", "DEBUG", "SHUTDOWN"]
const sort = ["SORT", "SORT_RO"]
const setAlgebra = ["SUNION", "SINTER", "SDIFF", "SUNIONSTORE", "SINTERSTORE", "SDIFFSTORE"].flatMap((s) => [
  s,
  `Z${s.slice(1)}`
])
const expected: Record<TierName, ReadonlyArray<string>> = {
  FREE: [...dangerous, ...sort, ...setAlgebra],
  STARTER: [...dangerous, ...sort],
  PRO: dangerous,
  ENTERPRISE: dangerous
}

const sorted = (names: Iterable<string>) => [...names].sort()

describe("RedisCommandPolicy defaults", () => {
  it("block the spec's dangerous commands on every tier, SORT below PRO and set algebra on FREE", () => {
    assert.deepStrictEqual(RedisCommandPolicy.alwaysBlocked, dangerous)
    for (const tier of ["FREE", "STARTER", "PRO", "ENTERPRISE"] as const) {
      assert.deepStrictEqual(sorted(RedisCommandPolicy.defaultBlocked[tier]), sorted(expected[tier]), tier)
    }
  })

  it("reject each blocked command for a project of the tier and let the others through", () => {
    const policy = RedisCommandPolicy.make()
    for (const tier of ["FREE", "STARTER", "PRO", "ENTERPRISE"] as const) {
      const p = project(`p-${tier.toLowerCase()}`, tier)
      assert.deepStrictEqual(sorted(policy.blocked(p)), sorted(expected[tier]), tier)
      for (const command of [...dangerous, ...sort, ...setAlgebra, "GET", "SET", "HGETALL"]) {
        const finding = policy.inspect(p, command)
        assert.strictEqual(finding !== undefined, expected[tier].includes(command), `${tier} ${command}`)
        if (finding !== undefined) assert.strictEqual(finding.rule, "redis-command")
      }
    }
  })

  it("are replaced per tier by `blocked` and per project by `blockedFor`", () => {
    const policy = RedisCommandPolicy.make({
      blocked: { PRO: ["sort"] },
      blockedFor: (p) => (p.id === "special" ? ["hgetall"] : undefined)
    })
    assert.deepStrictEqual(sorted(policy.blocked(project("p", "PRO"))), ["SORT"])
    assert.deepStrictEqual(sorted(policy.blocked(project("f", "FREE"))), sorted(expected.FREE))
    assert.deepStrictEqual(sorted(policy.blocked(project("special", "FREE"))), ["HGETALL"])
  })
})
