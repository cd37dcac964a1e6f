/**
 * The metrics of the protections, on Effect's Metric API with bounded labels: `database_type` (3 values), `tier`
 * (4) and `rule` (the 9 query rules plus `rate-limit`). No project id: a label per project would be unbounded.
 *
 * @since 0.1.0
 */
import * as Metric from "effect/Metric"

/**
 * Calls refused by a protection, by `database_type`, `tier` and `rule` (`rate-limit` for the rate limiter).
 *
 * @category metrics
 * @since 0.1.0
 */
export const rejectionsTotal = Metric.counter("tenantpool_protection_rejections_total", {
  description: "Calls refused by an API protection (rule = rate-limit or a query rule)",
  incremental: true
})

/**
 * Calls a protection flagged but let through (a collection scan on a tier that only flags, an over-budget
 * statement that was throttled), by `database_type`, `tier` and `rule`.
 *
 * @category metrics
 * @since 0.1.0
 */
export const flagsTotal = Metric.counter("tenantpool_protection_flags_total", {
  description: "Calls an API protection flagged and let through",
  incremental: true
})

/**
 * Duration of the cost estimator's EXPLAIN round trips (and MongoDB explains), in seconds, by `database_type`.
 *
 * @category metrics
 * @since 0.1.0
 */
export const explainDuration = Metric.histogram("tenantpool_protection_explain_duration_seconds", {
  description: "Duration of the extra EXPLAIN round trip of the cost estimator, in seconds",
  boundaries: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5]
})

/**
 * Cost-estimate lookups by `result`: `hit` (cached estimate), `miss` (EXPLAIN ran), `error` (EXPLAIN failed).
 *
 * @category metrics
 * @since 0.1.0
 */
export const estimatesTotal = Metric.counter("tenantpool_protection_estimates_total", {
  description: "Cost-estimate lookups (result = hit | miss | error)",
  incremental: true
})

/**
 * Rate-limit checks let through because the shared store failed or was too slow (the limiter fails open).
 *
 * @category metrics
 * @since 0.1.0
 */
export const rateLimitStoreErrorsTotal = Metric.counter("tenantpool_protection_rate_limit_store_errors_total", {
  description: "Rate-limit checks let through because the shared store failed or timed out",
  incremental: true
})
