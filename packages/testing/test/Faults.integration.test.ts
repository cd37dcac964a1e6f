// In-database faults and server-side truth, on private servers (the faults reach past one test's connections):
// each fault does what the server's own command does, is seen from the server's side, and is undone when its scope
// closes; `durable` servers keep acknowledged writes across a SIGKILL.
import { PgClient } from "@effect/sql-pg"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Redacted from "effect/Redacted"
import * as Reactivity from "effect/reactivity/Reactivity"
import * as Scope from "effect/Scope"
import { Redis } from "ioredis"
import { MongoClient } from "mongodb"
import * as Faults from "../src/Faults.ts"
import { createPgDatabase } from "../src/Isolation.ts"
import * as Servers from "../src/Servers.ts"
import * as ServerState from "../src/ServerState.ts"
import * as TestServers from "../src/TestServers.ts"

/** A one-connection sql-pg client for the scope, tagged with `applicationName`. */
const pgClient = (url: string, applicationName = "faults-test") =>
  PgClient.make({ url: Redacted.make(url), maxConnections: 1, applicationName, connectTimeout: "3 seconds" }).pipe(
    Effect.provide(Reactivity.layer)
  )

const redisClient = (url: string, name = "faults-test") =>
  Effect.acquireRelease(
    Effect.tryPromise(async () => {
      const client = new Redis(url, {
        lazyConnect: true,
        connectionName: name,
        maxRetriesPerRequest: 0,
        retryStrategy: () => null,
        enableOfflineQueue: false
      })
      client.on("error", () => {})
      await client.connect()
      return client
    }),
    (client) => Effect.sync(() => client.disconnect())
  )

const withUser = (url: string, user: string, password: string): string => {
  const parsed = new URL(url)
  parsed.username = encodeURIComponent(user)
  parsed.password = encodeURIComponent(password)
  return parsed.toString()
}

describe("PostgreSQL faults", () => {
  it.live("terminating a client's backends closes its connection; pg_stat_activity sees it come and go", () =>
    Effect.gen(function* () {
      const server = yield* Servers.acquirePrivate("postgres")
      const sql = yield* pgClient(server.url, "victim")
      const [before] = yield* sql<{ pid: number }>`select pg_backend_pid() as pid`
      assert.deepStrictEqual(
        (yield* ServerState.pgBackends(server.url, { applicationNamePrefix: "victim" })).map((b) => b.pid),
        [before!.pid]
      )
      assert.strictEqual(yield* Faults.pgTerminateBackends(server.url, { applicationNamePrefix: "victim" }), 1)
      // sql-pg notices the closed connection and opens another one: a new backend.
      const [after] = yield* sql<{ pid: number }>`select pg_backend_pid() as pid`.pipe(Effect.retry({ times: 2 }))
      assert.notStrictEqual(after!.pid, before!.pid)
      yield* Faults.pgTerminateBackends(server.url, { applicationNamePrefix: "victim" })
      assert.deepStrictEqual(yield* ServerState.pgBackends(server.url, { applicationNamePrefix: "victim" }), [])
    })
  )

  it.live("a connection limit of 0 refuses logins to the database until the scope closes", () =>
    Effect.gen(function* () {
      const server = yield* Servers.acquirePrivate("postgres")
      const db = yield* Effect.promise(() => createPgDatabase(server.url, "limit"))
      // Superusers ignore connection limits: log in as an ordinary role (trusted: no pg_hba change here).
      yield* Faults.pgLoginRole(server.url, "limited", "unused")
      const url = withUser(db.url, "limited", "unused")
      const scope = yield* Scope.make()
      yield* Faults.pgConnectionLimit(server.url, db.name, 0).pipe(Scope.provide(scope))
      const refused = yield* Effect.exit(Effect.scoped(Effect.flatMap(pgClient(url), (sql) => sql`select 1`)))
      assert.isTrue(Exit.isFailure(refused))
      assert.include(JSON.stringify(refused), "53300")
      yield* Scope.close(scope, Exit.void)
      yield* Effect.scoped(Effect.flatMap(pgClient(url), (sql) => sql`select 1`))
    })
  )

  it.live("password rotation: a role asked for its password logs in with the current one only", () =>
    Effect.gen(function* () {
      const server = yield* Servers.acquirePrivate("postgres")
      yield* Faults.pgLoginRole(server.url, "rotated", "first-secret")
      yield* Faults.pgRequirePassword(server, "rotated")
      const login = (password: string) =>
        Effect.exit(
          Effect.scoped(Effect.flatMap(pgClient(withUser(server.url, "rotated", password)), (sql) => sql`select 1`))
        )
      assert.isTrue(Exit.isSuccess(yield* login("first-secret")))
      assert.isTrue(Exit.isFailure(yield* login("wrong")), "a wrong password is refused: the role is not trusted")
      yield* Faults.pgSetPassword(server.url, "rotated", "second-secret")
      assert.isTrue(Exit.isFailure(yield* login("first-secret")))
      assert.isTrue(Exit.isSuccess(yield* login("second-secret")))
    })
  )

  it.live("pausing one backend hangs its connection only", () =>
    Effect.gen(function* () {
      const server = yield* Servers.acquirePrivate("postgres")
      const victim = yield* pgClient(server.url, "paused-one")
      const other = yield* pgClient(server.url, "other-one")
      yield* victim`select 1`
      yield* other`select 1`
      const scope = yield* Scope.make()
      const pids = yield* Faults.pgPauseBackends(server.url, { applicationNamePrefix: "paused-one" }).pipe(
        Scope.provide(scope)
      )
      assert.strictEqual(pids.length, 1)
      const pending = yield* Effect.forkChild(victim`select 2 as two`)
      yield* Effect.sleep("300 millis")
      assert.isUndefined(pending.pollUnsafe(), "the paused backend does not answer")
      assert.deepStrictEqual(yield* other`select 3 as three`, [{ three: 3 }])
      yield* Scope.close(scope, Exit.void)
      assert.deepStrictEqual(yield* Fiber.join(pending), [{ two: 2 }])
    })
  )
})

