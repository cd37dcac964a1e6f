/**
 * The guard's metric series: which series a (project, engine) writes to, made on first use, and removed when a
 * labeled project is evicted. Counters and histograms are plain cells (`series.ts`) read at scrape time; gauges
 * are registered with a `get` hook over the state, so nothing is written per call for them.
 *
 * Labels: `database_type` and `tier` always; with the project label on, counters and gauges also carry
 * `project_id` — the project's own for the first `maxProjectSeries` projects, `_other` for the rest — and each
 * project is counted in exactly one series, so sums never count it twice. Histograms stay per tier (a histogram
 * per project costs its buckets times its operations in every scrape). See `Metrics.ts`.
 *
 * @internal
 */
import * as Metric from "effect/Metric"
import * as Metrics from "../Metrics.ts"
import { type Engine, type TierName, tierNames } from "../Vocabulary.ts"
import { CounterCell, HistogramCell } from "./series.ts"
import type {
  Aggregate,
  EngineState,
  HistogramHandles,
  MetricHandles,
  ProjectEngine,
  ProjectRuntime,
  TenancyState
} from "./state.ts"

const makeHandles = (engine: Engine, tier: TierName, projectId: string | undefined): MetricHandles => ({
  attrs:
    projectId === undefined ? { database_type: engine, tier } : { database_type: engine, tier, project_id: projectId },
  ok: undefined,
  error: undefined,
  openTotal: undefined,
  errors: new Map()
})

/** Whether a project has series of its own (the label is on and it got a slot). @internal */
export const hasOwnSeries = (rt: ProjectRuntime): boolean =>
  rt.labelSlot !== undefined && rt.labelSlot !== Metrics.overflowProject

const histogramsOf = (es: EngineState<any, any>, tier: TierName): HistogramHandles =>
  es.histograms[tier] ??
  (es.histograms[tier] = { attrs: { database_type: es.engine, tier }, acquire: undefined, duration: new Map() })

/** Gives a new runtime its `project_id` label slot, or the overflow value once the budget is spent. @internal */
export const assignLabel = (g: TenancyState, rt: ProjectRuntime): void => {
  if (!g.settings.projectLabel) return
  if (g.labeledProjects < g.settings.maxProjectSeries) {
    g.labeledProjects++
    rt.labelSlot = rt.id
  } else {
    rt.labelSlot = Metrics.overflowProject
  }
}

/** Returns an evicted runtime's label slot to the budget. @internal */
export const releaseLabel = (g: TenancyState, rt: ProjectRuntime): void => {
  if (hasOwnSeries(rt)) g.labeledProjects--
}

/** The series a (project, engine) writes to. @internal */
export const handlesOf = (pe: ProjectEngine<any, any>): MetricHandles => {
  if (pe.handles !== undefined) return pe.handles
  const tier = pe.rt.tier.name
  const slot = pe.rt.labelSlot
  if (!hasOwnSeries(pe.rt)) {
    const pool = slot === undefined ? pe.es.shared : pe.es.overflow
    return (pe.handles = pool[tier] ?? (pool[tier] = makeHandles(pe.es.engine, tier, slot)))
  }
  return (pe.handles = makeHandles(pe.es.engine, tier, slot))
}

/** `db_queries_total{status="success"}`. @internal */
export const okCell = (g: TenancyState, h: MetricHandles): CounterCell =>
  (h.ok ??= new CounterCell(Metrics.queriesTotal, { ...h.attrs, status: "success" }, g.context))

const errorCell = (g: TenancyState, h: MetricHandles): CounterCell =>
  (h.error ??= new CounterCell(Metrics.queriesTotal, { ...h.attrs, status: "error" }, g.context))

/** `circuit_breaker_open_total{scope="project"}`. @internal */
export const openTotalCell = (g: TenancyState, h: MetricHandles): CounterCell =>
  (h.openTotal ??= new CounterCell(Metrics.circuitBreakerOpenTotal, { ...h.attrs, scope: "project" }, g.context))

/** `db_connection_acquire_duration_seconds`, per engine and tier. @internal */
export const acquireCell = (g: TenancyState, pe: ProjectEngine<any, any>): HistogramCell => {
  const h = (pe.histograms ??= histogramsOf(pe.es, pe.rt.tier.name))
  return (h.acquire ??= new HistogramCell(Metrics.acquireDuration, Metrics.durationBoundaries, h.attrs, g.context))
}

/** `db_query_duration_seconds{operation}`, per engine and tier. @internal */
export const durationCell = (g: TenancyState, pe: ProjectEngine<any, any>, op: string): HistogramCell => {
  const h = (pe.histograms ??= histogramsOf(pe.es, pe.rt.tier.name))
  let m = h.duration.get(op)
  if (m === undefined) {
    m = new HistogramCell(Metrics.queryDuration, Metrics.durationBoundaries, { ...h.attrs, operation: op }, g.context)
    h.duration.set(op, m)
  }
  return m
}

