// The spec's command, as written: `psql $DATABASE_URL -f migrations/003_add_multi_database_support.sql`, from the
// repository root, with no -v ON_ERROR_STOP=1 and no -1, on a fresh database; and psql and the migrator agreeing on
// what is applied.
import { execFile } from "node:child_process"
import * as path from "node:path"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as SqlClient from "effect/sql/SqlClient"
import * as PgMigrations from "../src/PgMigrations.ts"
import { clientLayer, findPsql, freshDatabase, migrationsDirectory } from "./_pg.ts"

const root = path.dirname(migrationsDirectory)
const spec003 = "migrations/003_add_multi_database_support.sql"

interface PsqlRun {
  readonly code: number
  readonly output: string
  readonly errors: ReadonlyArray<string>
}

// `psql <url> -f <file>` in the repository root, as a user types it (no psqlrc, so a developer's own cannot change
// the outcome). `role` runs the session as that role (PGOPTIONS), without needing a password for it.
const psql = (url: string, file: string, options?: { readonly role?: string }) =>
  Effect.callback<PsqlRun>((resume) => {
    const env: NodeJS.ProcessEnv = { ...process.env, PSQLRC: "/dev/null", PGCONNECT_TIMEOUT: "10" }
    if (options?.role !== undefined) env.PGOPTIONS = `-c role=${options.role}`
    execFile(findPsql(), [url, "-f", file], { cwd: root, env }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === "number" ? error.code : 1
      const output = stdout + stderr
      resume(Effect.succeed({ code, output, errors: output.split("\n").filter((line) => / ERROR: /.test(line)) }))
    })
  })

const history = Effect.flatMap(
  SqlClient.SqlClient,
  (sql) =>
    sql<{ id: number; name: string; checksum: string; statements: number; applied_by: string }>`
    SELECT id::int AS id, name, checksum, statements, applied_by FROM public.tenantpool_migrations ORDER BY id`
)

// What the spec's "Database Schema" section lists, and whether each exists.
const specObjects = Effect.flatMap(
  SqlClient.SqlClient,
  (sql) =>
    sql<{ name: string; found: boolean }>`
    SELECT name, CASE WHEN name LIKE '%()' THEN to_regproc(replace(name, '()', '')) IS NOT NULL
                      ELSE to_regclass(name) IS NOT NULL END AS found
    FROM unnest(ARRAY[
      'platform.databases', 'platform.database_metrics', 'platform.database_connection_logs',
      'platform.database_health_overview', 'platform.record_database_metric()', 'platform.log_database_event()',
      'platform.update_database_health()', 'platform.get_database_stats()', 'platform.cleanup_old_database_metrics()',
      'platform.cleanup_old_database_logs()'
    ]) AS name`
)

// The platform schema's objects with their definitions, owners and grants, as one comparable text.
const fingerprint = Effect.flatMap(SqlClient.SqlClient, (sql) =>
  Effect.map(
    sql<{ fingerprint: string }>`
      SELECT md5(string_agg(item, E'\n' ORDER BY item)) AS fingerprint FROM (
        SELECT c.relname || c.relkind::text || pg_get_userbyid(c.relowner) || coalesce(c.relacl::text, '') AS item
        FROM pg_class c WHERE c.relnamespace = 'platform'::regnamespace
        UNION ALL
        SELECT p.oid::regprocedure::text || md5(pg_get_functiondef(p.oid)) || coalesce(p.proacl::text, '')
        FROM pg_proc p WHERE p.pronamespace = 'platform'::regnamespace
        UNION ALL
        SELECT conname || pg_get_constraintdef(oid) FROM pg_constraint WHERE connamespace = 'platform'::regnamespace
      ) items`,
    (rows) => rows[0]!.fingerprint
  )
)

