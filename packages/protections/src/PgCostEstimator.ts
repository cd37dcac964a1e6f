/**
 * The PostgreSQL cost estimator: before a statement runs, the planner's estimate (`EXPLAIN (FORMAT JSON)`: total
 * cost and rows) is compared with the tier's budget. Over budget, a statement is rejected (`cost-budget`) or, by
 * policy, throttled: admitted on a per-project "expensive lane" that lets through `perSecond` such statements
 * (plus a small burst) and makes the rest wait their turn, up to `maxWait`, so cheap statements never queue behind
 * expensive ones.
 *
 * Estimates are cached per (project, statement fingerprint) for a TTL (default 5 minutes) in a bounded map
 * (default 10,000 entries), so only the first execution of a statement shape pays the extra round trip; concurrent
 * first executions share one EXPLAIN. The round trip is measured (`tenantpool_protection_explain_duration_seconds`,
 * `stats()`), and lookups are counted by result (`tenantpool_protection_estimates_total`).
 *
 * Parameterized statements are explained with their actual parameters (`EXPLAIN (GENERIC_PLAN)` needs PostgreSQL
 * 16; this fleet runs 15). The cached estimate then stands for every execution of the shape until it expires, as
 * `pg_stat_statements` does. An EXPLAIN that fails lets the statement run (`onExplainError`, default `allow`): it
 * fails the same way on its own, and an estimator outage must not stop traffic.
 *
 * Default budgets (PostgreSQL cost units: 1 = one sequential page read; a sequential scan of a million narrow rows
 * costs ~20,000):
 *
 * | Tier | Max cost | Max rows | Over budget |
 * | --- | --- | --- | --- |
 * | FREE | 50,000 | 100,000 | reject |
 * | STARTER | 250,000 | 1,000,000 | reject |
 * | PRO | 1,000,000 | — | throttle |
 * | ENTERPRISE | 10,000,000 | — | throttle |
 *
 * The EXPLAIN itself runs through `explain`, which the engine supplies (on the project's own database, through the
 * guard, with protections off: see `explainWith` and `Protections.unprotected`).
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import type * as SqlClient from "effect/sql/SqlClient"
import type { ProjectHandle } from "@tenantpool/core/CurrentProject"
import { InvalidConfig } from "@tenantpool/core/Errors"
import { unprotected } from "@tenantpool/core/Protections"
import { type TierName, tierNames } from "@tenantpool/core/Tier"
import * as Finding from "./Finding.ts"
import * as ProtectionMetrics from "./ProtectionMetrics.ts"
import { type Analysis, SqlAnalyzer } from "./SqlAnalyzer.ts"
import { CounterCell } from "./internal/counterCell.ts"
import { ExpiringCache } from "./internal/expiringCache.ts"
import { refund, reserve, TokenBucket } from "./internal/tokenBucket.ts"

/**
 * A tier's budget.
 *
 * @category models
 * @since 0.1.0
 */
export interface CostBudget {
  /** Highest estimated total cost admitted normally. */
  readonly maxCost: number
  /** Highest estimated row count admitted normally (undefined: no row budget). */
  readonly maxRows?: number | undefined
  /** What happens over budget. */
  readonly overBudget: "reject" | "throttle"
}

/**
 * The default budgets (see the module comment).
 *
 * @category constants
 * @since 0.1.0
 */
export const defaultBudgets: Readonly<Record<TierName, CostBudget>> = {
  FREE: { maxCost: 50_000, maxRows: 100_000, overBudget: "reject" },
  STARTER: { maxCost: 250_000, maxRows: 1_000_000, overBudget: "reject" },
  PRO: { maxCost: 1_000_000, overBudget: "throttle" },
  ENTERPRISE: { maxCost: 10_000_000, overBudget: "throttle" }
}

/**
 * The expensive lane of the `throttle` policy, per project.
 *
 * @category models
 * @since 0.1.0
 */
export interface Throttle {
  /** Over-budget statements admitted per second (default 1). */
  readonly perSecond: number
  /** Admitted at once from an idle lane (default 2). */
  readonly burst: number
  /** Longest wait for a turn; beyond it the statement is rejected (default 2 seconds). */
  readonly maxWait: Duration.Input
}

