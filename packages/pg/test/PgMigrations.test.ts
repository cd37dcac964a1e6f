// PgMigrations.load and the psql side of the migrations, without a server: the stamps that let psql record what it
// applies, the meta-commands the migrator follows or refuses, and the checksums of the repository's migrations.
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import * as path from "node:path"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as PgMigrations from "../src/PgMigrations.ts"
import { migrationsDirectory } from "./_pg.ts"

const scratchDirectory = (files: Record<string, string>) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const dir = mkdtempSync(path.join(tmpdir(), "tenantpool-migrations-"))
      for (const [name, text] of Object.entries(files)) writeFileSync(path.join(dir, name), text)
      return dir
    }),
    (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
  )

const loadError = (files: Record<string, string>) =>
  Effect.gen(function* () {
    const error = yield* Effect.flip(PgMigrations.load(yield* scratchDirectory(files)))
    assert.strictEqual(error._tag, "MigrationLoadError")
    return error
  })

const stamped = (file: string, body: string): string =>
  `\\set ON_ERROR_STOP on\n${body}\\set tenantpool_migration '${file} ${PgMigrations.checksum(body)}'\n` +
  "\\ir psql/record.sql\n"

describe("the repository's migrations", () => {
  it.effect("keep the checksums they were first applied with (psql's lines are not part of them)", () =>
    Effect.gen(function* () {
      const migrations = yield* PgMigrations.load(migrationsDirectory)
      // Recorded in every history before the files gained ON_ERROR_STOP, their includes and their stamps: a change
      // here stops every database that applied them with MigrationChecksumMismatch.
      assert.deepStrictEqual(
        migrations.map((m) => [m.file, m.checksum]),
        [
          ["001_platform_schema.sql", "e7c6567041bd97aa8ab25540245cbe14788a926c6acc2fba93893dd7e1f4895c"],
          ["002_projects.sql", "5d05d13c08e97f8aeb3f7e2546cb5548d438770a3b91902fddd9de3d129e5bb3"],
          ["003_add_multi_database_support.sql", "5f49b44d1209c3d768d563beac6147c9a0b1d4ac5a9bae7a15e9c66eeffe7384"]
        ]
      )
    })
  )

  it.effect(
    "each stops psql at the first error and ends with its stamp, so psql records it as the migrator would",
    () =>
      Effect.gen(function* () {
        const migrations = yield* PgMigrations.load(migrationsDirectory)
        assert.isAtLeast(migrations.length, 3)
        for (const migration of migrations) {
          const lines = readFileSync(path.join(migrationsDirectory, migration.file), "utf8").trimEnd().split("\n")
          assert.strictEqual(lines[0], "\\set ON_ERROR_STOP on", migration.file)
          assert.deepStrictEqual(
            lines.slice(-2),
            [`\\set tenantpool_migration '${migration.file} ${migration.checksum}'`, "\\ir psql/record.sql"],
            `${migration.file}: run npm run migrations:stamp`
          )
        }
        assert.include(readdirSync(path.join(migrationsDirectory, "psql")), "record.sql")
      })
  )
})

describe("PgMigrations.load with psql meta-commands", () => {
  it.effect(
    "follows ON_ERROR_STOP, an include of an earlier migration and the stamp, and leaves them out of the checksum",
    () =>
      Effect.gen(function* () {
        const body = "CREATE TABLE b (id int);\n"
        const dir = yield* scratchDirectory({
          "001_a.sql": stamped("001_a.sql", "CREATE TABLE a (id int);\n"),
          "002_b.sql": stamped("002_b.sql", `\\ir 001_a.sql\n${body}`)
        })
        const migrations = yield* PgMigrations.load(dir)
        assert.deepStrictEqual(
          migrations.map((m) => [m.file, m.statements.map((s) => s.text)]),
          [
            ["001_a.sql", ["CREATE TABLE a (id int)"]],
            ["002_b.sql", ["CREATE TABLE b (id int)"]]
          ]
        )
        assert.strictEqual(migrations[1]!.checksum, PgMigrations.checksum(body))
        assert.strictEqual(
          migrations[1]!.checksum,
          PgMigrations.checksum(readFileSync(path.join(dir, "002_b.sql"), "utf8"))
        )
      })
  )

  it.effect("refuses a stale stamp, saying how to fix it", () =>
    Effect.gen(function* () {
      const text = stamped("001_a.sql", "CREATE TABLE a (id int);\n").replace("(id int)", "(id bigint)")
      const error = yield* loadError({ "001_a.sql": text })
      assert.strictEqual(error.line, 3)
      assert.include(error.message, "001_a.sql:3: its stamp says sha256")
      assert.include(error.message, "npm run migrations:stamp")
    })
  )

  it.effect("refuses a stamp of another file, the record script without a stamp, and includes it cannot follow", () =>
    Effect.gen(function* () {
      const other = yield* loadError({ "001_a.sql": stamped("001_b.sql", "SELECT 1;\n") })
      assert.include(other.message, "its stamp names 001_b.sql, not this file")
      const unstamped = yield* loadError({ "001_a.sql": "SELECT 1;\n\\ir psql/record.sql\n" })
      assert.include(unstamped.message, "needs the file's stamp before it")
      const later = yield* loadError({ "001_a.sql": "\\ir 002_b.sql\nSELECT 1;\n", "002_b.sql": "SELECT 2;\n" })
      assert.strictEqual(later.file, "001_a.sql")
      assert.include(later.message, "psql meta-command \\ir here is not one the migrator can follow")
      assert.include((yield* loadError({ "002_b.sql": "\\ir 001_a.sql\nSELECT 2;\n" })).message, "\\ir here")
      assert.include((yield* loadError({ "001_a.sql": "\\ir setup.sql\nSELECT 1;\n" })).message, "\\ir here")
      const unknown = yield* loadError({ "001_a.sql": "SELECT 1;\n\\connect other\n" })
      assert.strictEqual(unknown.line, 2)
      assert.include(unknown.message, "psql meta-command \\connect here is not one the migrator can follow")
      const inside = yield* loadError({ "001_a.sql": "SELECT 1\n\\gset\n;\n" })
      assert.include(inside.message, "inside a statement")
    })
  )
})
