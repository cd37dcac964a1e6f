/**
 * The spec's Quick Start §4 through `MongoClient.layer`: the project is registered by the layer, its calls run as
 * that project (in its database, through the guard), `close` frees it, and the end of the layer's scope unregisters
 * it. The spec's aggregation (`$group` with `$avg`) runs where the server implements `$avg` (MongoDB); FerretDB v1
 * answers NotImplemented, which must come back as the caller's typed error, and `$sum` stands in for it there.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import { MemoryRegistry } from "@tenantpool/core/Registry"
import * as Tenancy from "@tenantpool/core/Tenancy"
import * as TestServers from "@tenantpool/testing/TestServers"
import { MongoClient } from "../src/MongoClient.ts"
import * as MongoClientModule from "../src/MongoClient.ts"
import { MongoError } from "../src/MongoError.ts"
import * as Fx from "./fixtures/Mongo.ts"

interface User {
  readonly name: string
  readonly email: string
  readonly age?: number
  readonly createdAt: Date
}

describe("MongoClient (the spec's createMongoDBClient)", () => {
  it.live("runs the Quick Start: insert, find, update, aggregate, health, stats, close", () =>
    Effect.gen(function* () {
      const url = TestServers.url("mongodb")
      const observer = yield* Fx.raw(url)
      const db = yield* Fx.database(observer, url, "quickstart")
      const projectId = Fx.projectId("my-project")
      const tenancy = yield* Tenancy.Tenancy

      yield* Effect.gen(function* () {
        const mongo = yield* MongoClient
        assert.strictEqual(mongo.projectId, projectId)
        yield* mongo.insertOne<User>("users", { name: "Jane Doe", email: "jane@example.com", createdAt: new Date() })
        yield* mongo.insertMany<User>("users", [
          { name: "Jane", email: "j@example.com", age: 28, createdAt: new Date() },
          { name: "Kid", email: "k@example.com", age: 12, createdAt: new Date() },
          { name: "Old", email: "o@example.com", age: 70, createdAt: new Date() }
        ])
        const adults = yield* mongo.find<User>("users", { age: { $gte: 18 } })
        assert.sameMembers(
          adults.map((u) => u.name),
          ["Jane", "Old"]
        )
        const updated = yield* mongo.updateOne<User>("users", { name: "Jane" }, { $set: { age: 29 } })
        assert.strictEqual(updated.modifiedCount, 1)

        const spec = yield* Effect.result(
          mongo.aggregate("users", [{ $group: { _id: null, avgAge: { $avg: "$age" } } }])
        )
        if (spec._tag === "Success") {
          assert.closeTo(spec.success[0]?.["avgAge"] as number, (29 + 12 + 70) / 3, 1e-9)
        } else {
          const error = spec.failure as MongoError
          assert.instanceOf(error, MongoError)
          assert.strictEqual(error.kind, "not_supported", "FerretDB v1 has no $avg accumulator")
          assert.isFalse(error.isInfrastructure)
          const [sums] = yield* mongo.aggregate("users", [
            { $match: { age: { $exists: true } } },
            { $group: { _id: null, total: { $sum: "$age" } } }
          ])
          const count = yield* mongo.countDocuments("users", { age: { $exists: true } })
          assert.closeTo((sums?.["total"] as number) / count, (29 + 12 + 70) / 3, 1e-9)
        }

        const streamed = yield* mongo.runStream(mongo.collection<User>("users").stream({}, { batchSize: 2 }))
        assert.strictEqual(streamed.length, 4)
        assert.isTrue(yield* mongo.healthCheck)
        const stats = yield* mongo.getPoolStats
        assert.isAtLeast(stats.size, 1)
        assert.isAtMost(stats.available, stats.size)
        assert.strictEqual(stats.pending, 0)
        assert.strictEqual(
          yield* Fx.call(() => observer.db(db.name).collection("users").countDocuments()),
          4,
          "the documents are in the project's database"
        )

        yield* mongo.close
        assert.isFalse(
          (yield* tenancy.connections).some((c) => c.projectId === projectId),
          "close freed the project's runtime"
        )
        const after = yield* Effect.flip(mongo.findOne("users", { name: "Jane" }))
        assert.strictEqual((after as { _tag: string })._tag, "ProjectNotFound")
        assert.isFalse(yield* mongo.healthCheck, "healthCheck never fails: it reports false")
      }).pipe(Effect.provide(MongoClientModule.layer(projectId, { connectionString: db.url, tier: "PRO" })))
    }).pipe(Effect.provide(Fx.layer()))
  )

  it.live("the layer registers the project while it lives and unregisters it when its scope ends", () =>
    Effect.gen(function* () {
      const url = TestServers.url("mongodb")
      const observer = yield* Fx.raw(url)
      const db = yield* Fx.database(observer, url, "client_scope")
      const projectId = Fx.projectId("scoped")
      const registry = yield* MemoryRegistry
      const before = yield* registry.size
      yield* Effect.gen(function* () {
        const mongo = yield* MongoClient
        assert.strictEqual(yield* registry.size, before + 1)
        yield* mongo.insertOne("things", { a: 1 })
      }).pipe(Effect.provide(MongoClientModule.layer(projectId, { connectionString: db.url, tier: "FREE" })))
      assert.strictEqual(yield* registry.size, before, "unregistered at the end of the scope")
      const invalid = yield* Effect.flip(
        Layer.build(MongoClientModule.layer("Not A Valid Id!", { connectionString: db.url, tier: "FREE" })).pipe(
          Effect.scoped
        )
      )
      assert.strictEqual(invalid._tag, "InvalidProjectId")
    }).pipe(Effect.provide(Fx.layer()))
  )

  it.live("layerStandalone gives a working client with nothing else provided", () =>
    Effect.gen(function* () {
      const url = TestServers.url("mongodb")
      const observer = yield* Fx.raw(url)
      const db = yield* Fx.database(observer, url, "standalone")
      const count = yield* Effect.gen(function* () {
        const mongo = yield* MongoClient
        yield* mongo.insertMany("things", [{ a: 1 }, { a: 2 }])
        return yield* mongo.runStream(
          mongo
            .collection("things")
            .stream()
            .pipe(Stream.map((d) => d["a"]))
        )
      }).pipe(
        Effect.provide(
          MongoClientModule.layerStandalone(Fx.projectId("standalone"), { connectionString: db.url, tier: "STARTER" })
        )
      )
      assert.sameMembers(count, [1, 2])
    })
  )
})
