// The isolation helpers on the shared servers: each scope gets its own database (or key space), writes in one are
// invisible in another, and closing the scope removes what it created.
import { PgClient } from "@effect/sql-pg"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Redacted from "effect/Redacted"
import * as Scope from "effect/Scope"
import { Redis } from "ioredis"
import { MongoClient } from "mongodb"
import {
  freshMongoDatabase,
  freshMongoDbName,
  freshPgDatabase,
  freshRedisDb,
  freshRedisPrefix,
  redisKeyPrefix,
  uniqueName
} from "../src/Isolation.ts"
import * as TestServers from "../src/TestServers.ts"

const pg = <A extends object>(url: string, text: string) =>
  Effect.gen(function* () {
    const sql = yield* PgClient.PgClient
    return yield* sql.unsafe<A>(text)
  }).pipe(Effect.provide(PgClient.layer({ url: Redacted.make(url) })))

const redis = (url: string) =>
  Effect.acquireRelease(
    Effect.promise(async () => {
      const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 })
      await client.connect()
      return client
    }),
    (client) => Effect.sync(() => client.disconnect())
  )

const mongo = (url: string) =>
  Effect.acquireRelease(
    Effect.promise(() => new MongoClient(url, { serverSelectionTimeoutMS: 5_000 }).connect()),
    (client) => Effect.promise(() => client.close())
  )

describe("names", () => {
  it("are unique, lower-case identifiers that keep a readable label", () => {
    const names = new Set(Array.from({ length: 200 }, () => uniqueName("tp", "Pool Sizing!")))
    assert.strictEqual(names.size, 200)
    for (const name of names) assert.match(name, /^tp_pool_sizing_[0-9a-f]{12}$/)
    assert.match(redisKeyPrefix("idle"), /^tp:idle:[0-9a-f]{12}:$/)
    assert.match(freshMongoDbName(), /^tp_[0-9a-f]{12}$/)
  })
})

describe("freshPgDatabase", () => {
  it.live("gives two scopes distinct databases and drops each when its scope closes", () =>
    Effect.gen(function* () {
      const base = TestServers.url("postgres")
      const scope = yield* Scope.make()
      const a = yield* freshPgDatabase(base, "a").pipe(Scope.provide(scope))
      const b = yield* freshPgDatabase(base, "b").pipe(Scope.provide(scope))
      assert.notStrictEqual(a, b)

      yield* pg(a, "create table marker (owner text)")
      yield* pg(a, "insert into marker values ('a')")
      const [{ db }] = yield* pg<{ db: string }>(a, "select current_database() as db")
      assert.strictEqual(new URL(a).pathname, `/${db}`)
      const inB = yield* pg<{ n: number }>(b, "select count(*)::int as n from pg_tables where tablename = 'marker'")
      assert.deepStrictEqual(inB, [{ n: 0 }])

      yield* Scope.close(scope, Exit.void)
      const left = yield* pg<{ datname: string }>(
        base,
        `select datname from pg_database where datname in ('${db}', '${new URL(b).pathname.slice(1)}')`
      )
      assert.deepStrictEqual(left, [])
    })
  )
})

describe("freshRedisDb", () => {
  it.live("reserves distinct logical databases, flushes and releases them", () =>
    Effect.gen(function* () {
      const base = TestServers.url("redis")
      const scope = yield* Scope.make()
      const a = yield* freshRedisDb(base).pipe(Scope.provide(scope))
      const b = yield* freshRedisDb(base).pipe(Scope.provide(scope))
      assert.notStrictEqual(new URL(a).pathname, new URL(b).pathname)
      assert.notStrictEqual(new URL(a).pathname, "/0")

      const clientA = yield* redis(a)
      const clientB = yield* redis(b)
      yield* Effect.promise(() => clientA.set("same-key", "a"))
      assert.isNull(yield* Effect.promise(() => clientB.get("same-key")))

      yield* Scope.close(scope, Exit.void)
      assert.strictEqual(yield* Effect.promise(() => clientA.dbsize()), 0)
      const control = yield* redis(base)
      const lock = `tenantpool:harness:db:${new URL(a).pathname.slice(1)}`
      assert.isNull(yield* Effect.promise(() => control.get(lock)))
    })
  )
})

describe("freshRedisPrefix", () => {
  it.live("deletes every key under the prefix when the scope closes, and nothing else", () =>
    Effect.gen(function* () {
      const url = TestServers.url("redis")
      const client = yield* redis(url)
      const outside = `${redisKeyPrefix("outside")}k`
      yield* Effect.promise(() => client.set(outside, "stays"))
      const scope = yield* Scope.make()
      const prefix = yield* freshRedisPrefix(url, "keys").pipe(Scope.provide(scope))
      yield* Effect.promise(() => client.mset(`${prefix}a`, "1", `${prefix}b`, "2"))
      yield* Scope.close(scope, Exit.void)
      assert.strictEqual(yield* Effect.promise(() => client.exists(`${prefix}a`, `${prefix}b`)), 0)
      assert.strictEqual(yield* Effect.promise(() => client.get(outside)), "stays")
      yield* Effect.promise(() => client.del(outside))
    })
  )
})

describe("freshMongoDatabase", () => {
  it.live("selects a new database through the URL path and drops it when the scope closes", () =>
    Effect.gen(function* () {
      const base = TestServers.url("mongodb")
      const scope = yield* Scope.make()
      const url = yield* freshMongoDatabase(base, "iso").pipe(Scope.provide(scope))
      const client = yield* mongo(url)
      const name = client.db().databaseName
      assert.match(name, /^tp_iso_[0-9a-f]{12}$/)
      yield* Effect.promise(() => client.db().collection("c").insertOne({ x: 1 }))
      const listed = yield* Effect.promise(() => client.db("admin").admin().listDatabases())
      assert.include(
        listed.databases.map((db) => db.name),
        name
      )
      yield* Scope.close(scope, Exit.void)
      const after = yield* Effect.promise(() => client.db("admin").admin().listDatabases())
      assert.notInclude(
        after.databases.map((db) => db.name),
        name
      )
    })
  )
})
