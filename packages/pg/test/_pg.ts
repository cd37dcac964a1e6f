// Test helpers for the PostgreSQL integration tests: where the server is, a fresh database per test file, login
// roles that are dropped afterwards, psql, and running a block as another role.
import { execFile } from "node:child_process"
import { existsSync, readdirSync } from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { PgClient } from "@effect/sql-pg"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import * as SqlClient from "effect/sql/SqlClient"
import type { SqlError } from "effect/sql/SqlError"
import { inject } from "vitest"

/**
 * The server URL (its `postgres` database): TENANTPOOL_PG_URL, or what the @tenantpool/testing harness provides.
 * Throws, so the tests fail rather than skip, when there is neither.
 */
export const pgUrl = (): string => {
  const fromEnv = process.env.TENANTPOOL_PG_URL
  if (fromEnv !== undefined && fromEnv.length > 0) return fromEnv
  const injected: unknown = (inject as any)("tenantpool.pgUrl")
  if (typeof injected === "string" && injected.length > 0) return injected
  throw new Error(
    "The PostgreSQL integration tests need a server and none was configured. Set TENANTPOOL_PG_URL " +
      "(e.g. postgres://postgres@127.0.0.1:5432/postgres, a superuser on the server's postgres database) or run " +
      "them through the @tenantpool/testing harness, which provides 'tenantpool.pgUrl'."
  )
}

/** The repository's migrations/ directory. */
export const migrationsDirectory = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../migrations")

export const quoteIdent = (name: string): string => `"${name.replace(/"/g, '""')}"`

const uniqueName = (label: string): string =>
  `tp_${label}_${process.pid}_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 8)}`
    .toLowerCase()
    .replace(/[^a-z0-9_]/g, "_")
    .slice(0, 63)

/** URL of another database on the same server. */
export const databaseUrl = (server: string, database: string): string => {
  const url = new URL(server)
  url.pathname = `/${database}`
  return url.toString()
}

/** Runs `effect` with a short-lived client on the server's admin database. */
export const withServer = <A, E>(effect: Effect.Effect<A, E, SqlClient.SqlClient>): Effect.Effect<A, E | SqlError> =>
  Effect.scoped(Effect.provide(effect, PgClient.layer({ url: Redacted.make(pgUrl()), maxConnections: 1 })))

/** A fresh database, dropped (with every role made through `loginRole`) when its scope closes. */
export interface TestDatabase {
  readonly name: string
  readonly url: string
  /** Creates a LOGIN role unique to this test run; it is dropped after the database. */
  readonly loginRole: (label: string) => Effect.Effect<string, SqlError>
}

export const TestDatabase = Context.Service<TestDatabase>("@tenantpool/pg/test/TestDatabase")

export const freshDatabase = (label: string): Effect.Effect<TestDatabase, SqlError, Scope.Scope> => {
  const roles: Array<string> = []
  return Effect.acquireRelease(
    Effect.gen(function* () {
      const name = uniqueName(label)
      yield* withServer(Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe(`CREATE DATABASE ${quoteIdent(name)}`)))
      const loginRole = (roleLabel: string) =>
        Effect.gen(function* () {
          const role = uniqueName(`${label}_${roleLabel}`)
          yield* withServer(
            Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe(`CREATE ROLE ${quoteIdent(role)} LOGIN`))
          )
          roles.push(role)
          return role
        })
      return { name, url: databaseUrl(pgUrl(), name), loginRole }
    }),
    (db) =>
      withServer(
        Effect.gen(function* () {
          const sql = yield* SqlClient.SqlClient
          yield* sql.unsafe(`DROP DATABASE IF EXISTS ${quoteIdent(db.name)} WITH (FORCE)`)
          for (const role of roles) yield* sql.unsafe(`DROP ROLE IF EXISTS ${quoteIdent(role)}`)
        })
      ).pipe(Effect.orDie)
  )
}

/** A client on a fresh database. */
export const clientLayer = (url: string): Layer.Layer<PgClient.PgClient | SqlClient.SqlClient, SqlError> =>
  PgClient.layer({ url: Redacted.make(url), maxConnections: 4 })

/** A fresh database and a client on it, for a whole test file. */
export const layerFreshDatabase = (
  label: string
): Layer.Layer<TestDatabase | PgClient.PgClient | SqlClient.SqlClient, SqlError> =>
  Layer.unwrap(
    Effect.map(freshDatabase(label), (db) => Layer.merge(Layer.succeed(TestDatabase, db), clientLayer(db.url)))
  )

/** Runs `effect` in a transaction as `role` (SET LOCAL ROLE), so the pooled connection is never left switched. */
export const asRole =
  (role: string) =>
  <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | SqlError, R | SqlClient.SqlClient> =>
    Effect.flatMap(SqlClient.SqlClient, (sql) =>
      sql.withTransaction(Effect.andThen(sql.unsafe(`SET LOCAL ROLE ${quoteIdent(role)}`), effect))
    )

export const findPsql = (): string => {
  for (const dir of (process.env.PATH ?? "").split(path.delimiter)) {
    if (dir !== "" && existsSync(path.join(dir, "psql"))) return path.join(dir, "psql")
  }
  const root = "/usr/lib/postgresql"
  if (existsSync(root)) {
    for (const version of readdirSync(root).sort().reverse()) {
      const candidate = path.join(root, version, "bin", "psql")
      if (existsSync(candidate)) return candidate
    }
  }
  throw new Error("psql is needed to show the migrations are psql-runnable; install postgresql-client")
}

/** `psql -X -q -v ON_ERROR_STOP=1 [-1] -f file` against `url`; fails with psql's stderr. */
export const psqlFile = (url: string, file: string, options?: { readonly singleTransaction?: boolean }) =>
  Effect.callback<string, Error>((resume) => {
    const args = [
      "-X",
      "-q",
      "-v",
      "ON_ERROR_STOP=1",
      ...(options?.singleTransaction ? ["-1"] : []),
      "-d",
      url,
      "-f",
      file
    ]
    execFile(findPsql(), args, { env: { ...process.env, PGCONNECT_TIMEOUT: "10" } }, (error, stdout, stderr) => {
      if (error) resume(Effect.fail(new Error(`psql -f ${path.basename(file)} failed: ${stderr || error.message}`)))
      else resume(Effect.succeed(stdout + stderr))
    })
  })
