/**
 * Applies the plain-SQL migrations of a directory (`NNN_name.sql`, the same files psql runs) to PostgreSQL.
 *
 * Each pending file runs in its own transaction, statement by statement (`@effect/sql-pg` accepts one statement
 * per query, so files are split by a lexer that knows quotes, dollar quotes and comments), and is recorded with
 * its SHA-256 in a history table in the same transaction. A file that was edited after it was applied stops the
 * run with `MigrationChecksumMismatch`. Concurrent runners on the same database serialize on a transaction-level
 * advisory lock and re-check the history under it, so no file is applied twice.
 *
 * Files may carry the psql meta-commands that make `psql -f file` safe and let psql keep the same history:
 * `\set ON_ERROR_STOP on`, `\ir` of an earlier migration (a prerequisite, so one file runs alone on an empty
 * database; the migrator has applied it already, in order), and a stamp followed by the recording script,
 * `\set tenantpool_migration '<file> <checksum>'` and `\ir psql/record.sql`, which inserts the row the migrator
 * would (in `public.tenantpool_migrations`). The checksum leaves out the lines that begin with a backslash, so a
 * stamp can name the checksum of its own file; `load` refuses a stamp that does not match.
 *
 * Why not `effect/sql/Migrator`: its loaders import `.js`/`.ts` modules only, it records ids and names but no
 * checksum, it runs all pending migrations in one transaction, and it skips any file whose id is lower than the
 * highest applied one. Files are read with `node:fs` rather than `effect/FileSystem`, so that running migrations
 * needs nothing but a `SqlClient` (no platform layer) and the package needs no `@effect/platform-node`.
 *
 * @since 0.1.0
 */
import { createHash } from "node:crypto"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import * as SqlClient from "effect/sql/SqlClient"
import type * as SqlError from "effect/sql/SqlError"
import { serverError } from "./internal/pgError.ts"
import { type MetaCommand, splitScript, type SqlStatement } from "./internal/sqlSplit.ts"

/**
 * Where the migrations are and where their history is kept.
 *
 * @category models
 * @since 0.1.0
 */
export interface Options {
  /** Directory holding `NNN_name.sql` files; relative paths resolve against the working directory. */
  readonly directory: string
  /** Schema of the history table; created when missing. Default `public`. */
  readonly schema?: string | undefined
  /** Name of the history table. Default `tenantpool_migrations`. */
  readonly table?: string | undefined
}

/**
 * A migration file, read and split.
 *
 * @category models
 * @since 0.1.0
 */
export interface Migration {
  readonly id: number
  readonly name: string
  readonly file: string
  /** `checksum` of the file's text. */
  readonly checksum: string
  readonly statements: ReadonlyArray<SqlStatement>
}

/**
 * A migration this run applied.
 *
 * @category models
 * @since 0.1.0
 */
export interface Applied {
  readonly id: number
  readonly name: string
  readonly file: string
  readonly checksum: string
  readonly statements: number
  readonly durationMs: number
}

/**
 * The migration directory or one of its files could not be read or is not a valid migration.
 *
 * @category errors
 * @since 0.1.0
 */
export class MigrationLoadError extends Schema.TaggedError<MigrationLoadError>()("MigrationLoadError", {
  directory: Schema.String,
  file: Schema.optional(Schema.String),
  line: Schema.optional(Schema.Number),
  reason: Schema.String
}) {
  override get message(): string {
    const where =
      this.file === undefined
        ? this.directory
        : `${path.join(this.directory, this.file)}${this.line === undefined ? "" : `:${this.line}`}`
    return `Cannot load migrations: ${where}: ${this.reason}`
  }
}

/**
 * A migration that was already applied has different contents now.
 *
 * @category errors
 * @since 0.1.0
 */
