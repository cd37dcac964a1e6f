/**
 * The spec's usage, ported to tenantpool, for PostgreSQL: a runnable walk-through.
 *
 * 1. the platform schema (the spec's `psql … -f migrations/003_…`), migrated with `PgMigrations`;
 * 2. projects registered in `platform.projects`/`platform.databases` (connection strings encrypted at rest);
 * 3. the tenancy service reading that registry, the PostgreSQL engine providing the standard `SqlClient`, and the
 *    recorder writing events, health and metrics back to the platform schema;
 * 4. queries, helpers, a transaction and a stream as each project, isolation between projects, a timeout, health
 *    checks, pool statistics, connection metadata, the spec's events and Prometheus metrics, idle cleanup.
 *
 * Usage: npx node scratchpad/pg-quickstart.ts   (TENANTPOOL_PG_URL=postgres://superuser@host:port/postgres, or a private
 * server is started and removed)
 *
 * @since 0.1.0
 */
import * as PgClient from "@effect/sql-pg/PgClient"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as PrometheusMetrics from "effect/observability/PrometheusMetrics"
import * as Reactivity from "effect/reactivity/Reactivity"
import * as Redacted from "effect/Redacted"
import * as SqlClient from "effect/sql/SqlClient"
import * as Stream from "effect/Stream"
import { specName } from "@tenantpool/core/Events"
import * as Tenancy from "@tenantpool/core/Tenancy"
import * as Tier from "@tenantpool/core/Tier"
import * as PgEngine from "@tenantpool/pg/PgEngine"
import * as PgError from "@tenantpool/pg/PgError"
import * as PgMigrations from "@tenantpool/pg/PgMigrations"
import * as PlatformStore from "@tenantpool/pg/PlatformStore"
import * as Servers from "@tenantpool/testing/Servers"

const fromEnv = process.env.TENANTPOOL_PG_URL
const server = fromEnv === undefined || fromEnv === "" ? await Servers.startPrivateServer("postgres") : undefined
const serverUrl = server?.url ?? fromEnv!
const suffix = Math.random().toString(36).slice(2, 8)
const names = { platform: `qs_platform_${suffix}`, acme: `qs_acme_${suffix}`, globex: `qs_globex_${suffix}` }
const databaseUrl = (name: string) => {
  const url = new URL(serverUrl)
  url.pathname = `/${name}`
  return url.toString()
}
const migrations = new URL("../migrations", import.meta.url).pathname

/** Runs `effect` with a plain client on `url` (set-up and clean-up, outside tenantpool). */
const admin = <A, E>(url: string, effect: Effect.Effect<A, E, SqlClient.SqlClient>) =>
  Effect.provide(effect, PgClient.layer({ url: Redacted.make(url), maxConnections: 1 }))

const setup = admin(
  serverUrl,
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.forEach(Object.values(names), (name) => sql.unsafe(`create database ${name}`), { discard: true })
  )
).pipe(
  // 1. The platform schema.
  Effect.andThen(admin(databaseUrl(names.platform), PgMigrations.run({ directory: migrations })))
)

const teardown = admin(
  serverUrl,
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.forEach(Object.values(names), (name) => sql.unsafe(`drop database if exists ${name} with (force)`), {
      discard: true
    })
  )
).pipe(Effect.ignore)

// 3. The stack: registry from the platform schema, tiers, tenancy, the engine, the recorder.
const Live = Layer.mergeAll(PgEngine.layer(), PlatformStore.layerRecorder({ metricsInterval: "500 millis" })).pipe(
  Layer.provideMerge(Tenancy.layer({ healthCheckInterval: 0, breakers: { postgres: { attemptTimeout: "1 second" } } })),
  Layer.provideMerge(
    Layer.merge(
      Tier.layer(),
      PlatformStore.layer({
        url: Redacted.make(databaseUrl(names.platform)),
        keys: PlatformStore.generateKey("quickstart-2025"),
        flushInterval: "200 millis"
      })
    )
  )
)

