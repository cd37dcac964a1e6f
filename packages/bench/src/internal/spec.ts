/**
 * The spec's design, as a contrast row (`/work/shared/seed/connection-management-layer.md`): per project, a
 * `generic-pool` of driver connections (Redis) or the driver's own pool (PostgreSQL, MongoDB), an `opossum` circuit
 * breaker with the spec's settings per engine, and `prom-client` metrics with the spec's names and labels
 * (`project_id` on active connections and breaker series), updated on every call.
 *
 * @internal
 */
import * as genericPool from "generic-pool"
import CircuitBreaker from "opossum"
import promClient from "prom-client"

/** The spec's breaker settings per engine (its "Circuit Breaker Settings" table). @internal */
export const breakerSettings = {
  postgres: { timeout: 5000, errorThresholdPercentage: 50, resetTimeout: 30000, volumeThreshold: 10 },
  mongodb: { timeout: 10000, errorThresholdPercentage: 60, resetTimeout: 45000, volumeThreshold: 10 },
  redis: { timeout: 1000, errorThresholdPercentage: 70, resetTimeout: 15000, volumeThreshold: 10 }
} as const

/** The spec's eight metric families in a registry of their own. @internal */
export const specMetrics = (registry = new promClient.Registry()) => ({
  registry,
  active: new promClient.Gauge({
    name: "db_active_connections",
    help: "Current active connections",
    labelNames: ["database_type", "tier", "project_id"],
    registers: [registry]
  }),
  poolSize: new promClient.Gauge({
    name: "db_pool_size",
    help: "Connection pool statistics",
    labelNames: ["database_type", "tier", "status"],
    registers: [registry]
  }),
  breakerState: new promClient.Gauge({
    name: "circuit_breaker_state",
    help: "0=closed, 1=half-open, 2=open",
    labelNames: ["database_type", "project_id"],
    registers: [registry]
  }),
  queries: new promClient.Counter({
    name: "db_queries_total",
    help: "Total queries executed",
    labelNames: ["database_type", "tier", "status"],
    registers: [registry]
  }),
  errors: new promClient.Counter({
    name: "db_errors_total",
    help: "Total errors encountered",
    labelNames: ["database_type", "tier", "error_type"],
    registers: [registry]
  }),
  opened: new promClient.Counter({
    name: "circuit_breaker_open_total",
    help: "Number of times circuit breaker opened",
    labelNames: ["database_type", "project_id"],
    registers: [registry]
  }),
  duration: new promClient.Histogram({
    name: "db_query_duration_seconds",
    help: "Query duration distribution",
    labelNames: ["database_type", "tier", "operation"],
    registers: [registry]
  }),
  acquire: new promClient.Histogram({
    name: "db_connection_acquire_duration_seconds",
    help: "Time to acquire connection from pool",
    labelNames: ["database_type", "tier"],
    registers: [registry]
  })
})

/** @internal */
export type SpecMetrics = ReturnType<typeof specMetrics>

/** One project's guarded call in the spec's design: breaker, metrics, and `use` on a connection. @internal */
export interface SpecProject<C> {
  readonly call: <A>(operation: string, use: (conn: C) => Promise<A>) => Promise<A>
  readonly close: () => Promise<void>
}

/**
 * A project in the spec's design. `pool` present: a generic-pool of `create`d connections (min 2, max 10, as the
 * spec's Redis client); absent: `shared` (the driver's own pool) is used directly.
 *
 * @internal
 */
export const specProject = <C>(
  m: SpecMetrics,
  engine: keyof typeof breakerSettings,
  projectId: string,
  tier: string,
  connections:
    | { readonly _tag: "pool"; readonly create: () => Promise<C>; readonly destroy: (c: C) => Promise<void> }
    | { readonly _tag: "shared"; readonly conn: C }
): SpecProject<C> => {
  const pool =
    connections._tag === "pool"
      ? genericPool.createPool({ create: connections.create, destroy: connections.destroy }, { min: 2, max: 10 })
      : undefined
  const run = async (use: (conn: C) => Promise<unknown>): Promise<unknown> => {
    if (pool === undefined) return use((connections as { conn: C }).conn)
    const started = performance.now()
    const conn = await pool.acquire()
    m.acquire.observe({ database_type: engine, tier }, (performance.now() - started) / 1000)
    try {
      return await use(conn)
    } finally {
      await pool.release(conn)
    }
  }
  const breaker = new CircuitBreaker(run, breakerSettings[engine])
  breaker.on("open", () => {
    m.opened.inc({ database_type: engine, project_id: projectId })
    m.breakerState.set({ database_type: engine, project_id: projectId }, 2)
  })
  breaker.on("close", () => m.breakerState.set({ database_type: engine, project_id: projectId }, 0))
  m.breakerState.set({ database_type: engine, project_id: projectId }, 0)
  const active = { database_type: engine, tier, project_id: projectId }
  return {
    call: async <A>(operation: string, use: (conn: C) => Promise<A>): Promise<A> => {
      m.active.inc(active)
      const end = m.duration.startTimer({ database_type: engine, tier, operation })
      try {
        const result = (await breaker.fire(use)) as A
        m.queries.inc({ database_type: engine, tier, status: "success" })
        return result
      } catch (error) {
        m.queries.inc({ database_type: engine, tier, status: "error" })
        m.errors.inc({ database_type: engine, tier, error_type: "query" })
        throw error
      } finally {
        end()
        m.active.dec(active)
      }
    },
    close: async () => {
      breaker.shutdown()
      if (pool !== undefined) {
        await pool.drain()
        await pool.clear()
      }
    }
  }
}
