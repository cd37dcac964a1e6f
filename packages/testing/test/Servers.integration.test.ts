// The shared servers the global setup provides are real: each answers its own protocol through the drivers the
// library uses, and the descriptions the workers get match what the servers say about themselves.
import { PgClient } from "@effect/sql-pg"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import { Redis } from "ioredis"
import { MongoClient } from "mongodb"
import * as fs from "node:fs"
import { inject } from "vitest"
import { freshMongoDatabase } from "../src/Isolation.ts"
import * as Servers from "../src/Servers.ts"
import * as TestServers from "../src/TestServers.ts"

const redisClient = (url: string) =>
  Effect.acquireRelease(
    Effect.sync(() => new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 })),
    (client) => Effect.promise(() => client.quit().catch(() => "closed"))
  )

const mongoClient = (url: string) =>
  Effect.acquireRelease(
    Effect.promise(() => new MongoClient(url, { serverSelectionTimeoutMS: 5_000 }).connect()),
    (client) => Effect.promise(() => client.close())
  )

describe("shared servers", () => {
  it("are provided for all three kinds with plain URLs", () => {
    const servers = inject("tenantpool.servers")
    for (const kind of Servers.serverKinds) {
      assert.strictEqual(servers[kind].kind, kind)
      assert.include(["env", "local", "testcontainers"], servers[kind].source)
    }
    assert.match(inject("tenantpool.pgUrl"), /^postgres(ql)?:\/\//)
    assert.match(inject("tenantpool.redisUrl"), /^rediss?:\/\//)
    assert.match(inject("tenantpool.mongodbUrl"), /^mongodb(\+srv)?:\/\//)
    assert.strictEqual(TestServers.url("postgres"), inject("tenantpool.pgUrl"))
  })

  it.effect("PostgreSQL runs `select version()` through @effect/sql-pg", () =>
    Effect.gen(function* () {
      const sql = yield* PgClient.PgClient
      const rows = yield* sql<{ version: string }>`select version()`
      assert.match(rows[0]!.version, /^PostgreSQL \d+/)
      const [{ server_version }] = yield* sql<{ server_version: string }>`show server_version`
      assert.strictEqual(server_version.split(" ")[0], TestServers.info("postgres").version)
    }).pipe(Effect.provide(PgClient.layer({ url: Redacted.make(TestServers.url("postgres")) })))
  )

  it.effect("Redis answers PING and lists this client in CLIENT LIST", () =>
    Effect.gen(function* () {
      const client = yield* redisClient(TestServers.url("redis"))
      yield* Effect.promise(() => client.connect())
      assert.strictEqual(yield* Effect.promise(() => client.ping()), "PONG")
      const name = `smoke-${process.pid}-${Date.now()}`
      yield* Effect.promise(() => client.client("SETNAME", name))
      const list = yield* Effect.promise(() => client.client("LIST") as Promise<string>)
      assert.include(list, `name=${name}`)
      const info = yield* Effect.promise(() => client.info("server"))
      assert.include(info, `redis_version:${TestServers.info("redis").version}`)
    })
  )

  it.effect("the MongoDB-wire server answers ping, stores a document and reads it back", () =>
    Effect.gen(function* () {
      const url = yield* freshMongoDatabase(TestServers.url("mongodb"), "smoke")
      const client = yield* mongoClient(url)
      const ping = yield* Effect.promise(() => client.db("admin").command({ ping: 1 }))
      assert.strictEqual(ping["ok"], 1)
      const collection = client.db().collection<{ _id: string; tenant: string; n: number }>("docs")
      yield* Effect.promise(() => collection.insertOne({ _id: "doc-1", tenant: "acme", n: 42 }))
      const found = yield* Effect.promise(() => collection.findOne({ _id: "doc-1" }))
      assert.deepStrictEqual(found, { _id: "doc-1", tenant: "acme", n: 42 })
    })
  )

  it.effect("a worker-side handle on a local shared server reports the live postmaster", () =>
    Effect.gen(function* () {
      const handle = TestServers.shared("postgres")
      if (handle.source !== "local") {
        // Only local servers have a pid; for the others the control must refuse clearly.
        assert.throws(() => handle.pid(), /need a local server/)
        return
      }
      const sql = yield* PgClient.PgClient
      const [{ pid }] = yield* sql<{ pid: number }>`select pg_backend_pid() as pid`
      // A backend's parent is the postmaster: the pid the record (written by the global setup) holds.
      const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8")
      const parent = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1])
      assert.strictEqual(parent, handle.pid())
    }).pipe(Effect.provide(PgClient.layer({ url: Redacted.make(TestServers.url("postgres")) })))
  )
})
