/**
 * The demo's projects: one per tier, all on the local servers. Projects share the Redis server (key prefixes) and
 * the MongoDB server (a database each). On PostgreSQL each has a database of its own, owned by a LOGIN role of its
 * own — the operator model of `@tenantpool/pg`'s README: no superuser, no CREATEROLE, CREATEDB, BYPASSRLS or
 * REPLICATION, CONNECT on the database revoked from PUBLIC — so one project cannot reach another's data, change
 * its role, or read the server's files, whatever SQL it sends.
 *
 * @since 0.1.0
 */
import * as crypto from "node:crypto"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import { PgClient } from "@effect/sql-pg"
import type { ProjectInput } from "@tenantpool/core/Registry"

const tiers = [
  ["acme", "FREE"],
  ["globex", "STARTER"],
  ["initech", "PRO"],
  ["umbrella", "ENTERPRISE"]
] as const

const withDatabase = (url: string, database: string): string => {
  const u = new URL(url)
  u.pathname = `/${database}`
  return u.toString()
}

/**
 * Each demo project's PostgreSQL URL (its own role on its own database), by project id.
 *
 * @category models
 * @since 0.1.0
 */
export type PostgresUrls = Readonly<Record<string, string>>

/**
 * The demo projects for the given server URLs and the projects' own PostgreSQL URLs (`prepareDatabases`).
 *
 * @category constructors
 * @since 0.1.0
 */
export const demoProjects = (
  urls: {
    readonly redis: string
    readonly mongodb: string
  },
  postgres: PostgresUrls
): ReadonlyArray<ProjectInput> =>
  tiers.map(([id, tier]) => ({
    id,
    tier,
    redis: urls.redis,
    postgres: postgres[id]!,
    mongodb: withDatabase(urls.mongodb, `demo_${id}`)
  }))

/**
 * Creates, or brings back to the operator model, each demo project's PostgreSQL role and database and its `items`
 * table, as the server's administrator (`postgresUrl`); returns the URL each project connects with. A role gets a
 * new random password at every start (the demo keeps none on disk).
 *
 * @category constructors
 * @since 0.1.0
 */
export const prepareDatabases = (postgresUrl: string): Effect.Effect<PostgresUrls, unknown> =>
  Effect.gen(function* () {
    const out: Record<string, string> = {}
    for (const [id] of tiers) {
      // Names come from the fixed list above, never from input; the password is hex.
      const database = `demo_${id}`
      const role = `demo_${id}`
      const password = crypto.randomBytes(16).toString("hex")
      yield* Effect.gen(function* () {
        const sql = yield* PgClient.PgClient
        const roles = yield* sql`select 1 from pg_roles where rolname = ${role}`
        const attributes = "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS NOREPLICATION"
        yield* sql.unsafe(
          roles.length === 0
            ? `create role "${role}" ${attributes} password '${password}'`
            : `alter role "${role}" ${attributes} password '${password}'`
        )
        const exists = yield* sql`select 1 from pg_database where datname = ${database}`
        if (exists.length === 0) yield* sql.unsafe(`create database "${database}" owner "${role}"`)
        yield* sql.unsafe(`alter database "${database}" owner to "${role}"`)
        yield* sql.unsafe(`revoke all on database "${database}" from public`)
      }).pipe(Effect.provide(PgClient.layer({ url: Redacted.make(postgresUrl), maxConnections: 1 })))
      yield* Effect.gen(function* () {
        const sql = yield* PgClient.PgClient
        yield* sql`create table if not exists items (
          id bigserial primary key,
          name text not null,
          qty integer not null default 0,
          created_at timestamptz not null default now()
        )`
        // A database from an earlier demo may have the table owned by the administrator.
        yield* sql.unsafe(`alter table items owner to "${role}"`)
        yield* sql.unsafe(`revoke all on schema public from public`)
        yield* sql.unsafe(`grant all on schema public to "${role}"`)
      }).pipe(
        Effect.provide(PgClient.layer({ url: Redacted.make(withDatabase(postgresUrl, database)), maxConnections: 1 }))
      )
      const own = new URL(withDatabase(postgresUrl, database))
      own.username = role
      own.password = password
      out[id] = own.toString()
    }
    return out
  })
