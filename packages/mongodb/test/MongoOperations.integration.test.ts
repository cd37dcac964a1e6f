/**
 * Every operation family through the guard, on the shared MongoDB-wire server, in a database of this file's own:
 * inserts, reads (filter, projection, sort, skip, limit), counts and distinct values, updates and upserts, replace,
 * find-and-modify, deletes, bulk writes, aggregation (array and stream), indexes, and Schema-decoded results.
 * What the engine reports is checked against the server through a raw client.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import { ObjectId } from "mongodb"
import { MemoryRegistry } from "@tenantpool/core/Registry"
import * as Tenancy from "@tenantpool/core/Tenancy"
import * as TestServers from "@tenantpool/testing/TestServers"
import { MongoEngine } from "../src/MongoEngine.ts"
import { MongoError } from "../src/MongoError.ts"
import * as Fx from "./fixtures/Mongo.ts"

interface User {
  readonly name: string
  readonly age: number
  readonly tags?: ReadonlyArray<string>
  readonly active?: boolean
}

// Registers a project on a fresh database of the shared server; returns how to run as it and the raw database.
const setup = (label: string) =>
  Effect.gen(function* () {
    const url = TestServers.url("mongodb")
    const observer = yield* Fx.raw(url)
    const db = yield* Fx.database(observer, url, `ops_${label}`)
    const id = Fx.projectId(label)
    yield* (yield* MemoryRegistry).register({ id, tier: "PRO", mongodb: db.url })
    const tenancy = yield* Tenancy.Tenancy
    const mongo = yield* MongoEngine
    return {
      mongo,
      raw: observer.db(db.name),
      as: <A, E, R>(effect: Effect.Effect<A, E, R>) => effect.pipe(tenancy.withProject(id))
    }
  })

const people: ReadonlyArray<User> = [
  { name: "Ada", age: 36, tags: ["math", "eng"], active: true },
  { name: "Brian", age: 17, tags: ["eng"], active: true },
  { name: "Chen", age: 52, tags: ["ops"], active: false },
  { name: "Dana", age: 29, tags: ["math"], active: true },
  { name: "Eve", age: 41, active: false }
]

describe("MongoEngine operations", () => {
  it.live("inserts one and many, and reads them back by filter, projection, sort, skip and limit", () =>
    Effect.gen(function* () {
      const { mongo, raw, as } = yield* setup("crud")
      const users = mongo.collection<User>("users")
      const one = yield* as(users.insertOne({ ...people[0]! }))
      assert.isTrue(one.acknowledged)
      assert.instanceOf(one.insertedId, ObjectId)
      const many = yield* as(users.insertMany(people.slice(1).map((p) => ({ ...p }))))
      assert.strictEqual(many.insertedCount, 4)
      assert.strictEqual(yield* Fx.call(() => raw.collection("users").countDocuments()), 5, "the server holds them")

      const found = yield* as(users.findOne({ name: "Chen" }))
      assert.strictEqual(found?.age, 52)
      assert.isNull(yield* as(users.findOne({ name: "Nobody" })))

      const adults = yield* as(
        users.find(
          { age: { $gte: 18 } },
          { projection: { _id: 0, name: 1, age: 1 }, sort: { age: -1 }, skip: 1, limit: 2 }
        )
      )
      assert.deepStrictEqual(adults as Array<unknown>, [
        { name: "Eve", age: 41 },
        { name: "Ada", age: 36 }
      ])
      assert.strictEqual(yield* as(users.countDocuments({ active: true })), 3)
      assert.strictEqual(yield* as(users.countDocuments()), 5)
      const tags = yield* as(users.distinct("tags", { active: true }))
      assert.deepStrictEqual([...tags].sort(), ["eng", "math"])
    }).pipe(Effect.provide(Fx.layer()))
  )

  it.live("updates one and many, upserts, replaces, finds and modifies, and deletes", () =>
    Effect.gen(function* () {
      const { mongo, raw, as } = yield* setup("writes")
      const users = mongo.collection<User>("users")
      yield* as(users.insertMany(people.map((p) => ({ ...p }))))

      const single = yield* as(users.updateOne({ name: "Ada" }, { $set: { age: 37 } }))
      assert.strictEqual(single.matchedCount, 1)
      assert.strictEqual(single.modifiedCount, 1)
      const multi = yield* as(users.updateMany({ active: false }, { $set: { tags: ["archived"] } }))
      assert.strictEqual(multi.modifiedCount, 2)
      const upserted = yield* as(
        users.updateOne({ name: "Faye" }, { $set: { age: 23, active: true } }, { upsert: true })
      )
      assert.strictEqual(upserted.upsertedCount, 1)
      assert.isNotNull(upserted.upsertedId)
      const upsertMany = yield* as(users.updateMany({ name: "Gus" }, { $set: { age: 60 } }, { upsert: true }))
      assert.strictEqual(upsertMany.upsertedCount, 1)

      const replaced = yield* as(users.replaceOne({ name: "Brian" }, { name: "Brian", age: 18 }))
      assert.strictEqual(replaced.modifiedCount, 1)
      const brian = yield* Fx.call(() => raw.collection("users").findOne({ name: "Brian" }))
      assert.strictEqual(brian?.["age"], 18)
      assert.isUndefined(brian?.["tags"], "replace drops the fields it does not name")

      const after = yield* as(
        users.findOneAndUpdate({ name: "Dana" }, { $inc: { age: 1 } }, { returnDocument: "after" })
      )
      assert.strictEqual(after?.age, 30)
      assert.isNull(yield* as(users.findOneAndUpdate({ name: "Nobody" }, { $set: { age: 1 } })))

      const deletedOne = yield* as(users.deleteOne({ name: "Eve" }))
      assert.strictEqual(deletedOne.deletedCount, 1)
      const deletedMany = yield* as(users.deleteMany({ age: { $gte: 50 } }))
      assert.strictEqual(deletedMany.deletedCount, 2, "Chen and Gus")
      const left = yield* Fx.call(() =>
        raw
          .collection("users")
          .find({}, { projection: { _id: 0, name: 1 }, sort: { name: 1 } })
          .toArray()
      )
      assert.deepStrictEqual(
        left.map((d) => d["name"]),
        ["Ada", "Brian", "Dana", "Faye"]
      )
    }).pipe(Effect.provide(Fx.layer()))
  )

  it.live("runs a bulk write of inserts, updates, replaces and deletes in one operation", () =>
    Effect.gen(function* () {
      const { mongo, raw, as } = yield* setup("bulk")
      const users = mongo.collection<User>("users")
      yield* as(
        users.insertMany([
          { name: "A", age: 1 },
          { name: "B", age: 2 },
          { name: "C", age: 3 }
        ])
      )
      const result = yield* as(
        users.bulkWrite([
          { insertOne: { document: { name: "D", age: 4 } } },
          { updateOne: { filter: { name: "A" }, update: { $set: { age: 10 } } } },
          { updateMany: { filter: { age: { $lte: 3 } }, update: { $set: { small: true } } } },
          { replaceOne: { filter: { name: "C" }, replacement: { name: "C", age: 30 } } },
          { deleteOne: { filter: { name: "B" } } }
        ])
      )
      assert.strictEqual(result.insertedCount, 1)
      assert.strictEqual(result.deletedCount, 1)
      assert.strictEqual(result.matchedCount, 4)
      const docs = yield* Fx.call(() =>
        raw
          .collection("users")
          .find({}, { projection: { _id: 0 }, sort: { name: 1 } })
          .toArray()
      )
      assert.deepStrictEqual(docs as Array<unknown>, [
        { name: "A", age: 10 },
        { name: "C", age: 30 },
        { name: "D", age: 4 }
      ])
    }).pipe(Effect.provide(Fx.layer()))
  )

  it.live("aggregates as an array and as a stream with the same results", () =>
    Effect.gen(function* () {
      const { mongo, as } = yield* setup("aggregate")
      const users = mongo.collection<User>("users")
      yield* as(users.insertMany(people.map((p) => ({ ...p }))))
      const pipeline = [
        { $match: { age: { $gte: 18 } } },
        { $group: { _id: "$active", total: { $sum: "$age" } } },
        { $sort: { _id: 1 } }
      ]
      const grouped = yield* as(users.aggregate<{ _id: boolean; total: number }>(pipeline))
      assert.deepStrictEqual(grouped, [
        { _id: false, total: 93 },
        { _id: true, total: 65 }
      ])
      const streamed = yield* as(Stream.runCollect(users.aggregateStream(pipeline, { batchSize: 1 })))
      assert.deepStrictEqual(streamed, grouped)
      const counted = yield* as(users.aggregate([{ $match: { active: true } }, { $count: "n" }]))
      assert.deepStrictEqual(counted, [{ n: 3 }])
    }).pipe(Effect.provide(Fx.layer()))
  )

  it.live("streams a find in batches and yields every document once, in order", () =>
    Effect.gen(function* () {
      const { mongo, as } = yield* setup("stream")
      const items = mongo.collection<{ i: number }>("items")
      yield* as(items.insertMany(Array.from({ length: 95 }, (_, i) => ({ i }))))
      const seen = yield* as(
        items.stream({ i: { $gte: 10 } }, { sort: { i: 1 }, batchSize: 20, projection: { _id: 0 } }).pipe(
          Stream.map((d) => d.i),
          Stream.runCollect
        )
      )
      assert.deepStrictEqual(
        seen,
        Array.from({ length: 85 }, (_, k) => k + 10)
      )
      const empty = yield* as(Stream.runCollect(items.stream({ i: -1 })))
      assert.strictEqual(empty.length, 0)
    }).pipe(Effect.provide(Fx.layer()))
  )

  it.live("creates, lists and drops indexes; a unique index refuses duplicates with a typed error", () =>
    Effect.gen(function* () {
      const { mongo, as } = yield* setup("indexes")
      const users = mongo.collection<User>("users")
      assert.strictEqual(yield* as(users.createIndex({ name: 1 }, { unique: true })), "name_1")
      assert.deepStrictEqual(
        yield* as(users.createIndexes([{ key: { age: -1 }, name: "by_age" }, { key: { tags: 1 } }])),
        ["by_age", "tags_1"]
      )
      const names = (yield* as(users.listIndexes())).map((i) => i["name"]).sort()
      assert.deepStrictEqual(names, ["_id_", "by_age", "name_1", "tags_1"])

      yield* as(users.insertOne({ name: "Ada", age: 1 }))
      const dup = yield* Effect.flip(as(users.insertOne({ name: "Ada", age: 2 })))
      assert.instanceOf(dup, MongoError)
      assert.strictEqual((dup as MongoError).kind, "duplicate_key")
      assert.strictEqual((dup as MongoError).code, 11000)

      yield* as(users.dropIndex("by_age"))
      const after = (yield* as(users.listIndexes())).map((i) => i["name"]).sort()
      assert.deepStrictEqual(after, ["_id_", "name_1", "tags_1"])
      const missing = yield* Effect.flip(as(users.dropIndex("by_age")))
      assert.instanceOf(missing, MongoError)
      assert.isFalse((missing as MongoError).isInfrastructure, "dropping a missing index is the caller's mistake")
    }).pipe(Effect.provide(Fx.layer()))
  )

  it.live("decodes results with a schema, and reports documents that do not fit it as SchemaError", () =>
    Effect.gen(function* () {
      const { mongo, raw, as } = yield* setup("schema")
      const Person = Schema.Struct({ name: Schema.String, age: Schema.Number })
      const persons = mongo.collection("persons", Person)
      yield* as(
        persons.insertMany([
          { name: "Ada", age: 36 },
          { name: "Brian", age: 17 }
        ])
      )
      const all = yield* as(persons.find({}, { sort: { age: 1 } }))
      assert.deepStrictEqual(all, [
        { name: "Brian", age: 17 },
        { name: "Ada", age: 36 }
      ])
      const ada = yield* as(persons.findOne({ name: "Ada" }))
      assert.deepStrictEqual(ada, { name: "Ada", age: 36 })
      const streamed = yield* as(Stream.runCollect(persons.stream({}, { sort: { age: 1 } })))
      assert.deepStrictEqual(streamed, all)

      const Total = Schema.Struct({ _id: Schema.Null, total: Schema.Number })
      const totals = yield* as(
        persons.aggregate([{ $group: { _id: null, total: { $sum: "$age" } } }], { schema: Total })
      )
      assert.deepStrictEqual(totals, [{ _id: null, total: 53 }])

      yield* Fx.call(() => raw.collection("persons").insertOne({ name: "Broken", age: "old" }))
      const bad = yield* Effect.flip(as(persons.findOne({ name: "Broken" })))
      assert.strictEqual((bad as { _tag: string })._tag, "SchemaError")
    }).pipe(Effect.provide(Fx.layer()))
  )

  it.live("bad filters and pipelines fail with the caller's typed errors, not infrastructure ones", () =>
    Effect.gen(function* () {
      const { mongo, as } = yield* setup("bad")
      const things = mongo.collection("things")
      yield* as(things.insertOne({ a: 1 }))
      const badFilter = yield* Effect.flip(as(things.find({ $foo: 1 } as never)))
      assert.instanceOf(badFilter, MongoError)
      assert.strictEqual((badFilter as MongoError).kind, "bad_query")
      const badStage = yield* Effect.flip(as(things.aggregate([{ $foo: 1 }])))
      assert.instanceOf(badStage, MongoError)
      assert.isFalse((badStage as MongoError).isInfrastructure)
      const state = yield* (yield* Tenancy.Tenancy).connections
      assert.isTrue(
        state.every((c) => c.breaker === "closed" && c.targetBreaker === "closed"),
        "no breaker moved"
      )
    }).pipe(Effect.provide(Fx.layer()))
  )
})