export class MigrationChecksumMismatch extends Schema.TaggedError<MigrationChecksumMismatch>()(
  "MigrationChecksumMismatch",
  {
    id: Schema.Number,
    file: Schema.String,
    appliedChecksum: Schema.String,
    currentChecksum: Schema.String
  }
) {
  override get message(): string {
    return (
      `Migration ${this.file} was edited after it was applied ` +
      `(sha256 ${this.appliedChecksum.slice(0, 12)}… when applied, ${this.currentChecksum.slice(0, 12)}… now). ` +
      `Restore the applied version and put the change into a new migration file.`
    )
  }
}

/**
 * A statement of a migration failed; the migration's transaction was rolled back.
 *
 * @category errors
 * @since 0.1.0
 */
export class MigrationStatementError extends Schema.TaggedError<MigrationStatementError>()("MigrationStatementError", {
  file: Schema.String,
  line: Schema.Number,
  statement: Schema.String,
  serverMessage: Schema.String,
  code: Schema.optional(Schema.String),
  detail: Schema.optional(Schema.String),
  hint: Schema.optional(Schema.String)
}) {
  override get message(): string {
    const code = this.code === undefined ? "" : ` [${this.code}]`
    const detail = this.detail === undefined ? "" : ` Detail: ${this.detail}`
    const hint = this.hint === undefined ? "" : ` Hint: ${this.hint}`
    return (
      `Migration ${this.file} failed at line ${this.line} (${this.statement}): ${this.serverMessage}${code}.` +
      `${detail}${hint} The file's transaction was rolled back.`
    )
  }
}

/**
 * The history table, the advisory lock or the connection failed outside any migration statement.
 *
 * @category errors
 * @since 0.1.0
 */
export class MigrationHistoryError extends Schema.TaggedError<MigrationHistoryError>()("MigrationHistoryError", {
  table: Schema.String,
  operation: Schema.String,
  serverMessage: Schema.String,
  code: Schema.optional(Schema.String)
}) {
  override get message(): string {
    const code = this.code === undefined ? "" : ` [${this.code}]`
    return `Migration history ${this.table}: cannot ${this.operation}: ${this.serverMessage}${code}`
  }
}

/**
 * Every way `run` can fail.
 *
 * @category errors
 * @since 0.1.0
 */
export type MigrationError =
  MigrationLoadError | MigrationChecksumMismatch | MigrationStatementError | MigrationHistoryError

const fileName = /^(\d+)_([A-Za-z0-9][A-Za-z0-9_.-]*)\.sql$/
// Each file already runs in a transaction of the migrator's; psql users get the same with `-1`.
const transactionControl = /^(begin|start\s+transaction|commit|end|rollback|abort|prepare\s+transaction)\b/i

const normalize = (text: string): string => text.replace(/^\uFEFF/, "").replace(/\r\n/g, "\n")

const sha256 = (text: string): string => createHash("sha256").update(text, "utf8").digest("hex")

/**
 * The checksum the migrator records for a migration's text: SHA-256 (hex) of the text with CRLF line ends
 * normalized to LF, a leading BOM dropped, and the lines that begin with a backslash (psql's meta-commands) left out.
 *
 * @category loading
 * @since 0.1.0
 */
export const checksum = (text: string): string =>
  sha256(
    normalize(text)
      .split("\n")
      .filter((line) => !/^\s*\\/.test(line))
      .join("\n")
  )

const onErrorStop = /^\\set\s+ON_ERROR_STOP\s+(on|true|1)$/i
const stamp = /^\\set\s+tenantpool_migration\s+'(\S+)\s+([0-9a-f]{64})'$/
const include = /^\\(?:ir|include_relative)\s+(\S+)$/
const recordScript = "psql/record.sql"

