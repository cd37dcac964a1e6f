/**
 * The spec's eight metrics, on Effect's Metric API, with bounded labels.
 *
 * Default labels: `database_type`, `tier`, and per metric `status`, `operation`, `error_type` or `scope`
 * (`circuit_breaker_state` has `scope="project"` and `scope="target"` series: a target's breaker is shared by its
 * projects and never summed with theirs). The spec's `project_id` label is opt-in (`MetricsOptions.projectLabel`):
 * when on, counters and gauges carry it, at most `maxProjectSeries` projects get their own series at a time, the
 * rest share `project_id="_other"`, each project is counted in exactly one series (sums never double-count), and a
 * project's series are removed when it is evicted; histograms stay per tier. Gauges are read when metrics are
 * exported (no per-call gauge writes).
 *
 * @since 0.1.0
 */
import * as Metric from "effect/Metric"

/**
 * Bucket boundaries (seconds) of the two duration histograms.
 *
 * @category constants
 * @since 0.1.0
 */
export const durationBoundaries: ReadonlyArray<number> = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120
]

/**
 * Connections (operations holding a connection) in use.
 *
 * @category metrics
 * @since 0.1.0
 */
export const activeConnections = Metric.gauge("db_active_connections", {
  description: "Operations currently holding a database connection"
})

/**
 * Pool sizes by `status`: `total`, `available`, `pending`.
 *
 * @category metrics
 * @since 0.1.0
 */
export const poolSize = Metric.gauge("db_pool_size", {
  description: "Connection pool statistics (status = total | available | pending)"
})

/**
 * Breaker state: 0 closed, 1 half-open, 2 open (the worst among the breakers a series covers).
 *
 * @category metrics
 * @since 0.1.0
 */
export const circuitBreakerState = Metric.gauge("circuit_breaker_state", {
  description: "Circuit breaker state (0 = closed, 1 = half-open, 2 = open)"
})

/**
 * Operations by `status`: `success` or `error`.
 *
 * @category metrics
 * @since 0.1.0
 */
export const queriesTotal = Metric.counter("db_queries_total", {
  description: "Database operations executed (status = success | error)",
  incremental: true
})

/**
 * Errors by `error_type`.
 *
 * @category metrics
 * @since 0.1.0
 */
export const errorsTotal = Metric.counter("db_errors_total", {
  description: "Database errors encountered, by error_type",
  incremental: true
})

/**
 * Breaker openings.
 *
 * @category metrics
 * @since 0.1.0
 */
export const circuitBreakerOpenTotal = Metric.counter("circuit_breaker_open_total", {
  description: "Number of times a circuit breaker opened",
  incremental: true
})

/**
 * Operation duration in seconds, by `operation`.
 *
 * @category metrics
 * @since 0.1.0
 */
export const queryDuration = Metric.histogram("db_query_duration_seconds", {
  description: "Database operation duration in seconds",
  boundaries: durationBoundaries
})

/**
 * Time to acquire a connection from a pool, in seconds.
 *
 * @category metrics
 * @since 0.1.0
 */
export const acquireDuration = Metric.histogram("db_connection_acquire_duration_seconds", {
  description: "Time to acquire a connection from the pool in seconds",
  boundaries: durationBoundaries
})

/**
 * The eight metric families: name, Prometheus type and help text. The exporter declares each from the first
 * scrape, before any traffic, so dashboards and `absent()` alerts can rely on them.
 *
 * @category constants
 * @since 0.1.0
 */
export const families: ReadonlyArray<{
  readonly name: string
  readonly type: "counter" | "gauge" | "histogram"
  readonly description: string
}> = [
  { name: "db_active_connections", type: "gauge", description: "Operations currently holding a database connection" },
  {
    name: "db_pool_size",
    type: "gauge",
    description: "Connection pool statistics (status = total | available | pending)"
  },
  {
    name: "circuit_breaker_state",
    type: "gauge",
    description: "Circuit breaker state (0 = closed, 1 = half-open, 2 = open)"
  },
  {
    name: "db_queries_total",
    type: "counter",
    description: "Database operations executed (status = success | error)"
  },
  { name: "db_errors_total", type: "counter", description: "Database errors encountered, by error_type" },
  {
    name: "circuit_breaker_open_total",
    type: "counter",
    description: "Number of times a circuit breaker opened"
  },
  { name: "db_query_duration_seconds", type: "histogram", description: "Database operation duration in seconds" },
  {
    name: "db_connection_acquire_duration_seconds",
    type: "histogram",
    description: "Time to acquire a connection from the pool in seconds"
  }
]

/**
 * The eight metric names, as exported.
 *
 * @category constants
 * @since 0.1.0
 */
export const names: ReadonlyArray<string> = families.map((f) => f.name)

/**
 * Label options.
 *
 * @category models
 * @since 0.1.0
 */
export interface MetricsOptions {
  /** Add the spec's `project_id` label (default false). */
  readonly projectLabel?: boolean | undefined
  /** Projects with their own series at once when `projectLabel` is on (default 1,000). */
  readonly maxProjectSeries?: number | undefined
}

/**
 * The `project_id` value shared by projects beyond the series budget.
 *
 * @category constants
 * @since 0.1.0
 */
export const overflowProject = "_other"
