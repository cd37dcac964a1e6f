/**
 * What the servers themselves say about who is connected: PostgreSQL's `pg_stat_activity`, Redis's `CLIENT LIST`,
 * and the kernel's TCP table for servers that keep no such list (FerretDB). Tests decide leaks and pool sizes from
 * these, never from a pool's own counters. Each reading opens a short-lived connection of its own (named
 * `tenantpool-harness`, and left out of every count).
 *
 * @since 0.1.0
 */
import * as fs from "node:fs"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import { pgErrorText, pgQuery, withRedis } from "./internal/drivers.ts"

/**
 * Reading a server's state failed (the server did not answer, or refused the query).
 *
 * @category errors
 * @since 0.1.0
 */
export class ServerStateError extends Schema.TaggedError<ServerStateError>()("ServerStateError", {
  kind: Schema.Literals(["postgres", "redis", "mongodb"]),
  message: Schema.String
}) {}

const HARNESS = "tenantpool-harness"
const TIMEOUT_MS = 5_000

const messageOf = (error: unknown): string => (error instanceof Error ? error.message : String(error))

// ---------------------------------------------------------------------------------------------------------------
// PostgreSQL

/**
 * A client backend as `pg_stat_activity` shows it.
 *
 * @category models
 * @since 0.1.0
 */
export interface PgBackend {
  readonly pid: number
  readonly database: string | null
  readonly user: string | null
  readonly applicationName: string
  /** `active`, `idle`, `idle in transaction`, … */
  readonly state: string | null
  readonly backendStart: Date
  /** Null for a connection that never ran a query (node-postgres#3543's leak signature). */
  readonly queryStart: Date | null
}

/**
 * Which backends to list: by database, user and `application_name` prefix (all optional).
 *
 * @category models
 * @since 0.1.0
 */
export interface PgFilter {
  readonly database?: string | undefined
  readonly user?: string | undefined
  readonly applicationNamePrefix?: string | undefined
}

/**
 * The client backends on the server of `url` (the harness's own connection excluded).
 *
 * @category postgres
 * @since 0.1.0
 */
export const pgBackends = (
  url: string,
  filter: PgFilter = {}
): Effect.Effect<ReadonlyArray<PgBackend>, ServerStateError> =>
  pgQuery(
    url,
    `select pid, datname, usename, application_name, state, backend_start, query_start
       from pg_stat_activity
      where backend_type = 'client backend' and pid <> pg_backend_pid() and application_name <> $1
        and ($2::text is null or datname = $2) and ($3::text is null or usename = $3)
        and ($4::text is null or starts_with(application_name, $4))`,
    TIMEOUT_MS,
    [HARNESS, filter.database ?? null, filter.user ?? null, filter.applicationNamePrefix ?? null]
  ).pipe(
    Effect.map((rows) =>
      rows.map((row) => ({
        pid: Number(row["pid"]),
        database: row["datname"] as string | null,
        user: row["usename"] as string | null,
        applicationName: String(row["application_name"] ?? ""),
        state: row["state"] as string | null,
        backendStart: row["backend_start"] as Date,
        queryStart: row["query_start"] as Date | null
      }))
    ),
    Effect.mapError((error) => new ServerStateError({ kind: "postgres", message: pgErrorText(error) }))
  )

// ---------------------------------------------------------------------------------------------------------------
// Redis

/**
 * A client as Redis's `CLIENT LIST` shows it.
 *
 * @category models
 * @since 0.1.0
 */
export interface RedisClientInfo {
  readonly id: string
  readonly addr: string
  readonly name: string
  readonly db: number
  readonly user: string
  /** The last command it ran. */
  readonly cmd: string
  /** Seconds connected. */
  readonly age: number
  /** Open MULTI (`-1` when none) and subscriptions, for session-state checks. */
  readonly multi: number
  readonly subscriptions: number
}

/**
 * Parses `CLIENT LIST` output.
 *
 * @category redis
 * @since 0.1.0
 */
export const parseClientList = (text: string): ReadonlyArray<RedisClientInfo> =>
  text
    .split("\n")
    .filter((line) => line.trim() !== "")
    .map((line) => {
      const fields = new Map<string, string>()
      for (const pair of line.trim().split(" ")) {
        const at = pair.indexOf("=")
        if (at > 0) fields.set(pair.slice(0, at), pair.slice(at + 1))
      }
      const num = (key: string) => Number(fields.get(key) ?? 0)
      return {
        id: fields.get("id") ?? "",
        addr: fields.get("addr") ?? "",
        name: fields.get("name") ?? "",
        db: num("db"),
        user: fields.get("user") ?? "default",
        cmd: fields.get("cmd") ?? "",
        age: num("age"),
        multi: num("multi"),
        subscriptions: num("sub") + num("psub") + num("ssub")
      }
    })

/**
 * The clients connected to the Redis of `url` (the harness's own connection excluded).
 *
 * @category redis
 * @since 0.1.0
 */
export const redisClients = (url: string): Effect.Effect<ReadonlyArray<RedisClientInfo>, ServerStateError> =>
  Effect.tryPromise({
    try: () => withRedis(url, TIMEOUT_MS, async (client) => String(await client.client("LIST"))),
    catch: (error) => new ServerStateError({ kind: "redis", message: messageOf(error) })
  }).pipe(Effect.map((text) => parseClientList(text).filter((client) => client.name !== HARNESS)))

// ---------------------------------------------------------------------------------------------------------------
// Any server: the kernel's TCP table

const ESTABLISHED = "01"

const tcpTable = (file: string): Array<{ readonly localPort: number; readonly state: string }> => {
  try {
    return fs
      .readFileSync(file, "utf8")
      .split("\n")
      .slice(1)
      .filter((line) => line.trim() !== "")
      .map((line) => {
        const columns = line.trim().split(/\s+/)
        const local = columns[1] ?? ""
        return { localPort: parseInt(local.slice(local.lastIndexOf(":") + 1), 16), state: columns[3] ?? "" }
      })
  } catch {
    return []
  }
}

/**
 * Established TCP connections whose local end is `port` on this machine, i.e. the server side of every
 * connection to a local server listening there (from `/proc/net/tcp` and `tcp6`). For servers that keep no client
 * list (FerretDB); counts every client, so subtract the ones a test makes itself.
 *
 * @category tcp
 * @since 0.1.0
 */
export const tcpConnections = (port: number): Effect.Effect<number> =>
  Effect.sync(
    () =>
      [...tcpTable("/proc/net/tcp"), ...tcpTable("/proc/net/tcp6")].filter(
        (entry) => entry.localPort === port && entry.state === ESTABLISHED
      ).length
  )
