// PgMigrations against a real PostgreSQL: empty database, re-runs, psql, checksums, concurrency, failures.
import { createHash } from "node:crypto"
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import * as path from "node:path"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as SqlClient from "effect/sql/SqlClient"
import * as PgMigrations from "../src/PgMigrations.ts"
import { clientLayer, freshDatabase, migrationsDirectory, psqlFile } from "./_pg.ts"

// A scratch migrations directory, removed when the test's scope closes.
const scratchDirectory = (files: Record<string, string>) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const dir = mkdtempSync(path.join(tmpdir(), "tenantpool-migrations-"))
      for (const [name, text] of Object.entries(files)) writeFileSync(path.join(dir, name), text)
      return dir
    }),
    (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
  )

const historyOf = (table = "tenantpool_migrations") =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql.unsafe<{ id: number; name: string; checksum: string; statements: number; duration_ms: number }>(
      `SELECT id::int AS id, name, checksum, statements, duration_ms FROM public.${table} ORDER BY id`
    )
  )

const tableExists = (name: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.map(
      sql<{ found: boolean }>`SELECT pg_catalog.to_regclass(${name}) IS NOT NULL AS found`,
      (rows) => rows[0]!.found
    )
  )

// Everything a migration can change in `platform` (and the roles' grants), as one comparable text.
const platformFingerprint = Effect.flatMap(SqlClient.SqlClient, (sql) =>
  Effect.map(
    sql<{ fingerprint: string }>`
      SELECT string_agg(item, E'\n' ORDER BY item) AS fingerprint FROM (
        SELECT 'rel ' || c.relname || ' ' || c.relkind::text || ' ' || pg_get_userbyid(c.relowner) || ' ' ||
               coalesce(c.relacl::text, '') AS item
        FROM pg_class c WHERE c.relnamespace = 'platform'::regnamespace
        UNION ALL
        SELECT 'col ' || a.attrelid::regclass || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
        FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
        WHERE c.relnamespace = 'platform'::regnamespace AND a.attnum > 0 AND NOT a.attisdropped
        UNION ALL
        SELECT 'con ' || conrelid::regclass || ' ' || conname || ' ' || pg_get_constraintdef(oid)
        FROM pg_constraint WHERE connamespace = 'platform'::regnamespace
        UNION ALL
        SELECT 'fn ' || p.oid::regprocedure || ' ' || md5(pg_get_functiondef(p.oid)) || ' ' ||
               coalesce(p.proacl::text, '') || ' ' || pg_get_userbyid(p.proowner)
        FROM pg_proc p WHERE p.pronamespace = 'platform'::regnamespace
        UNION ALL
        SELECT 'trg ' || tgrelid::regclass || ' ' || tgname FROM pg_trigger
        WHERE NOT tgisinternal AND tgrelid IN (SELECT oid FROM pg_class WHERE relnamespace = 'platform'::regnamespace)
        UNION ALL
        SELECT 'view ' || md5(pg_get_viewdef('platform.database_health_overview'::regclass))
      ) items`,
    (rows) => rows[0]!.fingerprint
  )
)

// The file's SHA-256 without psql's lines (those that begin with a backslash: ON_ERROR_STOP, includes, the stamp).
const sha256File = (file: string): string =>
  createHash("sha256")
    .update(
      readFileSync(file, "utf8")
        .replace(/\r\n/g, "\n")
        .split("\n")
        .filter((line) => !line.startsWith("\\"))
        .join("\n")
    )
    .digest("hex")

