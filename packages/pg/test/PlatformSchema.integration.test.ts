// The platform schema against a real PostgreSQL: every helper, the health view, retention, the append-only audit
// log, SECURITY DEFINER hardening, SQL injection and connection strings at rest.
import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto"
import { assert, describe, layer } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import * as SqlClient from "effect/sql/SqlClient"
import type { SqlError } from "effect/sql/SqlError"
import { ProjectId } from "@tenantpool/core/ProjectId"
import { serverError } from "../src/internal/pgError.ts"
import * as PgMigrations from "../src/PgMigrations.ts"
import { asRole, layerFreshDatabase, migrationsDirectory, quoteIdent, TestDatabase } from "./_pg.ts"

// The application's login role: a member of tenantpool_app, as a deployer would set it up.
const AppRole = Context.Service<{ readonly name: string }>("@tenantpool/pg/test/AppRole")

const Migrated = PgMigrations.layer({ directory: migrationsDirectory }).pipe(
  Layer.provideMerge(layerFreshDatabase("platform"))
)

const TestLive = Layer.effect(
  AppRole,
  Effect.gen(function* () {
    const db = yield* TestDatabase
    const sql = yield* SqlClient.SqlClient
    const name = yield* db.loginRole("app")
    yield* sql.unsafe(`GRANT tenantpool_app TO ${quoteIdent(name)}`)
    return { name }
  })
).pipe(Layer.provideMerge(Migrated))

/** Runs `effect` in a transaction as the application's login role. */
const asApp = <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.flatMap(AppRole, (role) => asRole(role.name)(effect))

/** The server's SQLSTATE and message of a statement that must fail. */
const failureOf = <A, R>(effect: Effect.Effect<A, SqlError, R>) =>
  Effect.map(Effect.flip(effect), (error) => {
    const server = serverError(error)
    return { code: server.code, message: server.message }
  })

const sqlClient = SqlClient.SqlClient

const seedProject = (id: string, tier = "PRO") =>
  Effect.flatMap(sqlClient, (sql) => sql`INSERT INTO platform.projects (id, tier) VALUES (${id}, ${tier})`)

const seedDatabase = (projectId: string, databaseType: string) =>
  Effect.flatMap(
    sqlClient,
    (sql) =>
      sql`INSERT INTO platform.databases (project_id, database_type, secret_ref)
          VALUES (${projectId}, ${databaseType}, ${`vault://kv/tenants/${projectId}/${databaseType}`})`
  )

const count = (query: string, params: ReadonlyArray<unknown> = []) =>
  Effect.flatMap(sqlClient, (sql) =>
    Effect.map(sql.unsafe<{ n: string | number }>(query, params), (rows) => Number(rows[0]!.n))
  )

const secretRefPattern = /^vault:\/\//

