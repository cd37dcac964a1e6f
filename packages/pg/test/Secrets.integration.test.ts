/**
 * RELIABILITY S1: a canary password (`CANARY-<uuid>-p@ss/#`) in a project's connection string, on a private server
 * that checks passwords (scram-sha-256 for the canary roles), through successful queries, failed authentication,
 * an open breaker, health checks, syntax errors, an interrupted transaction and a server restart. The password, its
 * percent-encoded and its base64 form never appear in an error (message, `String`, JSON, `Cause.pretty`,
 * `util.inspect`), a log line of any level, the Prometheus text, the service's own reports, or any row of the
 * platform schema (`::text ILIKE '%CANARY%'`).
 */
import * as fs from "node:fs"
import * as path from "node:path"
import * as util from "node:util"
import { assert, describe, it } from "@effect/vitest"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as PrometheusMetrics from "effect/observability/PrometheusMetrics"
import * as Redacted from "effect/Redacted"
import * as References from "effect/References"
import * as SqlClient from "effect/sql/SqlClient"
import * as Tenancy from "@tenantpool/core/Tenancy"
import * as Servers from "@tenantpool/testing/Servers"
import * as PgEngine from "../src/PgEngine.ts"
import * as PlatformStore from "../src/PlatformStore.ts"
import * as Fx from "./fixtures/Engine.ts"
import * as Px from "./fixtures/Platform.ts"

const canary = () => `CANARY-${crypto.randomUUID()}-p@ss/#`

/** Every form of a secret a sink could carry. */
const forms = (secret: string): ReadonlyArray<string> => [
  secret,
  encodeURIComponent(secret),
  Buffer.from(secret).toString("base64"),
  secret.slice("CANARY-".length, "CANARY-".length + 36)
]

/** Every way an error gets turned into text. */
const renderings = (error: unknown): ReadonlyArray<string> => {
  const out = [String(error), util.inspect(error, { depth: 20, showHidden: true }), Cause.pretty(Cause.fail(error))]
  try {
    out.push(JSON.stringify(error))
  } catch {
    out.push("<circular>")
  }
  if (error instanceof Error) out.push(error.message, error.stack ?? "")
  return out
}

