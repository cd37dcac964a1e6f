/**
 * RELIABILITY R29: the platform database (on a private server) is stopped while tenants (on the shared server) keep
 * querying. Tenant statements do not slow down or fail, projects whose runtime was freed meanwhile come back from
 * the last configuration read, the recorder drops what its bounded buffer cannot hold and counts it (stats and
 * `tenantpool_platform_dropped_total`), and writing resumes once the platform database is back.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as PrometheusMetrics from "effect/observability/PrometheusMetrics"
import * as Redacted from "effect/Redacted"
import * as SqlClient from "effect/sql/SqlClient"
import * as Tenancy from "@tenantpool/core/Tenancy"
import * as Servers from "@tenantpool/testing/Servers"
import * as PlatformStore from "../src/PlatformStore.ts"
import * as Fx from "./fixtures/Engine.ts"
import * as Px from "./fixtures/Platform.ts"

describe("PlatformStore outage", () => {
  it.live("a stopped platform database never blocks tenant queries; unwritable rows are dropped and counted", () =>
    Effect.gen(function* () {
      const platform = yield* Servers.acquirePrivate("postgres")
      const db = yield* Px.platformDatabase("outage", platform.url)
      const tenant = yield* Fx.freshDatabase("tenant_outage")
      yield* Effect.gen(function* () {
        const store = yield* PlatformStore.PlatformStore
        const sql = yield* SqlClient.SqlClient
        const tenancy = yield* Tenancy.Tenancy
        yield* store.registerProject({ id: "steady", tier: "PRO" })
        yield* store.putDatabase({ projectId: "steady", engine: "postgres", connectionString: tenant })
        const query = sql<{ n: number }>`select 1 as n`.pipe(tenancy.withProject("steady"))
        yield* Effect.forEach(Array.from({ length: 20 }), () => query, { discard: true })
        const baseline = yield* Effect.forEach(Array.from({ length: 100 }), () =>
          Effect.map(Fx.timed(query), ([, ms]) => ms)
        )
        yield* store.flush
        assert.strictEqual((yield* store.stats).dropped.total, 0)

        yield* Effect.promise(() => platform.stop({ mode: "fast" }))
        const during: Array<number> = []
        const started = Date.now()
        while (Date.now() - started < 2_000) {
          const [rows, ms] = yield* Fx.timed(query)
          assert.deepStrictEqual(rows, [{ n: 1 }])
          during.push(ms)
        }
        // The project's runtime is freed and comes back: the registry cannot be read, the last configuration is used.
        yield* tenancy.closeIdleConnections({ idleFor: 0 })
        const [rows, reopen] = yield* Fx.timed(query)
        assert.deepStrictEqual(rows, [{ n: 1 }])
        assert.isBelow(reopen, 1_000, "served from the last configuration read")

        const p99 = (xs: ReadonlyArray<number>) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length * 0.99)]!
        assert.isAtLeast(during.length, 200, "tenant traffic went on")
        assert.isBelow(p99(during), Math.max(50, 10 * p99(baseline)), `p99 ${p99(during)} ms vs ${p99(baseline)} ms`)

        yield* Fx.eventually(
          "rows are dropped once the buffer is full",
          Effect.map(store.stats, (s) => s.dropped.bufferFull > 0)
        )
        const stats = yield* store.stats
        assert.isAtMost(stats.buffered.metrics + stats.buffered.events + stats.buffered.health, 50)
        assert.isAtLeast(stats.failedFlushes, 1)
        const text = yield* PrometheusMetrics.format()
        const line = text
          .split("\n")
          .find((l) => l.startsWith(`tenantpool_platform_dropped_total{kind="metric",reason="buffer_full"}`))
        assert.isDefined(line, text)
        assert.isAbove(Number(line!.split(" ").at(-1)), 0)

        yield* Effect.promise(() => platform.start())
        const written = stats.written.metrics
        yield* Fx.eventually(
          "writing resumes",
          Effect.map(store.stats, (s) => s.written.metrics > written),
          "10 seconds"
        )
      }).pipe(
        Effect.provide(
          Px.stack(
            {
              url: Redacted.make(db.appUrl),
              keys: Px.keys(),
              bufferCapacity: 50,
              batchSize: 20,
              flushInterval: "50 millis",
              flushTimeout: "300 millis",
              connectTimeout: "300 millis",
              lookupTimeout: "500 millis",
              cache: { ttl: "1 millis" }
            },
            { recorder: { metricsInterval: "20 millis" } }
          )
        )
      )
    })
  )
})
