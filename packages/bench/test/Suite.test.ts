import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { effectLoops, interleave, pairedRatio, promiseLoops, throughputRow } from "../src/internal/loops.ts"
import { markdown, median, quantile, type Reported, type Row, table, verdict } from "../src/internal/suite.ts"
import { workloads } from "../src/workloads/index.ts"

const row = (r: Partial<Row>): Row => ({ workload: "w", name: "n", unit: "ops/s", figure: 1, ...r })

describe("suite", () => {
  it("takes medians and nearest-rank quantiles", () => {
    assert.strictEqual(median([3, 1, 2]), 2)
    assert.strictEqual(median([4, 1, 2, 3]), 2.5)
    assert.isNaN(median([]))
    const xs = Array.from({ length: 100 }, (_, i) => 100 - i)
    assert.strictEqual(quantile(xs, 0.5), 50)
    assert.strictEqual(quantile(xs, 0.99), 99)
  })

  it("judges a ratio or a figure against its target, and reports rows without one", () => {
    assert.strictEqual(verdict(row({ ratio: 0.95, target: { on: "ratio", op: ">=", value: 0.9 } })), "met")
    assert.strictEqual(verdict(row({ ratio: 0.85, target: { on: "ratio", op: ">=", value: 0.9 } })), "missed")
    assert.strictEqual(verdict(row({ figure: 51, target: { on: "figure", op: "<=", value: 50 } })), "missed")
    assert.strictEqual(verdict(row({ figure: 50, target: { on: "figure", op: "<=", value: 50 } })), "met")
    // A target whose ratio could not be computed is missed, not met.
    assert.strictEqual(verdict(row({ ratio: NaN, target: { on: "ratio", op: ">=", value: 0.9 } })), "missed")
    assert.strictEqual(verdict(row({})), "-")
  })

  it("prints one aligned table and a Markdown table with the same cells", () => {
    const rows: Array<Reported> = [
      { ...row({ name: "guard / raw @50", figure: 45_000, baseline: 50_000, ratio: 0.9 }), verdict: "met", load: 1 },
      { ...row({ name: "first call", unit: "µs", figure: 12.5 }), verdict: "-", load: 1 }
    ]
    const lines = table(rows).split("\n")
    assert.strictEqual(lines.length, 4)
    assert.include(lines[2]!, "45,000 ops/s")
    assert.include(lines[2]!, "0.90x")
    // Values are right-aligned in one column.
    assert.strictEqual(lines[2]!.indexOf(" ops/s") + " ops/s".length, lines[3]!.indexOf(" µs") + " µs".length)
    assert.include(markdown(rows), "| w | guard / raw @50 | 45,000 ops/s | 50,000 ops/s | 0.90x |")
  })

  it("every workload has a unique name and a loader", () => {
    const names = workloads.map((w) => w.name)
    assert.strictEqual(new Set(names).size, names.length)
    for (const w of workloads) assert.isFunction(w.load)
  })
})

describe("loops", () => {
  it("measures promise loops and Effect loops with latencies", async () => {
    const p = await promiseLoops(4, 0.05, () => new Promise((r) => setTimeout(r, 1)))
    assert.isAbove(p.opsPerSecond, 0)
    assert.isAtLeast(p.p99, p.p50)
    const e = await Effect.runPromise(effectLoops(4, 0.05, () => Effect.sleep("1 millis")))
    assert.isAbove(e.opsPerSecond, 0)
    assert.isAtLeast(e.p99, e.p50)
  })

  it("interleaves variants in alternating order after a warm-up, and pairs rounds in ratios", async () => {
    const calls: Array<string> = []
    const fixed = (name: string, ops: number) =>
      [
        name,
        async (inflight: number, share: number) => {
          calls.push(`${name}@${inflight}${share < 1 ? " warm" : ""}`)
          return { opsPerSecond: ops * (calls.length % 2 === 0 ? 2 : 1), p50: 1, p99: 2 }
        }
      ] as const
    const samples = await interleave([fixed("a", 10), fixed("b", 10)], [1], 3, () => {})
    assert.deepStrictEqual(calls, ["b@1 warm", "a@1 warm", "a@1", "b@1", "b@1", "a@1", "a@1", "b@1"])
    assert.strictEqual(samples.get("a@1")!.length, 3)
    // Rounds: a=10,b=20 | b=10,a=20 | a=10,b=20: paired ratios 0.5, 2, 0.5 → 0.5.
    assert.strictEqual(pairedRatio(samples, "a@1", "b@1"), 0.5)
    const r = throughputRow("w", samples, "a", "b", 1, { on: "ratio", op: ">=", value: 0.9 })
    assert.strictEqual(r.name, "a / b @1")
    assert.strictEqual(verdict(r), "missed")
  })
})