// Why a file's psql meta-commands cannot be run as the migrator runs the file, or undefined when they can.
const checkMetaCommands = (
  file: string,
  id: number,
  files: ReadonlyArray<string>,
  metaCommands: ReadonlyArray<MetaCommand>,
  sum: string
): { readonly line: number; readonly reason: string } | undefined => {
  let stamped = false
  for (const meta of metaCommands) {
    if (onErrorStop.test(meta.text)) continue
    const stampMatch = stamp.exec(meta.text)
    if (stampMatch !== null) {
      if (stampMatch[1] !== file) {
        return { line: meta.line, reason: `its stamp names ${stampMatch[1]}, not this file` }
      }
      if (stampMatch[2] !== sum) {
        return {
          line: meta.line,
          reason:
            `its stamp says sha256 ${stampMatch[2]!.slice(0, 12)}…, the file's is ${sum.slice(0, 12)}…: the file ` +
            "changed after it was stamped; put the new checksum into the stamp (in the tenantpool repository: " +
            "npm run migrations:stamp)"
        }
      }
      stamped = true
      continue
    }
    const target = include.exec(meta.text)?.[1]
    if (target === recordScript) {
      if (!stamped) return { line: meta.line, reason: `\\ir ${recordScript} needs the file's stamp before it` }
      continue
    }
    const earlier = target === undefined ? null : fileName.exec(target)
    if (earlier !== null && files.includes(target!) && Number(earlier[1]) < id) continue
    return {
      line: meta.line,
      reason:
        `psql meta-command ${meta.text.split(/\s/, 1)[0]} here is not one the migrator can follow: it takes ` +
        "\\set ON_ERROR_STOP on, \\ir of an earlier migration of this directory, and the stamp " +
        `(\\set tenantpool_migration '<file> <sha256>' then \\ir ${recordScript})`
    }
  }
  return undefined
}

/**
 * Reads and splits the migrations of a directory, ordered by id.
 *
 * @category loading
 * @since 0.1.0
 */
export const load = Effect.fnUntraced(function* (
  directory: string
): Effect.fn.Return<ReadonlyArray<Migration>, MigrationLoadError> {
  const entries = yield* Effect.tryPromise({
    try: () => fs.readdir(directory, { withFileTypes: true }),
    catch: (cause) => new MigrationLoadError({ directory, reason: describeFsError(cause) })
  })
  const migrations: Array<Migration> = []
  const names = entries
    .filter((entry) => entry.isFile() && entry.name.endsWith(".sql"))
    .map((entry) => entry.name)
    .sort()
  for (const file of names) {
    const match = fileName.exec(file)
    if (match === null) {
      return yield* new MigrationLoadError({
        directory,
        file,
        reason: "not named NNN_name.sql (digits, an underscore, then letters, digits, '_', '.' or '-')"
      })
    }
    const id = Number(match[1])
    if (!Number.isSafeInteger(id)) {
      return yield* new MigrationLoadError({ directory, file, reason: "its number is too large" })
    }
    const duplicate = migrations.find((m) => m.id === id)
    if (duplicate !== undefined) {
      return yield* new MigrationLoadError({ directory, file, reason: `has the same number as ${duplicate.file}` })
    }
    const text = normalize(
      yield* Effect.tryPromise({
        try: () => fs.readFile(path.join(directory, file), "utf8"),
        catch: (cause) => new MigrationLoadError({ directory, file, reason: describeFsError(cause) })
      })
    )
    const split = splitScript(text)
    if (Result.isFailure(split)) {
      return yield* new MigrationLoadError({ directory, file, line: split.failure.line, reason: split.failure.reason })
    }
    const { metaCommands, statements } = split.success
    const sum = checksum(text)
    const unusable = checkMetaCommands(file, id, names, metaCommands, sum)
    if (unusable !== undefined) return yield* new MigrationLoadError({ directory, file, ...unusable })
    const control = statements.find((s) => transactionControl.test(s.text))
    if (control !== undefined) {
      return yield* new MigrationLoadError({
        directory,
        file,
        line: control.line,
        reason:
          `transaction control (${firstLine(control.text)}) is not allowed: the migrator runs each file in its ` +
          "own transaction (with psql, pass -1 for the same)"
      })
    }
    migrations.push({ id, name: match[2]!, file, checksum: sum, statements })
  }
  return migrations.sort((a, b) => a.id - b.id)
})

