import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import type * as Metric from "effect/Metric"
import { PrometheusMetrics } from "effect/observability"
import { TestClock } from "effect/testing"
import * as Metrics from "../src/Metrics.ts"
import * as ProjectId from "../src/ProjectId.ts"
import * as Tenancy from "../src/Tenancy.ts"
import * as Fake from "./fixtures/FakeEngine.ts"
import * as H from "./fixtures/Harness.ts"

interface Sample {
  readonly name: string
  readonly labels: Readonly<Record<string, string>>
  readonly value: number
}

// The Prometheus text format (0.0.4): comments, and `name{label="value",...} value`.
const metricName = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/
const labelPair = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\["\\n])*)"/y
const sampleLine = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (NaN|[+-]Inf|[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)$/

/** Parses an exposition, failing the test on any line that does not follow the grammar. */
const parse = (text: string): Array<Sample> => {
  assert.isTrue(text === "" || text.endsWith("\n"), "ends with a newline")
  const samples: Array<Sample> = []
  for (const line of text.split("\n")) {
    if (line === "") continue
    if (line.startsWith("#")) {
      assert.match(
        line,
        /^# (HELP [a-zA-Z_:][a-zA-Z0-9_:]* .*|TYPE [a-zA-Z_:][a-zA-Z0-9_:]* (counter|gauge|histogram|summary|untyped))$/,
        line
      )
      continue
    }
    const m = sampleLine.exec(line)
    assert.isNotNull(m, `not a sample line: ${JSON.stringify(line)}`)
    const [, name, braces, value] = m!
    assert.match(name!, metricName)
    const labels: Record<string, string> = {}
    if (braces !== undefined) {
      const body = braces.slice(1, -1)
      let i = 0
      while (i < body.length) {
        labelPair.lastIndex = i
        const pair = labelPair.exec(body)
        assert.isNotNull(pair, `bad labels in ${JSON.stringify(line)}`)
        assert.notProperty(labels, pair![1]!, "a label appears once")
        labels[pair![1]!] = pair![2]!
        i = labelPair.lastIndex
        if (i < body.length) {
          assert.strictEqual(body[i], ",", `bad labels in ${JSON.stringify(line)}`)
          i++
        }
      }
    }
    samples.push({ name: name!, labels, value: Number(value === "+Inf" ? Infinity : value) })
  }
  return samples
}

const scrape = Effect.map(PrometheusMetrics.format(), parse)

const family = (name: string) => name.replace(/_(bucket|sum|count)$/, "")

const withRegistry = (options?: H.LayerOptions) => {
  const registry: Metric.MetricRegistry = new Map()
  return H.provide(options, registry)
}

describe("Metrics", () => {
  it.effect("exports the spec's eight metrics with bounded label names and no project_id by default", () =>
    Effect.gen(function* () {
      const server = Fake.makeServer()
      const tenancy = yield* Tenancy.Tenancy
      yield* H.registerAll(["acme"], "FREE")
      const engine = yield* tenancy.register(Fake.adapter(server, { policy: { activeProbe: false } }))
      const run = (outcome: Fake.Outcome) =>
        engine.runEffect(Fake.set, Fake.op(server, 0, outcome)).pipe(tenancy.withProject("acme"), Effect.result)
      yield* run("ok")
      yield* run("syntax")
      for (let i = 0; i < 10; i++) yield* run("down") // opens the breakers
      yield* Effect.gen(function* () {
        const project = yield* tenancy.acquireProject("acme")
        engine.recordAcquire(project, 0.003)
      }).pipe(Effect.scoped)

      const samples = yield* scrape
      const labelNames = new Map<string, Set<string>>()
      for (const s of samples) {
        const names = labelNames.get(family(s.name)) ?? new Set<string>()
        for (const l of Object.keys(s.labels)) if (l !== "le") names.add(l)
        labelNames.set(family(s.name), names)
      }
      const expected: Record<string, ReadonlyArray<string>> = {
        db_active_connections: ["database_type", "tier"],
        db_pool_size: ["database_type", "tier", "status"],
        circuit_breaker_state: ["database_type", "tier", "scope"],
        db_queries_total: ["database_type", "tier", "status"],
        db_errors_total: ["database_type", "tier", "error_type"],
        circuit_breaker_open_total: ["database_type", "tier", "scope"],
        db_query_duration_seconds: ["database_type", "tier", "operation"],
        db_connection_acquire_duration_seconds: ["database_type", "tier"]
      }
      assert.sameMembers([...labelNames.keys()], [...Metrics.names])
      for (const [name, labels] of Object.entries(expected)) {
        assert.sameMembers([...labelNames.get(name)!], [...labels], name)
      }
      assert.isFalse(
        samples.some((s) => "project_id" in s.labels),
        "no project_id label unless asked for"
      )
      const value = (name: string, labels: Record<string, string>) =>
        samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value
      assert.strictEqual(value("db_queries_total", { status: "success" }), 1)
      assert.strictEqual(value("db_queries_total", { status: "error" }), 11)
      assert.strictEqual(value("db_errors_total", { error_type: "syntax" }), 1)
      // The breaker opened after the 8th failure (10 calls, 80 %): the last two were refused.
      assert.strictEqual(value("db_errors_total", { error_type: "down" }), 8)
      assert.strictEqual(value("db_errors_total", { error_type: "circuit_open" }), 2)
      assert.strictEqual(value("circuit_breaker_state", { tier: "FREE" }), 2)
      assert.strictEqual(value("circuit_breaker_open_total", { scope: "project" }), 1)
      assert.strictEqual(value("db_pool_size", { tier: "FREE", status: "total" }), 1)
      assert.strictEqual(value("db_connection_acquire_duration_seconds_count", {}), 1)
      assert.strictEqual(value("db_connection_acquire_duration_seconds_sum", {}), 0.003)
    }).pipe(withRegistry())
  )

  it.effect("durations are in seconds; active connections follow the calls in flight", () =>
    Effect.gen(function* () {
      const server = Fake.makeServer()
      const tenancy = yield* Tenancy.Tenancy
      yield* H.registerAll(["acme"], "PRO")
      const engine = yield* tenancy.register(Fake.adapter(server))
      const fibers = yield* Effect.forEach(Array.from({ length: 3 }), () =>
        engine.runEffect(Fake.get, Fake.op(server, 250)).pipe(tenancy.withProject("acme"), Effect.forkChild)
      )
      yield* Effect.yieldNow
      const active = Effect.map(
        scrape,
        (all) => all.find((s) => s.name === "db_active_connections" && s.labels.tier === "PRO")?.value
      )
      assert.strictEqual(yield* active, 3)
      yield* TestClock.adjust(250)
      yield* Fiber.joinAll(fibers)
      assert.strictEqual(yield* active, 0)
      const samples = yield* scrape
      const sum = samples.find((s) => s.name === "db_query_duration_seconds_sum")!
      assert.deepStrictEqual(sum.labels, { database_type: "redis", tier: "PRO", operation: "get" })
      assert.closeTo(sum.value, 0.75, 1e-9, "three calls of 250 ms")
      const bucket = (le: string) =>
        samples.find((s) => s.name === "db_query_duration_seconds_bucket" && s.labels.le === le)!.value
      assert.strictEqual(bucket("0.1"), 0)
      assert.strictEqual(bucket("0.25"), 3)
      assert.strictEqual(bucket("+Inf"), 3)
    }).pipe(withRegistry())
  )

  it.effect("with projectLabel, 10,000 projects make at most 100 + 1 project series; eviction removes them", () =>
    Effect.gen(function* () {
      const server = Fake.makeServer()
      const tenancy = yield* Tenancy.Tenancy
      const engine = yield* tenancy.register(Fake.adapter(server))
      const touch = (ids: ReadonlyArray<string>) =>
        Effect.gen(function* () {
          yield* H.registerAll(ids, "FREE")
          for (const id of ids) yield* engine.runEffect(Fake.get, Fake.op(server, 0)).pipe(tenancy.withProject(id))
        })
      const projectIds = (samples: ReadonlyArray<Sample>) =>
        new Set(samples.flatMap((s) => (s.labels.project_id === undefined ? [] : [s.labels.project_id])))

      yield* touch(H.ids("a", 10_000))
      const during = projectIds(yield* scrape)
      assert.isAtMost(during.size, 101)
      assert.isTrue(during.has(Metrics.overflowProject))
      assert.strictEqual((yield* tenancy.stats).labeledProjects, 100)
      const perProject = (yield* scrape).filter((s) => s.labels.project_id === "a-0")
      assert.isNotEmpty(perProject, "the first projects got their own series")
      const total = (yield* scrape).filter((s) => s.name === "db_queries_total" && s.labels.status === "success")
      assert.strictEqual(
        total.reduce((n, s) => n + s.value, 0),
        10_000,
        "the overflow series keeps the totals right"
      )

      yield* TestClock.adjust("6 minutes") // idle eviction
      const after = yield* scrape
      assert.deepStrictEqual([...projectIds(after)], [Metrics.overflowProject], "per-project series are gone")
      assert.strictEqual((yield* tenancy.stats).labeledProjects, 0)
      const baseline = after.length

      yield* touch(H.ids("b", 10_000))
      assert.isAtMost(projectIds(yield* scrape).size, 101)
      assert.isTrue(projectIds(yield* scrape).has("b-0"), "freed label slots are reused")
      yield* TestClock.adjust("6 minutes")
      assert.strictEqual((yield* scrape).length, baseline, "the series count is back to its baseline")
    }).pipe(withRegistry({ metrics: { projectLabel: true, maxProjectSeries: 100 } }))
  )

  it.effect("the exposition parses: project ids that would need escaping cannot exist", () =>
    Effect.gen(function* () {
      for (const hostile of ['a"b', "a\\b", "a\nb", "a}b", 'x",project_id="forged', "a b"]) {
        assert.isFalse(ProjectId.is(hostile), JSON.stringify(hostile))
      }
      const server = Fake.makeServer()
      const tenancy = yield* Tenancy.Tenancy
      const engine = yield* tenancy.register(Fake.adapter(server))
      const ids = ["a", "b-2", "c_3", "0" + "z".repeat(62)]
      yield* H.registerAll(ids, "STARTER")
      for (const id of ids) {
        yield* engine.runEffect(Fake.get, Fake.op(server, 0)).pipe(tenancy.withProject(id))
        yield* engine.runEffect(Fake.set, Fake.op(server, 0, "syntax")).pipe(tenancy.withProject(id), Effect.ignore)
      }
      const text = yield* PrometheusMetrics.format()
      const samples = parse(text)
      assert.sameMembers(
        [...new Set(samples.flatMap((s) => (s.labels.project_id === undefined ? [] : [s.labels.project_id])))],
        [...ids, "_other"],
        "each project's own series, and the (zero) aggregate of projects beyond the budget"
      )
    }).pipe(withRegistry({ metrics: { projectLabel: true } }))
  )
})
