import { readFileSync } from "node:fs"
import { assert, describe, it } from "@effect/vitest"
import { names } from "@tenantpool/core/Metrics"

const dashboard = JSON.parse(
  readFileSync(new URL("../grafana/tenantpool-dashboard.json", import.meta.url), "utf8")
) as {
  readonly panels: ReadonlyArray<{ readonly title: string; readonly targets: ReadonlyArray<{ readonly expr: string }> }>
}
const exported = new Set(names)
// A PromQL identifier followed by `{`, `[` or `)` or a space is a metric name candidate; functions are followed by `(`.
const metricNames = (expr: string) =>
  [...expr.matchAll(/\b([a-z_][a-z0-9_]*)\b(?!\s*\()/g)]
    .map((m) => m[1]!)
    .filter((n) => n.startsWith("db_") || n.startsWith("circuit_"))
    .map((n) => n.replace(/_(bucket|sum|count)$/, ""))

describe("Grafana dashboard", () => {
  it("has a panel for each of the eight metrics", () => {
    const used = new Set(dashboard.panels.flatMap((p) => p.targets.flatMap((t) => metricNames(t.expr))))
    for (const name of names) assert.isTrue(used.has(name), `no panel queries ${name}`)
  })

  it("queries only metrics tenantpool exports", () => {
    for (const panel of dashboard.panels) {
      for (const target of panel.targets) {
        const found = metricNames(target.expr)
        assert.isAbove(found.length, 0, `${panel.title}: no metric in ${target.expr}`)
        for (const name of found) assert.isTrue(exported.has(name), `${panel.title}: ${name} is not exported`)
      }
    }
  })
})