layer(TestLive, { excludeTestServices: true, timeout: "60 seconds" })("the platform schema", (it) => {
  describe("project ids", () => {
    it.effect("the schema accepts exactly the ids @tenantpool/core's ProjectId accepts", () =>
      Effect.gen(function* () {
        const sql = yield* sqlClient
        const samples = ["a", "7", "acme", "my_project", "my-project-2", "a".repeat(63), "a".repeat(64), "", "-a"]
        const more = ["a-", "_a", "a_", "Acme", "ac me", "acme\n", "ａｃｍｅ", "acme;", "acme'", "a--b", "a__b"]
        for (const id of [...samples, ...more]) {
          const rows = yield* sql<{ valid: boolean }>`SELECT platform.is_valid_project_id(${id}) AS valid`
          assert.strictEqual(rows[0]!.valid, Schema.is(ProjectId)(id), JSON.stringify(id))
        }
      })
    )
  })

  describe("record_database_metric(s)", () => {
    it.effect("records a sample with labels and the server's time", () =>
      Effect.gen(function* () {
        const sql = yield* sqlClient
        yield* asApp(
          sql`SELECT platform.record_database_metric('metric-proj', 'postgres', 'query_duration_ms', 12.5, '{"op": "select"}')`
        )
        const rows = yield* sql<{ value: number; labels: unknown; age: number }>`
          SELECT value, labels::text AS labels, extract(epoch FROM now() - time)::float8 AS age
          FROM platform.database_metrics WHERE project_id = 'metric-proj'`
        assert.strictEqual(rows.length, 1)
        assert.strictEqual(rows[0]!.value, 12.5)
        assert.strictEqual(rows[0]!.labels, '{"op": "select"}')
        assert.isBelow(Math.abs(rows[0]!.age), 60)
      })
    )

    it.effect("rejects invalid input with invalid_parameter_value and a message naming the problem", () =>
      Effect.gen(function* () {
        const sql = yield* sqlClient
        const cases: ReadonlyArray<[string, string]> = [
          [`SELECT platform.record_database_metric('Bad_Project', 'postgres', 'm', 1)`, "invalid project id"],
          [`SELECT platform.record_database_metric('metric-proj', 'mysql', 'm', 1)`, "invalid database type 'mysql'"],
          [`SELECT platform.record_database_metric('metric-proj', 'redis', '1metric', 1)`, "invalid metric name"],
          [`SELECT platform.record_database_metric('metric-proj', 'redis', 'm', 'NaN')`, "no finite value"],
          [`SELECT platform.record_database_metric('metric-proj', 'redis', 'm', 1, '[1]')`, "JSON object"],
          [
            `SELECT platform.record_database_metric('metric-proj', 'redis', 'm', 1, '{}', now() + interval '1 hour')`,
            "outside the accepted window"
          ]
        ]
        for (const [query, message] of cases) {
          const failure = yield* failureOf(asApp(sql.unsafe(query)))
          assert.strictEqual(failure.code, "22023", query)
          assert.include(failure.message, message, query)
        }
        assert.strictEqual(
          yield* count(`SELECT count(*) AS n FROM platform.database_metrics WHERE database_type = 'redis'
                        AND project_id = 'metric-proj'`),
          0
        )
      })
    )

    it.effect("records a batch all or nothing and returns its size", () =>
      Effect.gen(function* () {
        const sql = yield* sqlClient
        const batch = [
          { project_id: "batch-proj", database_type: "redis", metric_name: "hits", value: 3 },
          { project_id: "batch-proj", database_type: "redis", metric_name: "hits", value: 5, labels: { db: "0" } },
          {
            project_id: "batch-proj",
            database_type: "mongodb",
            metric_name: "pool_size",
            value: 7,
            time: new Date(Date.now() - 60_000).toISOString()
          }
        ]
        const inserted = yield* asApp(
          sql<{ n: number }>`SELECT platform.record_database_metrics(${JSON.stringify(batch)}::jsonb) AS n`
        )
        assert.strictEqual(inserted[0]!.n, 3)
        const bad = [...batch, { project_id: "batch-proj", database_type: "redis", metric_name: "bad name", value: 1 }]
        const failure = yield* failureOf(
          asApp(sql`SELECT platform.record_database_metrics(${JSON.stringify(bad)}::jsonb)`)
        )
        assert.strictEqual(failure.code, "22023")
        assert.include(failure.message, "invalid metric name 'bad name'")
        const notArray = yield* failureOf(asApp(sql`SELECT platform.record_database_metrics('{"a": 1}'::jsonb)`))
        assert.include(notArray.message, "expects a JSON array")
        assert.strictEqual(
          yield* count(`SELECT count(*) AS n FROM platform.database_metrics WHERE project_id = 'batch-proj'`),
          3
        )
      })
    )
  })

  describe("log_database_event(s)", () => {
    it.effect("appends an event, returns its id, and masks passwords in message and metadata", () =>
      Effect.gen(function* () {
        const sql = yield* sqlClient
        const message = "connect failed: postgres://bob:hunter2@db.internal:5432/app, then password=hunter2 port=5432"
        const ids = yield* asApp(
          sql<{ id: string | number }>`SELECT platform.log_database_event('log-proj', 'postgres', 'connection_failed',
            ${message}, ${JSON.stringify({ url: "redis://:hunter2@cache:6379/0", attempt: 3 })}::jsonb, 'error') AS id`
        )
        const rows = yield* sql<{ id: string | number; message: string; metadata: string; severity: string }>`
          SELECT id, message, metadata::text AS metadata, severity FROM platform.database_connection_logs
          WHERE project_id = 'log-proj'`
        assert.strictEqual(rows.length, 1)
        assert.strictEqual(Number(rows[0]!.id), Number(ids[0]!.id))
        assert.strictEqual(rows[0]!.severity, "error")
        assert.strictEqual(
          rows[0]!.message,
          "connect failed: postgres://bob:***@db.internal:5432/app, then password=*** port=5432"
        )
        assert.notInclude(rows[0]!.metadata, "hunter2")
        assert.include(rows[0]!.metadata, '"attempt": 3')
      })
    )

    it.effect("appends a batch and rejects unknown severities and event types", () =>
      Effect.gen(function* () {
        const sql = yield* sqlClient
        const events = [
          { project_id: "log-batch", database_type: "redis", event_type: "pool_created" },
          { project_id: "log-batch", database_type: "redis", event_type: "circuit_open", severity: "warning" }
        ]
        const logged = yield* asApp(
          sql<{ n: number }>`SELECT platform.log_database_events(${JSON.stringify(events)}::jsonb) AS n`
        )
        assert.strictEqual(logged[0]!.n, 2)
        const badSeverity = yield* failureOf(
          asApp(sql`SELECT platform.log_database_event('log-batch', 'redis', 'x', NULL, '{}', 'fatal')`)
        )
        assert.include(badSeverity.message, "invalid severity 'fatal'")
        const badType = yield* failureOf(
          asApp(sql`SELECT platform.log_database_event('log-batch', 'redis', 'Bad-Type')`)
        )
        assert.include(badType.message, "invalid event type 'Bad-Type'")
        assert.strictEqual(
          yield* count(`SELECT count(*) AS n FROM platform.database_connection_logs WHERE project_id = 'log-batch'`),
          2
        )
      })
    )
  })

  describe("update_database_health", () => {
    it.effect("stores the status, logs changes only, and leaves the target version alone", () =>
      Effect.gen(function* () {
        const sql = yield* sqlClient
        yield* seedProject("health-proj")
        yield* seedDatabase("health-proj", "postgres")
        const update = (status: string, details = "{}") =>
          Effect.map(
            asApp(
              sql<{ changed: boolean }>`SELECT platform.update_database_health('health-proj', 'postgres', ${status},
                ${details}::jsonb) AS changed`
            ),
            (rows) => rows[0]!.changed
          )
        const events = count(
          `SELECT count(*) AS n FROM platform.database_connection_logs WHERE project_id = 'health-proj'`
        )

        assert.isTrue(yield* update("degraded", '{"latency_ms": 900}'))
        const row = (yield* sql<{ health_status: string; checked_ago: number; version: string | number }>`
          SELECT health_status, extract(epoch FROM now() - last_health_check)::float8 AS checked_ago, version
          FROM platform.databases WHERE project_id = 'health-proj'`)[0]!
        assert.strictEqual(row.health_status, "degraded")
        assert.isBelow(row.checked_ago, 60)
        assert.strictEqual(Number(row.version), 1)
        const event = (yield* sql<{ event_type: string; severity: string; metadata: string }>`
          SELECT event_type, severity, metadata::text AS metadata FROM platform.database_connection_logs
          WHERE project_id = 'health-proj' ORDER BY id DESC LIMIT 1`)[0]!
        assert.strictEqual(event.event_type, "health_changed")
        assert.strictEqual(event.severity, "warning")
        assert.deepStrictEqual(JSON.parse(event.metadata), { from: "unknown", to: "degraded", latency_ms: 900 })

        assert.isFalse(yield* update("degraded"))
        assert.strictEqual(yield* events, 1)
        assert.isTrue(yield* update("unhealthy"))
        assert.strictEqual(yield* events, 2)

        // A change of the target itself bumps the version, which caches key on.
        yield* asApp(sql`UPDATE platform.databases SET status = 'suspended' WHERE project_id = 'health-proj'`)
        const version = yield* sql<{ version: string | number }>`
          SELECT version FROM platform.databases WHERE project_id = 'health-proj'`
        assert.strictEqual(Number(version[0]!.version), 2)
      })
    )

    it.effect("fails with no_data_found for a missing target and rejects unknown statuses", () =>
      Effect.gen(function* () {
        const sql = yield* sqlClient
        yield* seedProject("health-missing")
        const missing = yield* failureOf(
          asApp(sql`SELECT platform.update_database_health('health-missing', 'redis', 'healthy')`)
        )
        assert.strictEqual(missing.code, "P0002")
        assert.strictEqual(missing.message, "project health-missing has no redis database")
        const bad = yield* failureOf(
          asApp(sql`SELECT platform.update_database_health('health-missing', 'redis', 'sick')`)
        )
        assert.strictEqual(bad.code, "22023")
        assert.include(bad.message, "invalid health status 'sick'")
      })
    )
  })

  describe("get_database_stats", () => {
    it.effect("summarises each engine's metrics over the interval", () =>
      Effect.gen(function* () {
        const sql = yield* sqlClient
        yield* sql`INSERT INTO platform.database_metrics (time, project_id, database_type, metric_name, value)
          SELECT now() - (101 - i) * interval '1 second', 'stats-proj', 'postgres', 'latency_ms', i
          FROM generate_series(1, 100) AS i`
        yield* sql`INSERT INTO platform.database_metrics (time, project_id, database_type, metric_name, value)
          VALUES (now() - interval '2 hours', 'stats-proj', 'postgres', 'latency_ms', 1000)`
        const stats = (interval: string) =>
          asApp(
            sql<{
              database_type: string
              metric_name: string
              samples: string | number
              avg_value: number
              min_value: number
              max_value: number
              p95_value: number
              last_value: number
            }>`SELECT * FROM platform.get_database_stats('stats-proj', ${interval}::interval)`
          )
        const hour = yield* stats("1 hour")
        assert.strictEqual(hour.length, 1)
        const s = hour[0]!
        assert.strictEqual(s.database_type, "postgres")
        assert.strictEqual(s.metric_name, "latency_ms")
        assert.strictEqual(Number(s.samples), 100)
        assert.strictEqual(s.avg_value, 50.5)
        assert.strictEqual(s.min_value, 1)
        assert.strictEqual(s.max_value, 100)
        assert.closeTo(s.p95_value, 95.05, 1e-9)
        assert.strictEqual(s.last_value, 100)
        const wider = (yield* stats("3 hours"))[0]!
        assert.strictEqual(Number(wider.samples), 101)
        assert.strictEqual(wider.max_value, 1000)
        const negative = yield* failureOf(stats("-1 hour"))
        assert.include(negative.message, "must be positive")
      })
    )
  })

  describe("database_health_overview", () => {
    it.effect("shows status, health, last-hour counts and averages, and the latest event per engine", () =>
      Effect.gen(function* () {
        const sql = yield* sqlClient
        yield* seedProject("view-proj", "ENTERPRISE")
        yield* seedDatabase("view-proj", "postgres")
        yield* seedDatabase("view-proj", "redis")
        yield* sql`INSERT INTO platform.database_connection_logs (time, project_id, database_type, event_type, severity)
          VALUES (now() - interval '2 hours', 'view-proj', 'postgres', 'query_error', 'error')`
        yield* sql`INSERT INTO platform.database_metrics (time, project_id, database_type, metric_name, value)
          VALUES (now() - interval '2 hours', 'view-proj', 'postgres', 'latency_ms', 1000)`
        yield* asApp(
          Effect.all([
            sql`SELECT platform.log_database_event('view-proj', 'postgres', 'query_error', 'boom', '{}', 'error')`,
            sql`SELECT platform.log_database_event('view-proj', 'postgres', 'slow_query', NULL, '{}', 'warning')`,
            sql`SELECT platform.record_database_metric('view-proj', 'postgres', 'latency_ms', 10)`,
            sql`SELECT platform.record_database_metric('view-proj', 'postgres', 'latency_ms', 20)`,
            sql`SELECT platform.update_database_health('view-proj', 'postgres', 'degraded')`
          ])
        )
        const rows = yield* asApp(
          sql<{
            database_type: string
            tier: string
            status: string
            health_status: string
            last_health_check: unknown
            events_last_hour: string | number
            errors_last_hour: string | number
            warnings_last_hour: string | number
            metric_samples_last_hour: string | number
            metric_averages_last_hour: string
            last_event_type: string | null
          }>`SELECT *, metric_averages_last_hour::text AS metric_averages_last_hour
             FROM platform.database_health_overview WHERE project_id = 'view-proj' ORDER BY database_type`
        )
        assert.deepStrictEqual(
          rows.map((r) => r.database_type),
          ["postgres", "redis"]
        )
        const pg = rows[0]!
        assert.strictEqual(pg.tier, "ENTERPRISE")
        assert.strictEqual(pg.status, "active")
        assert.strictEqual(pg.health_status, "degraded")
        assert.isNotNull(pg.last_health_check)
        // query_error, slow_query and health_changed (warning) within the hour; the 2-hour-old error is out.
        assert.strictEqual(Number(pg.events_last_hour), 3)
        assert.strictEqual(Number(pg.errors_last_hour), 1)
        assert.strictEqual(Number(pg.warnings_last_hour), 2)
        assert.strictEqual(Number(pg.metric_samples_last_hour), 2)
        assert.deepStrictEqual(JSON.parse(pg.metric_averages_last_hour), { latency_ms: 15 })
        assert.strictEqual(pg.last_event_type, "health_changed")
        const redis = rows[1]!
        assert.strictEqual(redis.health_status, "unknown")
        assert.strictEqual(Number(redis.events_last_hour), 0)
        assert.strictEqual(Number(redis.metric_samples_last_hour), 0)
        assert.isNull(redis.last_event_type)

        const columns = yield* sql<{ column_name: string }>`
          SELECT column_name FROM information_schema.columns
          WHERE table_schema = 'platform' AND table_name = 'database_health_overview'`
        const names = columns.map((c) => c.column_name)
        for (const secret of ["connection_ciphertext", "connection_nonce", "connection_key_id", "secret_ref"]) {
          assert.notInclude(names, secret)
        }
      })
    )
  })

  describe("retention", () => {
    it.effect("cleanup_old_database_metrics deletes samples older than 30 days and keeps younger ones", () =>
      Effect.gen(function* () {
        const sql = yield* sqlClient
        yield* sql`INSERT INTO platform.database_metrics (time, project_id, database_type, metric_name, value) VALUES
          (now() - interval '30 days 1 minute', 'retention-proj', 'redis', 'expired', 1),
          (now() - interval '29 days 23 hours', 'retention-proj', 'redis', 'kept', 2)`
        const deleted = yield* asApp(sql<{ n: string | number }>`SELECT platform.cleanup_old_database_metrics() AS n`)
        assert.strictEqual(Number(deleted[0]!.n), 1)
        const left = yield* sql<{ metric_name: string }>`
          SELECT metric_name FROM platform.database_metrics WHERE project_id = 'retention-proj'`
        assert.deepStrictEqual(
          left.map((r) => r.metric_name),
          ["kept"]
        )
      })
    )

    it.effect("cleanup_old_database_logs deletes events older than 90 days and keeps younger ones", () =>
      Effect.gen(function* () {
        const sql = yield* sqlClient
        yield* sql`INSERT INTO platform.database_connection_logs (time, project_id, database_type, event_type) VALUES
          (now() - interval '90 days 1 minute', 'retention-proj', 'redis', 'expired'),
          (now() - interval '89 days 23 hours', 'retention-proj', 'redis', 'kept')`
        const deleted = yield* asApp(sql<{ n: string | number }>`SELECT platform.cleanup_old_database_logs() AS n`)
        assert.strictEqual(Number(deleted[0]!.n), 1)
        const left = yield* sql<{ event_type: string }>`
          SELECT event_type FROM platform.database_connection_logs WHERE project_id = 'retention-proj'`
        assert.deepStrictEqual(
          left.map((r) => r.event_type),
          ["kept"]
        )
        // The guard's flag does not outlive the cleanup call.
        const flag = yield* asApp(
          Effect.andThen(
            sql`SELECT platform.cleanup_old_database_logs()`,
            sql<{ flag: string }>`SELECT coalesce(current_setting('tenantpool.audit_cleanup', true), '') AS flag`
          )
        )
        assert.notStrictEqual(flag[0]!.flag, "on")
      })
    )
  })

  describe("the audit log is append-only", () => {
    it.effect("the application role can neither write the table directly nor change or remove rows", () =>
      Effect.gen(function* () {
        const sql = yield* sqlClient
        yield* asApp(sql`SELECT platform.log_database_event('audit-proj', 'postgres', 'opened')`)
        const attempts = [
          `UPDATE platform.database_connection_logs SET message = 'forged' WHERE project_id = 'audit-proj'`,
          `DELETE FROM platform.database_connection_logs WHERE project_id = 'audit-proj'`,
          `TRUNCATE platform.database_connection_logs`,
          `INSERT INTO platform.database_connection_logs (project_id, database_type, event_type)
           VALUES ('audit-proj', 'postgres', 'forged')`,
          `INSERT INTO platform.database_metrics (project_id, database_type, metric_name, value)
           VALUES ('audit-proj', 'postgres', 'forged', 1)`,
          `DELETE FROM platform.database_metrics`
        ]
        for (const attempt of attempts) {
          const failure = yield* failureOf(asApp(sql.unsafe(attempt)))
          assert.strictEqual(failure.code, "42501", attempt)
          assert.match(failure.message, /^permission denied/, attempt)
        }
        // Setting the cleanup flag by hand does not help the application either.
        const flagged = yield* failureOf(
          asApp(
            Effect.andThen(
              sql`SELECT set_config('tenantpool.audit_cleanup', 'on', true)`,
              sql`DELETE FROM platform.database_connection_logs WHERE project_id = 'audit-proj'`
            )
          )
        )
        assert.strictEqual(flagged.code, "42501")
        assert.strictEqual(
          yield* count(`SELECT count(*) AS n FROM platform.database_connection_logs WHERE project_id = 'audit-proj'
                        AND event_type = 'opened' AND message IS NULL`),
          1
        )
      })
    )

    it.effect("the trigger stops the owner and superusers too, except the cleanup of expired rows", () =>
      Effect.gen(function* () {
        const sql = yield* sqlClient
        yield* sql`INSERT INTO platform.database_connection_logs (time, project_id, database_type, event_type) VALUES
          (now() - interval '100 days', 'guard-proj', 'redis', 'old'), (now(), 'guard-proj', 'redis', 'recent')`
        const superUpdate = yield* failureOf(
          sql`UPDATE platform.database_connection_logs SET message = 'x' WHERE project_id = 'guard-proj'`
        )
        assert.strictEqual(
          superUpdate.message,
          "platform.database_connection_logs is append-only: UPDATE is not allowed"
        )
        const superDelete = yield* failureOf(
          sql`DELETE FROM platform.database_connection_logs WHERE project_id = 'guard-proj' AND event_type = 'old'`
        )
        assert.include(superDelete.message, "DELETE is not allowed")
        const superTruncate = yield* failureOf(sql`TRUNCATE platform.database_connection_logs`)
        assert.include(superTruncate.message, "TRUNCATE is not allowed")
        // The owner with the flag may remove only rows past retention, like the cleanup function.
        const ownerRecent = yield* failureOf(
          asRole("tenantpool_owner")(
            Effect.andThen(
              sql`SELECT set_config('tenantpool.audit_cleanup', 'on', true)`,
              sql`DELETE FROM platform.database_connection_logs WHERE project_id = 'guard-proj'`
            )
          )
        )
        assert.include(ownerRecent.message, "DELETE is not allowed")
        assert.strictEqual(
          yield* count(`SELECT count(*) AS n FROM platform.database_connection_logs WHERE project_id = 'guard-proj'`),
          2
        )
      })
    )
  })

  describe("SECURITY DEFINER hardening", () => {
    it.effect("every definer function pins search_path with pg_temp last, and PUBLIC may execute none", () =>
      Effect.gen(function* () {
        const sql = yield* sqlClient
        const functions = yield* sql<{
          signature: string
          name: string
          definer: boolean
          search_path: string | null
          owner: string
          public_execute: boolean
        }>`
          SELECT p.oid::regprocedure::text AS signature, p.proname AS name, p.prosecdef AS definer,
                 (SELECT substr(c, length('search_path=') + 1) FROM unnest(p.proconfig) AS c
                  WHERE c LIKE 'search_path=%') AS search_path,
                 pg_get_userbyid(p.proowner) AS owner,
                 has_function_privilege('public', p.oid, 'EXECUTE') AS public_execute
          FROM pg_proc p WHERE p.pronamespace = 'platform'::regnamespace ORDER BY 1`
        const definers = functions.filter((f) => f.definer)
        assert.deepStrictEqual(definers.map((f) => f.name).sort(), [
          "cleanup_old_database_logs",
          "cleanup_old_database_metrics",
          "log_database_event",
          "log_database_events",
          "record_database_metric",
          "record_database_metrics",
          "update_database_health"
        ])
        for (const f of functions) {
          assert.isFalse(f.public_execute, `PUBLIC may execute ${f.signature}`)
          assert.strictEqual(f.owner, "tenantpool_owner", f.signature)
          assert.isNotNull(f.search_path, `${f.signature} has no pinned search_path`)
          const path = f.search_path!.split(",").map((s) => s.trim())
          assert.strictEqual(path[0], "pg_catalog", f.signature)
          assert.strictEqual(path[path.length - 1], "pg_temp", f.signature)
          assert.notInclude(path, "public", f.signature)
          assert.notInclude(path, '"$user"', f.signature)
        }
        const owner = yield* sql<{ rolsuper: boolean; rolbypassrls: boolean; rolcanlogin: boolean }>`
          SELECT rolsuper, rolbypassrls, rolcanlogin FROM pg_roles WHERE rolname = 'tenantpool_owner'`
        assert.deepStrictEqual({ ...owner[0]! }, { rolsuper: false, rolbypassrls: false, rolcanlogin: false })
      })
    )

    it.effect("shadow tables and functions in pg_temp and public do not hijack the helpers", () =>
      Effect.gen(function* () {
        const sql = yield* sqlClient
        const app = yield* AppRole
        yield* seedProject("shadow-proj")
        yield* seedDatabase("shadow-proj", "postgres")
        // Give the untrusted role what PostgreSQL 14 and older gave everyone: CREATE on public.
        yield* sql.unsafe(`GRANT CREATE ON SCHEMA public TO ${quoteIdent(app.name)}`)
        const attack = Effect.gen(function* () {
          yield* sql`SET LOCAL search_path = pg_temp, public, platform, pg_catalog`
          yield* sql`CREATE TEMP TABLE database_metrics (LIKE platform.database_metrics) ON COMMIT DROP`
          yield* sql`CREATE TEMP TABLE database_connection_logs (LIKE platform.database_connection_logs) ON COMMIT DROP`
          yield* sql`CREATE TEMP TABLE databases (LIKE platform.databases) ON COMMIT DROP`
          yield* sql`CREATE TABLE public.database_metrics (LIKE platform.database_metrics)`
          yield* sql`CREATE TABLE public.database_connection_logs (LIKE platform.database_connection_logs)`
          yield* sql`CREATE FUNCTION public.now() RETURNS timestamptz LANGUAGE sql AS $$ SELECT '2000-01-01'::timestamptz $$`
          yield* sql`CREATE FUNCTION public.is_valid_project_id(text) RETURNS boolean LANGUAGE sql AS $$ SELECT true $$`
          yield* sql`CREATE FUNCTION public.assert_project_id(text) RETURNS text LANGUAGE sql AS $$ SELECT $1 $$`
          yield* sql`CREATE FUNCTION pg_temp.assert_database_type(text) RETURNS text LANGUAGE sql AS $$ SELECT $1 $$`
          yield* sql`CREATE FUNCTION public.jsonb_typeof(jsonb) RETURNS text LANGUAGE sql AS $$ SELECT 'object' $$`
          // The shadows work for the attacker's own unqualified queries...
          const shadowed = yield* sql<{ year: number }>`SELECT extract(year FROM now())::int AS year`
          assert.strictEqual(shadowed[0]!.year, 2000)
          // ...but not inside the helpers.
          yield* sql`SELECT platform.record_database_metric('shadow-proj', 'postgres', 'shadow_metric', 1)`
          yield* sql`SELECT platform.log_database_event('shadow-proj', 'postgres', 'shadow_event')`
          yield* sql`SELECT platform.update_database_health('shadow-proj', 'postgres', 'healthy')`
          yield* sql`SELECT platform.cleanup_old_database_metrics(), platform.cleanup_old_database_logs()`
          const hijacked = yield* sql<{ n: number }>`
            SELECT ((SELECT count(*) FROM pg_temp.database_metrics) + (SELECT count(*) FROM public.database_metrics)
              + (SELECT count(*) FROM pg_temp.database_connection_logs)
              + (SELECT count(*) FROM public.database_connection_logs)
              + (SELECT count(*) FROM pg_temp.databases))::int AS n`
          assert.strictEqual(hijacked[0]!.n, 0)
        })
        yield* asApp(attack)
        const metric = yield* sql<{ age: number }>`
          SELECT extract(epoch FROM pg_catalog.now() - time)::float8 AS age FROM platform.database_metrics
          WHERE project_id = 'shadow-proj'`
        assert.strictEqual(metric.length, 1)
        assert.isBelow(Math.abs(metric[0]!.age), 60)
        assert.strictEqual(
          yield* count(`SELECT count(*) AS n FROM platform.database_connection_logs WHERE project_id = 'shadow-proj'`),
          2
        )
        // Validation still holds with the attacker's always-true public.is_valid_project_id in the path.
        const rejected = yield* failureOf(
          asApp(
            Effect.andThen(
              sql`SET LOCAL search_path = public, platform, pg_catalog`,
              sql`SELECT platform.record_database_metric('NOT A PROJECT', 'postgres', 'm', 1)`
            )
          )
        )
        assert.strictEqual(rejected.code, "22023")
      })
    )
  })

  describe("SQL injection through the helpers", () => {
    // Invalid as a project id, engine, metric name, event type and health status alike.
    const hostile = [
      "acme'; DROP TABLE platform.projects; --",
      "x$$; DROP TABLE platform.projects; $$",
      "acme/* comment */",
      "acme -- comment",
      'acme"; DELETE FROM platform.databases; --',
      "'); INSERT INTO platform.projects VALUES ('pwned', 'FREE'); --",
      "$tag$ ; $tag$",
      "acme\\'",
      "acme\n"
    ]
    // Near misses of the project id pattern.
    const badProjectIds = ["ａｃｍｅ", "ACME", "-acme", "acme-", "_acme", "", `a${"b".repeat(63)}`]
    const payloads = [...hostile, ...badProjectIds]

    it.effect("rejects hostile project ids, engines and metric names with a validation error and no side effect", () =>
      Effect.gen(function* () {
        const sql = yield* sqlClient
        const before = yield* count(`SELECT count(*) AS n FROM platform.projects`)
        for (const p of payloads) {
          const attempts = [
            sql`SELECT platform.record_database_metric(${p}, 'postgres', 'm', 1)`,
            sql`SELECT platform.record_database_metrics(${JSON.stringify([
              { project_id: p, database_type: "redis", metric_name: "m", value: 1 }
            ])}::jsonb)`,
            sql`SELECT platform.log_database_event(${p}, 'postgres', 'note')`,
            sql`SELECT platform.update_database_health(${p}, 'postgres', 'healthy')`,
            sql`SELECT * FROM platform.get_database_stats(${p})`,
            ...(hostile.includes(p)
              ? [
                  sql`SELECT platform.record_database_metric('inject-proj', ${p}, 'm', 1)`,
                  sql`SELECT platform.record_database_metric('inject-proj', 'postgres', ${p}, 1)`,
                  sql`SELECT platform.log_database_event('inject-proj', 'postgres', ${p})`,
                  sql`SELECT platform.update_database_health('inject-proj', 'postgres', ${p})`
                ]
              : [])
          ]
          for (const attempt of attempts) {
            const failure = yield* failureOf(asApp(attempt))
            assert.strictEqual(failure.code, "22023", `${JSON.stringify(p)}: ${failure.message}`)
          }
        }
        // NUL never reaches a helper: PostgreSQL text cannot hold it.
        const nul = yield* failureOf(
          asApp(sql`SELECT platform.record_database_metric(${"acme\u0000x"}, 'postgres', 'm', 1)`)
        )
        assert.isDefined(nul.code)
        assert.strictEqual(yield* count(`SELECT count(*) AS n FROM platform.projects`), before)
        assert.strictEqual(yield* count(`SELECT count(*) AS n FROM platform.projects WHERE id = 'pwned'`), 0)
        assert.strictEqual(
          yield* count(`SELECT count(*) AS n FROM platform.database_metrics WHERE project_id = 'inject-proj'`),
          0
        )
      })
    )

    it.effect("stores hostile free text (messages, metadata, labels) inert and unchanged", () =>
      Effect.gen(function* () {
        const sql = yield* sqlClient
        for (const [i, p] of payloads.entries()) {
          yield* asApp(
            Effect.all([
              sql`SELECT platform.log_database_event('inert-proj', 'redis', 'note', ${p},
                ${JSON.stringify({ value: p, index: i })}::jsonb)`,
              sql`SELECT platform.record_database_metric('inert-proj', 'redis', 'payload', ${i}::float8,
                ${JSON.stringify({ value: p })}::jsonb)`
            ])
          )
        }
        const events = yield* sql<{ message: string; value: string }>`
          SELECT message, metadata->>'value' AS value FROM platform.database_connection_logs
          WHERE project_id = 'inert-proj' ORDER BY (metadata->>'index')::int`
        assert.deepStrictEqual(
          events.map((e) => e.message),
          payloads
        )
        assert.deepStrictEqual(
          events.map((e) => e.value),
          payloads
        )
        const labels = yield* sql<{ label: string }>`
          SELECT m.labels->>'value' AS label FROM platform.database_metrics m
          WHERE m.project_id = 'inert-proj' ORDER BY m.value`
        assert.deepStrictEqual(
          labels.map((l) => l.label),
          payloads
        )
        assert.isTrue((yield* sql<{ ok: boolean }>`SELECT to_regclass('platform.projects') IS NOT NULL AS ok`)[0]!.ok)
      })
    )
  })

  describe("connection strings at rest", () => {
    it.effect("the application role reads only ciphertext, which decrypts with the key and the row's AAD", () =>
      Effect.gen(function* () {
        const sql = yield* sqlClient
        yield* seedProject("secret-proj")
        const plaintext = "postgres://alice:s3cret-pw@db.internal:5432/acme?sslmode=require"
        const key = randomBytes(32)
        const nonce = randomBytes(12)
        const aad = Buffer.from("secret-proj/postgres")
        const cipher = createCipheriv("aes-256-gcm", key, nonce)
        cipher.setAAD(aad)
        const ciphertext = Buffer.concat([cipher.update(plaintext, "utf8"), cipher.final(), cipher.getAuthTag()])
        yield* asApp(
          sql`INSERT INTO platform.databases (project_id, database_type, connection_ciphertext, connection_nonce,
                connection_key_id, host, port, database_name)
              VALUES ('secret-proj', 'postgres', decode(${ciphertext.toString("hex")}, 'hex'),
                decode(${nonce.toString("hex")}, 'hex'), 'tenants-2026-01', 'db.internal', 5432, 'acme')`
        )

        const rows = yield* asApp(
          sql<{ row: string; ciphertext: string; nonce: string }>`
            SELECT row_to_json(d)::text AS row, encode(d.connection_ciphertext, 'hex') AS ciphertext,
                   encode(d.connection_nonce, 'hex') AS nonce
            FROM platform.databases d WHERE project_id = 'secret-proj'`
        )
        assert.strictEqual(rows.length, 1)
        for (const fragment of ["s3cret-pw", "alice", "postgres://"]) assert.notInclude(rows[0]!.row, fragment)
        const stored = Buffer.from(rows[0]!.ciphertext, "hex")
        assert.isFalse(stored.includes(Buffer.from("s3cret-pw")))

        const decrypt = (withAad: Buffer) => {
          const decipher = createDecipheriv("aes-256-gcm", key, Buffer.from(rows[0]!.nonce, "hex"))
          decipher.setAAD(withAad)
          decipher.setAuthTag(stored.subarray(stored.length - 16))
          return Buffer.concat([decipher.update(stored.subarray(0, stored.length - 16)), decipher.final()]).toString()
        }
        assert.strictEqual(decrypt(aad), plaintext)
        // Bound to its row: moved to another project's row, the ciphertext does not decrypt.
        assert.throws(() => decrypt(Buffer.from("other-proj/postgres")))

        const columns = yield* sql<{ column_name: string; data_type: string }>`
          SELECT column_name, data_type FROM information_schema.columns
          WHERE table_schema = 'platform' AND table_name = 'databases' ORDER BY ordinal_position`
        assert.deepStrictEqual(
          columns.filter((c) => c.column_name.startsWith("connection_")).map((c) => [c.column_name, c.data_type]),
          [
            ["connection_ciphertext", "bytea"],
            ["connection_nonce", "bytea"],
            ["connection_key_id", "text"]
          ]
        )
      })
    )

    it.effect("refuses a plaintext URL as secret_ref, both secret sources at once, and a wrong nonce size", () =>
      Effect.gen(function* () {
        const sql = yield* sqlClient
        yield* seedProject("secret-checks")
        const attempts: ReadonlyArray<[string, string]> = [
          [
            `INSERT INTO platform.databases (project_id, database_type, secret_ref)
             VALUES ('secret-checks', 'redis', 'redis://:hunter2@cache:6379/0')`,
            "databases_secret_ref_not_a_url"
          ],
          [
            `INSERT INTO platform.databases (project_id, database_type, secret_ref)
             VALUES ('secret-checks', 'redis', 'host=db password=hunter2')`,
            "databases_secret_ref_not_a_url"
          ],
          [
            `INSERT INTO platform.databases (project_id, database_type, connection_ciphertext, connection_nonce,
               connection_key_id, secret_ref)
             VALUES ('secret-checks', 'redis', decode(repeat('ab', 32), 'hex'), decode(repeat('cd', 12), 'hex'), 'k1',
               'vault://kv/x')`,
            "databases_one_secret_source"
          ],
          [
            `INSERT INTO platform.databases (project_id, database_type) VALUES ('secret-checks', 'redis')`,
            "databases_one_secret_source"
          ],
          [
            `INSERT INTO platform.databases (project_id, database_type, connection_ciphertext, connection_nonce,
               connection_key_id)
             VALUES ('secret-checks', 'redis', decode(repeat('ab', 32), 'hex'), decode(repeat('cd', 8), 'hex'), 'k1')`,
            "databases_nonce_96_bits"
          ]
        ]
        for (const [query, constraint] of attempts) {
          const failure = yield* failureOf(asApp(sql.unsafe(query)))
          assert.strictEqual(failure.code, "23514", query)
          assert.include(failure.message, constraint)
        }
        yield* asApp(
          sql`INSERT INTO platform.databases (project_id, database_type, secret_ref)
              VALUES ('secret-checks', 'redis', 'vault://kv/tenants/secret-checks/redis')`
        )
        const refs = yield* sql<{ secret_ref: string }>`
          SELECT secret_ref FROM platform.databases WHERE project_id = 'secret-checks'`
        assert.match(refs[0]!.secret_ref, secretRefPattern)
      })
    )
  })
})