/**
 * Applies the pending migrations of `options.directory` in id order and returns those it applied.
 *
 * @category running
 * @since 0.1.0
 */
export const run = Effect.fn("PgMigrations.run")(function* (
  options: Options
): Effect.fn.Return<ReadonlyArray<Applied>, MigrationError, SqlClient.SqlClient> {
  const sql = yield* SqlClient.SqlClient
  const migrations = yield* load(options.directory)
  const schema = options.schema ?? "public"
  const tableName = options.table ?? "tenantpool_migrations"
  const table = `${quoteIdent(schema)}.${quoteIdent(tableName)}`
  const history = historyOps(sql, schema, table)

  const appliedRows = yield* sql
    .withTransaction(
      Effect.gen(function* () {
        yield* history.lock
        yield* history.ensure
        return yield* history.readAll
      })
    )
    .pipe(Effect.catchTag("SqlError", (error) => Effect.fail(historyError(table, "prepare", error))))

  const byId = new Map(appliedRows.map((row) => [row.id, row]))
  for (const migration of migrations) {
    const row = byId.get(migration.id)
    if (row !== undefined && row.checksum !== migration.checksum) {
      return yield* new MigrationChecksumMismatch({
        id: migration.id,
        file: migration.file,
        appliedChecksum: row.checksum,
        currentChecksum: migration.checksum
      })
    }
  }
  const known = new Set(migrations.map((m) => m.id))
  for (const row of appliedRows) {
    if (!known.has(row.id)) {
      yield* Effect.logWarning(`migration ${row.id}_${row.name} is recorded in ${table} but has no file`)
    }
  }

  const pending = migrations.filter((m) => !byId.has(m.id))
  if (pending.length === 0) {
    yield* Effect.log(`migrations: up to date (${migrations.length} applied)`)
    return []
  }
  const highest = appliedRows.reduce((max, row) => Math.max(max, row.id), -1)
  const applied: Array<Applied> = []
  for (const migration of pending) {
    if (migration.id < highest) {
      yield* Effect.logWarning(`migration ${migration.file} is older than the newest applied one; applying it now`)
    }
    const result = yield* applyOne(sql, history, table, migration)
    if (Option.isSome(result)) {
      applied.push(result.value)
      yield* Effect.log(`migrations: applied ${migration.file} in ${result.value.durationMs} ms`)
    } else {
      yield* Effect.log(`migrations: ${migration.file} was applied by a concurrent runner`)
    }
  }
  return applied
})

