/**
 * The cost estimator against PostgreSQL 15: budgets per tier (an expensive cross join is refused for FREE and runs
 * for ENTERPRISE), the estimate cache and its TTL, parameters in the EXPLAIN, the throttled lane, EXPLAIN failures,
 * and the overhead of the analyzer and the estimator per statement, cached and uncached, printed for the report.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { MemoryRegistry } from "@tenantpool/core/Registry"
import * as Tenancy from "@tenantpool/core/Tenancy"
import type { TierName } from "@tenantpool/core/Tier"
import type * as SqlClient from "effect/sql/SqlClient"
import * as ApiProtections from "../src/ApiProtections.ts"
import * as PgCostEstimator from "../src/PgCostEstimator.ts"
import * as SqlAnalyzer from "../src/SqlAnalyzer.ts"
import * as G from "./fixtures/Guarded.ts"
import * as Pg from "./fixtures/Pg.ts"
import { project } from "./fixtures/Projects.ts"

/** 2,000 × 2,000 = 4 million rows; the planner puts it at ~90,000 cost units. */
const crossJoin = "SELECT count(*) AS n FROM generate_series(1, 2000) a CROSS JOIN generate_series(1, 2000) b"

/** The parts composed by hand (as an application would), so the test can read the estimator's and analyzer's stats. */
const protections = (sql: SqlClient.SqlClient, options?: Partial<PgCostEstimator.Options>) =>
  ApiProtections.layer.pipe(
    Layer.provideMerge(
      PgCostEstimator.layer({ explain: PgCostEstimator.explainWith(sql), ...options }).pipe(
        Layer.provideMerge(SqlAnalyzer.layer())
      )
    )
  )

type Registered = Effect.Success<ReturnType<typeof Pg.register>>

/** Runs `body` with the guarded pg engine and the protections over a fresh database. */
const withDatabase = <A, E>(
  label: string,
  options: Partial<PgCostEstimator.Options> | undefined,
  body: (ctx: {
    readonly query: Registered["query"]
    readonly unchecked: Registered["unchecked"]
    readonly counts: { statements: number }
    readonly as: (
      id: string,
      tier: TierName
    ) => <X, Y, Z>(self: Effect.Effect<X, Y, Z>) => Effect.Effect<X, Y | unknown, Z>
    readonly sql: SqlClient.SqlClient
  }) => Effect.Effect<A, E, any>
) =>
  Effect.gen(function* () {
    const { url, sql } = yield* Pg.freshDatabase(label)
    const layer = protections(sql, options)
    return yield* Effect.gen(function* () {
      const { query, unchecked, counts } = yield* Pg.register(sql)
      const tenancy = yield* Tenancy.Tenancy
      const registry = yield* MemoryRegistry
      const registered = new Set<string>()
      const as =
        (id: string, tier: TierName) =>
        <X, Y, Z>(self: Effect.Effect<X, Y, Z>) =>
          Effect.gen(function* () {
            if (!registered.has(id)) {
              yield* registry.register({ id, tier, postgres: url })
              registered.add(id)
            }
            return yield* tenancy.withProject(id)(self)
          })
      return yield* body({ query, unchecked, counts, as, sql })
    }).pipe(Effect.provide(layer), G.provide())
  })

