/**
 * Isolation between test files that share one server: a fresh PostgreSQL database, a Redis logical database or key
 * prefix, a MongoDB database name. The scoped forms remove what they created when the scope closes.
 *
 * @since 0.1.0
 */
import * as crypto from "node:crypto"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import { pgErrorText, pgQuery, withMongo, withRedis } from "./internal/drivers.ts"

/**
 * Creating or removing an isolated database failed.
 *
 * @category errors
 * @since 0.1.0
 */
export class IsolationError extends Schema.TaggedError<IsolationError>()("IsolationError", {
  kind: Schema.Literals(["postgres", "redis", "mongodb"]),
  message: Schema.String
}) {}

const TIMEOUT_MS = 10_000

const errorText = (error: unknown): string => (error instanceof Error ? error.message : String(error))

/**
 * A unique lower-case name, `<prefix>_<label>_<random>`, valid as a PostgreSQL identifier, a MongoDB database name
 * and a Redis key segment.
 *
 * @category constructors
 * @since 0.1.0
 */
export const uniqueName = (prefix: string, label?: string): string => {
  const clean = (label ?? "")
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "_")
    .replace(/^_+|_+$/g, "")
    .slice(0, 24)
  const random = crypto.randomBytes(6).toString("hex")
  return [prefix, clean, random].filter((part) => part.length > 0).join("_")
}

const withPath = (url: string, pathname: string): string => {
  const parsed = new URL(url)
  parsed.pathname = `/${pathname}`
  return parsed.toString()
}

// ---------------------------------------------------------------------------------------------------------------
// PostgreSQL

/**
 * Creates a database named `tp_<label>_<random>` on the server of `baseUrl` and returns its URL and a `drop`.
 *
 * @category postgres
 * @since 0.1.0
 */
export const createPgDatabase = async (
  baseUrl: string,
  label?: string
): Promise<{ readonly url: string; readonly name: string; readonly drop: () => Promise<void> }> => {
  const name = uniqueName("tp", label)
  await Effect.runPromise(
    pgQuery(baseUrl, `CREATE DATABASE "${name}"`, TIMEOUT_MS).pipe(
      Effect.mapError(
        (error) => new IsolationError({ kind: "postgres", message: `CREATE DATABASE ${name}: ${pgErrorText(error)}` })
      )
    )
  )
  return { url: withPath(baseUrl, name), name, drop: () => dropPgDatabase(baseUrl, name) }
}

/**
 * Drops a database, disconnecting whoever is still connected to it (`WITH (FORCE)`, PostgreSQL 13+).
 *
 * @category postgres
 * @since 0.1.0
 */
export const dropPgDatabase = (baseUrl: string, name: string): Promise<void> =>
  Effect.runPromise(
    pgQuery(baseUrl, `DROP DATABASE IF EXISTS "${name.replace(/"/g, '""')}" WITH (FORCE)`, TIMEOUT_MS).pipe(
      Effect.mapError(
        (error) => new IsolationError({ kind: "postgres", message: `DROP DATABASE ${name}: ${pgErrorText(error)}` })
      ),
      Effect.asVoid
    )
  )

/**
 * A fresh, empty database for the current scope; returns its URL and drops it when the scope closes.
 *
 * @category postgres
 * @since 0.1.0
 */
export const freshPgDatabase = (baseUrl: string, label?: string): Effect.Effect<string, IsolationError, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.tryPromise({
      try: () => createPgDatabase(baseUrl, label),
      catch: (error) =>
        error instanceof IsolationError ? error : new IsolationError({ kind: "postgres", message: errorText(error) })
    }),
    (database) => Effect.promise(() => database.drop().catch(() => undefined))
  ).pipe(Effect.map((database) => database.url))

// ---------------------------------------------------------------------------------------------------------------
// Redis

/**
 * A unique key prefix such as `tp:<label>:<random>:`, for tests that share a Redis database.
 *
 * @category redis
 * @since 0.1.0
 */
export const redisKeyPrefix = (label?: string): string => `${uniqueName("tp", label).replace(/_/g, ":")}:`

