import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Metrics from "../../src/Metrics.ts"
import { countError, handlesOf, removeProjectSeries } from "../../src/internal/metricHandles.ts"
import { withState } from "../fixtures/State.ts"

describe("metricHandles", () => {
  it.effect("projects without the label share one set of series per engine and tier", () =>
    withState(({ g, project }) =>
      Effect.gen(function* () {
        const a = yield* project("a")
        const b = yield* project("b")
        const c = yield* project("c", "PRO")
        assert.strictEqual(handlesOf(a), handlesOf(b))
        assert.notStrictEqual(handlesOf(a), handlesOf(c))
        assert.deepStrictEqual(handlesOf(c).attrs, { database_type: "redis", tier: "PRO" })
        countError(g, a, "timeout")
        countError(g, b, "timeout")
        assert.strictEqual(handlesOf(a).errors.get("timeout")!.n, 2)
      })
    )
  )

  it.effect("with the label on, the first maxProjectSeries projects get their own series, the rest share _other", () =>
    withState(
      ({ g, project }) =>
        Effect.gen(function* () {
          const a = yield* project("a")
          const b = yield* project("b")
          const c = yield* project("c")
          assert.deepStrictEqual(
            [a, b, c].map((pe) => handlesOf(pe).attrs.project_id),
            ["a", "b", Metrics.overflowProject]
          )
          assert.strictEqual(handlesOf(c), handlesOf(c), "overflow series are made once")
          assert.strictEqual(g.labeledProjects, 2)
          assert.strictEqual(a.gauges?.length, 2)
          assert.isUndefined(c.gauges, "no per-project gauges in the overflow")
          removeProjectSeries(a)
          assert.isUndefined(a.gauges)
        }),
      { settings: { projectLabel: true, maxProjectSeries: 2 } }
    )
  )
})