describe("Redis faults", () => {
  it.live("CLIENT LIST shows a named client; CLIENT KILL closes it", () =>
    Effect.gen(function* () {
      const server = yield* Servers.acquirePrivate("redis")
      const victim = yield* redisClient(server.url, "victim")
      const clients = yield* ServerState.redisClients(server.url)
      assert.deepStrictEqual(
        clients.map((c) => c.name),
        ["victim"]
      )
      assert.strictEqual(yield* Faults.redisClientKill(server.url, (c) => c.name === "victim"), 1)
      yield* Effect.sleep("50 millis")
      assert.strictEqual(victim.status, "end")
      assert.deepStrictEqual(yield* ServerState.redisClients(server.url), [])
    })
  )

  it.live("CLIENT PAUSE holds commands for its duration; maxclients refuses new connections", () =>
    Effect.gen(function* () {
      const server = yield* Servers.acquirePrivate("redis")
      const client = yield* redisClient(server.url)
      yield* Faults.redisClientPause(server.url, 400)
      const started = performance.now()
      yield* Effect.promise(() => client.get("k"))
      assert.isTrue(performance.now() - started >= 300, "the command waited for the pause")

      const scope = yield* Scope.make()
      // The client and the harness's own connection fill both places.
      yield* Faults.redisMaxClients(server.url, 2).pipe(Scope.provide(scope))
      const refused = yield* Effect.exit(
        Effect.scoped(Effect.flatMap(redisClient(server.url), (c) => Effect.promise(() => c.ping())))
      )
      assert.isTrue(Exit.isFailure(refused), "a second client is one too many")
      yield* Scope.close(scope, Exit.void)
      yield* Effect.scoped(Effect.flatMap(redisClient(server.url), (c) => Effect.promise(() => c.ping())))
    })
  )

  it.live("an ACL user logs in with its current password only, across a restart", () =>
    Effect.gen(function* () {
      const server = yield* Servers.acquirePrivate("redis")
      yield* Faults.redisAclUser(server.url, "rotated", "first-secret")
      const login = (password: string) =>
        Effect.exit(
          Effect.scoped(
            Effect.flatMap(redisClient(withUser(server.url, "rotated", password)), (c) =>
              Effect.promise(() => c.ping())
            )
          )
        )
      assert.isTrue(Exit.isSuccess(yield* login("first-secret")))
      yield* Faults.redisSetPassword(server.url, "rotated", "second-secret")
      assert.isTrue(Exit.isFailure(yield* login("first-secret")))
      assert.isTrue(Exit.isSuccess(yield* login("second-secret")))
      // Saved to the server's ACL file: the user and its current password survive a restart.
      yield* Servers.stop(server)
      yield* Servers.start(server)
      assert.isTrue(Exit.isSuccess(yield* login("second-secret")))
    })
  )

  it.live("a durable Redis keeps an acknowledged write across SIGKILL", () =>
    Effect.gen(function* () {
      const server = yield* Servers.acquirePrivate("redis", { durable: true })
      yield* Effect.scoped(Effect.flatMap(redisClient(server.url), (c) => Effect.promise(() => c.set("kept", "yes"))))
      yield* Servers.kill(server)
      yield* Servers.start(server)
      const value = yield* Effect.scoped(
        Effect.flatMap(redisClient(server.url), (c) => Effect.promise(() => c.get("kept")))
      )
      assert.strictEqual(value, "yes")
    })
  )
})

describe("TCP table", () => {
  it.live("counts the server side of connections to a port", () =>
    Effect.gen(function* () {
      const port = TestServers.info("mongodb").port
      const before = yield* ServerState.tcpConnections(port)
      const client = yield* Effect.acquireRelease(
        Effect.promise(() => new MongoClient(TestServers.url("mongodb"), { maxPoolSize: 1, minPoolSize: 1 }).connect()),
        (c) => Effect.promise(() => c.close())
      )
      yield* Effect.promise(() => client.db("admin").command({ ping: 1 }))
      const during = yield* ServerState.tcpConnections(port)
      assert.isTrue(during > before, `more connections while a client is open (${before} → ${during})`)
    })
  )
})
