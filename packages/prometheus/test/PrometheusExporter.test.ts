import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Metric from "effect/Metric"
import * as Metrics from "@tenantpool/core/Metrics"
import { MemoryRegistry } from "@tenantpool/core/Registry"
import * as Tenancy from "@tenantpool/core/Tenancy"
import type { EngineAdapter } from "@tenantpool/core/Engine"
import * as PrometheusExporter from "../src/PrometheusExporter.ts"

// An engine with no server: each operation resolves when the test says so.
const adapter: EngineAdapter<string, never> = {
  engine: "redis",
  bind: (project) => Effect.succeed(project.id),
  classify: () => ({ infrastructure: true, errorType: "fake", sent: false }),
  ping: () => Effect.void,
  targetCapacity: () => 100_000
}

const withTenancy =
  (options?: Tenancy.Options) =>
  <A, E>(self: Effect.Effect<A, E, Tenancy.Tenancy | MemoryRegistry>) =>
    self.pipe(
      Effect.provide(Tenancy.layerMemory({ healthCheckInterval: 0, shutdownTimeout: 0, ...options })),
      Effect.provideService(Metric.MetricRegistry, new Map())
    )

interface Sample {
  readonly name: string
  readonly labels: Record<string, string>
  readonly value: number
}
const parse = (text: string): Array<Sample> =>
  text
    .split("\n")
    .filter((l) => l !== "" && !l.startsWith("#"))
    .map((l) => {
      const m = /^([a-z_]+)(?:\{(.*)\})? (\S+)$/.exec(l)!
      const labels = Object.fromEntries([...(m[2] ?? "").matchAll(/([a-z_]+)="([^"]*)"/g)].map((x) => [x[1]!, x[2]!]))
      return { name: m[1]!, labels, value: Number(m[3]) }
    })

describe("PrometheusExporter", () => {
  it.effect("declares all eight families from the first scrape, before any traffic", () =>
    Effect.gen(function* () {
      const tenancy = yield* Tenancy.Tenancy
      yield* tenancy.register(adapter)
      const text = yield* PrometheusExporter.render()
      for (const family of Metrics.families) {
        assert.include(text, `# TYPE ${family.name} ${family.type}\n`, family.name)
      }
      // Counters and gauges have zero-valued series per engine and tier, so `absent()` alerts hold.
      const samples = parse(text)
      for (const name of ["db_queries_total", "circuit_breaker_open_total", "db_active_connections"]) {
        assert.isTrue(
          samples.some((s) => s.name === name && s.labels.tier === "FREE" && s.value === 0),
          name
        )
      }
      assert.include(yield* PrometheusExporter.render({ prefix: "app" }), "# TYPE app_db_errors_total counter\n")
    }).pipe(withTenancy())
  )

  it.effect("with the project label on, 10,000 active projects: sums count each project once, under 1 MB", () =>
    Effect.gen(function* () {
      const tenancy = yield* Tenancy.Tenancy
      const registry = yield* MemoryRegistry
      const engine = yield* tenancy.register(adapter)
      const op = { name: "get", idempotent: true } as const
      const never = new Promise<number>(() => {})
      const fibers = []
      for (let i = 0; i < 10_000; i++) {
        const id = `project-${i}`
        yield* registry.register({ id, tier: i % 2 === 0 ? "FREE" : "PRO", redis: "redis://cache.internal:6379/0" })
        yield* engine
          .run(
            op,
            () => Promise.resolve(1),
            (e) => e as never
          )
          .pipe(tenancy.withProject(id))
        if (i % 10 === 0) {
          fibers.push(
            yield* Effect.forkChild(
              engine
                .run(
                  op,
                  () => never,
                  (e) => e as never
                )
                .pipe(tenancy.withProject(id))
            )
          )
        }
      }
      yield* Effect.yieldNow
      const started = performance.now()
      const text = yield* PrometheusExporter.render()
      const millis = performance.now() - started
      const samples = parse(text)
      const active = samples.filter((s) => s.name === "db_active_connections").reduce((n, s) => n + s.value, 0)
      assert.strictEqual(active, 1_000, "each running operation counted once")
      const ok = samples
        .filter((s) => s.name === "db_queries_total" && s.labels.status === "success")
        .reduce((n, s) => n + s.value, 0)
      assert.strictEqual(ok, 10_000, "each completed operation counted once")
      const labeled = new Set(samples.flatMap((s) => (s.labels.project_id === undefined ? [] : [s.labels.project_id])))
      assert.strictEqual(labeled.size, 1_001, "the 1,000-project budget, and _other")
      assert.isBelow(text.length, 1_000_000, `${text.length} bytes`)
      console.log(`scrape at 10,000 active projects, label on: ${text.length} bytes in ${millis.toFixed(1)} ms`)
      yield* Fiber.interruptAll(fibers)
    }).pipe(withTenancy({ metrics: { projectLabel: true } }))
  )
})
