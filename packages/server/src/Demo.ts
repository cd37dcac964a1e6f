/**
 * The demo's projects: one per tier, all on the local servers. Projects share the Redis server (key prefixes) and
 * the MongoDB server (a database each), and each has its own PostgreSQL database on the shared server.
 *
 * @since 0.1.0
 */
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
 * The demo projects for the given server URLs.
 *
 * @category constructors
 * @since 0.1.0
 */
export const demoProjects = (urls: {
  readonly postgres: string
  readonly redis: string
  readonly mongodb: string
}): ReadonlyArray<ProjectInput> =>
  tiers.map(([id, tier]) => ({
    id,
    tier,
    redis: urls.redis,
    postgres: withDatabase(urls.postgres, `demo_${id}`),
    mongodb: withDatabase(urls.mongodb, `demo_${id}`)
  }))

/**
 * Creates each demo project's PostgreSQL database and its `items` table, if missing.
 *
 * @category constructors
 * @since 0.1.0
 */
export const prepareDatabases = (postgresUrl: string) =>
  Effect.gen(function* () {
    for (const [id] of tiers) {
      const database = `demo_${id}`
      yield* Effect.gen(function* () {
        const sql = yield* PgClient.PgClient
        const exists = yield* sql`select 1 from pg_database where datname = ${database}`
        // The name comes from the fixed list above, never from input.
        if (exists.length === 0) yield* sql.unsafe(`create database "${database}"`)
      }).pipe(Effect.provide(PgClient.layer({ url: Redacted.make(postgresUrl) })))
      yield* Effect.gen(function* () {
        const sql = yield* PgClient.PgClient
        yield* sql`create table if not exists items (
          id bigserial primary key,
          name text not null,
          qty integer not null default 0,
          created_at timestamptz not null default now()
        )`
      }).pipe(Effect.provide(PgClient.layer({ url: Redacted.make(withDatabase(postgresUrl, database)) })))
    }
  })
