/**
 * Bad input to the pure public functions of `@tenantpool/protections` (issue #14 item 7): fast-check properties over
 * hostile arguments (`@tenantpool/testing/Hostile`). The analyzers see whatever a caller sent (`as any` included):
 * they must end in a value or a typed failure — never a throw or a defect — and echo no canary secret.
 *
 * Inventory (pure functions): SqlAnalyzer `analyzeUncached`; MongoAnalyzer `javaScriptOperator`, `isCollectionScan`,
 * `shapeOf`. The services that need a server (the cost estimator, the rate limiter on Redis, the policies on the
 * engines) are not covered here yet.
 */
import { describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Canary from "@tenantpool/testing/Canary"
import * as H from "@tenantpool/testing/Hostile"
import * as MongoAnalyzer from "../src/MongoAnalyzer.ts"
import * as SqlAnalyzer from "../src/SqlAnalyzer.ts"

const canary = Canary.make()
const c = canary.secret

describe("protections bad input: pure functions", () => {
  it.live("the analyzers never throw, whatever they are given", () =>
    Effect.andThen(SqlAnalyzer.load, () =>
      H.check(
        [H.anything(c)],
        (s) =>
          Effect.sync(() => {
            for (const [name, f] of [
              ["SqlAnalyzer.analyzeUncached", () => SqlAnalyzer.analyzeUncached(s.make() as any)],
              ["MongoAnalyzer.javaScriptOperator", () => MongoAnalyzer.javaScriptOperator(s.make())],
              ["MongoAnalyzer.isCollectionScan", () => MongoAnalyzer.isCollectionScan(s.make())],
              ["MongoAnalyzer.shapeOf", () => MongoAnalyzer.shapeOf(s.make())]
            ] as const) {
              let outcome: H.Outcome
              try {
                outcome = { _tag: "Success", value: name.endsWith("shapeOf") ? undefined : f() }
                if (name.endsWith("shapeOf")) f()
              } catch (thrown) {
                outcome = { _tag: "Threw", thrown }
              }
              H.expect(`${name}(${s.label})`, outcome, { tags: [], forms: canary.forms })
            }
          }),
        200
      )
    )
  )
})
