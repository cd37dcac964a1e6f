/**
 * The spec's eight metrics, on Effect's Metric API, with bounded labels.
 *
 * Default labels: `database_type`, `tier`, and per metric `status`, `operation`, `error_type` or `scope`.
 * The spec's `project_id` label is opt-in (`MetricsOptions.projectLabel`); when on, at most `maxProjectSeries`
 * projects get their own series at a time, the rest share `project_id="_other"`, and a project's series are
 * removed when it is evicted. Gauges are read when metrics are exported (no per-call gauge writes).
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
 * The eight metric names, as exported.
 *
 * @category constants
 * @since 0.1.0
 */
export const names: ReadonlyArray<string> = [
  "db_active_connections",
  "db_pool_size",
  "circuit_breaker_state",
  "db_queries_total",
  "db_errors_total",
  "circuit_breaker_open_total",
  "db_query_duration_seconds",
  "db_connection_acquire_duration_seconds"
]

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