describe("PgMigrations on a real PostgreSQL", () => {
  it.live(
    "migrates an empty database in order, records checksums, and a second run applies nothing",
    () =>
      Effect.gen(function* () {
        const db = yield* freshDatabase("mig_empty")
        yield* Effect.gen(function* () {
          const applied = yield* PgMigrations.run({ directory: migrationsDirectory })
          assert.deepStrictEqual(
            applied.map((a) => a.file),
            ["001_platform_schema.sql", "002_projects.sql", "003_add_multi_database_support.sql"]
          )
          for (const a of applied) assert.isAbove(a.statements, 0)

          const history = yield* historyOf()
          assert.deepStrictEqual(
            history.map((h) => [h.id, h.name, h.checksum]),
            applied.map((a) => [a.id, a.name, sha256File(path.join(migrationsDirectory, a.file))])
          )
          assert.isTrue(history.every((h) => h.duration_ms >= 0))
          for (const table of ["platform.projects", "platform.databases", "platform.database_metrics"]) {
            assert.isTrue(yield* tableExists(table), table)
          }
          assert.isTrue(yield* tableExists("platform.database_connection_logs"))
          assert.isTrue(yield* tableExists("platform.database_health_overview"))

          const before = yield* platformFingerprint
          assert.deepStrictEqual(yield* PgMigrations.run({ directory: migrationsDirectory }), [])
          assert.strictEqual((yield* historyOf()).length, 3)
          assert.strictEqual(yield* platformFingerprint, before)
        }).pipe(Effect.provide(clientLayer(db.url)))
      }),
    60_000
  )

  it.live(
    "psql runs every file (twice) and records them, so the migrator then applies nothing",
    () =>
      Effect.gen(function* () {
        const db = yield* freshDatabase("mig_psql")
        const files = readdirSync(migrationsDirectory)
          .filter((f) => f.endsWith(".sql"))
          .sort()
        for (const file of files)
          yield* psqlFile(db.url, path.join(migrationsDirectory, file), { singleTransaction: true })
        // Without -1 as well: each statement on its own, as `psql -f` in the spec runs them.
        for (const file of files) yield* psqlFile(db.url, path.join(migrationsDirectory, file))
        yield* Effect.gen(function* () {
          const afterPsql = yield* platformFingerprint
          assert.include(afterPsql, "fn platform.record_database_metric(")
          // Each file's stamp recorded it in the migrator's history, with the migrator's checksum.
          assert.deepStrictEqual(
            (yield* historyOf()).map((h) => [h.id, h.checksum]),
            files.map((file) => [Number(file.slice(0, 3)), sha256File(path.join(migrationsDirectory, file))])
          )
          assert.deepStrictEqual(yield* PgMigrations.run({ directory: migrationsDirectory }), [])
          assert.strictEqual(yield* platformFingerprint, afterPsql)
        }).pipe(Effect.provide(clientLayer(db.url)))
      }),
    60_000
  )

  it.live("refuses to run when an applied migration was edited, and applies nothing after it", () =>
    Effect.gen(function* () {
      const db = yield* freshDatabase("mig_checksum")
      const dir = yield* scratchDirectory({ "001_first.sql": "CREATE TABLE first_table (id int);\n" })
      yield* Effect.gen(function* () {
        assert.strictEqual((yield* PgMigrations.run({ directory: dir })).length, 1)
        writeFileSync(path.join(dir, "001_first.sql"), "CREATE TABLE first_table (id bigint);\n")
        writeFileSync(path.join(dir, "002_second.sql"), "CREATE TABLE second_table (id int);\n")
        const error = yield* Effect.flip(PgMigrations.run({ directory: dir }))
        assert.strictEqual(error._tag, "MigrationChecksumMismatch")
        if (error._tag !== "MigrationChecksumMismatch") return
        assert.strictEqual(error.file, "001_first.sql")
        assert.include(error.message, "001_first.sql was edited after it was applied")
        assert.isFalse(yield* tableExists("second_table"))
        assert.strictEqual((yield* historyOf()).length, 1)
        // Restoring the applied text lets the run continue.
        writeFileSync(path.join(dir, "001_first.sql"), "CREATE TABLE first_table (id int);\n")
        assert.deepStrictEqual(
          (yield* PgMigrations.run({ directory: dir })).map((a) => a.file),
          ["002_second.sql"]
        )
      }).pipe(Effect.provide(clientLayer(db.url)))
    })
  )

  it.live(
    "concurrent runners apply each migration exactly once",
    () =>
      Effect.gen(function* () {
        const db = yield* freshDatabase("mig_concurrent")
        // Not idempotent on purpose: a second application would fail (CREATE TABLE) or double-count (INSERT).
        const dir = yield* scratchDirectory({
          "001_counter.sql":
            "CREATE TABLE applications (file text NOT NULL);\nINSERT INTO applications VALUES ('001');",
          "002_slow.sql":
            "SELECT pg_sleep(0.3);\nCREATE TABLE slow (id int);\nINSERT INTO applications VALUES ('002');",
          "003_last.sql": "CREATE TABLE last (id int);\nINSERT INTO applications VALUES ('003');"
        })
        // Four runners, each with its own pool, so they really are separate sessions.
        const runners = Array.from({ length: 4 }, () =>
          PgMigrations.run({ directory: dir }).pipe(Effect.provide(clientLayer(db.url)))
        )
        const results = yield* Effect.all(runners, { concurrency: "unbounded" })
        const appliedIds = results.flatMap((applied) => applied.map((a) => a.id)).sort()
        assert.deepStrictEqual(appliedIds, [1, 2, 3])
        yield* Effect.gen(function* () {
          const sql = yield* SqlClient.SqlClient
          const rows = yield* sql<{ file: string }>`SELECT file FROM applications ORDER BY file`
          assert.deepStrictEqual(
            rows.map((r) => r.file),
            ["001", "002", "003"]
          )
          assert.strictEqual((yield* historyOf()).length, 3)
        }).pipe(Effect.provide(clientLayer(db.url)))
      }),
    60_000
  )

  it.live("a failing statement rolls its file back and names the file, line, statement and server message", () =>
    Effect.gen(function* () {
      const db = yield* freshDatabase("mig_failure")
      const dir = yield* scratchDirectory({
        "001_ok.sql": "CREATE TABLE ok_table (id int);",
        "002_broken.sql":
          "-- creates a table, then fails\nCREATE TABLE half_done (id int);\n\nINSERT INTO\n  no_such_table VALUES (1);\n"
      })
      yield* Effect.gen(function* () {
        const error = yield* Effect.flip(PgMigrations.run({ directory: dir }))
        assert.strictEqual(error._tag, "MigrationStatementError")
        if (error._tag !== "MigrationStatementError") return
        assert.strictEqual(error.file, "002_broken.sql")
        assert.strictEqual(error.line, 5)
        assert.strictEqual(error.statement, "INSERT INTO")
        assert.strictEqual(error.serverMessage, 'relation "no_such_table" does not exist')
        assert.strictEqual(error.code, "42P01")
        assert.include(error.message, "002_broken.sql failed at line 5")
        assert.notInclude(error.message, db.url)
        assert.notInclude(error.message, "127.0.0.1")
        assert.isTrue(yield* tableExists("ok_table"))
        assert.isFalse(yield* tableExists("half_done"))
        assert.deepStrictEqual(
          (yield* historyOf()).map((h) => h.name),
          ["ok"]
        )
      }).pipe(Effect.provide(clientLayer(db.url)))
    })
  )

  it.live(
    "applies a pending file numbered below the newest applied one, and keeps its history elsewhere on request",
    () =>
      Effect.gen(function* () {
        const db = yield* freshDatabase("mig_order")
        const dir = yield* scratchDirectory({
          "001_a.sql": "CREATE TABLE a (id int);",
          "003_c.sql": "CREATE TABLE c (id int);"
        })
        yield* Effect.gen(function* () {
          const options = { directory: dir, schema: "ops", table: "schema history" }
          assert.strictEqual((yield* PgMigrations.run(options)).length, 2)
          writeFileSync(path.join(dir, "002_b.sql"), "CREATE TABLE b (id int);")
          assert.deepStrictEqual(
            (yield* PgMigrations.run(options)).map((a) => a.file),
            ["002_b.sql"]
          )
          const sql = yield* SqlClient.SqlClient
          const rows = yield* sql<{ id: number }>`SELECT id::int AS id FROM ops."schema history" ORDER BY id`
          assert.deepStrictEqual(
            rows.map((r) => r.id),
            [1, 2, 3]
          )
          assert.isFalse(yield* tableExists("public.tenantpool_migrations"))
        }).pipe(Effect.provide(clientLayer(db.url)))
      })
  )
})

