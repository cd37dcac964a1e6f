/**
 * Bad input to the public functions of `@tenantpool/pg` (issue #14 item 7), against the
 * harness's PostgreSQL: fast-check properties over hostile arguments (`@tenantpool/testing/Hostile`). Each asserts
 * that the call ends in a success or a typed failure (`SqlError`, a guard verdict, `InvalidConfig`, the platform
 * store's errors) — never a defect, an interruption, a hang or a synchronous throw escaping the Effect —, that a
 * failed call created nothing on the server (relations in the project's database, rows of the platform schema), and
 * that no canary secret appears in the error's message, its JSON, its cause or the logs.
 *
 * Inventory: PgEngine `layer` (its options); the guarded `SqlClient` (`unsafe(statement, params)`, the `sql`
 * template's parameters); PgError `classify`, `isInfrastructure`, `sqlState`, `errorType`, `errorTypeOfSqlState`,
 * `guardError`, `toSqlError`; PlatformAdmin `registerProject`, `putDatabase`, `removeDatabase`, `removeProject`,
 * `generateKey`; PlatformStore `layer` (its options); PgMigrations `load`.
 *
 * Seeded: `TENANTPOOL_PROPERTY_SEED=<n>` replays another run; fast-check prints the seed of a failure.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as SqlClient from "effect/sql/SqlClient"
import * as fc from "fast-check"
import { InvalidConfig } from "@tenantpool/core/Errors"
import { MemoryRegistry } from "@tenantpool/core/Registry"
import * as Tenancy from "@tenantpool/core/Tenancy"
import * as Canary from "@tenantpool/testing/Canary"
import * as H from "@tenantpool/testing/Hostile"
import * as PgEngine from "../src/PgEngine.ts"
import * as PgError from "../src/PgError.ts"
import * as PgMigrations from "../src/PgMigrations.ts"
import * as PlatformAdmin from "../src/PlatformAdmin.ts"
import * as PlatformStore from "../src/PlatformStore.ts"
import { migrationsDirectory } from "./_pg.ts"
import * as Fx from "./fixtures/Engine.ts"
import * as Platform from "./fixtures/Platform.ts"

const canary = Canary.make()
const c = canary.secret

const tags = [
  "SqlError",
  "InvalidConfig",
  "InvalidProjectId",
  "InvalidConnectionString",
  "PlatformStoreError",
  "MigrationLoadError",
  ...H.guardTags
]

const expectation = (extra?: Partial<H.Expectation>): H.Expectation => ({
  tags,
  forms: canary.forms,
  logs: canary.logs,
  ...extra
})

const duration = fc.constantFrom<unknown>("1 second", 500, "5 seconds")

// What a failed call could have created in the project's database: its relations outside the system schemas.
const relations = (sql: SqlClient.SqlClient) =>
  sql<{ n: number }>`
    select count(*)::int as n from pg_class c join pg_namespace n on n.oid = c.relnamespace
    where n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg_toast%'`.pipe(
    Effect.map((rows) => rows[0]!.n),
    Effect.orDie
  )

describe("pg bad input: the engine", () => {
  it.live("PgEngine.layer: InvalidConfig naming the option, or an engine whose statements end typed", () =>
    Effect.gen(function* () {
      const url = yield* Fx.freshDatabase("badinput_layer")
      yield* H.check(
        [
          H.options(c, {
            multiplex: fc.boolean(),
            multiplexConcurrency: fc.integer({ min: 1, max: 4 }),
            slowStatement: duration,
            maxConnections: fc.integer({ min: 1, max: 4 }),
            serverShare: fc.constantFrom(0.5, 1),
            idleTimeout: duration,
            connectTimeout: duration,
            connectionTTL: duration,
            keepAlive: duration,
            applicationName: fc.constantFrom("tp-badinput"),
            tagTargets: fc.boolean(),
            prepare: fc.boolean(),
            startupParameters: fc.constant({ statement_timeout: "5000" }),
            targetCapacity: fc.integer({ min: 1, max: 50 }),
            idempotentReads: fc.boolean(),
            resizeInterval: duration,
            transformJson: fc.boolean()
          })
        ],
        (o) =>
          Effect.gen(function* () {
            const id = Fx.projectId("layer")
            const outcome = yield* H.run(
              () =>
                Effect.gen(function* () {
                  yield* (yield* MemoryRegistry).register({ id, tier: "FREE", postgres: url })
                  const sql = yield* SqlClient.SqlClient
                  const tenancy = yield* Tenancy.Tenancy
                  return yield* sql`select 1 as one`.pipe(tenancy.withProject(id))
                }).pipe(
                  Effect.provide(
                    PgEngine.layer(o.make() as any).pipe(
                      Layer.provideMerge(Tenancy.layerMemory({ healthCheckInterval: 0, shutdownTimeout: 0 }))
                    )
                  )
                ),
              { timeout: "15 seconds" }
            )
            H.expect(`PgEngine.layer(${o.label})`, outcome, expectation())
          }),
        25
      )
    }).pipe(Effect.scoped, Effect.provide(canary.captureLogs))
  )

  it.live("the guarded SqlClient: a success or a SqlError, and a failed statement creates nothing", () =>
    Effect.gen(function* () {
      const url = yield* Fx.freshDatabase("badinput_sql")
      const observer = yield* Fx.observer(url)
      const id = Fx.projectId("sql")
      yield* (yield* MemoryRegistry).register({ id, tier: "PRO", postgres: url })
      const sql = yield* SqlClient.SqlClient
      const tenancy = yield* Tenancy.Tenancy
      const statement = fc.constantFrom(
        "select $1::text as v",
        "select 1",
        `create table t_${c.slice(7, 15)} (x int); select $1::int`,
        "insert into nowhere values ($1)"
      )
      yield* H.check(
        [H.orValid(c, statement, 2), H.orValid(c, fc.array(fc.oneof(fc.string(), fc.integer()), { maxLength: 2 }))],
        (s, p) =>
          Effect.gen(function* () {
            const before = yield* relations(observer)
            const outcome = yield* H.run(() => sql.unsafe(s.make() as any, p.make() as any), {
              timeout: "10 seconds"
            }).pipe(tenancy.withProject(id), Effect.orDie)
            H.expect(`sql.unsafe(${s.label}, ${p.label})`, outcome, expectation())
            if (outcome._tag !== "Success") {
              assert.strictEqual(yield* relations(observer), before, "a failed statement created nothing")
            }
            // Values that throw when inspected (throwing proxies) are left out here: effect/sql's template tag reads
            // its arguments synchronously, at the caller's call site, before any Effect exists (not this library's).
            if (!p.readable) return
            const template = yield* H.run(() => sql`select ${p.make() as any} as v`).pipe(
              tenancy.withProject(id),
              Effect.orDie
            )
            H.expect(`sql\`select \${${p.label}}\``, template, expectation())
          }),
        60
      )
    }).pipe(
      Effect.scoped,
      Effect.provide(Layer.mergeAll(Fx.layer({ engine: { idleTimeout: "30 seconds" } }), canary.captureLogs))
    )
  )
})

describe("pg bad input: the platform store", () => {
  it.live("PlatformAdmin: a typed error naming the input, and a failed write stores nothing", () =>
    Effect.gen(function* () {
      const db = yield* Platform.platformDatabase("badinput_admin")
      const observer = yield* Fx.observer(db.url)
      const rows = observer<{ n: number }>`
        select (select count(*) from platform.projects)::int + (select count(*) from platform.databases)::int as n`.pipe(
        Effect.map((r) => r[0]!.n),
        Effect.orDie
      )
      const store = yield* Layer.build(PlatformStore.layer({ url: Redacted.make(db.appUrl), keys: Platform.keys() }))
      const admin = Context.get(store, PlatformAdmin.PlatformAdmin)
      const id = fc.constant("badinput-admin")
      const engine = fc.constantFrom("postgres", "redis", "mongodb")
      const calls: ReadonlyArray<readonly [string, fc.Arbitrary<H.Sample>, (s: unknown) => unknown]> = [
        [
          "registerProject",
          H.options(c, { id, tier: fc.constantFrom("FREE", "PRO") }),
          (input) => admin.registerProject(input as any)
        ],
        [
          "putDatabase",
          H.options(c, {
            projectId: id,
            engine,
            connectionString: fc.constantFrom(Fx.serverUrl(), Redacted.make(`redis://:${c}@localhost:6379/0`)),
            status: fc.constantFrom("active", "suspended")
          }),
          (input) => admin.putDatabase(input as any)
        ],
        ["removeProject", H.orValid(c, id), (input) => admin.removeProject(input as any)],
        [
          "removeDatabase",
          fc
            .tuple(H.orValid(c, id), H.orValid(c, engine))
            .map(([a, b]) => H.sample(`${a.label}, ${b.label}`, () => [a.make(), b.make()], a.readable && b.readable)),
          (input) => admin.removeDatabase(...(input as [any, any]))
        ]
      ]
      for (const [name, arbitrary, call] of calls) {
        yield* H.check(
          [arbitrary],
          (s) =>
            Effect.gen(function* () {
              const before = yield* rows
              const outcome = yield* H.run(() => call(s.make()), { timeout: "10 seconds" })
              H.expect(`PlatformAdmin.${name}(${s.label})`, outcome, expectation())
              if (outcome._tag !== "Success") assert.strictEqual(yield* rows, before, `${name}: nothing stored`)
            }),
          40
        )
      }
      yield* H.check(
        [H.anything(c)],
        (s) =>
          Effect.gen(function* () {
            // A synchronous constructor: it throws InvalidConfig by design, nothing else.
            let outcome: H.Outcome
            try {
              outcome = { _tag: "Success", value: PlatformAdmin.generateKey(s.make() as any) }
            } catch (e) {
              outcome =
                e instanceof InvalidConfig
                  ? { _tag: "Failure", error: e, pretty: String(e) }
                  : { _tag: "Threw", thrown: e }
            }
            H.expect(`PlatformAdmin.generateKey(${s.label})`, outcome, expectation())
          }),
        100
      )
    }).pipe(Effect.scoped, Effect.provide(canary.captureLogs))
  )

  it.live("PlatformStore.layer: InvalidConfig or SqlError naming no secret, never a defect", () =>
    Effect.gen(function* () {
      const db = yield* Platform.platformDatabase("badinput_store")
      yield* H.check(
        [
          H.options(c, {
            url: fc.constantFrom(
              Redacted.make(db.appUrl),
              Redacted.make(`postgres://u:${encodeURIComponent(c)}@127.0.0.1:1/db`)
            ),
            keys: fc.constant(Platform.keys()),
            tlsPolicy: fc.constantFrom("any", "verify-remote"),
            lookupTimeout: duration,
            pollInterval: duration,
            cache: fc.record({ ttl: duration, capacity: fc.integer({ min: 1, max: 10 }) }, { requiredKeys: [] })
          })
        ],
        (o) =>
          Effect.gen(function* () {
            const outcome = yield* H.run(() => PlatformStore.layer(o.make() as any), { timeout: "15 seconds" })
            H.expect(`PlatformStore.layer(${o.label})`, outcome, expectation())
          }),
        40
      )
    }).pipe(Effect.scoped, Effect.provide(canary.captureLogs))
  )

  it.live("PgMigrations.load: a MigrationLoadError or migrations, never a defect", () =>
    H.check(
      [H.orValid(c, fc.constantFrom("/nonexistent", migrationsDirectory))],
      (o) =>
        Effect.gen(function* () {
          const outcome = yield* H.run(() => PgMigrations.load(o.make() as any))
          // The directory is configuration, not a secret: an error names the path it could not read.
          H.expect(`PgMigrations.load(${o.label})`, outcome, expectation({ echoes: ["MigrationLoadError"] }))
        }),
      60
    ).pipe(Effect.provide(canary.captureLogs))
  )
})

describe("pg bad input: pure functions", () => {
  it.live("PgError's classifiers never throw", () =>
    H.check(
      [H.anything(c)],
      (s) =>
        Effect.sync(() => {
          for (const [name, f] of [
            ["classify", () => PgError.classify(s.make())],
            ["isInfrastructure", () => PgError.isInfrastructure(s.make())],
            ["sqlState", () => PgError.sqlState(s.make() as any)],
            ["errorType", () => PgError.errorType(s.make() as any)],
            ["errorTypeOfSqlState", () => PgError.errorTypeOfSqlState(s.make() as any)],
            ["guardError", () => PgError.guardError(s.make() as any)]
          ] as const) {
            let outcome: H.Outcome
            try {
              outcome = { _tag: "Success", value: f() }
            } catch (thrown) {
              outcome = { _tag: "Threw", thrown }
            }
            H.expect(`PgError.${name}(${s.label})`, outcome, expectation())
          }
        }),
      300
    )
  )
})
