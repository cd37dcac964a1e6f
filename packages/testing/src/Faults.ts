/**
 * Faults made inside a database server, with its own commands: PostgreSQL `pg_terminate_backend`, per-database
 * `CONNECTION LIMIT`, password rotation (with password authentication switched on for one role of a private
 * server), a SIGSTOP on single backends; Redis `CLIENT KILL`, `CLIENT PAUSE`, `maxclients`, ACL users and their
 * passwords. Process faults (stop, kill, pause, restart) are in `Servers`, network faults in `Toxiproxy`.
 *
 * Faults that last are scoped and undone when the scope closes. Secrets passed here are never echoed in errors.
 *
 * @since 0.1.0
 */
import * as fs from "node:fs"
import * as path from "node:path"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import type { Redis } from "ioredis"
import { connectRedis, pgErrorText, pgQuery, withRedis } from "./internal/drivers.ts"
import { signalProcess } from "./internal/process.ts"
import type { ServerInfo } from "./Servers.ts"
import { pgBackends, type PgFilter, redisClients, type RedisClientInfo } from "./ServerState.ts"

/**
 * An in-database fault could not be made or undone.
 *
 * @category errors
 * @since 0.1.0
 */
export class FaultError extends Schema.TaggedError<FaultError>()("FaultError", {
  kind: Schema.Literals(["postgres", "redis", "mongodb"]),
  fault: Schema.String,
  message: Schema.String
}) {}

const TIMEOUT_MS = 5_000

const messageOf = (error: unknown): string => (error instanceof Error ? error.message : String(error))

const pg = (url: string, fault: string, text: string, params?: ReadonlyArray<unknown>) =>
  pgQuery(url, text, TIMEOUT_MS, params).pipe(
    Effect.mapError((error) => new FaultError({ kind: "postgres", fault, message: pgErrorText(error) }))
  )

const redis = <A>(url: string, fault: string, f: Parameters<typeof withRedis<A>>[2]) =>
  Effect.tryPromise({
    try: () => withRedis(url, TIMEOUT_MS, f),
    catch: (error) => new FaultError({ kind: "redis", fault, message: messageOf(error) })
  })

const quoteIdent = (name: string): string => `"${name.replace(/"/g, '""')}"`
const quoteLiteral = (value: string): string => `'${value.replace(/'/g, "''")}'`

// ---------------------------------------------------------------------------------------------------------------
// PostgreSQL

/**
 * Terminates the backends matching `filter` (`pg_terminate_backend`: the client sees its connection closed by an
 * administrator, SQLSTATE 57P01). Returns how many were terminated.
 *
 * @category postgres
 * @since 0.1.0
 */
export const pgTerminateBackends = (url: string, filter: PgFilter): Effect.Effect<number, FaultError> =>
  Effect.gen(function* () {
    const backends = yield* Effect.mapError(
      pgBackends(url, filter),
      (error) => new FaultError({ kind: "postgres", fault: "terminate", message: error.message })
    )
    if (backends.length === 0) return 0
    const rows = yield* pg(
      url,
      "terminate",
      "select count(*) filter (where pg_terminate_backend(pid)) as n from unnest($1::int[]) as pid",
      [backends.map((b) => b.pid)]
    )
    return Number(rows[0]?.["n"] ?? 0)
  })

/**
 * Caps the connections to `database` (`ALTER DATABASE … CONNECTION LIMIT`; beyond it logins fail with 53300)
 * for the scope; the previous limit comes back when it closes. Connections already open stay.
 *
 * @category postgres
 * @since 0.1.0
 */
export const pgConnectionLimit = (
  url: string,
  database: string,
  limit: number
): Effect.Effect<void, FaultError, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.gen(function* () {
      const rows = yield* pg(url, "connection limit", "select datconnlimit from pg_database where datname = $1", [
        database
      ])
      yield* pg(url, "connection limit", `alter database ${quoteIdent(database)} connection limit ${Math.trunc(limit)}`)
      return Number(rows[0]?.["datconnlimit"] ?? -1)
    }),
    (previous) =>
      Effect.ignore(pg(url, "connection limit", `alter database ${quoteIdent(database)} connection limit ${previous}`))
  ).pipe(Effect.asVoid)