const LOCK_PREFIX = "tenantpool:harness:db:"

const deleteByPattern = (url: string, pattern: string): Promise<number> =>
  withRedis(url, TIMEOUT_MS, async (client) => {
    let deleted = 0
    let cursor = "0"
    do {
      const [next, keys] = await client.scan(cursor, "MATCH", pattern, "COUNT", 1000)
      cursor = next
      if (keys.length > 0) deleted += await client.del(...keys)
    } while (cursor !== "0")
    return deleted
  })

/**
 * A unique key prefix for the current scope; every key under it is deleted when the scope closes.
 *
 * @category redis
 * @since 0.1.0
 */
export const freshRedisPrefix = (url: string, label?: string): Effect.Effect<string, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => redisKeyPrefix(label)),
    (prefix) => Effect.promise(() => deleteByPattern(url, `${prefix}*`).catch(() => 0))
  )

/**
 * Reserves a logical Redis database (1 and up; database 0 holds the reservations) for the current scope, flushes
 * it, and returns a URL that selects it. Flushed and released when the scope closes. Reservations expire after an
 * hour, so a crashed test run cannot keep them forever.
 *
 * @category redis
 * @since 0.1.0
 */
export const freshRedisDb = (url: string): Effect.Effect<string, IsolationError, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.tryPromise({
      try: () =>
        withRedis(url, TIMEOUT_MS, async (client) => {
          const configured = await client.config("GET", "databases").catch(() => ["databases", "16"])
          const count = Number((configured as Array<string>)[1] ?? 16)
          const token = `${process.pid}:${crypto.randomBytes(6).toString("hex")}`
          for (let db = 1; db < count; db++) {
            if ((await client.set(`${LOCK_PREFIX}${db}`, token, "EX", 3600, "NX")) === "OK") {
              await client.select(db)
              await client.flushdb()
              return { db, token, url: withPath(url, String(db)) }
            }
          }
          throw new IsolationError({
            kind: "redis",
            message: `all ${count - 1} Redis databases are reserved; use freshRedisPrefix, or raise \`databases\``
          })
        }),
      catch: (error) =>
        error instanceof IsolationError ? error : new IsolationError({ kind: "redis", message: errorText(error) })
    }),
    (reservation) =>
      Effect.promise(() =>
        withRedis(url, TIMEOUT_MS, async (client) => {
          await client.select(reservation.db)
          await client.flushdb()
          await client.select(0)
          if ((await client.get(`${LOCK_PREFIX}${reservation.db}`)) === reservation.token) {
            await client.del(`${LOCK_PREFIX}${reservation.db}`)
          }
        }).catch(() => undefined)
      )
  ).pipe(Effect.map((reservation) => reservation.url))

// ---------------------------------------------------------------------------------------------------------------
// MongoDB

/**
 * A unique database name such as `tp_<label>_<random>`.
 *
 * @category mongodb
 * @since 0.1.0
 */
export const freshMongoDbName = (label?: string): string => uniqueName("tp", label)

// Changing the path also changes the default authSource; keep authenticating where the base URL did.
const mongoUrlFor = (url: string, name: string): string => {
  const parsed = new URL(url)
  if (parsed.username !== "" && !parsed.searchParams.has("authSource")) {
    parsed.searchParams.set("authSource", parsed.pathname.replace(/^\//, "") || "admin")
  }
  parsed.pathname = `/${name}`
  return parsed.toString()
}

/**
 * A fresh database name for the current scope, returned as a URL whose path selects it (`client.db()` uses it);
 * the database is dropped when the scope closes.
 *
 * @category mongodb
 * @since 0.1.0
 */
export const freshMongoDatabase = (url: string, label?: string): Effect.Effect<string, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => freshMongoDbName(label)),
    (name) =>
      Effect.promise(() =>
        withMongo(url, TIMEOUT_MS, (client) => client.db(name).dropDatabase()).catch(() => undefined)
      )
  ).pipe(Effect.map((name) => mongoUrlFor(url, name)))