const program = Effect.gen(function* () {
  const store = yield* PlatformStore.PlatformStore
  const tenancy = yield* Tenancy.Tenancy
  const engine = yield* PgEngine.PgEngine
  const sql = yield* SqlClient.SqlClient

  // The spec's `connectionManager.on('circuit-open', …)`: every event, under its spec name.
  yield* Effect.forkChild(
    Stream.runForEach(tenancy.events, (event) => Effect.log(`event ${specName(event)} ${JSON.stringify(event)}`)),
    { startImmediately: true }
  )

  // 2. Projects: the spec's `createXClient('my-project-id', { connectionString, tier })`.
  yield* store.registerProject({ id: "acme", tier: "PRO" })
  yield* store.putDatabase({ projectId: "acme", engine: "postgres", connectionString: databaseUrl(names.acme) })
  yield* store.registerProject({ id: "globex", tier: "FREE" })
  yield* store.putDatabase({ projectId: "globex", engine: "postgres", connectionString: databaseUrl(names.globex) })

  // 4. Queries as a project.
  const todos = Effect.gen(function* () {
    yield* sql`create table todos (id serial primary key, title text not null, done boolean not null default false)`
    yield* sql`insert into todos ${sql.insert([{ title: "migrate" }, { title: "ship" }, { title: "celebrate" }])}`
    yield* sql.withTransaction(
      Effect.andThen(
        sql`update todos set done = true where title = ${"migrate"}`,
        sql`insert into todos ${sql.insert({ title: "write the changelog" })}`
      )
    )
    const open = yield* sql<{ id: number; title: string }>`
      select id, title from todos where not done and id in ${sql.in([1, 2, 3, 4])} order by id`
    const streamed = yield* Stream.runCollect(sql<{ title: string }>`select title from todos order by id`.stream)
    const [db] = yield* sql<{ db: string }>`select current_database() as db`
    return { database: db!.db, open, all: Array.from(streamed, (r) => r.title) }
  })
  console.log("acme:", yield* todos.pipe(tenancy.withProject("acme")))
  console.log("globex:", yield* todos.pipe(tenancy.withProject("globex")))

  // A statement that outlives its 1 s attempt timeout: canceled on the server, reported as a timeout.
  const slow = yield* PgError.unwrapGuardErrors(sql`select pg_sleep(5)`).pipe(
    tenancy.withProject("globex"),
    Effect.flip
  )
  console.log("slow statement:", slow._tag, "-", slow.message)

  // The spec's healthCheck(), getPoolStats(), getAllConnectionMetadata(), checkHealth().
  console.log("acme healthy:", yield* engine.healthCheck.pipe(tenancy.withProject("acme")))
  console.log("acme pool:", yield* engine.poolStats.pipe(tenancy.withProject("acme")))
  console.log("check globex:", yield* tenancy.checkHealth("globex", "postgres"))
  for (const c of yield* tenancy.connections) {
    console.log(`  ${c.projectId}/${c.databaseType} ${c.tier}: ${c.queryCount} queries, ${c.errorCount} errors`)
  }

  // The spec's getMetrics(): Prometheus text.
  const metrics = yield* PrometheusMetrics.format()
  console.log(
    metrics
      .split("\n")
      .filter((line) => /^db_queries_total|^db_errors_total|^db_query_duration_seconds_count/.test(line))
      .join("\n")
  )

  // The spec's closeIdleConnections(), then the platform schema's view of it all.
  console.log("closed idle connections:", yield* tenancy.closeIdleConnections({ idleFor: 0 }))
  yield* store.flush
  console.log("recorder:", yield* store.stats)
  const logged = yield* admin(
    databaseUrl(names.platform),
    Effect.flatMap(
      SqlClient.SqlClient,
      (platform) => platform<{ project_id: string; event_type: string; n: number }>`
        select project_id, event_type, count(*)::int as n from platform.database_connection_logs
        group by project_id, event_type order by project_id, event_type`
    )
  )
  console.log("platform.database_connection_logs:", logged)
  const stored = yield* admin(
    databaseUrl(names.platform),
    Effect.flatMap(
      SqlClient.SqlClient,
      (platform) => platform`select project_id, database_type, host, database_name, connection_key_id,
                                    octet_length(connection_ciphertext) as ciphertext_bytes, health_status
                             from platform.databases order by project_id`
    )
  )
  console.log("platform.databases (no plain connection string in it):", stored)
})

try {
  await Effect.runPromise(
    Effect.scoped(Effect.andThen(setup, Effect.provide(program, Live))).pipe(
      Effect.ensuring(teardown),
      Effect.provide(Reactivity.layer)
    )
  )
} finally {
  await server?.close()
}