/**
 * Creates a LOGIN role with a password, not a superuser unless asked (superusers ignore connection limits); its
 * sessions are terminated and it is dropped when the scope closes (drop what it owns first). Pair with
 * `pgRequirePassword` on a private server: the harness's servers trust loopback connections otherwise.
 *
 * @category postgres
 * @since 0.1.0
 */
export const pgLoginRole = (
  url: string,
  role: string,
  password: string,
  options?: { readonly superuser?: boolean | undefined }
): Effect.Effect<void, FaultError, Scope.Scope> =>
  Effect.acquireRelease(
    pg(
      url,
      "create role",
      `create role ${quoteIdent(role)} login ${options?.superuser === true ? "superuser" : "nosuperuser"} password ${quoteLiteral(password)}`
    ).pipe(
      // The statement holds the password: say what failed without it.
      Effect.mapError((error) => new FaultError({ ...error, message: `create role ${role} failed` }))
    ),
    () =>
      Effect.ignore(
        Effect.andThen(
          pgTerminateBackends(url, { user: role }),
          pg(url, "drop role", `drop role if exists ${quoteIdent(role)}`)
        )
      )
  ).pipe(Effect.asVoid)

/**
 * Sets a role's password; with `restore`, the scope's end sets it back. Existing sessions stay logged in: combine
 * with `pgTerminateBackends` for a rotation that bites.
 *
 * @category postgres
 * @since 0.1.0
 */
export const pgSetPassword = (url: string, role: string, password: string): Effect.Effect<void, FaultError> =>
  pg(url, "password", `alter role ${quoteIdent(role)} password ${quoteLiteral(password)}`).pipe(
    Effect.mapError((error) => new FaultError({ ...error, message: `alter role ${role} password failed` })),
    Effect.asVoid
  )

/**
 * Makes a private (local) PostgreSQL server ask `role` for its password (scram-sha-256) on loopback TCP, for the
 * scope: a line at the top of `pg_hba.conf`, then a configuration reload. Everyone else stays trusted.
 *
 * @category postgres
 * @since 0.1.0
 */
export const pgRequirePassword = (server: ServerInfo, role: string): Effect.Effect<void, FaultError, Scope.Scope> => {
  const fail = (message: string) => new FaultError({ kind: "postgres", fault: "require password", message })
  if (server.source !== "local" || server.dir === undefined) {
    return Effect.fail(fail(`pg_hba.conf can only be changed on a local server (this one is ${server.source})`))
  }
  const file = path.join(server.dir, "data", "pg_hba.conf")
  const line = `host all ${quoteIdent(role)} 127.0.0.1/32 scram-sha-256 # tenantpool-harness\n`
  const reload = pg(server.url, "require password", "select pg_reload_conf()")
  return Effect.acquireRelease(
    Effect.andThen(
      Effect.try({
        try: () => fs.writeFileSync(file, line + fs.readFileSync(file, "utf8")),
        catch: (error) => fail(messageOf(error))
      }),
      reload
    ),
    () =>
      Effect.ignore(
        Effect.andThen(
          Effect.sync(() => fs.writeFileSync(file, fs.readFileSync(file, "utf8").replace(line, ""))),
          reload
        )
      )
  ).pipe(Effect.asVoid)
}

/**
 * SIGSTOPs the backends matching `filter` on a local server (each PostgreSQL connection is a process: this hangs
 * single connections while the server and every other connection keep working); SIGCONT when the scope closes.
 * Returns the pids.
 *
 * @category postgres
 * @since 0.1.0
 */
export const pgPauseBackends = (
  url: string,
  filter: PgFilter
): Effect.Effect<ReadonlyArray<number>, FaultError, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.gen(function* () {
      const backends = yield* Effect.mapError(
        pgBackends(url, filter),
        (error) => new FaultError({ kind: "postgres", fault: "pause backend", message: error.message })
      )
      const pids = backends.map((b) => b.pid)
      for (const pid of pids) signalProcess(pid, "SIGSTOP")
      return pids
    }),
    (pids) =>
      Effect.sync(() => {
        for (const pid of pids) signalProcess(pid, "SIGCONT")
      })
  )

// ---------------------------------------------------------------------------------------------------------------
// Redis

/**
 * Kills the clients `select` picks from `CLIENT LIST` (`CLIENT KILL ID`): their connections close at once. Returns
 * how many were killed.
 *
 * @category redis
 * @since 0.1.0
 */
