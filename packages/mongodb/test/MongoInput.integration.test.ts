/**
 * Bad input to every public function is a typed error naming the argument (issue #13, found by #14: `aggregate("str")`
 * was a defect): a `MongoError` of kind `invalid_argument` (or `forbidden`), never sent, never a defect, never a
 * synchronous throw — through the engine's collections, the spec's `MongoClient`, transactions and streams.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import { MemoryRegistry } from "@tenantpool/core/Registry"
import * as Tenancy from "@tenantpool/core/Tenancy"
import * as TestServers from "@tenantpool/testing/TestServers"
import { MongoClient } from "../src/MongoClient.ts"
import * as MongoClientModule from "../src/MongoClient.ts"
import { MongoEngine } from "../src/MongoEngine.ts"
import { MongoError } from "../src/MongoError.ts"
import * as Fx from "./fixtures/Mongo.ts"

type Case = readonly [label: string, argument: string, run: () => Effect.Effect<unknown, unknown, any>]

describe("MongoEngine bad input", () => {
  it.live("every operation refuses bad arguments with a MongoError naming them, before anything is sent", () => {
    const rec = Fx.recording()
    return Effect.gen(function* () {
      const url = TestServers.url("mongodb")
      const observer = yield* Fx.raw(url)
      const db = yield* Fx.database(observer, url, "input")
      const id = Fx.projectId("input")
      yield* (yield* MemoryRegistry).register({ id, tier: "PRO", mongodb: db.url })
      const tenancy = yield* Tenancy.Tenancy
      const mongo = yield* MongoEngine
      const c = mongo.collection("items") as any
      const client = yield* MongoClient
      const bad = Symbol("bad")
      const cases: ReadonlyArray<Case> = [
        ["aggregate('str')", "pipeline", () => c.aggregate("str")],
        ["aggregate([1])", "pipeline[0]", () => c.aggregate([1])],
        ["aggregate(null)", "pipeline", () => c.aggregate(null)],
        ["aggregateStream('str')", "pipeline", () => Stream.runCollect(c.aggregateStream("str"))],
        ["find('str')", "filter", () => c.find("str")],
        ["find(42)", "filter", () => c.find(42)],
        ["find(null)", "filter", () => c.find(null)],
        ["find([])", "filter", () => c.find([])],
        ["find({}, 'limit')", "options", () => c.find({}, "limit")],
        ["find({}, { limit: 'x' })", "options.limit", () => c.find({}, { limit: "x" })],
        ["findOne(Symbol)", "filter", () => c.findOne(bad)],
        ["stream('str')", "filter", () => Stream.runCollect(c.stream("str"))],
        ["countDocuments('x')", "filter", () => c.countDocuments("x")],
        ["distinct(42)", "key", () => c.distinct(42)],
        ["distinct('a', 'x')", "filter", () => c.distinct("a", "x")],
        ["insertOne(null)", "document", () => c.insertOne(null)],
        ["insertOne('doc')", "document", () => c.insertOne("doc")],
        ["insertMany('docs')", "documents", () => c.insertMany("docs")],
        ["insertMany([1])", "documents[0]", () => c.insertMany([1])],
        ["updateOne({}, 'x')", "update", () => c.updateOne({}, "x")],
        ["updateOne({}, { a: 1 })", "update", () => c.updateOne({}, { a: 1 })],
        ["updateOne(undefined, {$set})", "filter", () => c.updateOne("f", { $set: { a: 1 } })],
        ["updateMany({}, null)", "update", () => c.updateMany({}, null)],
        ["replaceOne({}, 'x')", "replacement", () => c.replaceOne({}, "x")],
        ["replaceOne({}, { $set })", "replacement.$set", () => c.replaceOne({}, { $set: { a: 1 } })],
        ["findOneAndUpdate({}, 5)", "update", () => c.findOneAndUpdate({}, 5)],
        ["deleteOne('x')", "filter", () => c.deleteOne("x")],
        ["deleteMany(0)", "filter", () => c.deleteMany(0)],
        ["bulkWrite('x')", "operations", () => c.bulkWrite("x")],
        ["bulkWrite([{}])", "operations[0]", () => c.bulkWrite([{}])],
        ["createIndex(42)", "index", () => c.createIndex(42)],
        ["createIndexes('x')", "indexes", () => c.createIndexes("x")],
        ["createIndexes([{ key: 5 }])", "indexes[0].key", () => c.createIndexes([{ key: 5 }])],
        ["dropIndex(5)", "name", () => c.dropIndex(5)],
        ["dropIndex('')", "name", () => c.dropIndex("")],
        ["collection(42)", "collection", () => (mongo.collection(42 as never) as any).find({})],
        ["collection('')", "collection", () => (mongo.collection("") as any).find({})],
        ["collection(name, not a schema)", "schema", () => (mongo.collection("x", 5 as never) as any).find({})],
        ["transaction('not a function')", "body", () => mongo.transaction("nope" as never)],
        ["transaction(body, 'x')", "options", () => mongo.transaction(() => Effect.void, "x" as never)],
        ["client.aggregate('items', 'str')", "pipeline", () => client.aggregate("items", "str" as never)],
        ["client.find(42, {})", "collection", () => client.find(42 as never, {})],
        ["client.insertOne('items', null)", "document", () => client.insertOne("items", null as never)],
        ["client.updateOne('items', {}, 'x')", "update", () => client.updateOne("items", {}, "x" as never)],
        ["client.createIndex('items', 42)", "index", () => client.createIndex("items", 42 as never)]
      ]
      const sentBefore = rec.commands.length
      for (const [label, argument, run] of cases) {
        let exit: any
        try {
          exit = yield* Effect.exit(Effect.suspend(run).pipe(tenancy.withProject(id)))
        } catch (e) {
          assert.fail(`${label} threw synchronously: ${String(e)}`)
        }
        assert.strictEqual(exit._tag, "Failure", label)
        assert.isFalse(Cause.hasDies(exit.cause), `${label} is not a defect: ${Cause.pretty(exit.cause)}`)
        const error = Cause.findErrorOption(exit.cause)
        assert.strictEqual(error._tag, "Some", label)
        const e = (error as { value: unknown }).value
        assert.instanceOf(e, MongoError, label)
        assert.include(["invalid_argument", "forbidden"], (e as MongoError).kind, label)
        assert.strictEqual((e as MongoError).argument, argument, `${label}: ${(e as MongoError).message}`)
        assert.isFalse((e as MongoError).sent)
      }
      assert.deepStrictEqual(
        rec.commands.slice(sentBefore).map((x) => x.name),
        [],
        "nothing was sent for bad input"
      )
    }).pipe(
      Effect.provide(
        MongoClientModule.layer(Fx.projectId("input-client"), {
          connectionString: Fx.withDatabase(TestServers.url("mongodb"), "tp_input_client"),
          tier: "PRO"
        }).pipe(Layer.provideMerge(Fx.layer({ factory: rec.factory })))
      )
    )
  })
})
