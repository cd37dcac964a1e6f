/**
 * The rows the recorder writes for the tenancy service: its events as audit rows and health updates, and its
 * per-project counters as metric samples under the spec's names. Pure mappings, no I/O.
 *
 * @since 0.1.0
 */
import type { Engine } from "@tenantpool/core/Engine"
import type { TenancyEvent } from "@tenantpool/core/Events"
import type { ConnectionMetadata } from "@tenantpool/core/Tenancy"

/** A metric sample for `platform.database_metrics`. */
export interface MetricSample {
  readonly projectId: string
  readonly engine: Engine
  /** Prometheus-style name: `[a-zA-Z_:][a-zA-Z0-9_:]*`. */
  readonly name: string
  readonly value: number
  readonly labels?: Readonly<Record<string, string | number | boolean>> | undefined
  /** When it was measured (default: when it is recorded, by the `Clock` service). */
  readonly time?: Date | undefined
}

/** An audit event for `platform.database_connection_logs`. */
export interface EventRecord {
  readonly projectId: string
  readonly engine: Engine
  /** `[a-z][a-z0-9_]*`: `pool_created`, `circuit_open`, … */
  readonly type: string
  readonly message?: string | undefined
  readonly metadata?: Readonly<Record<string, unknown>> | undefined
  readonly severity?: "info" | "warning" | "error" | undefined
}

/** A health-check result for `update_database_health`. */
export interface HealthRecord {
  readonly projectId: string
  readonly engine: Engine
  readonly status: "healthy" | "degraded" | "unhealthy" | "unknown"
  readonly details?: Readonly<Record<string, unknown>> | undefined
}

const breakerValue = (state: "closed" | "half-open" | "open") => (state === "open" ? 2 : state === "half-open" ? 1 : 0)

const circuitEvent = (
  event: Extract<TenancyEvent, { readonly _tag: `Circuit${string}` }>,
  projectId: string
): EventRecord => ({
  projectId,
  engine: event.engine,
  type:
    event._tag === "CircuitOpen"
      ? "circuit_open"
      : event._tag === "CircuitHalfOpen"
        ? "circuit_half_open"
        : "circuit_closed",
  severity: event._tag === "CircuitOpen" ? ("warning" as const) : ("info" as const),
  message:
    event._tag === "CircuitOpen"
      ? `circuit open for ${Math.round(event.openForMillis ?? 0)} ms`
      : event._tag === "CircuitHalfOpen"
        ? "circuit half-open: probing"
        : "circuit closed",
  metadata: {
    scope: event.scope,
    target: event.target,
    ...(event.openForMillis !== undefined ? { open_for_ms: event.openForMillis } : {})
  }
})

/** Turns a tenancy event into audit rows and health updates; false for events that name no project. */
export const eventRows = (
  sink: { readonly logEvent: (event: EventRecord) => void; readonly recordHealth: (health: HealthRecord) => void },
  event: TenancyEvent
): boolean => {
  switch (event._tag) {
    case "PoolCreated":
      sink.logEvent({
        projectId: event.projectId,
        engine: event.engine,
        type: "pool_created",
        message: `connections to ${event.target}`,
        metadata: { target: event.target }
      })
      return true
    case "PoolClosed":
      sink.logEvent({
        projectId: event.projectId,
        engine: event.engine,
        type: "pool_closed",
        message: `closed (${event.reason})`,
        metadata: { target: event.target, reason: event.reason }
      })
      return true
    case "CircuitOpen":
    case "CircuitHalfOpen":
    case "CircuitClosed":
      if (event.projectId === undefined) return false
      sink.logEvent(circuitEvent(event, event.projectId))
      return true
    case "HealthChanged":
      if (event.projectId === undefined) return false
      sink.recordHealth({
        projectId: event.projectId,
        engine: event.engine,
        status: event.healthy ? "healthy" : "unhealthy",
        details: {
          target: event.target,
          ...(event.latencyMillis !== undefined ? { latency_ms: Math.round(event.latencyMillis * 100) / 100 } : {}),
          ...(event.error !== undefined ? { error: event.error.slice(0, 500) } : {})
        }
      })
      return true
    case "Overloaded":
      sink.logEvent({
        projectId: event.projectId,
        engine: event.engine,
        type: "overloaded",
        severity: "warning",
        message: `refused by the ${event.scope === "project" ? "project's concurrency limit" : "database's shared budget"}`,
        metadata: { scope: event.scope }
      })
      return true
    case "ProjectEvicted":
    case "TierChanged":
      return true
  }
}

/** The samples of every live project's counters, measured at `time`. */
export const samplesOf = (connections: ReadonlyArray<ConnectionMetadata>, time: Date): Array<MetricSample> => {
  const out: Array<MetricSample> = []
  for (const c of connections) {
    const base = { projectId: c.projectId, engine: c.databaseType, time, labels: { tier: c.tier } }
    out.push(
      { ...base, name: "db_queries_total", value: c.queryCount },
      { ...base, name: "db_errors_total", value: c.errorCount },
      { ...base, name: "db_active_connections", value: c.active },
      { ...base, name: "db_queued_operations", value: c.queued },
      { ...base, name: "circuit_breaker_state", value: breakerValue(c.breaker) }
    )
    if (c.pool === undefined) continue
    for (const [status, value] of [
      ["total", c.pool.size],
      ["available", c.pool.available],
      ["pending", c.pool.pending]
    ] as const) {
      out.push({ ...base, name: "db_pool_size", value, labels: { tier: c.tier, status } })
    }
  }
  return out
}