describe("PgMigrations.load", () => {
  const loadError = (files: Record<string, string>) =>
    Effect.gen(function* () {
      const dir = yield* scratchDirectory(files)
      const error = yield* Effect.flip(PgMigrations.load(dir))
      assert.strictEqual(error._tag, "MigrationLoadError")
      return error
    })

  it.effect("orders files by number and ignores files that are not .sql", () =>
    Effect.gen(function* () {
      const dir = yield* scratchDirectory({
        "010_ten.sql": "SELECT 10;",
        "2_two.sql": "SELECT 2; SELECT 'two;';",
        "README.md": "not a migration"
      })
      const migrations = yield* PgMigrations.load(dir)
      assert.deepStrictEqual(
        migrations.map((m) => [m.id, m.name, m.statements.length]),
        [
          [2, "two", 2],
          [10, "ten", 1]
        ]
      )
    })
  )

  it.effect("gives CRLF and LF copies of a file the same checksum", () =>
    Effect.gen(function* () {
      const lf = yield* PgMigrations.load(yield* scratchDirectory({ "001_x.sql": "SELECT 1;\nSELECT 2;\n" }))
      const crlf = yield* PgMigrations.load(yield* scratchDirectory({ "001_x.sql": "SELECT 1;\r\nSELECT 2;\r\n" }))
      assert.strictEqual(lf[0]!.checksum, crlf[0]!.checksum)
    })
  )

  it.effect("rejects transaction control, which would end the migrator's transaction", () =>
    Effect.gen(function* () {
      const error = yield* loadError({ "001_tx.sql": "BEGIN;\nCREATE TABLE t (id int);\nCOMMIT;\n" })
      assert.strictEqual(error.file, "001_tx.sql")
      assert.strictEqual(error.line, 1)
      assert.include(error.message, "transaction control (BEGIN) is not allowed")
    })
  )

  it.effect("rejects badly named .sql files, duplicate numbers, unterminated bodies and a missing directory", () =>
    Effect.gen(function* () {
      assert.include((yield* loadError({ "first.sql": "SELECT 1;" })).message, "not named NNN_name.sql")
      assert.include(
        (yield* loadError({ "001_a.sql": "SELECT 1;", "1_b.sql": "SELECT 2;" })).message,
        "has the same number as 001_a.sql"
      )
      const unterminated = yield* loadError({ "001_fn.sql": "SELECT 1;\nDO $$ BEGIN NULL; END;\n" })
      assert.strictEqual(unterminated.line, 2)
      assert.include(unterminated.message, "001_fn.sql:2: unterminated dollar-quoted string $$")
      const missing = yield* Effect.flip(PgMigrations.load(path.join(tmpdir(), "tenantpool-no-such-directory")))
      assert.include(missing.message, "no such file or directory")
    })
  )
})