/**
 * The planner's estimate.
 *
 * @category models
 * @since 0.1.0
 */
export interface Estimate {
  readonly totalCost: number
  readonly planRows: number
}

/**
 * Runs `EXPLAIN (FORMAT JSON) <statement>` with `params` on the project's database and returns the result rows.
 *
 * @category models
 * @since 0.1.0
 */
export type Explain = (
  project: ProjectHandle,
  statement: string,
  params: ReadonlyArray<unknown>
) => Effect.Effect<unknown, unknown>

/**
 * Options of the estimator.
 *
 * @category models
 * @since 0.1.0
 */
export interface Options {
  readonly explain: Explain
  /** Per-tier budget overrides (merged over `defaultBudgets`). */
  readonly budgets?: Partial<Record<TierName, Partial<CostBudget>>> | undefined
  /** A budget for particular projects, else the tier's. */
  readonly budgetFor?: ((project: ProjectHandle) => CostBudget | undefined) | undefined
  /** How long an estimate is reused (default 5 minutes). */
  readonly ttl?: Duration.Input | undefined
  /** Estimates kept (default 10,000). */
  readonly maxEntries?: number | undefined
  readonly throttle?: Partial<Throttle> | undefined
  /** When EXPLAIN fails: let the statement run (default) or reject it. */
  readonly onExplainError?: "allow" | "reject" | undefined
}

/**
 * Counters of the estimator.
 *
 * @category models
 * @since 0.1.0
 */
export interface Stats {
  readonly entries: number
  readonly hits: number
  readonly explains: number
  readonly explainErrors: number
  /** Total and worst time spent in EXPLAIN round trips, in milliseconds. */
  readonly explainMillisTotal: number
  readonly explainMillisMax: number
}

/**
 * The estimator.
 *
 * @category services
 * @since 0.1.0
 */
export class PgCostEstimator extends Context.Service<
  PgCostEstimator,
  {
    /** The analysis of a statement text (the analyzer the estimator uses). */
    readonly analyze: (sql: string) => Analysis
    /** The budget that applies to a project. */
    readonly budget: (project: ProjectHandle) => CostBudget
    /** The estimate of a statement (cached), or undefined when it is not explainable or EXPLAIN failed. */
    readonly estimate: (
      project: ProjectHandle,
      statement: string,
      params: ReadonlyArray<unknown>
    ) => Effect.Effect<Estimate | undefined>
    /** Checks an analyzed statement against the project's budget (sync when the estimate is cached). */
    readonly inspect: (project: ProjectHandle, analysis: Analysis, params: ReadonlyArray<unknown>) => Finding.Inspection
    readonly stats: () => Stats
  }
>()("@tenantpool/protections/PgCostEstimator") {}

const planOf = (value: unknown): unknown => {
  const parsed = typeof value === "string" ? JSON.parse(value) : value
  return Array.isArray(parsed) ? parsed[0] : parsed
}

/**
 * Reads total cost and rows from the rows of `EXPLAIN (FORMAT JSON)` (the `QUERY PLAN` column, parsed or as text).
 *
 * @category evaluation
 * @since 0.1.0
 */
export const parsePlan = (rows: unknown): Estimate | undefined => {
  try {
    const row = Array.isArray(rows) ? rows[0] : rows
    if (row === null || typeof row !== "object") return undefined
    const column = "QUERY PLAN" in row ? (row as Record<string, unknown>)["QUERY PLAN"] : Object.values(row)[0]
    const plan = (planOf(column) as { Plan?: Record<string, unknown> } | undefined)?.Plan
    const totalCost = Number(plan?.["Total Cost"])
    const planRows = Number(plan?.["Plan Rows"])
    return Number.isFinite(totalCost) && Number.isFinite(planRows) ? { totalCost, planRows } : undefined
  } catch {
    return undefined
  }
}

/**
 * An `Explain` over a `SqlClient` (the engine's guarded client, or any client of the project's database), run with
 * protections off so the EXPLAIN is not itself limited, analyzed or estimated.
 *
 * @category constructors
 * @since 0.1.0
 */
