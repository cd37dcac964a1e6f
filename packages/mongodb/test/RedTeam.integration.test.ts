/**
 * Red-team cases for isolation (S2), beyond `MongoAdversary`: nested namespace stages in every sub-pipeline shape,
 * server-wide stages hidden in sub-pipelines, extra fields on namespace stages, server-side JavaScript in every
 * expression slot, serializer and driver options, the collection-level bulkWrite shaped like the client-level one
 * (`namespace` fields), arrays whose methods are not the array's (`map` of a proxy or a subclass), and wrong
 * arguments of every method (a typed `MongoError`, never a defect). An operator-side raw client and the recorded
 * commands decide: nothing left the project's database, and every refusal happened before anything was sent.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import { BSONSymbol, Code, DBRef, Int32, ObjectId } from "mongodb"
import * as ApiProtections from "@tenantpool/protections/ApiProtections"
import { MongoError } from "../src/MongoError.ts"
import { arena } from "./fixtures/Adversary.ts"
import * as Fx from "./fixtures/Mongo.ts"

const canary = `victim-secret-${new ObjectId().toHexString()}`

type Attack = readonly [label: string, run: (c: any, victim: string, marker: string) => Effect.Effect<any, any, any>]

const ns = (db: string, coll = "secrets") => ({ db, coll })
const lookup = (db: string) => ({ $lookup: { from: ns(db), pipeline: [], as: "x" } })
const js = { $function: { body: "function() { return 1 }", args: [], lang: "js" } }

// A list whose `map` (what a check may call) answers something else than its elements.
const lyingArray = (shown: Array<unknown>, sent: Array<unknown>) =>
  new Proxy(shown, {
    get: (target, key, receiver) => (key === "map" ? () => sent : Reflect.get(target, key, receiver))
  })
class LyingArray extends Array {
  static sent: Array<unknown> = []
  override map(): any {
    return LyingArray.sent
  }
}

// Attacks the library must refuse before sending anything.
const refused: ReadonlyArray<Attack> = [
  // Namespaces nested in every sub-pipeline shape.
  ["$unionWith { db } inside $facet", (c, v) => c.aggregate([{ $facet: { a: [{ $unionWith: { coll: ns(v) } }] } }])],
  [
    "$graphLookup { db } inside $facet",
    (c, v) =>
      c.aggregate([
        {
          $facet: {
            a: [{ $graphLookup: { from: ns(v), startWith: "$a", connectFromField: "a", connectToField: "a", as: "g" } }]
          }
        }
      ])
  ],
  [
    "$unionWith { db } inside $lookup's pipeline",
    (c, v) => c.aggregate([{ $lookup: { from: "docs", as: "a", pipeline: [{ $unionWith: ns(v) }] } }])
  ],
  [
    "$lookup { db } inside $facet inside $unionWith inside $lookup",
    (c, v) =>
      c.aggregate([
        {
          $lookup: {
            from: "docs",
            as: "a",
            pipeline: [{ $unionWith: { coll: "docs", pipeline: [{ $facet: { f: [lookup(v)] } }] } }]
          }
        }
      ])
  ],
  ["$out { db } inside $facet", (c, v) => c.aggregate([{ $facet: { a: [{ $out: ns(v) }] } }])],
  [
    "$merge { db } inside $lookup's pipeline",
    (c, v) => c.aggregate([{ $lookup: { from: "docs", as: "a", pipeline: [{ $merge: { into: ns(v) } }] } }])
  ],
  [
    "$out to a new database { db: marker }",
    (c, _, m) => c.aggregate([{ $documents: [{ s: 1 }] }, { $out: ns(m, "x") }])
  ],
  ["$merge into a new database { db: marker }", (c, _, m) => c.aggregate([{ $merge: { into: ns(m, "x") } }])],
  [
    "$lookup from db as a String object",
    (c, v) => c.aggregate([{ $lookup: { from: { db: new String(v), coll: "secrets" }, pipeline: [], as: "x" } }])
  ],
  ["$out namespace with an extra key", (c, v) => c.aggregate([{ $out: { db: v, coll: "x", "db\u0000": v } }])],
  ["$merge into { db } without coll", (c, v) => c.aggregate([{ $merge: { into: { db: v } } }])],
  ["$out to system.views", (c) => c.aggregate([{ $out: "system.views" }])],
  ["$merge into system.js (string)", (c) => c.aggregate([{ $merge: "system.js" }])],
  ["$lookup from system.profile", (c) => c.aggregate([{ $lookup: { from: "system.profile", pipeline: [], as: "x" } }])],
  ["$unionWith a $cmd collection", (c) => c.aggregate([{ $unionWith: "$cmd.aggregate" }])],
  [
    "$merge whenMatched pipeline with $unionWith { db }",
    (c, v) => c.aggregate([{ $merge: { into: "mine", whenMatched: [{ $unionWith: ns(v) }] } }])
  ],
  // Extra fields on namespace stages (a server could read a database from them).
  ["$unionWith with a db field beside coll", (c, v) => c.aggregate([{ $unionWith: { coll: "secrets", db: v } }])],
  [
    "$lookup with a db field beside from",
    (c, v) => c.aggregate([{ $lookup: { from: "secrets", db: v, pipeline: [], as: "x" } }])
  ],
  ["$merge with a db field beside into", (c, v) => c.aggregate([{ $merge: { into: "secrets", db: v } }])],
  [
    "$merge whenMatched as a document",
    (c, v) => c.aggregate([{ $merge: { into: "mine", whenMatched: { $out: ns(v) } } }])
  ],
  // Server-wide stages, nested.
  [
    "$changeStream inside $facet",
    (c) => c.aggregate([{ $facet: { a: [{ $changeStream: { allChangesForCluster: true } }] } }])
  ],
  [
    "$currentOp inside $lookup's pipeline",
    (c) => c.aggregate([{ $lookup: { from: "docs", as: "a", pipeline: [{ $currentOp: {} }] } }])
  ],
  [
    "$listLocalSessions inside $unionWith",
    (c) => c.aggregate([{ $unionWith: { pipeline: [{ $listLocalSessions: {} }] } }])
  ],
  ["$querySettings", (c) => c.aggregate([{ $querySettings: {} }])],
  ["$listSearchIndexes", (c) => c.aggregate([{ $listSearchIndexes: {} }])],
  ["$listCatalog", (c) => c.aggregate([{ $listCatalog: {} }])],
  ["$shardedDataDistribution", (c) => c.aggregate([{ $shardedDataDistribution: {} }])],
  ["a stage name in another case ($OUT)", (c, v) => c.aggregate([{ $OUT: ns(v) }])],
  ["a stage name with a trailing space", (c, v) => c.aggregate([{ "$out ": ns(v) }])],
  ["a sparse pipeline (hole, then $out)", (c, v) => c.aggregate(Object.assign(new Array(2), { 1: { $out: ns(v) } }))],
  ["an update pipeline with $unionWith", (c, v) => c.updateOne({}, [{ $unionWith: ns(v) }])],
  ["an update pipeline with $documents", (c) => c.updateOne({}, [{ $documents: [{ a: 1 }] }])],
  ["findOneAndUpdate pipeline with $lookup", (c, v) => c.findOneAndUpdate({}, [lookup(v)])],
  [
    "aggregateStream of $facet/$lookup { db }",
    (c, v) => Stream.runCollect(c.aggregateStream([{ $facet: { a: [lookup(v)] } }]))
  ],
  // Options.
  ["find { fieldsAsRaw }", (c) => c.find({}, { fieldsAsRaw: { s: true } })],
  ["find { enableUtf8Validation: false }", (c) => c.find({}, { enableUtf8Validation: false })],
  ["find { promoteValues: false }", (c) => c.find({}, { promoteValues: false })],
  ["find { bsonRegExp }", (c) => c.find({}, { bsonRegExp: true })],
  ["insertOne { checkKeys: false }", (c) => c.insertOne({ "$x.y": 1 }, { checkKeys: false })],
  ["insertOne { forceServerObjectId }", (c) => c.insertOne({ a: 1 }, { forceServerObjectId: true })],
  ["aggregate { out } (legacy)", (c, v) => c.aggregate([], { out: `${v}.secrets` })],
  ["aggregate { cursor }", (c) => c.aggregate([], { cursor: { batchSize: 1 } })],
  ["aggregate { bypassDocumentValidation }", (c) => c.aggregate([{ $out: "x" }], { bypassDocumentValidation: true })],
  ["countDocuments { session }", (c) => c.countDocuments({}, { session: {} })],
  ["distinct { readPreference }", (c) => c.distinct("s", {}, { readPreference: "nearest" })],
  [
    "findOneAndUpdate { includeResultMetadata }",
    (c) => c.findOneAndUpdate({}, { $set: { a: 2 } }, { includeResultMetadata: true })
  ],
  [
    "find { readConcern: afterClusterTime }",
    (c) => c.find({}, { readConcern: { level: "local", afterClusterTime: 1 } })
  ],
  ["insertOne { writeConcern: Int32(0) }", (c) => c.insertOne({ a: 1 }, { writeConcern: { w: new Int32(0) } })],
  ["insertOne { writeConcern: { fsync } }", (c) => c.insertOne({ a: 1 }, { writeConcern: { w: 1, fsync: true } })],
  ["bulkWrite { retryWrites }", (c) => c.bulkWrite([{ insertOne: { document: {} } }], { retryWrites: false })],
  ["find { limit: 2^60 }", (c) => c.find({}, { limit: 2 ** 60 })],
  ["find { batchSize: NaN }", (c) => c.find({}, { batchSize: Number.NaN })],
  [
    "find options with a throwing getter",
    (c) =>
      c.find(
        {},
        {
          get comment() {
            throw new Error("boom")
          }
        }
      )
  ],
  // The collection-level bulkWrite shaped like the client-level one.
  [
    "bulkWrite model { namespace, name }",
    (c, v) => c.bulkWrite([{ namespace: `${v}.secrets`, name: "deleteMany", filter: {} }])
  ],
  [
    "bulkWrite insertOne with a namespace field",
    (c, v) => c.bulkWrite([{ insertOne: { document: { a: 1 }, namespace: `${v}.secrets` } }])
  ],
  [
    "bulkWrite deleteMany with an ns field",
    (c, v) => c.bulkWrite([{ deleteMany: { filter: {}, ns: `${v}.secrets` } }])
  ],
  ["bulkWrite legacy insertOne without document", (c) => c.bulkWrite([{ insertOne: { a: 1 } }])],
  ["bulkWrite update with q/u fields", (c) => c.bulkWrite([{ updateOne: { q: {}, u: { $set: { a: 1 } } } }])],
  // Server-side JavaScript (FREE project), in slots not covered elsewhere.
  ["$function in $expr of a find filter", (c) => c.find({ $expr: { $eq: [js, 1] } })],
  [
    "$accumulator in $group",
    (c) =>
      c.aggregate([
        {
          $group: {
            _id: null,
            x: {
              $accumulator: {
                init: "function(){}",
                accumulate: "function(){}",
                accumulateArgs: [],
                merge: "function(){}",
                lang: "js"
              }
            }
          }
        }
      ])
  ],
  [
    "$where in $lookup's pipeline",
    (c) => c.aggregate([{ $lookup: { from: "docs", as: "a", pipeline: [{ $match: { $where: "true" } }] } }])
  ],
  [
    "$where in $graphLookup.restrictSearchWithMatch",
    (c) =>
      c.aggregate([
        {
          $graphLookup: {
            from: "docs",
            startWith: "$a",
            connectFromField: "a",
            connectToField: "a",
            as: "g",
            restrictSearchWithMatch: { $where: "true" }
          }
        }
      ])
  ],
  [
    "$where in arrayFilters",
    (c) => c.updateMany({}, { $set: { "a.$[e]": 1 } }, { arrayFilters: [{ $where: "true" }] })
  ],
  [
    "$function in $merge.let",
    (c) => c.aggregate([{ $merge: { into: "mine", let: { x: js }, whenMatched: [{ $set: { y: "$$x" } }] } }])
  ],
  [
    "$function in $lookup.let",
    (c) => c.aggregate([{ $lookup: { from: "docs", as: "a", let: { x: js }, pipeline: [] } }])
  ],
  [
    "$where as a Code value under $and/$elemMatch",
    (c) => c.find({ $and: [{ a: { $elemMatch: { $where: new Code("true") } } }] })
  ],
  [
    "$where in a DBRef's fields in a filter",
    (c) => c.find({ r: new DBRef("x", new ObjectId(), undefined, { $where: "true" }) })
  ],
  ["$where in an Object.create(null) filter", (c) => c.find(Object.assign(Object.create(null), { $where: "true" }))],
  ["$function in countDocuments", (c) => c.countDocuments({ $expr: js })],
  ["$function in distinct's filter", (c) => c.distinct("s", { $expr: js })],
  [
    "$function in a findOneAndUpdate projection",
    (c) => c.findOneAndUpdate({}, { $set: { a: 1 } }, { projection: { x: js } })
  ],
  ["$where in a replaceOne filter", (c) => c.replaceOne({ $where: "true" }, { a: 1 })],
  ["$function in find { min }", (c) => c.find({}, { min: { a: js }, hint: { a: 1 } })],
  [
    "$where in a bulk replaceOne filter",
    (c) => c.bulkWrite([{ replaceOne: { filter: { $where: "true" }, replacement: {} } }])
  ],
  [
    "$function in bulkWrite { let }",
    (c) => c.bulkWrite([{ deleteOne: { filter: { $expr: "$$x" } } }], { let: { x: js } })
  ],
  ["$where in a stream filter", (c) => Stream.runCollect(c.stream({ $where: "true" }))],
  // Values BSON cannot send as they look.
  ["a function value in a document", (c) => c.insertOne({ f: () => 1 })],
  ["a Symbol value in a filter", (c) => c.find({ s: Symbol("x") })],
  [
    "a cyclic filter",
    (c) => {
      const o: any = { a: 1 }
      o.self = o
      return c.find(o)
    }
  ],
  [
    "a filter nested 10,000 deep",
    (c) => {
      let o: any = { a: 1 }
      for (let i = 0; i < 10_000; i++) o = { a: o }
      return c.find(o)
    }
  ],
  [
    "a Map nested 10,000 deep",
    (c) => {
      let o: any = new Map([["a", 1]])
      for (let i = 0; i < 10_000; i++) o = new Map([["a", o]])
      return c.find({ m: o })
    }
  ],
  [
    "a filter as a revoked proxy",
    (c) => {
      const p = Proxy.revocable({}, {})
      p.revoke()
      return c.find(p.proxy)
    }
  ],
  [
    "a pipeline as a revoked proxy",
    (c) => {
      const p = Proxy.revocable([], {})
      p.revoke()
      return c.aggregate(p.proxy)
    }
  ],
  [
    "options as a revoked proxy (aggregate)",
    (c) => {
      const p = Proxy.revocable({}, {})
      p.revoke()
      return c.aggregate([], p.proxy)
    }
  ],
  [
    "bulk operations as a revoked proxy",
    (c) => {
      const p = Proxy.revocable([], {})
      p.revoke()
      return c.bulkWrite(p.proxy)
    }
  ],
  [
    "a toBSON that throws",
    (c) =>
      c.find({
        a: {
          toBSON: () => {
            throw new Error("x")
          }
        }
      })
  ],
  [
    "a sparse array of length 2^32 - 1 in a filter",
    (c) => c.find({ a: { $in: Object.assign([], { length: 2 ** 32 - 1 }) } })
  ],
  ["insertMany of a sparse array of length 2^32 - 1", (c) => c.insertMany(Object.assign([], { length: 2 ** 32 - 1 }))],
  [
    "bulkWrite of a proxy claiming length 2^40",
    (c) => c.bulkWrite(new Proxy([], { get: (t, k) => (k === "length" ? 2 ** 40 : Reflect.get(t, k)) }))
  ],
  // Collection names.
  ["collection system.views", (c) => c.other("system.views").find({})],
  ["collection system.buckets.x", (c) => c.other("system.buckets.x").insertOne({ a: 1 })],
  ["collection of 300 characters", (c) => c.other("x".repeat(300)).find({})],
  ["collection named with $ (db.$cmd)", (c, v) => c.other(`${v}.$cmd`).find({})],
  ["collection as a Symbol", (c) => c.other(Symbol("x")).find({})],
  ["collection as an object", (c, v) => c.other({ toString: () => `${v}.secrets` }).deleteMany({})]
]

// Arrays whose methods lie: what is sent is the elements, read by index, and checked (the lie is never sent).
const honest: ReadonlyArray<Attack> = [
  [
    "bulkWrite operations as a proxy whose map lies",
    (c) =>
      c.bulkWrite(lyingArray([{ insertOne: { document: { a: 1 } } }], [{ deleteMany: { filter: { $where: "true" } } }]))
  ],
  [
    "bulkWrite operations as an Array subclass overriding map",
    (c) => {
      LyingArray.sent = [{ deleteMany: { filter: {}, collation: { locale: "xx", backwards: {} } } }]
      return c.bulkWrite(LyingArray.from([{ insertOne: { document: { a: 1 } } }]))
    }
  ],
  [
    "createIndexes as a proxy whose map lies",
    (c) =>
      c.createIndexes(lyingArray([{ key: { a: 1 } }], [{ key: { a: 1 }, name: "smuggled", storageEngine: { x: {} } }]))
  ]
]

// Arguments of the wrong type or arity: a MongoError naming the argument, never a defect.
const wrong: ReadonlyArray<Attack> = [
  ["find(123)", (c) => c.find(123)],
  ["find(null)", (c) => c.find(null)],
  ["find({}, 'x')", (c) => c.find({}, "x")],
  ["find({}, [])", (c) => c.find({}, [])],
  ["findOne([])", (c) => c.findOne([])],
  ["countDocuments('x')", (c) => c.countDocuments("x")],
  ["distinct(undefined)", (c) => c.distinct(undefined)],
  ["distinct({})", (c) => c.distinct({})],
  ["aggregate()", (c) => c.aggregate()],
  ["aggregate({})", (c) => c.aggregate({})],
  ["aggregate([1])", (c) => c.aggregate([1])],
  ["aggregate([[]])", (c) => c.aggregate([[]])],
  ["aggregate([], { schema: 1 })", (c) => c.aggregate([], { schema: 1 })],
  ["insertOne()", (c) => c.insertOne()],
  ["insertOne([])", (c) => c.insertOne([])],
  ["insertOne(BigInt)", (c) => c.insertOne(10n)],
  ["insertMany('abc')", (c) => c.insertMany("abc")],
  ["insertMany([1])", (c) => c.insertMany([1])],
  ["updateOne({}, undefined)", (c) => c.updateOne({}, undefined)],
  ["updateOne({}, {})", (c) => c.updateOne({}, {})],
  ["updateOne({}, { a: 1 })", (c) => c.updateOne({}, { a: 1 })],
  ["updateMany({}, [1])", (c) => c.updateMany({}, [1])],
  ["replaceOne({}, undefined)", (c) => c.replaceOne({}, undefined)],
  ["replaceOne({}, { $set: {} })", (c) => c.replaceOne({}, { $set: {} })],
  ["findOneAndUpdate({}, 'x')", (c) => c.findOneAndUpdate({}, "x")],
  ["deleteOne(123)", (c) => c.deleteOne(123)],
  ["deleteMany({}, 1)", (c) => c.deleteMany({}, 1)],
  ["bulkWrite()", (c) => c.bulkWrite()],
  ["bulkWrite([null])", (c) => c.bulkWrite([null])],
  ["bulkWrite([{}])", (c) => c.bulkWrite([{}])],
  ["bulkWrite([{ deleteOne: 1 }])", (c) => c.bulkWrite([{ deleteOne: 1 }])],
  ["bulkWrite([{ updateOne: { filter: {} } }])", (c) => c.bulkWrite([{ updateOne: { filter: {} } }])],
  ["createIndex()", (c) => c.createIndex()],
  ["createIndex(Symbol)", (c) => c.createIndex(Symbol("x"))],
  ["createIndex({ a: 1 }, { name: 1 })", (c) => c.createIndex({ a: 1 }, { name: 1 })],
  ["createIndexes()", (c) => c.createIndexes()],
  ["createIndexes([null])", (c) => c.createIndexes([null])],
  ["dropIndex()", (c) => c.dropIndex()],
  ["dropIndex({})", (c) => c.dropIndex({})],
  ["stream(123)", (c) => Stream.runCollect(c.stream(123))],
  ["aggregateStream(null)", (c) => Stream.runCollect(c.aggregateStream(null))],
  ["transaction(undefined)", (c) => c.transactionWith(undefined)],
  ["transaction(body, 'x')", (c) => c.transactionWith(() => Effect.void, "x")],
  ["collection(undefined).find()", (c) => c.other(undefined).find()]
]

// Accepted by design, or refused by the server only: must stay in the attacker's database, and fail typed if at all.
const contained: ReadonlyArray<Attack> = [
  ["collection named '<victim>.secrets'", (c, v) => c.other(`${v}.secrets`).find({})],
  ["deleteMany on '<victim>.secrets'", (c, v) => c.other(`${v}.secrets`).deleteMany({})],
  ["$out to '<victim>.secrets' (a string)", (c, v) => c.aggregate([{ $out: `${v}.secrets` }])],
  ["$merge into '<victim>.secrets' (a string)", (c, v) => c.aggregate([{ $merge: { into: `${v}.secrets` } }])],
  [
    "$lookup from '<victim>.secrets' (a string)",
    (c, v) => c.aggregate([{ $lookup: { from: `${v}.secrets`, pipeline: [], as: "x" } }])
  ],
  ["$unionWith '<victim>.secrets' (a string)", (c, v) => c.aggregate([{ $unionWith: `${v}.secrets` }])],
  ["$collStats", (c) => c.aggregate([{ $collStats: { storageStats: {}, count: {} } }])],
  ["$indexStats", (c) => c.aggregate([{ $indexStats: {} }])],
  ["$documents", (c) => c.aggregate([{ $documents: [{ s: canary }] }])],
  ["options with a Symbol key dbName", (c, v) => c.find({}, { [Symbol.for("dbName")]: v })],
  ["a DBRef to the victim's database, inserted", (c, v) => c.insertOne({ r: new DBRef("secrets", new ObjectId(), v) })],
  ["a filter on $db (a DBRef to the victim)", (c, v) => c.find({ "r.$db": v })],
  ["a Code value inserted", (c) => c.insertOne({ code: new Code("function() { return 1 }") })],
  ["a BSONSymbol in a filter", (c) => c.find({ s: new BSONSymbol("x") })],
  ["a BigInt in a filter", (c) => c.find({ n: 2n ** 62n })],
  ["an invalid Date in a filter", (c) => c.find({ d: new Date(Number.NaN) })],
  ["a $-prefixed top-level key inserted", (c, v) => c.insertOne({ $out: ns(v) })],
  ["a sparse array inserted", (c) => c.insertOne({ a: Object.assign([1], { 2: 3 }) })],
  ["a 17 MB document", (c) => c.insertOne({ big: "x".repeat(17 * 1024 * 1024) })],
  ["comment carrying $where", (c) => c.find({}, { comment: { $where: "true" } })],
  ["let shadowing a system variable", (c) => c.find({ $expr: { $eq: ["$$NOW", 1] } }, { let: { NOW: 1 } })],
  ["a hint document naming $natural", (c) => c.find({}, { hint: { $natural: -1 } })],
  ["a collation with odd fields", (c) => c.find({}, { collation: { locale: "simple", strength: 99 } })],
  ["writeConcern w as the tag '0'", (c) => c.insertOne({ a: 1 }, { writeConcern: { w: "0" } })],
  ["readConcern snapshot", (c) => c.find({}, { readConcern: "snapshot" })],
  ["distinct on the key '$where'", (c) => c.distinct("$where", {})],
  [
    "createIndex with a partialFilterExpression",
    (c) => c.createIndex({ a: 1 }, { partialFilterExpression: { a: { $gt: 1 } } })
  ]
]

const failureOf = (exit: Exit.Exit<unknown, unknown>): { error?: unknown; defect?: unknown } => {
  if (Exit.isSuccess(exit)) return {}
  const fail = Cause.findErrorOption(exit.cause)
  if (fail._tag === "Some") return { error: fail.value }
  return { defect: Cause.pretty(exit.cause).slice(0, 300) }
}

describe("MongoEngine red team", () => {
  it.live(
    "nested, smuggled and malformed attacks: refused before sending, contained, typed, and never a defect",
    () => {
      const rec = Fx.recording()
      return Effect.gen(function* () {
        const { observer, victimDb, attackerDb, marker, tenancy, mongo, attacker, docs, victimView } = yield* arena(
          "red",
          canary
        )
        const snapshot = victimView
        const before = yield* snapshot
        const target = {
          ...docs,
          other: (name: string) => mongo.collection(name),
          transactionWith: (body: unknown, o: unknown) => mongo.transaction(body as never, o as never)
        }
        const run = (attack: Attack) =>
          Effect.exit(
            Effect.suspend(() => attack[1](target, victimDb.name, marker)).pipe(tenancy.withProject(attacker))
          )
        const problems: Array<string> = []

        // 1. Refused before sending.
        for (const attack of [...refused, ...wrong]) {
          const label = attack[0]
          const sentBefore = rec.commands.length
          let exit: Exit.Exit<unknown, unknown>
          try {
            exit = yield* run(attack)
          } catch (e) {
            problems.push(`${label}: DEFECT (synchronous throw ${String(e).slice(0, 120)})`)
            continue
          }
          const { error, defect } = failureOf(exit)
          const sent = rec.commands.slice(sentBefore).map((c) => `${c.name} ${String(c.command["$db"])}`)
          if (defect !== undefined) problems.push(`${label}: DEFECT ${defect}`)
          else if (error === undefined) problems.push(`${label}: BREACH (succeeded; sent ${sent.join(", ")})`)
          else if (error instanceof MongoError) {
            if (error.sent || sent.length > 0)
              problems.push(`${label}: SENT (${error.kind}: ${error.message}) ${sent.join(", ")}`)
            else if (
              !["forbidden", "invalid_argument", "transactions_unsupported"].includes(error.kind) ||
              error.argument === undefined
            )
              problems.push(`${label}: refused without naming an argument (${error.kind}: ${error.message})`)
          } else if ((error as { _tag?: string })._tag !== "QueryRejected") {
            problems.push(`${label}: not a MongoError (${String((error as { _tag?: string })._tag ?? error)})`)
          } else if (sent.length > 0) problems.push(`${label}: SENT before QueryRejected: ${sent.join(", ")}`)
        }

        // 2. Contained: whatever is sent names the attacker's database only; failures are typed.
        for (const attack of contained) {
          const label = attack[0]
          const sentBefore = rec.commands.length
          const exit = yield* run(attack)
          const { error, defect } = failureOf(exit)
          if (defect !== undefined) problems.push(`${label}: DEFECT ${defect}`)
          // A typed error is fine here (FerretDB drops the connection on a Code value: the guard's UnknownOutcome).
          else if (error !== undefined && typeof (error as { _tag?: unknown })._tag !== "string")
            problems.push(`${label}: untyped failure (${String(error)})`)
          for (const c of rec.commands.slice(sentBefore)) {
            const db = String(c.command["$db"])
            if (
              db !== attackerDb.name &&
              !(db === "admin" && ["hello", "ping", "buildInfo", "endSessions"].includes(c.name))
            )
              problems.push(`${label}: sent ${c.name} to ${db}`)
          }
          if (Exit.isSuccess(exit) && JSON.stringify(exit.value ?? null).includes(canary) && label !== "$documents")
            problems.push(`${label}: LEAKED the victim's canary`)
        }

        // 3. Lying arrays: the elements are what is checked and sent; nothing the lie answered reaches the server.
        for (const attack of honest) {
          const label = attack[0]
          const sentBefore = rec.commands.length
          const { defect } = failureOf(yield* run(attack))
          if (defect !== undefined) problems.push(`${label}: DEFECT ${defect}`)
          for (const c of rec.commands.slice(sentBefore)) {
            const text = JSON.stringify(c.command)
            if (c.name === "delete" || /\$where|storageEngine|backwards|smuggled/.test(text))
              problems.push(`${label}: BREACH, sent ${c.name} ${text.slice(0, 200)}`)
          }
        }

        const after = yield* snapshot
        const databases = yield* Fx.call(() => observer.db("admin").admin().listDatabases({ nameOnly: true }))
        const leaked = yield* Fx.call(async () => {
          let n = 0
          for (const c of await observer.db(attackerDb.name).listCollections().toArray()) {
            n += await observer.db(attackerDb.name).collection(c.name).countDocuments({ s: canary })
          }
          return n
        })
        assert.deepStrictEqual(problems, [], problems.join("\n"))
        assert.deepStrictEqual(after, before, "the victim's documents and collections are unchanged")
        assert.isFalse(
          databases.databases.some((d) => d.name.startsWith(marker)),
          "no database was created by an attack"
        )
        assert.strictEqual(leaked, 0, "nothing of the victim's reached the attacker's database")
      }).pipe(
        Effect.provide(
          Fx.layer({ factory: rec.factory }).pipe(
            Layer.provideMerge(ApiProtections.layerWith({ sql: false, redis: false, rateLimit: false }))
          )
        )
      )
    },
    120_000
  )
})
