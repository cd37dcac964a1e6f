/**
 * In-process costs of the protections, without a database: the rate limiter (this package's token bucket against
 * Effect's `RateLimiter.consume` over its memory store, the measurement behind RateLimit's design), the SQL analyzer
 * (uncached and cached), the estimator's cached path and the whole check. The EXPLAIN round trip needs a server and
 * is measured by `PgCostEstimator.integration.test.ts`, which prints its figures.
 *
 *   node packages/protections/test/bench/overhead.ts
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { RateLimiter } from "effect/persistence"
import * as ApiProtections from "../../src/ApiProtections.ts"
import * as PgCostEstimator from "../../src/PgCostEstimator.ts"
import * as RateLimit from "../../src/RateLimit.ts"
import * as SqlAnalyzer from "../../src/SqlAnalyzer.ts"
import * as Tenancy from "@tenantpool/core/Tenancy"
import * as G from "../fixtures/Guarded.ts"
import { project } from "../fixtures/Projects.ts"

const perCall = (n: number, f: () => void): number => {
  for (let i = 0; i < Math.min(n, 20_000); i++) f()
  const t = performance.now()
  for (let i = 0; i < n; i++) f()
  return ((performance.now() - t) / n) * 1000
}

const best = (runs: number, f: () => number): number => Math.min(...Array.from({ length: runs }, f))

const program = Effect.gen(function* () {
  const lines: Array<string> = []
  const unlimited = { tiers: { FREE: { perSecond: 1e12, burst: 1e12 } } }

  // Rate limiter: Effect's RateLimiter over its memory store, inside one fiber (no runtime entry per call).
  const limiter = yield* RateLimiter.RateLimiter
  for (const [label, window] of [
    ["string window", "1 second"],
    ["Duration window", Duration.seconds(1)]
  ] as const) {
    const us = yield* Effect.gen(function* () {
      const n = 200_000
      const options = { key: "p:postgres", limit: 1e12, window, algorithm: "token-bucket", onExceeded: "fail" } as const
      for (let i = 0; i < 20_000; i++) yield* limiter.consume(options)
      let min = Infinity
      for (let round = 0; round < 3; round++) {
        const t = performance.now()
        for (let i = 0; i < n; i++) yield* limiter.consume(options)
        min = Math.min(min, ((performance.now() - t) / n) * 1000)
      }
      return min
    })
    lines.push(`RateLimiter.consume (memory store, ${label}): ${us.toFixed(3)} µs/call`)
  }
  const memory = yield* RateLimit.makeMemory(unlimited)
  const p = project("bench", "FREE")
  lines.push(
    `RateLimit memory bucket (check, passing):     ${best(3, () => perCall(1_000_000, () => memory.check(p, "postgres"))).toFixed(3)} µs/call`
  )

  // Analyzer.
  const analyzer = yield* SqlAnalyzer.make()
  const texts = (prefix: string) =>
    Array.from(
      { length: 3_000 },
      (_, i) => `SELECT id, email, created_at FROM ${prefix}_${i} WHERE id = $1 AND status = $2 LIMIT 20`
    )
  for (const s of texts("warm")) SqlAnalyzer.analyzeUncached(s)
  const measured = texts("users")
  const t = performance.now()
  for (const s of measured) SqlAnalyzer.analyzeUncached(s)
  lines.push(
    `SqlAnalyzer uncached (parse + fingerprint):   ${(((performance.now() - t) / measured.length) * 1000).toFixed(1)} µs/statement`
  )
  const one = measured[0]!
  analyzer.analyze(one)
  lines.push(
    `SqlAnalyzer cached (analyze):                 ${best(3, () => perCall(1_000_000, () => analyzer.analyze(one))).toFixed(3)} µs/call`
  )

  // Estimator and the whole check, with an explain that answers from memory (a cheap plan).
  const plan = [{ "QUERY PLAN": [{ Plan: { "Total Cost": 8.3, "Plan Rows": 1 } }] }]
  const layer = ApiProtections.layer.pipe(
    Layer.provideMerge(
      Layer.mergeAll(
        RateLimit.layerMemory(unlimited),
        PgCostEstimator.layer({ explain: () => Effect.succeed(plan) }).pipe(Layer.provideMerge(SqlAnalyzer.layer()))
      )
    )
  )
  yield* Effect.gen(function* () {
    const estimator = yield* PgCostEstimator.PgCostEstimator
    const protections = yield* ApiProtections.ApiProtections
    const detail = { statement: one, params: [1, "active"] }
    yield* Effect.suspend(() => protections.check(p, "postgres", "query", detail) ?? Effect.void)
    const analysis = estimator.analyze(one)
    lines.push(
      `PgCostEstimator cached (inspect):             ${best(3, () => perCall(1_000_000, () => estimator.inspect(p, analysis, detail.params))).toFixed(3)} µs/call`
    )
    lines.push(
      `ApiProtections.check, all from memory:        ${best(3, () => perCall(1_000_000, () => protections.check(p, "postgres", "query", detail))).toFixed(3)} µs/call ` +
        "(rate limit + analysis + policy + estimate)"
    )
    const redis = { command: "GET" }
    lines.push(
      `ApiProtections.check, Redis GET:              ${best(3, () => perCall(1_000_000, () => protections.check(p, "redis", "get", redis))).toFixed(3)} µs/call`
    )
  }).pipe(Effect.provide(layer))

  // Through the guard (an engine whose driver answers at once): no detail, a detail with no protections installed,
  // and a detail with the protections (rate limit + Redis command policy).
  yield* Effect.gen(function* () {
    const { handle } = yield* G.register("redis")
    yield* G.registerProject("bench-guard", "FREE", "redis")
    const tenancy = yield* Tenancy.Tenancy
    const detail = { command: "GET" }
    const time = (label: string, call: Effect.Effect<unknown, unknown>) =>
      Effect.gen(function* () {
        const n = 50_000
        for (let i = 0; i < 10_000; i++) yield* call
        let min = Infinity
        for (let round = 0; round < 3; round++) {
          const t0 = performance.now()
          for (let i = 0; i < n; i++) yield* call
          min = Math.min(min, ((performance.now() - t0) / n) * 1000)
        }
        lines.push(`${label.padEnd(45)} ${min.toFixed(3)} µs/call`)
      })
    const protections = ApiProtections.layerWith({ rateLimit: unlimited, sql: false, mongo: false })
    yield* Effect.gen(function* () {
      yield* time("guard, no detail:", G.call(handle))
      yield* time("guard, detail, no protections installed:", G.call(handle, detail))
      yield* time("guard, detail, protections installed:", G.call(handle, detail)).pipe(Effect.provide(protections))
    }).pipe(tenancy.withProject("bench-guard"))
  }).pipe(G.provide())
  return lines
})

const lines = await Effect.runPromise(
  program.pipe(Effect.provide(RateLimiter.layer.pipe(Layer.provide(RateLimiter.layerStoreMemory))))
)
console.log(`[protections bench, node ${process.version}]\n${lines.join("\n")}`)