export const explainWith =
  (sql: SqlClient.SqlClient): Explain =>
  (_project, statement, params) =>
    unprotected(sql.unsafe(`EXPLAIN (FORMAT JSON) ${statement}`, params as Array<any>))

const round = (n: number): string => Math.round(n).toLocaleString("en-US")

/**
 * The estimator's state: its options and settings, the cached estimates, the EXPLAINs in flight, the projects'
 * expensive lanes and the counters.
 *
 * @internal
 */
interface State {
  readonly options: Options
  readonly budgets: Readonly<Record<TierName, CostBudget>>
  readonly throttle: Throttle
  /** The throttle's `maxWait`, in milliseconds. */
  readonly maxWait: number
  /** How long an estimate is reused, in milliseconds. */
  readonly ttl: number
  readonly rejectOnError: boolean
  readonly clock: Clock.Clock
  readonly context: Context.Context<never>
  readonly cache: ExpiringCache<string, Estimate>
  /** The EXPLAIN in flight per key; `null` tells its waiters that it was interrupted and they should look again. */
  readonly pending: Map<string, Deferred.Deferred<Estimate | undefined | null>>
  readonly lanes: WeakMap<ProjectHandle, TokenBucket>
  readonly explainTimer: typeof ProtectionMetrics.explainDuration
  readonly lookups: { readonly hit: CounterCell; readonly miss: CounterCell; readonly error: CounterCell }
  explains: number
  explainErrors: number
  explainMillisTotal: number
  explainMillisMax: number
}

/**
 * The per-tier budgets: `defaultBudgets` with the options' overrides, each checked.
 *
 * @internal
 */
const resolveBudgets = (options: Options): Effect.Effect<Record<TierName, CostBudget>, InvalidConfig> =>
  Effect.gen(function* () {
    const budgets = {} as Record<TierName, CostBudget>
    for (const tier of tierNames) {
      const b = { ...defaultBudgets[tier], ...options.budgets?.[tier] }
      if (!(b.maxCost > 0)) return yield* new InvalidConfig({ field: `${tier}.maxCost`, reason: "must be positive" })
      budgets[tier] = b
    }
    return budgets
  })

/**
 * The expensive lane's settings: the defaults with the options' overrides, checked.
 *
 * @internal
 */
const resolveThrottle = (options: Options): Effect.Effect<Throttle, InvalidConfig> => {
  const throttle: Throttle = { perSecond: 1, burst: 2, maxWait: "2 seconds", ...options.throttle }
  if (!(throttle.perSecond > 0 && throttle.burst >= 1)) {
    return Effect.fail(
      new InvalidConfig({ field: "throttle", reason: "perSecond must be positive and burst at least 1" })
    )
  }
  return Effect.succeed(throttle)
}

/**
 * A fresh state (registers the lookup counters).
 *
 * @internal
 */
const makeState = (
  options: Options,
  budgets: Record<TierName, CostBudget>,
  throttle: Throttle,
  clock: Clock.Clock,
  context: Context.Context<never>
): State => ({
  options,
  budgets,
  throttle,
  maxWait: Duration.toMillis(Duration.fromInputUnsafe(throttle.maxWait)),
  ttl: Duration.toMillis(Duration.fromInputUnsafe(options.ttl ?? "5 minutes")),
  rejectOnError: options.onExplainError === "reject",
  clock,
  context,
  cache: new ExpiringCache<string, Estimate>(options.maxEntries ?? 10_000),
  pending: new Map(),
  lanes: new WeakMap(),
  explainTimer: Metric.withAttributes(ProtectionMetrics.explainDuration, { database_type: "postgres" }),
  lookups: {
    hit: new CounterCell(ProtectionMetrics.estimatesTotal, { database_type: "postgres", result: "hit" }, context),
    miss: new CounterCell(ProtectionMetrics.estimatesTotal, { database_type: "postgres", result: "miss" }, context),
    error: new CounterCell(ProtectionMetrics.estimatesTotal, { database_type: "postgres", result: "error" }, context)
  },
  explains: 0,
  explainErrors: 0,
  explainMillisTotal: 0,
  explainMillisMax: 0
})

/**
 * The budget that applies to a project: its own (`budgetFor`), else its tier's.
 *
 * @internal
 */
