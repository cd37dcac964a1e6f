/**
 * Issue #17's proof on one machine: three processes in fleet mode against one PostgreSQL with a small
 * `max_connections` and a shared budget, counted in `pg_stat_activity` (the scenario is `@tenantpool/chaos/Fleet`,
 * also run by `npm run chaos -- --scenario fleet`). Every property of `Fleet.checks` must hold; the figures are
 * printed.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fleet from "@tenantpool/chaos/Fleet"

describe("Fleet of three processes", () => {
  it.live(
    "stays within the budget, regrants a crashed member's share, spreads breakers and survives a Redis outage",
    () =>
      Effect.gen(function* () {
        const figures = yield* Fleet.run({ log: (line) => console.log(`[fleet] ${line}`) })
        const checks = Fleet.checks(figures)
        for (const c of checks) console.log(`[fleet] ${c.ok ? "ok    " : "BROKEN"} ${c.name}: ${c.detail}`)
        const broken = checks.filter((c) => !c.ok)
        assert.deepStrictEqual(
          broken.map((c) => `${c.name}: ${c.detail}`),
          [],
          "every property of the fleet scenario holds"
        )
        // The headline figures, asserted one by one as well.
        assert.isAtMost(figures.peakConnections, figures.budget, "the fleet never held more than its budget")
        assert.isBelow(figures.breaker.spreadMillis, 1_000, "the breaker spread within a second")
        assert.isAtMost(figures.outage.peakConnections, figures.budget, "within the budget while Redis was down")
      }),
    120_000
  )
})