describe("PgCostEstimator", () => {
  it.live("refuses an expensive cross join for FREE and runs it for ENTERPRISE", () =>
    withDatabase("cost-tiers", undefined, ({ query, counts, as }) =>
      Effect.gen(function* () {
        const refused = yield* Effect.flip(query(crossJoin).pipe(as("free-proj", "FREE")))
        assert.strictEqual((refused as { _tag: string })._tag, "QueryRejected")
        const rejection = refused as unknown as { rule: string; detail: string; fingerprint: string; tier: string }
        assert.strictEqual(rejection.rule, "cost-budget")
        assert.strictEqual(rejection.tier, "FREE")
        assert.match(rejection.detail, /^estimated cost [\d,]+ exceeds the budget of 50,000$/)
        assert.match(rejection.fingerprint, /^[0-9a-f]{16}$/)
        assert.strictEqual(counts.statements, 0, "the statement never reached the database")

        const rows = yield* query<{ n: string }>(crossJoin).pipe(as("ent-proj", "ENTERPRISE"))
        assert.strictEqual(String(rows[0]!.n), "4000000")
        assert.strictEqual(counts.statements, 1)
      })
    )
  )

  it.live("caches the estimate per project and fingerprint: the next execution runs no EXPLAIN", () =>
    withDatabase("cost-cache", undefined, ({ query, as }) =>
      Effect.gen(function* () {
        const estimator = yield* PgCostEstimator.PgCostEstimator
        yield* query("SELECT $1::int + 1 AS n", [1]).pipe(as("cache-proj", "FREE"))
        assert.strictEqual(estimator.stats().explains, 1)
        const rows = yield* query<{ n: number }>("SELECT $1::int + 1 AS n", [41]).pipe(as("cache-proj", "FREE"))
        assert.strictEqual(rows[0]!.n, 42)
        assert.deepStrictEqual([estimator.stats().explains, estimator.stats().hits], [1, 1])
        yield* query("SELECT $1::int + 1 AS n", [1]).pipe(as("other-proj", "FREE"))
        assert.strictEqual(estimator.stats().explains, 2, "another project's database, another estimate")
      })
    )
  )

  it.live("explains a parameterized statement with its actual parameters", () =>
    withDatabase("cost-params", undefined, ({ query, as }) =>
      Effect.gen(function* () {
        const sqlText = "SELECT count(*) FROM generate_series(1, $1::int) a CROSS JOIN generate_series(1, $1::int) b"
        // A generic plan would assume 1,000 rows per series (~25,000 cost, under FREE's budget): only the actual
        // parameter (3,000 × 3,000 rows) puts it over.
        const refused = yield* Effect.flip(query(sqlText, [3000]).pipe(as("big-param", "FREE")))
        assert.strictEqual((refused as { rule?: string }).rule, "cost-budget")
        const rows = yield* query<{ count: string }>(sqlText, [10]).pipe(as("small-param", "FREE"))
        assert.strictEqual(String(rows[0]!.count), "100")
      })
    )
  )

  it.live("throttles over-budget statements on the expensive lane instead of refusing them", () =>
    withDatabase(
      "cost-throttle",
      {
        budgets: { PRO: { maxCost: 1_000, overBudget: "throttle" } },
        throttle: { perSecond: 5, burst: 1, maxWait: "1 second" }
      },
      ({ query, as }) =>
        Effect.gen(function* () {
          const expensive = "SELECT count(*) FROM generate_series(1, 200000) g"
          const started = performance.now()
          for (let i = 0; i < 3; i++) yield* query(expensive).pipe(as("lane-proj", "PRO"))
          const elapsed = performance.now() - started
          assert.isAtLeast(elapsed, 350, `the 2nd and 3rd waited ~200 ms each (${elapsed.toFixed(0)} ms)`)
          const cheapStarted = performance.now()
          yield* query("SELECT 1").pipe(as("lane-proj", "PRO"))
          assert.isBelow(performance.now() - cheapStarted, 150, "a cheap statement does not queue on the lane")
          const events = yield* (yield* ApiProtections.ApiProtections).recentEvents
          assert.deepStrictEqual(
            events.map((e) => [e._tag, e.rule]),
            [
              ["Flagged", "cost-budget"],
              ["Flagged", "cost-budget"],
              ["Flagged", "cost-budget"]
            ]
          )
          // Six more at once: the lane admits 5/s and waits at most 1 s, so some are refused.
          const burst = yield* Effect.forEach(
            [1, 2, 3, 4, 5, 6, 7, 8],
            () => query(expensive).pipe(as("lane-proj", "PRO"), Effect.result),
            { concurrency: "unbounded" }
          )
          const refused = burst.filter((r) => r._tag === "Failure")
          assert.isAbove(refused.length, 0)
          assert.isBelow(refused.length, 8)
        })
    )
  )

  it.live("lets a statement whose EXPLAIN fails run (and fail on its own), or refuses it by policy", () =>
    Effect.gen(function* () {
      yield* withDatabase("cost-explain-error", undefined, ({ query, as }) =>
        Effect.gen(function* () {
          const error = yield* Effect.flip(query("SELECT * FROM no_such_table").pipe(as("err-proj", "FREE")))
          assert.strictEqual((error as { _tag: string })._tag, "SqlError", "the database's own error")
          assert.strictEqual((yield* PgCostEstimator.PgCostEstimator).stats().explainErrors, 1)
        })
      )
      yield* withDatabase("cost-explain-reject", { onExplainError: "reject" }, ({ query, as }) =>
        Effect.gen(function* () {
          const error = yield* Effect.flip(query("SELECT * FROM no_such_table").pipe(as("err-proj", "FREE")))
          assert.strictEqual((error as { rule?: string }).rule, "cost-budget")
        })
      )
    })
  )

  it.live("forgets an estimate after its TTL", () =>
    withDatabase("cost-ttl", { ttl: "200 millis" }, ({ query, as }) =>
      Effect.gen(function* () {
        const estimator = yield* PgCostEstimator.PgCostEstimator
        yield* query("SELECT 1").pipe(as("ttl-proj", "FREE"))
        yield* query("SELECT 1").pipe(as("ttl-proj", "FREE"))
        assert.strictEqual(estimator.stats().explains, 1)
        yield* Effect.sleep("250 millis")
        yield* query("SELECT 1").pipe(as("ttl-proj", "FREE"))
        assert.strictEqual(estimator.stats().explains, 2)
      })
    )
  )

  it.live("reports the overhead of the analyzer and the estimator per statement, cached and uncached", () =>
    withDatabase("cost-overhead", undefined, ({ query, unchecked, as, sql }) =>
      Effect.gen(function* () {
        const analyzer = yield* SqlAnalyzer.SqlAnalyzer
        const estimator = yield* PgCostEstimator.PgCostEstimator
        const protections = yield* ApiProtections.ApiProtections
        // Analyzer: app-like statements (distinct texts; the tables need not exist to be parsed). The first pass
        // warms the JIT and the WebAssembly module, so the figures are steady-state ones.
        const appLike = (prefix: string) =>
          Array.from(
            { length: 2_000 },
            (_, i) => `SELECT id, email, created_at FROM ${prefix}_${i} WHERE id = $1 AND status = $2 LIMIT 20`
          )
        for (const s of appLike("warm")) SqlAnalyzer.analyzeUncached(s)
        const measured = appLike("users")
        let t = performance.now()
        for (const s of measured) SqlAnalyzer.analyzeUncached(s)
        const analyzeUncachedUs = ((performance.now() - t) / measured.length) * 1000
        for (const s of measured) analyzer.analyze(s)
        const rounds = 50
        t = performance.now()
        for (let r = 0; r < rounds; r++) for (const s of measured) analyzer.analyze(s)
        const analyzeCachedUs = ((performance.now() - t) / (rounds * measured.length)) * 1000

        // Statements with distinct fingerprints that PostgreSQL can plan (constants and aliases do not change a
        // fingerprint, referenced names do).
        const shapes = Array.from(
          { length: 200 },
          (_, i) => `SELECT c${i} FROM (SELECT g AS c${i} FROM generate_series(1, 10) g) s WHERE c${i} > $1`
        )
        // Estimator, uncached: one EXPLAIN round trip per new fingerprint (measured by the estimator).
        const p = project("bench-proj", "PRO")
        for (const s of shapes.slice(0, 20)) yield* estimator.estimate(project("warm-proj", "PRO"), s, [1])
        const before = estimator.stats()
        for (const s of shapes.slice(100, 200)) yield* estimator.estimate(p, s, [1])
        const after = estimator.stats()
        const explainMs = (after.explainMillisTotal - before.explainMillisTotal) / (after.explains - before.explains)
        assert.strictEqual(after.explains - before.explains, 100)

        // The whole check (rate limit off; analysis + policy + estimate from memory) on the hot path.
        const detail = { statement: shapes[100]!, params: [1] }
        assert.isUndefined(protections.check(p, "postgres", "query", detail), "answered synchronously")
        t = performance.now()
        for (let i = 0; i < 100_000; i++) protections.check(p, "postgres", "query", detail)
        const checkCachedUs = (performance.now() - t) / 100
        const inspectUs = (() => {
          const a = analyzer.analyze(shapes[100]!)
          const s = performance.now()
          for (let i = 0; i < 100_000; i++) estimator.inspect(p, a, [1])
          return (performance.now() - s) / 100
        })()

        // End to end: the same statement through the guard with the detail (checked) and without (unchecked), and
        // on the raw client, alternating rounds so that drift hits all three alike.
        const statement = "SELECT $1::int AS n"
        const timeQueries = (run: (i: number) => Effect.Effect<unknown, unknown>) =>
          Effect.gen(function* () {
            const s = performance.now()
            for (let i = 0; i < 200; i++) yield* run(i)
            return ((performance.now() - s) / 200) * 1000
          })
        yield* query(statement, [0]).pipe(as("e2e-proj", "PRO"))
        const totals = { checked: 0, unchecked: 0, raw: 0 }
        for (let round = 0; round < 5; round++) {
          totals.checked += yield* timeQueries((i) => query(statement, [i])).pipe(as("e2e-proj", "PRO"))
          totals.unchecked += yield* timeQueries((i) => unchecked(statement, [i])).pipe(as("e2e-proj", "PRO"))
          totals.raw += yield* timeQueries((i) => sql.unsafe(statement, [i]))
        }

        console.log(
          [
            "[protections overhead, per statement]",
            `  analyzer, uncached (parse + fingerprint, app-like statement): ${analyzeUncachedUs.toFixed(1)} µs`,
            `  analyzer, cached (map lookup):            ${analyzeCachedUs.toFixed(3)} µs`,
            `  estimator, uncached (EXPLAIN round trip): ${explainMs.toFixed(3)} ms (worst ${after.explainMillisMax.toFixed(2)} ms)`,
            `  estimator, cached (inspect):              ${inspectUs.toFixed(3)} µs`,
            `  whole check, cached (analysis + policy + estimate): ${checkCachedUs.toFixed(3)} µs`,
            `  round trip of SELECT $1 (mean of 1,000): guard + checks ${(totals.checked / 5).toFixed(0)} µs, ` +
              `guard alone ${(totals.unchecked / 5).toFixed(0)} µs, raw sql-pg client ${(totals.raw / 5).toFixed(0)} µs`
          ].join("\n")
        )
        assert.isAbove(explainMs * 1000, analyzeCachedUs * 10, "a cached check is far cheaper than an EXPLAIN")
        assert.isBelow(analyzeCachedUs, analyzeUncachedUs, "the cache pays for itself")
      })
    )
  )
})