/**
 * A layer that applies the pending migrations when it is built, so a program starts on an up-to-date schema.
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = (options: Options): Layer.Layer<never, MigrationError, SqlClient.SqlClient> =>
  Layer.effectDiscard(run(options))

interface HistoryRow {
  readonly id: number
  readonly name: string
  readonly checksum: string
}

const historyOps = (sql: SqlClient.SqlClient, schema: string, table: string) => ({
  // A transaction-level lock: released by COMMIT or ROLLBACK, so a crashed runner never leaves it held.
  lock: sql.unsafe("SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended($1, 0))", [
    `tenantpool/migrations ${table}`
  ]).unprepared,
  ensure: Effect.gen(function* () {
    const found = yield* sql.unsafe<{ readonly found: boolean }>(
      "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = $1) AS found",
      [schema]
    ).unprepared
    if (found[0]?.found !== true) yield* sql.unsafe(`CREATE SCHEMA IF NOT EXISTS ${quoteIdent(schema)}`).unprepared
    yield* sql.unsafe(
      `CREATE TABLE IF NOT EXISTS ${table} (
        id bigint PRIMARY KEY,
        name text NOT NULL,
        checksum text NOT NULL,
        statements integer NOT NULL,
        duration_ms integer NOT NULL,
        applied_by text NOT NULL DEFAULT current_user,
        applied_at timestamptz NOT NULL DEFAULT now()
      )`
    ).unprepared
  }),
  readAll: Effect.map(
    sql.unsafe<{ readonly id: string | number; readonly name: string; readonly checksum: string }>(
      `SELECT id, name, checksum FROM ${table} ORDER BY id`
    ).unprepared,
    (rows): ReadonlyArray<HistoryRow> => rows.map((r) => ({ id: Number(r.id), name: r.name, checksum: r.checksum }))
  ),
  readOne: (id: number) =>
    Effect.map(
      sql.unsafe<{ readonly checksum: string }>(`SELECT checksum FROM ${table} WHERE id = $1`, [id]).unprepared,
      (rows) => Option.fromNullishOr(rows[0]?.checksum)
    ),
  record: (migration: Migration, durationMs: number) =>
    sql.unsafe(`INSERT INTO ${table} (id, name, checksum, statements, duration_ms) VALUES ($1, $2, $3, $4, $5)`, [
      migration.id,
      migration.name,
      migration.checksum,
      migration.statements.length,
      durationMs
    ]).unprepared
})

type HistoryOps = ReturnType<typeof historyOps>

// Applies one file in its own transaction, or returns None when a concurrent runner applied it first.
const applyOne = (
  sql: SqlClient.SqlClient,
  history: HistoryOps,
  table: string,
  migration: Migration
): Effect.Effect<Option.Option<Applied>, MigrationError> =>
  sql
    .withTransaction(
      Effect.gen(function* () {
        yield* history.lock
        const existing = yield* history.readOne(migration.id)
        if (Option.isSome(existing)) {
          if (existing.value !== migration.checksum) {
            return yield* new MigrationChecksumMismatch({
              id: migration.id,
              file: migration.file,
              appliedChecksum: existing.value,
              currentChecksum: migration.checksum
            })
          }
          return Option.none<Applied>()
        }
        const started = yield* Clock.currentTimeMillis
        for (const statement of migration.statements) {
          yield* sql
            .unsafe(statement.text)
            .unprepared.pipe(
              Effect.catchTag("SqlError", (error) => Effect.fail(statementError(migration, statement, error)))
            )
        }
        const durationMs = Math.max(0, Math.round((yield* Clock.currentTimeMillis) - started))
        yield* history.record(migration, durationMs)
        return Option.some<Applied>({
          id: migration.id,
          name: migration.name,
          file: migration.file,
          checksum: migration.checksum,
          statements: migration.statements.length,
          durationMs
        })
      })
    )
    .pipe(Effect.catchTag("SqlError", (error) => Effect.fail(historyError(table, `apply ${migration.file}`, error))))

const statementError = (
  migration: Migration,
  statement: SqlStatement,
  error: SqlError.SqlError
): MigrationStatementError => {
  const server = serverError(error)
  // The server's position is a character offset into the statement: turn it into a line of the file.
  const line =
    server.position === undefined
      ? statement.line
      : statement.line + (statement.text.slice(0, Math.max(0, server.position - 1)).match(/\n/g)?.length ?? 0)
  return new MigrationStatementError({
    file: migration.file,
    line,
    statement: firstLine(statement.text),
    serverMessage: server.message,
    code: server.code,
    detail: server.detail,
    hint: server.hint
  })
}

const historyError = (table: string, operation: string, error: SqlError.SqlError): MigrationHistoryError => {
  const server = serverError(error)
  return new MigrationHistoryError({ table, operation, serverMessage: server.message, code: server.code })
}

const firstLine = (text: string): string => {
  const line = text.split("\n", 1)[0]!.trim()
  return line.length > 120 ? `${line.slice(0, 117)}...` : line
}

const quoteIdent = (name: string): string => `"${name.replace(/"/g, '""')}"`

const describeFsError = (cause: unknown): string => {
  if (typeof cause === "object" && cause !== null && "code" in cause && cause.code === "ENOENT") {
    return "no such file or directory"
  }
  return cause instanceof Error ? cause.message : String(cause)
}
