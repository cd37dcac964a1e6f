// Short-lived driver connections for the harness itself: readiness probes, version queries, and creating or
// dropping per-test databases. Each call opens a connection, uses it and closes it; nothing is pooled across calls.
import { PgClient } from "@effect/sql-pg"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import type { SqlError } from "effect/sql/SqlError"
import { Redis } from "ioredis"
import { MongoClient } from "mongodb"
import type { ServerKind } from "./kinds.ts"

/** One SQL statement on a fresh single-connection client (sql-pg speaks the extended protocol: one statement). */
export const pgQuery = (
  url: string,
  text: string,
  connectTimeoutMs = 5_000,
  params?: ReadonlyArray<unknown>
): Effect.Effect<ReadonlyArray<Record<string, unknown>>, SqlError> =>
  Effect.gen(function* () {
    const sql = yield* PgClient.PgClient
    return yield* sql.unsafe<Record<string, unknown>>(text, params)
  }).pipe(
    Effect.provide(
      PgClient.layer({
        url: Redacted.make(url),
        connectTimeout: `${connectTimeoutMs} millis`,
        maxConnections: 1,
        applicationName: "tenantpool-harness"
      })
    )
  )

/** The server text of a sql-pg error (its `message` is only "PgConnection: Query failed"). */
export const pgErrorText = (error: SqlError): string => {
  const cause = (error.reason as { readonly cause?: unknown }).cause
  return cause instanceof Error ? `${error.message}: ${cause.message}` : error.message
}

/** A connected client that gives up at once when the server goes away; the caller disconnects it. */
export const connectRedis = async (url: string, timeoutMs: number): Promise<Redis> => {
  const client = new Redis(url, {
    lazyConnect: true,
    connectTimeout: timeoutMs,
    commandTimeout: timeoutMs,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    retryStrategy: () => null,
    connectionName: "tenantpool-harness"
  })
  client.on("error", () => {})
  try {
    await client.connect()
  } catch (error) {
    client.disconnect()
    throw error
  }
  return client
}

export const withRedis = async <A>(url: string, timeoutMs: number, f: (client: Redis) => Promise<A>): Promise<A> => {
  const client = await connectRedis(url, timeoutMs)
  try {
    return await f(client)
  } finally {
    client.disconnect()
  }
}

export const withMongo = async <A>(
  url: string,
  timeoutMs: number,
  f: (client: MongoClient) => Promise<A>
): Promise<A> => {
  const client = new MongoClient(url, {
    serverSelectionTimeoutMS: timeoutMs,
    connectTimeoutMS: timeoutMs,
    socketTimeoutMS: timeoutMs * 4,
    appName: "tenantpool-harness"
  })
  try {
    await client.connect()
    return await f(client)
  } finally {
    await client.close(true).catch(() => undefined)
  }
}

/** One readiness attempt: resolves with the server's version, rejects while the server is not serving yet. */
export const probe = (kind: ServerKind, url: string, timeoutMs: number): Promise<string> => {
  switch (kind) {
    case "postgres":
      return Effect.runPromise(
        pgQuery(url, "SHOW server_version", timeoutMs).pipe(
          Effect.mapError((error) => new Error(pgErrorText(error))),
          Effect.map((rows) => String(rows[0]?.["server_version"] ?? "unknown").split(" ")[0]!)
        )
      )
    case "redis":
      return withRedis(url, timeoutMs, async (client) => {
        const info = await client.info("server")
        return /redis_version:(\S+)/.exec(info)?.[1] ?? "unknown"
      })
    case "mongodb":
      return withMongo(url, timeoutMs, async (client) => {
        const info = await client.db("admin").command({ buildInfo: 1 })
        const version = String(info["version"] ?? "unknown")
        return typeof info["ferretdbVersion"] === "string"
          ? `${version} (FerretDB ${info["ferretdbVersion"]})`
          : version
      })
  }
}