const budgetOf = (state: State, project: ProjectHandle): CostBudget =>
  state.options.budgetFor?.(project) ?? state.budgets[project.tierName]

/**
 * Records a finished EXPLAIN: its time, its result (counted as a miss, or an error), and the estimate in the cache.
 *
 * @internal
 */
const recordExplain = (state: State, key: string, started: number, estimate: Estimate | undefined): void => {
  const millis = performance.now() - started
  state.explains++
  state.explainMillisTotal += millis
  if (millis > state.explainMillisMax) state.explainMillisMax = millis
  state.explainTimer.updateUnsafe(millis / 1000, state.context)
  if (estimate === undefined) {
    state.explainErrors++
    state.lookups.error.n++
  } else {
    state.lookups.miss.n++
    state.cache.set(key, estimate, state.clock.currentTimeMillisUnsafe() + state.ttl)
  }
}

/**
 * One EXPLAIN per (project, fingerprint) at a time: later arrivals wait for its result, and look again when it was
 * interrupted.
 *
 * @internal
 */
const explainOnce = (
  state: State,
  key: string,
  project: ProjectHandle,
  target: string,
  params: ReadonlyArray<unknown>
): Effect.Effect<Estimate | undefined> =>
  Effect.suspend(() => {
    const waiting = state.pending.get(key)
    if (waiting !== undefined) {
      return Effect.flatMap(Deferred.await(waiting), (result) =>
        result === null ? lookup(state, key, project, target, params) : Effect.succeed(result)
      )
    }
    const deferred = Deferred.makeUnsafe<Estimate | undefined | null>()
    state.pending.set(key, deferred)
    const started = performance.now()
    return state.options.explain(project, target, params).pipe(
      Effect.map(parsePlan),
      Effect.catchCause(() => Effect.succeed(undefined)),
      Effect.tap((estimate) => Effect.sync(() => recordExplain(state, key, started, estimate))),
      Effect.onExit((exit) =>
        Effect.sync(() => {
          state.pending.delete(key)
          Deferred.doneUnsafe(deferred, Effect.succeed(exit._tag === "Success" ? exit.value : null))
        })
      )
    )
  })

/**
 * The estimate for `key`: from the cache (a hit), else from an EXPLAIN.
 *
 * @internal
 */
const lookup = (
  state: State,
  key: string,
  project: ProjectHandle,
  target: string,
  params: ReadonlyArray<unknown>
): Effect.Effect<Estimate | undefined> => {
  const hit = state.cache.get(key, state.clock.currentTimeMillisUnsafe())
  if (hit !== undefined) {
    state.lookups.hit.n++
    return Effect.succeed(hit)
  }
  return explainOnce(state, key, project, target, params)
}

/**
 * How an estimate exceeds a budget (cost first, then rows), or undefined within it.
 *
 * @internal
 */
const overBudget = (budget: CostBudget, estimate: Estimate): string | undefined =>
  estimate.totalCost > budget.maxCost
    ? `estimated cost ${round(estimate.totalCost)} exceeds the budget of ${round(budget.maxCost)}`
    : budget.maxRows !== undefined && estimate.planRows > budget.maxRows
      ? `estimated ${round(estimate.planRows)} rows exceed the budget of ${round(budget.maxRows)}`
      : undefined

/**
 * An over-budget statement on the project's expensive lane: admitted now, after a wait for its turn, or rejected
 * when the turn is further than `maxWait` (its reservation is given back, as it is when the wait is interrupted).
 *
 * @internal
 */
const throttled = (state: State, project: ProjectHandle, over: string, fp: string): Finding.Inspection => {
  const { throttle } = state
  let lane = state.lanes.get(project)
  const now = state.clock.currentTimeMillisUnsafe()
  if (lane === undefined) state.lanes.set(project, (lane = new TokenBucket(throttle.burst, now)))
  const wait = reserve(lane, now, throttle.perSecond, throttle.burst)
  if (wait === 0) return Finding.flag("cost-budget", `${over}; admitted on the expensive-statement lane`, fp)
  if (wait > state.maxWait) {
    refund(lane)
    return Finding.reject("cost-budget", `${over}; the expensive-statement lane is full for ${wait} ms`, fp)
  }
  const bucket = lane
  return Effect.sleep(Duration.millis(wait)).pipe(
    Effect.onInterrupt(() => Effect.sync(() => refund(bucket))),
    Effect.as(Finding.flag("cost-budget", `${over}; waited ${wait} ms on the expensive-statement lane`, fp))
  )
}