/** Counts a failed operation: `db_queries_total{status="error"}` and `db_errors_total{error_type}`. @internal */
export const countError = (g: TenancyState, pe: ProjectEngine<any, any>, errorType: string): void => {
  const h = handlesOf(pe)
  errorCell(g, h).n++
  let m = h.errors.get(errorType)
  if (m === undefined) {
    m = new CounterCell(Metrics.errorsTotal, { ...h.attrs, error_type: errorType }, g.context)
    h.errors.set(errorType, m)
  }
  m.n++
}

/** Registers a labeled project's gauges (its active operations and its breaker). @internal */
export const registerProjectGauges = (g: TenancyState, pe: ProjectEngine<any, any>): void => {
  if (!hasOwnSeries(pe.rt)) return
  const attrs = { database_type: pe.es.engine, tier: pe.rt.tier.name, project_id: pe.rt.labelSlot! }
  pe.gauges = [
    gauge(g, Metrics.activeConnections, attrs, () => pe.running),
    gauge(g, Metrics.circuitBreakerState, { ...attrs, scope: "project" }, () => pe.breaker.state)
  ]
}

/** Removes a (project, engine)'s own series (labeled projects only; shared series stay). @internal */
export const removeProjectSeries = (pe: ProjectEngine<any, any>): void => {
  if (pe.gauges !== undefined) for (const registration of pe.gauges) registration.remove()
  pe.gauges = undefined
  pe.histograms = undefined
  const h = pe.handles
  pe.handles = undefined
  if (h === undefined || h.attrs.project_id === undefined || h.attrs.project_id === Metrics.overflowProject) return
  for (const cell of [h.ok, h.error, h.openTotal, ...h.errors.values()]) {
    cell?.registration.remove()
  }
}

/**
 * Registers an engine's per-tier series: the aggregate gauges (active operations and the worst project breaker of
 * the projects without series of their own; target breakers; pool sizes), and zero-valued counters and the acquire
 * histogram, so that dashboards and `absent()` alerts see every family from the first scrape.
 *
 * @internal
 */
export const registerEngineGauges = (g: TenancyState, es: EngineState<any, any>): void => {
  const other = g.settings.projectLabel ? { project_id: Metrics.overflowProject } : {}
  for (const tier of tierNames) {
    const attrs = { database_type: es.engine, tier }
    const agg = es.aggregates[tier]
    const targets = es.targetBreakers[tier]
    gauge(g, Metrics.activeConnections, { ...attrs, ...other }, () => agg.active)
    gauge(g, Metrics.circuitBreakerState, { ...attrs, ...other, scope: "project" }, () => worst(agg))
    gauge(g, Metrics.circuitBreakerState, { ...attrs, scope: "target" }, () => worst(targets))
    for (const status of ["total", "available", "pending"] as const) {
      gauge(g, Metrics.poolSize, { ...attrs, status }, () => poolStat(es, tier, status))
    }
    const h = g.settings.projectLabel
      ? (es.overflow[tier] ??= makeHandles(es.engine, tier, Metrics.overflowProject))
      : (es.shared[tier] ??= makeHandles(es.engine, tier, undefined))
    okCell(g, h)
    errorCell(g, h)
    openTotalCell(g, h)
    const hist = histogramsOf(es, tier)
    hist.acquire ??= new HistogramCell(Metrics.acquireDuration, Metrics.durationBoundaries, hist.attrs, g.context)
  }
}

const worst = (agg: Aggregate): number => (agg.open > 0 ? 2 : agg.halfOpen > 0 ? 1 : 0)

/** Counts a target breaker's opening (`circuit_breaker_open_total{scope="target"}`). @internal */
export const countTargetOpen = (g: TenancyState, engine: Engine, tier: TierName): void =>
  Metric.withAttributes(Metrics.circuitBreakerOpenTotal, { database_type: engine, tier, scope: "target" }).updateUnsafe(
    1,
    g.context
  )

// Sum of the pool statistics of the targets whose highest tier is `tier`.
const poolStat = (es: EngineState<any, any>, tier: TierName, status: "total" | "available" | "pending"): number => {
  const stats = es.adapter.stats
  if (stats === undefined) return 0
  let sum = 0
  for (const ts of es.targets.values()) {
    if (ts.tier() !== tier) continue
    const pe = ts.any()
    if (pe === undefined) continue
    const s = stats(pe.binding)
    sum += status === "total" ? s.size : status === "available" ? s.available : s.pending
  }
  return sum
}

const gauge = (
  g: TenancyState,
  metric: Metric.Gauge<number>,
  attrs: Readonly<Record<string, string>>,
  get: () => number
): Metric.Registration =>
  Metric.registerUnsafe(Metric.withAttributes(metric, attrs), g.context, {
    get: () => ({ value: get() }),
    update: () => {},
    modify: () => {}
  })
