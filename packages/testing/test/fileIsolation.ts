// The body shared by the two FileIsolation test files: both use the same table, key and document names in their
// own databases. Were the databases shared (or left behind by the other file) the unique writes would collide.
import { PgClient } from "@effect/sql-pg"
import { assert, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import { Redis } from "ioredis"
import { MongoClient } from "mongodb"
import { freshMongoDatabase, freshPgDatabase, freshRedisDb } from "../src/Isolation.ts"
import * as TestServers from "../src/TestServers.ts"

const pg = <A extends object>(url: string, text: string) =>
  Effect.gen(function* () {
    const sql = yield* PgClient.PgClient
    return yield* sql.unsafe<A>(text)
  }).pipe(Effect.provide(PgClient.layer({ url: Redacted.make(url) })))

export const claimsOwnDatabases = (file: string): void => {
  it.live(`${file} gets a PostgreSQL database, Redis database and MongoDB database of its own`, () =>
    Effect.gen(function* () {
      const pgUrl = yield* freshPgDatabase(TestServers.url("postgres"), file)
      yield* pg(pgUrl, "create table shared_name (owner text primary key)")
      yield* pg(pgUrl, `insert into shared_name values ('${file}')`)

      const redisUrl = yield* freshRedisDb(TestServers.url("redis"))
      const redis = yield* Effect.acquireRelease(
        Effect.sync(() => new Redis(redisUrl, { maxRetriesPerRequest: 1 })),
        (client) => Effect.sync(() => client.disconnect())
      )
      assert.strictEqual(yield* Effect.promise(() => redis.set("shared-name", file, "NX")), "OK")

      const mongoUrl = yield* freshMongoDatabase(TestServers.url("mongodb"), file)
      const mongo = yield* Effect.acquireRelease(
        Effect.promise(() => new MongoClient(mongoUrl, { serverSelectionTimeoutMS: 5_000 }).connect()),
        (client) => Effect.promise(() => client.close())
      )
      const docs = mongo.db().collection<{ _id: string; owner: string }>("shared_name")
      yield* Effect.promise(() => docs.insertOne({ _id: "shared-name", owner: file }))

      // Hold the databases for a moment so that the two files overlap when they run in parallel workers.
      yield* Effect.sleep("300 millis")
      const owners = yield* pg<{ owner: string }>(pgUrl, "select owner from shared_name")
      assert.deepStrictEqual(owners, [{ owner: file }])
      assert.strictEqual(yield* Effect.promise(() => redis.get("shared-name")), file)
      assert.strictEqual(yield* Effect.promise(() => redis.dbsize()), 1)
      assert.deepStrictEqual(yield* Effect.promise(() => docs.find().toArray()), [{ _id: "shared-name", owner: file }])
    })
  )
}