describe("secrets", () => {
  it.live("a canary password never reaches errors, logs, metrics, reports or platform rows", () =>
    Effect.gen(function* () {
      const server = yield* Servers.acquirePrivate("postgres")
      const good = canary()
      const wrong = canary()
      const role = `sentinel_${crypto.randomUUID().slice(0, 8)}`

      // Password authentication for the canary role (the harness trusts local connections otherwise).
      const hba = path.join(server.dir!, "data", "pg_hba.conf")
      fs.writeFileSync(hba, `host all ${role} 127.0.0.1/32 scram-sha-256\n${fs.readFileSync(hba, "utf8")}`)
      yield* Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        yield* sql.unsafe(`create role ${role} login password '${good.replace(/'/g, "''")}'`)
        yield* sql`select pg_reload_conf()`
      }).pipe(Effect.provide(PgClient.layer({ url: Redacted.make(server.url), maxConnections: 1 })))

      const urlWith = (password: string) =>
        `postgres://${role}:${encodeURIComponent(password)}@127.0.0.1:${server.port}/postgres`
      const db = yield* Px.platformDatabase("secrets")
      const obs = yield* Fx.observer(db.url)

      const logs: Array<string> = []
      const capture = Logger.make((options) => {
        logs.push(Logger.formatSimple.log(options))
        logs.push(Cause.pretty(options.cause))
      })
      const logging = Layer.mergeAll(
        Logger.layer([capture], { mergeWithExisting: false }),
        Layer.succeed(References.MinimumLogLevel, "All")
      )

      const errors: Array<unknown> = []
      const reports: Array<string> = []
      yield* Effect.gen(function* () {
        const store = yield* PlatformStore.PlatformStore
        const sql = yield* SqlClient.SqlClient
        const tenancy = yield* Tenancy.Tenancy
        const engine = yield* PgEngine.PgEngine
        const keep = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
          Effect.catchCause(Effect.asVoid(effect), (cause) =>
            Effect.sync(() => {
              errors.push(Cause.squash(cause))
              reports.push(Cause.pretty(cause))
            })
          )

        yield* store.registerProject({ id: "sentinel", tier: "PRO" })
        yield* store.putDatabase({
          projectId: "sentinel",
          engine: "postgres",
          connectionString: Redacted.make(urlWith(good))
        })
        yield* store.registerProject({ id: "sentinel-bad", tier: "FREE" })
        yield* store.putDatabase({ projectId: "sentinel-bad", engine: "postgres", connectionString: urlWith(wrong) })
        const asGood = tenancy.withProject("sentinel")
        const asBad = tenancy.withProject("sentinel-bad")

        assert.deepStrictEqual(yield* sql`select current_user as u`.pipe(asGood), [{ u: role }], "password auth works")
        yield* keep(sql`selec 1`.pipe(asGood))
        for (let i = 0; i < 15; i++) yield* keep(sql`select 1`.pipe(asBad))
        assert.strictEqual(yield* tenancy.breakerState("sentinel-bad", "postgres"), "open")
        yield* keep(tenancy.checkHealth("sentinel", "postgres"))
        yield* keep(tenancy.checkHealth("sentinel-bad", "postgres"))
        const tx = yield* Effect.forkChild(sql.withTransaction(sql`select pg_sleep(5)`).pipe(asGood))
        yield* Effect.sleep("100 millis")
        yield* Fiber.interrupt(tx)

        yield* Effect.promise(() => server.stop({ mode: "fast" }))
        for (let i = 0; i < 5; i++) yield* keep(sql`select 1`.pipe(asGood))
        yield* Effect.promise(() => server.start())
        yield* Fx.eventually(
          "the project recovers",
          Effect.map(Effect.exit(sql`select 1`.pipe(asGood)), (exit) => exit._tag === "Success"),
          "15 seconds"
        )
        yield* Effect.logTrace(`targets: ${JSON.stringify(yield* engine.targets)}`)
        reports.push(JSON.stringify(yield* tenancy.connections))
        reports.push(JSON.stringify(yield* tenancy.recentEvents))
        reports.push(JSON.stringify(yield* engine.targets))
        reports.push(JSON.stringify(yield* store.registry.lookup("sentinel" as never)))
        reports.push(util.inspect(yield* store.registry.lookup("sentinel" as never), { depth: 20, showHidden: true }))
        yield* tenancy.closeIdleConnections({ idleFor: 0 })
        yield* store.flush
        reports.push(yield* PrometheusMetrics.format())
      }).pipe(
        Effect.provide(
          Px.stack(
            { url: Redacted.make(db.appUrl), keys: Px.keys(), flushInterval: "100 millis" },
            {
              recorder: { metricsInterval: "100 millis" },
              tenancy: { breakers: { postgres: { attemptTimeout: "1 second", resetTimeout: "500 millis" } } }
            }
          ).pipe(Layer.provideMerge(logging))
        )
      )

      assert.isAtLeast(errors.length, 15, "the sinks were exercised")
      assert.isTrue(
        errors.some((e) => renderings(e).some((t) => /authentication failed/i.test(t))),
        "authentication failures were among them"
      )
      const rows = yield* obs<{ t: string }>`
        select x::text as t from platform.projects x
        union all select x::text from platform.databases x
        union all select x::text from platform.database_metrics x
        union all select x::text from platform.database_connection_logs x
        union all select x::text from platform.database_health_overview x`
      assert.isAtLeast(rows.length, 10, "the platform schema has rows to search")
      const hits = yield* obs<{ n: number }>`
        select count(*)::int as n from (
          select x::text as t from platform.projects x
          union all select x::text from platform.databases x
          union all select x::text from platform.database_metrics x
          union all select x::text from platform.database_connection_logs x
          union all select x::text from platform.database_health_overview x) all_rows
        where t ilike '%CANARY%'`
      assert.strictEqual(hits[0]!.n, 0, "platform rows")

      const sinks: ReadonlyArray<readonly [string, ReadonlyArray<string>]> = [
        ["errors", errors.flatMap(renderings)],
        ["logs", logs],
        ["reports and metrics", reports],
        ["platform rows", rows.map((r) => r.t)]
      ]
      for (const secret of [good, wrong]) {
        for (const form of forms(secret)) {
          for (const [name, texts] of sinks) {
            const hit = texts.find((t) => t.includes(form))
            assert.isUndefined(hit, `${name} contain the canary (${form.slice(0, 12)}…)`)
          }
        }
      }
    }).pipe(Effect.provide(Layer.succeed(References.MinimumLogLevel, "All")))
  )
})
