/**
 * Isolation between projects that share a MongoDB server (S2): each works in its own database on the one client the
 * server gets, sees and changes only its own documents, and cannot reach another database through a pipeline
 * (`$out`/`$merge` into one, `$lookup` from one): those are refused before anything is sent.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import { MemoryRegistry } from "@tenantpool/core/Registry"
import * as Tenancy from "@tenantpool/core/Tenancy"
import * as TestServers from "@tenantpool/testing/TestServers"
import { MongoEngine } from "../src/MongoEngine.ts"
import { MongoError } from "../src/MongoError.ts"
import * as Fx from "./fixtures/Mongo.ts"

describe("MongoEngine isolation", () => {
  it.live("two projects on one server see only their own databases, on one shared client", () => {
    const rec = Fx.recording()
    return Effect.gen(function* () {
      const url = TestServers.url("mongodb")
      const observer = yield* Fx.raw(url)
      const dbA = yield* Fx.database(observer, url, "iso_a")
      const dbB = yield* Fx.database(observer, url, "iso_b")
      const registry = yield* MemoryRegistry
      const tenancy = yield* Tenancy.Tenancy
      const mongo = yield* MongoEngine
      const a = Fx.projectId("iso-a")
      const b = Fx.projectId("iso-b")
      yield* registry.register({ id: a, tier: "PRO", mongodb: dbA.url })
      yield* registry.register({ id: b, tier: "PRO", mongodb: dbB.url })
      const users = mongo.collection<{ owner: string; n: number }>("users")

      yield* users
        .insertMany([
          { owner: "a", n: 1 },
          { owner: "a", n: 2 }
        ])
        .pipe(tenancy.withProject(a))
      yield* users.insertOne({ owner: "b", n: 1 }).pipe(tenancy.withProject(b))
      const seenByA = yield* users.find({}, { projection: { _id: 0 } }).pipe(tenancy.withProject(a))
      const seenByB = yield* users.find({}, { projection: { _id: 0 } }).pipe(tenancy.withProject(b))
      assert.deepStrictEqual(
        seenByA.map((d) => d.owner),
        ["a", "a"]
      )
      assert.deepStrictEqual(
        seenByB.map((d) => d.owner),
        ["b"]
      )
      assert.strictEqual(yield* users.countDocuments({ owner: "b" }).pipe(tenancy.withProject(a)), 0)

      const wiped = yield* users.deleteMany({}).pipe(tenancy.withProject(a))
      assert.strictEqual(wiped.deletedCount, 2)
      assert.strictEqual(yield* users.countDocuments().pipe(tenancy.withProject(b)), 1, "a's delete left b's data")
      assert.deepStrictEqual(
        (yield* Fx.call(() =>
          observer
            .db(dbB.name)
            .collection("users")
            .find({}, { projection: { _id: 0 } })
            .toArray()
        )) as Array<unknown>,
        [{ owner: "b", n: 1 }],
        "the server holds b's document in b's database"
      )
      assert.strictEqual(yield* Fx.call(() => observer.db(dbA.name).collection("users").countDocuments()), 0)

      const stats = yield* mongo.poolStats.pipe(tenancy.withProject(a))
      assert.strictEqual(stats.projects, 2, "both projects are bound to the same target")
      assert.strictEqual(stats.clients, 1)
      assert.strictEqual(rec.clients.length, 1, "one MongoClient for the server, whatever the number of projects")
      const namespaces = new Set(
        rec.commands
          .filter((c) => ["insert", "find", "delete", "aggregate"].includes(c.name))
          .map((c) => `${String(c.command["$db"])}:${c.name}`)
      )
      assert.deepStrictEqual(
        [...namespaces].sort(),
        [`${dbA.name}:aggregate`, `${dbA.name}:delete`, `${dbA.name}:find`, `${dbA.name}:insert`]
          .concat([`${dbB.name}:aggregate`, `${dbB.name}:find`, `${dbB.name}:insert`])
          .sort(),
        "every command went to its project's database"
      )
    }).pipe(Effect.provide(Fx.layer({ factory: rec.factory })))
  })

  it.live("pipelines that reach another database are refused before they are sent", () => {
    const rec = Fx.recording()
    return Effect.gen(function* () {
      const url = TestServers.url("mongodb")
      const observer = yield* Fx.raw(url)
      const mine = yield* Fx.database(observer, url, "iso_mine")
      const theirs = yield* Fx.database(observer, url, "iso_theirs")
      const registry = yield* MemoryRegistry
      const tenancy = yield* Tenancy.Tenancy
      const mongo = yield* MongoEngine
      const id = Fx.projectId("iso-pipe")
      yield* registry.register({ id, tier: "PRO", mongodb: mine.url })
      yield* Fx.call(() => observer.db(theirs.name).collection("secrets").insertOne({ s: 1 }))
      const docs = mongo.collection("docs")
      yield* docs.insertOne({ a: 1 }).pipe(tenancy.withProject(id))
      const sentBefore = rec.commands.filter((c) => c.name === "aggregate").length

      const attempts = [
        [{ $out: { db: theirs.name, coll: "stolen" } }],
        [{ $merge: { into: { db: theirs.name, coll: "stolen" } } }],
        [{ $lookup: { from: { db: theirs.name, coll: "secrets" }, as: "x", pipeline: [] } }],
        [{ $facet: { x: [{ $lookup: { from: { db: theirs.name, coll: "secrets" }, as: "y", pipeline: [] } }] } }],
        [{ $unionWith: { coll: "docs", pipeline: [{ $out: { db: theirs.name, coll: "stolen" } }] } }]
      ]
      for (const pipeline of attempts) {
        const error = yield* Effect.flip(docs.aggregate(pipeline).pipe(tenancy.withProject(id)))
        assert.instanceOf(error, MongoError, JSON.stringify(pipeline))
        assert.strictEqual((error as MongoError).kind, "forbidden")
        assert.isFalse((error as MongoError).sent)
        const streamed = yield* Effect.flip(
          Stream.runCollect(docs.aggregateStream(pipeline)).pipe(tenancy.withProject(id))
        )
        assert.strictEqual((streamed as MongoError).kind, "forbidden")
      }
      assert.strictEqual(rec.commands.filter((c) => c.name === "aggregate").length, sentBefore, "nothing was sent")
      const collections = yield* Fx.call(() => observer.db(theirs.name).listCollections().toArray())
      assert.deepStrictEqual(
        collections.map((c) => c.name),
        ["secrets"]
      )
      const state = yield* tenancy.connections
      assert.isTrue(state.every((c) => c.breaker === "closed"))
    }).pipe(Effect.provide(Fx.layer({ factory: rec.factory })))
  })
})