describe("psql -f migrations/003_add_multi_database_support.sql", () => {
  it.live(
    "on an empty database creates everything the spec lists and records 001–003 as the migrator would",
    () =>
      Effect.gen(function* () {
        const db = yield* freshDatabase("psql_spec")
        const first = yield* psql(db.url, spec003)
        assert.deepStrictEqual(first.errors, [], first.output)
        assert.strictEqual(first.code, 0, first.output)
        yield* Effect.gen(function* () {
          const objects = yield* specObjects
          assert.deepStrictEqual(
            objects.filter((o) => !o.found).map((o) => o.name),
            []
          )
          const migrations = yield* PgMigrations.load(migrationsDirectory)
          const recorded = yield* history
          assert.deepStrictEqual(
            recorded.map((h) => [h.id, h.name, h.checksum]),
            migrations.map((m) => [m.id, m.name, m.checksum])
          )
          assert.isTrue(recorded.every((h) => h.applied_by.endsWith(" (psql)")))
          // The migrator agrees: nothing is pending.
          assert.deepStrictEqual(yield* PgMigrations.run({ directory: migrationsDirectory }), [])

          // Idempotent: a second run succeeds and changes nothing, history included.
          const before = yield* fingerprint
          const second = yield* psql(db.url, spec003)
          assert.deepStrictEqual(second.errors, [], second.output)
          assert.strictEqual(second.code, 0, second.output)
          assert.strictEqual(yield* fingerprint, before)
          assert.deepStrictEqual(yield* history, recorded)
        }).pipe(Effect.provide(clientLayer(db.url)))
      }),
    60_000
  )

  it.live(
    "after the migrator, records nothing new and changes nothing",
    () =>
      Effect.gen(function* () {
        const db = yield* freshDatabase("psql_after")
        yield* Effect.gen(function* () {
          assert.strictEqual((yield* PgMigrations.run({ directory: migrationsDirectory })).length, 3)
          const before = yield* fingerprint
          const recorded = yield* history
          const result = yield* psql(db.url, spec003)
          assert.deepStrictEqual(result.errors, [], result.output)
          assert.strictEqual(result.code, 0, result.output)
          assert.strictEqual(yield* fingerprint, before)
          assert.deepStrictEqual(yield* history, recorded)
          assert.isTrue(recorded.every((h) => h.statements > 0 && !h.applied_by.endsWith("(psql)")))
        }).pipe(Effect.provide(clientLayer(db.url)))
      }),
    60_000
  )

  it.live(
    "stops at the first error with a non-zero exit",
    () =>
      Effect.gen(function* () {
        const db = yield* freshDatabase("psql_error")
        // A role that may neither create roles nor grant tenantpool_owner: 001 fails in its first blocks.
        const role = yield* db.loginRole("weak")
        const result = yield* psql(db.url, spec003, { role })
        assert.strictEqual(result.code, 3, result.output) // psql's exit code for an error with ON_ERROR_STOP
        assert.strictEqual(result.errors.length, 1, result.output)
        assert.include(result.errors[0]!, "001_platform_schema.sql")
        yield* Effect.gen(function* () {
          const sql = yield* SqlClient.SqlClient
          const [row] = yield* sql<{ schema: boolean; history: boolean }>`
            SELECT to_regnamespace('platform') IS NOT NULL AS schema,
                   to_regclass('public.tenantpool_migrations') IS NOT NULL AS history`
          assert.deepStrictEqual(row, { schema: false, history: false })
        }).pipe(Effect.provide(clientLayer(db.url)))
      }),
    60_000
  )

  it.live(
    "stops when the database recorded the file with other contents, as the migrator does",
    () =>
      Effect.gen(function* () {
        const db = yield* freshDatabase("psql_checksum")
        yield* Effect.gen(function* () {
          assert.strictEqual((yield* PgMigrations.run({ directory: migrationsDirectory })).length, 3)
          const sql = yield* SqlClient.SqlClient
          yield* sql`UPDATE public.tenantpool_migrations SET checksum = repeat('0', 64) WHERE id = 3`
          const result = yield* psql(db.url, spec003)
          assert.strictEqual(result.code, 3, result.output)
          assert.strictEqual(result.errors.length, 1, result.output)
          assert.include(
            result.errors[0]!,
            "migration 003_add_multi_database_support.sql was applied with other contents"
          )
          const error = yield* Effect.flip(PgMigrations.run({ directory: migrationsDirectory }))
          assert.strictEqual(error._tag, "MigrationChecksumMismatch")
        }).pipe(Effect.provide(clientLayer(db.url)))
      }),
    60_000
  )
})