export const redisClientKill = (
  url: string,
  select: (client: RedisClientInfo) => boolean
): Effect.Effect<number, FaultError> =>
  Effect.gen(function* () {
    const clients = yield* Effect.mapError(
      redisClients(url),
      (error) => new FaultError({ kind: "redis", fault: "client kill", message: error.message })
    )
    const ids = clients.filter(select).map((client) => client.id)
    if (ids.length === 0) return 0
    return yield* redis(url, "client kill", async (client) => {
      let killed = 0
      for (const id of ids) killed += Number(await client.client("KILL", "ID", id))
      return killed
    })
  })

/**
 * `CLIENT PAUSE ms` (`ALL`: every command waits; `WRITE`: writes wait, reads run): the server holds commands
 * without closing anything, like a hung server that comes back by itself.
 *
 * @category redis
 * @since 0.1.0
 */
export const redisClientPause = (
  url: string,
  ms: number,
  mode: "ALL" | "WRITE" = "ALL"
): Effect.Effect<void, FaultError> =>
  Effect.asVoid(redis(url, "client pause", (client) => client.call("CLIENT", "PAUSE", String(Math.trunc(ms)), mode)))

/**
 * `CLIENT UNPAUSE`: ends a `redisClientPause` early.
 *
 * @category redis
 * @since 0.1.0
 */
export const redisClientUnpause = (url: string): Effect.Effect<void, FaultError> =>
  Effect.asVoid(redis(url, "client unpause", (client) => client.client("UNPAUSE")))

/**
 * Lowers `maxclients` for the scope (a new connection beyond it gets `ERR max number of clients reached`); the
 * previous value comes back when it closes. The harness holds one connection of its own for the scope (to undo
 * the limit it sets), which counts toward `max`.
 *
 * @category redis
 * @since 0.1.0
 */
export const redisMaxClients = (url: string, max: number): Effect.Effect<void, FaultError, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.tryPromise({
      try: async () => {
        const admin = await connectRedis(url, TIMEOUT_MS)
        try {
          const [, previous] = (await admin.config("GET", "maxclients")) as [string, string]
          await admin.config("SET", "maxclients", String(Math.trunc(max)))
          return { admin, previous }
        } catch (error) {
          admin.disconnect()
          throw error
        }
      },
      catch: (error) => new FaultError({ kind: "redis", fault: "maxclients", message: messageOf(error) })
    }),
    ({ admin, previous }) =>
      Effect.promise(() =>
        admin
          .config("SET", "maxclients", previous)
          .catch(() => undefined)
          .finally(() => admin.disconnect())
      )
  ).pipe(Effect.asVoid)

/**
 * Creates an ACL user with every permission and one password, deleted when the scope closes. On the harness's local
 * servers it is saved to their ACL file, so it survives a restart.
 *
 * @category redis
 * @since 0.1.0
 */
export const redisAclUser = (
  url: string,
  user: string,
  password: string
): Effect.Effect<void, FaultError, Scope.Scope> =>
  Effect.acquireRelease(
    redis(url, "acl user", async (client) => {
      await client.call("ACL", "SETUSER", user, "reset", "on", `>${password}`, "~*", "&*", "+@all")
      await saveAcl(client)
    }).pipe(Effect.mapError((error) => new FaultError({ ...error, message: `ACL SETUSER ${user} failed` }))),
    () =>
      Effect.ignore(
        redis(url, "acl user", async (client) => {
          await client.call("ACL", "DELUSER", user)
          await saveAcl(client)
        })
      )
  ).pipe(Effect.asVoid)

/**
 * Replaces an ACL user's passwords with `password` (`resetpass`, saved to the ACL file like `redisAclUser`); its
 * open connections stay logged in — combine with `redisClientKill` for a rotation that bites.
 *
 * @category redis
 * @since 0.1.0
 */
export const redisSetPassword = (url: string, user: string, password: string): Effect.Effect<void, FaultError> =>
  redis(url, "password", async (client) => {
    await client.call("ACL", "SETUSER", user, "resetpass", `>${password}`)
    await saveAcl(client)
  }).pipe(
    Effect.mapError((error) => new FaultError({ ...error, message: `ACL SETUSER ${user} resetpass failed` })),
    Effect.asVoid
  )

// Local servers keep ACL users in a file (see internal/local.ts): saved there, they survive a restart. A server
// without an ACL file answers ACL SAVE with an error, which changes nothing.
const saveAcl = (client: Redis) => client.call("ACL", "SAVE").catch(() => undefined)
