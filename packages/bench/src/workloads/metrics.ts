/**
 * `/metrics` with 10,000 active projects (each has completed a call; one in ten has one running), with the
 * `project_id` label on (the default budget of 1,000 projects with series of their own, the rest `_other`) and off:
 * the page's size and the time to render it (`PrometheusExporter.render`, median of several scrapes after one
 * unmeasured). The spec's
 * design (prom-client, `project_id` on active connections and breaker series, every project) is the baseline.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Metric from "effect/Metric"
import { MemoryRegistry } from "@tenantpool/core/Registry"
import * as Tenancy from "@tenantpool/core/Tenancy"
import * as PrometheusExporter from "@tenantpool/prometheus/PrometheusExporter"
import { fakeAdapter } from "../internal/fakeEngine.ts"
import { specMetrics } from "../internal/spec.ts"
import { median, type Row, type Run } from "../internal/suite.ts"

const projects = 10_000
const tiers = ["FREE", "STARTER", "PRO", "ENTERPRISE"] as const

interface Scrape {
  readonly bytes: number
  readonly millis: number
}

const ours = (projectLabel: boolean, scrapes: number) =>
  Effect.gen(function* () {
    const tenancy = yield* Tenancy.Tenancy
    const registry = yield* MemoryRegistry
    const engine = yield* tenancy.register(fakeAdapter("redis"))
    const op = { name: "get", idempotent: true } as const
    const never = new Promise<number>(() => {})
    const fibers = []
    for (let i = 0; i < projects; i++) {
      const id = `project-${i}`
      yield* registry.register({ id, tier: tiers[i % 4], redis: "redis://cache.internal:6379/0" })
      yield* engine
        .run(
          op,
          () => Promise.resolve(1),
          (e) => e as never
        )
        .pipe(tenancy.withProject(id))
      if (i % 10 === 0) {
        const running = engine.run(
          op,
          () => never,
          (e) => e as never
        )
        fibers.push(yield* Effect.forkChild(running.pipe(tenancy.withProject(id))))
      }
    }
    yield* Effect.yieldNow
    yield* PrometheusExporter.render() // warm-up, not measured
    const times: Array<number> = []
    let bytes = 0
    for (let i = 0; i < scrapes; i++) {
      const t0 = performance.now()
      const text = yield* PrometheusExporter.render()
      times.push(performance.now() - t0)
      bytes = Buffer.byteLength(text)
    }
    yield* Fiber.interruptAll(fibers)
    return { bytes, millis: median(times) } satisfies Scrape
  }).pipe(
    Effect.provide(Tenancy.layerMemory({ healthCheckInterval: 0, shutdownTimeout: 0, metrics: { projectLabel } })),
    Effect.provideService(Metric.MetricRegistry, new Map())
  )

// The spec's prom-client metrics after the same traffic: every project has its own active-connections and
// breaker-state series.
const spec = async (scrapes: number): Promise<Scrape> => {
  const m = specMetrics()
  for (let i = 0; i < projects; i++) {
    const tier = tiers[i % 4]
    const project_id = `project-${i}`
    m.active.set({ database_type: "redis", tier, project_id }, i % 10 === 0 ? 1 : 0)
    m.breakerState.set({ database_type: "redis", project_id }, 0)
    m.queries.inc({ database_type: "redis", tier, status: "success" })
    m.duration.observe({ database_type: "redis", tier, operation: "get" }, 0.0002)
  }
  await m.registry.metrics() // warm-up, not measured
  const times: Array<number> = []
  let bytes = 0
  for (let i = 0; i < scrapes; i++) {
    const t0 = performance.now()
    const text = await m.registry.metrics()
    times.push(performance.now() - t0)
    bytes = Buffer.byteLength(text)
  }
  return { bytes, millis: median(times) }
}

/** @internal */
export const run: Run = async (ctx) => {
  const scrapes = ctx.quick ? 3 : 11
  ctx.progress("prom-client (the spec's design)")
  const base = await spec(scrapes)
  const rows: Array<Row> = []
  for (const label of [true, false]) {
    ctx.progress(`label ${label ? "on" : "off"}: 10,000 projects`)
    const s = await Effect.runPromise(ours(label, scrapes))
    const name = `10,000 active, project label ${label ? "on" : "off"}`
    const vs = { baselineName: "spec: prom-client, project_id on every project" }
    rows.push({
      workload: "metrics",
      name: `${name}: size`,
      unit: "bytes",
      figure: s.bytes,
      baseline: base.bytes,
      ratio: s.bytes / base.bytes,
      ...vs,
      target: { on: "figure", op: "<=", value: 1_000_000 }
    })
    rows.push({
      workload: "metrics",
      name: `${name}: scrape time`,
      unit: "ms",
      figure: s.millis,
      baseline: base.millis,
      ratio: s.millis / base.millis,
      ...vs,
      target: { on: "figure", op: "<=", value: 50 }
    })
  }
  return rows
}