/**
 * The verdict on an estimate: within budget, rejected, or throttled by the project's budget policy; no estimate is
 * let through or rejected by `onExplainError`.
 *
 * @internal
 */
const judge = (
  state: State,
  project: ProjectHandle,
  analysis: Analysis,
  estimate: Estimate | undefined
): Finding.Inspection => {
  const fp = analysis.fingerprint
  if (estimate === undefined) {
    return state.rejectOnError
      ? Finding.reject("cost-budget", "the statement's cost could not be estimated", fp)
      : undefined
  }
  const budget = budgetOf(state, project)
  const over = overBudget(budget, estimate)
  if (over === undefined) return undefined
  if (budget.overBudget === "reject") return Finding.reject("cost-budget", over, fp)
  return throttled(state, project, over, fp)
}

/**
 * Checks an analyzed statement against the project's budget: synchronously on a cached estimate, else after an
 * EXPLAIN.
 *
 * @internal
 */
const inspect = (
  state: State,
  project: ProjectHandle,
  analysis: Analysis,
  params: ReadonlyArray<unknown>
): Finding.Inspection => {
  const target = analysis.explainTarget
  if (target === undefined || analysis.fingerprint === "") return undefined
  const key = `${project.id}\u0000${analysis.fingerprint}`
  const hit = state.cache.get(key, state.clock.currentTimeMillisUnsafe())
  if (hit !== undefined) {
    state.lookups.hit.n++
    return judge(state, project, analysis, hit)
  }
  return Effect.flatMap(explainOnce(state, key, project, target, params), (estimate) => {
    const verdict = judge(state, project, analysis, estimate)
    return Effect.isEffect(verdict) ? verdict : Effect.succeed(verdict)
  })
}

/**
 * The estimate of a statement text (cached), or undefined when it is not explainable or EXPLAIN failed.
 *
 * @internal
 */
const estimate = (
  state: State,
  analyzer: SqlAnalyzer["Service"],
  project: ProjectHandle,
  statement: string,
  params: ReadonlyArray<unknown>
): Effect.Effect<Estimate | undefined> =>
  Effect.suspend(() => {
    const analysis = analyzer.analyze(statement)
    const target = analysis.explainTarget
    if (target === undefined || analysis.fingerprint === "") return Effect.succeed(undefined)
    return lookup(state, `${project.id}\u0000${analysis.fingerprint}`, project, target, params)
  })

/**
 * The estimator's counters.
 *
 * @internal
 */
const stats = (state: State): Stats => ({
  entries: state.cache.size,
  hits: state.lookups.hit.n,
  explains: state.explains,
  explainErrors: state.explainErrors,
  explainMillisTotal: state.explainMillisTotal,
  explainMillisMax: state.explainMillisMax
})

/**
 * Builds the estimator.
 *
 * @category constructors
 * @since 0.1.0
 */
export const make = (options: Options): Effect.Effect<PgCostEstimator["Service"], InvalidConfig, SqlAnalyzer> =>
  Effect.gen(function* () {
    const analyzer = yield* SqlAnalyzer
    const clock = yield* Clock.Clock
    const context = yield* Effect.context<never>()
    const budgets = yield* resolveBudgets(options)
    const throttle = yield* resolveThrottle(options)
    const state = makeState(options, budgets, throttle, clock, context)
    return PgCostEstimator.of({
      analyze: analyzer.analyze,
      budget: (project) => budgetOf(state, project),
      estimate: (project, statement, params) => estimate(state, analyzer, project, statement, params),
      inspect: (project, analysis, params) => inspect(state, project, analysis, params),
      stats: () => stats(state)
    })
  })

/**
 * The estimator as a layer (needs the SQL analyzer).
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = (options: Options): Layer.Layer<PgCostEstimator, InvalidConfig, SqlAnalyzer> =>
  Layer.effect(PgCostEstimator, make(options))
