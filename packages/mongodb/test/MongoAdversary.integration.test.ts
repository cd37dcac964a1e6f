/**
 * Isolation against an attacker (S2, issue #12): two projects on one server, each in its own database; the attacker
 * tries every way out of its database the driver's option surface and the aggregation language offer, and every way
 * of making an object look harmless to the checks and be sent as something else (`toBSON`, `Map`, class instances,
 * getters that change their answer, proxies, arrays with extra properties, duck-typed BSON values, `__proto__` keys,
 * stages with two fields). An operator-side raw client decides: the victim's documents and collections are what they
 * were, no database was created, nothing of the victim's reached the attacker's database, and no command of an
 * attack left the process (the engine's commands are recorded by command monitoring). Every refusal is a
 * `MongoError` naming the argument or option at fault, never sent.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import { DBRef, type Document, ObjectId } from "mongodb"
import { MemoryRegistry } from "@tenantpool/core/Registry"
import * as Tenancy from "@tenantpool/core/Tenancy"
import * as ApiProtections from "@tenantpool/protections/ApiProtections"
import * as TestServers from "@tenantpool/testing/TestServers"
import { MongoEngine } from "../src/MongoEngine.ts"
import { MongoError } from "../src/MongoError.ts"
import { arena } from "./fixtures/Adversary.ts"
import * as Fx from "./fixtures/Mongo.ts"

// A sent value as JSON (BSON numbers keep their wrappers in the engine's copies).
const plain = (value: unknown): unknown => JSON.parse(JSON.stringify(value))

const canary = `victim-secret-${new ObjectId().toHexString()}`

// The attacks, as functions of the victim's database name and a marker no database may ever be named after.
type Attack = readonly [label: string, run: (c: any, victim: string, marker: string) => Effect.Effect<any, any, any>]

const options: ReadonlyArray<Attack> = [
  ["find { dbName }", (c, v) => c.find({}, { dbName: v })],
  ["findOne { dbName }", (c, v) => c.findOne({}, { dbName: v })],
  ["distinct { dbName }", (c, v) => c.distinct("s", {}, { dbName: v })],
  ["countDocuments { dbName }", (c, v) => c.countDocuments({}, { dbName: v })],
  ["insertOne { dbName }", (c, v) => c.insertOne({ x: 1 }, { dbName: v })],
  ["insertMany { dbName }", (c, v) => c.insertMany([{ x: 1 }], { dbName: v })],
  ["updateMany { dbName }", (c, v) => c.updateMany({}, { $set: { s: "pwned" } }, { dbName: v })],
  ["replaceOne { dbName }", (c, v) => c.replaceOne({}, { s: "pwned" }, { dbName: v })],
  ["findOneAndUpdate { dbName }", (c, v) => c.findOneAndUpdate({}, { $set: { s: "pwned" } }, { dbName: v })],
  ["deleteMany { dbName }", (c, v) => c.deleteMany({}, { dbName: v })],
  ["bulkWrite { dbName }", (c, v) => c.bulkWrite([{ deleteMany: { filter: {} } }], { dbName: v })],
  ["aggregate { dbName }", (c, v) => c.aggregate([], { dbName: v })],
  ["createIndex { dbName }", (c, v) => c.createIndex({ s: 1 }, { dbName: v })],
  ["stream { dbName }", (c, v) => Stream.runCollect(c.stream({}, { dbName: v }))],
  ["find { authdb }", (c) => c.find({}, { authdb: "admin" })],
  ["find { readPreference: secondary }", (c) => c.find({}, { readPreference: "secondary" })],
  ["insertOne { bypassDocumentValidation }", (c) => c.insertOne({ x: 1 }, { bypassDocumentValidation: true })],
  ["find { noCursorTimeout }", (c) => c.find({}, { noCursorTimeout: true })],
  ["find { tailable, awaitData }", (c) => c.find({}, { tailable: true, awaitData: true })],
  ["find { raw }", (c) => c.find({}, { raw: true })],
  ["find { explain }", (c) => c.find({}, { explain: "executionStats" })],
  ["insertOne { serializeFunctions }", (c) => c.insertOne({ f: () => 1 }, { serializeFunctions: true })],
  ["insertOne { writeConcern: w 0 }", (c) => c.insertOne({ x: 1 }, { writeConcern: { w: 0 } })],
  ["find { maxTimeMS: 0 } (no server-side bound)", (c) => c.find({}, { maxTimeMS: 0 })],
  ["find { timeoutMS }", (c) => c.find({}, { timeoutMS: 0 })],
  ["find { willRetryWrite } (internal)", (c) => c.find({}, { willRetryWrite: true })],
  ["find { session } of another client", (c) => c.find({}, { session: { id: { id: "x" } } })],
  ["find { signal } of the caller's", (c) => c.find({}, { signal: new AbortController().signal })],
  [
    "find with options as a class instance",
    (c, v) =>
      c.find(
        {},
        new (class {
          dbName = v
        })()
      )
  ],
  ["find with a __proto__ option", (c, v) => c.find({}, JSON.parse(`{"__proto__": {"dbName": "${v}"}}`))],
  ["transaction { readPreference }", (c) => c.transactionWith({ readPreference: "secondary" })],
  ["bulkWrite model with a dbName field", (c, v) => c.bulkWrite([{ deleteMany: { filter: {}, dbName: v } }])],
  ["createIndexes with a storageEngine", (c) => c.createIndexes([{ key: { a: 1 }, storageEngine: { wiredTiger: {} } }])]
]

const out = (v: string) => ({ $out: { db: v, coll: "secrets" } })
const stages: ReadonlyArray<Attack> = [
  ["$out into the victim's database", (c, v) => c.aggregate([out(v)])],
  ["$out into a new database", (c, _, m) => c.aggregate([{ $out: { db: m, coll: "x" } }])],
  ["$merge into the victim's database", (c, v) => c.aggregate([{ $merge: { into: { db: v, coll: "secrets" } } }])],
  [
    "$lookup from the victim's database",
    (c, v) => c.aggregate([{ $lookup: { from: { db: v, coll: "secrets" }, pipeline: [], as: "x" } }])
  ],
  [
    "$graphLookup from the victim's database",
    (c, v) =>
      c.aggregate([
        {
          $graphLookup: {
            from: { db: v, coll: "secrets" },
            startWith: "$a",
            connectFromField: "a",
            connectToField: "a",
            as: "x"
          }
        }
      ])
  ],
  ["$unionWith the victim's database", (c, v) => c.aggregate([{ $unionWith: { coll: { db: v, coll: "secrets" } } }])],
  [
    "$lookup inside $facet",
    (c, v) =>
      c.aggregate([{ $facet: { x: [{ $lookup: { from: { db: v, coll: "secrets" }, pipeline: [], as: "y" } }] } }])
  ],
  ["$out inside $unionWith's pipeline", (c, v) => c.aggregate([{ $unionWith: { coll: "docs", pipeline: [out(v)] } }])],
  [
    "$lookup inside $lookup's pipeline",
    (c, v) =>
      c.aggregate([
        {
          $lookup: {
            from: "docs",
            as: "a",
            pipeline: [{ $lookup: { from: { db: v, coll: "secrets" }, pipeline: [], as: "b" } }]
          }
        }
      ])
  ],
  [
    "$merge whenMatched pipeline with $lookup",
    (c, v) =>
      c.aggregate([
        {
          $merge: {
            into: "mine",
            whenMatched: [{ $lookup: { from: { db: v, coll: "secrets" }, pipeline: [], as: "b" } }]
          }
        }
      ])
  ],
  ["$documents then $out to the victim", (c, v) => c.aggregate([{ $documents: [{ s: "pwned" }] }, out(v)])],
  ["$currentOp (every client's operations)", (c) => c.aggregate([{ $currentOp: { allUsers: true } }])],
  ["$listSessions", (c) => c.aggregate([{ $listSessions: { allUsers: true } }])],
  ["$listLocalSessions", (c) => c.aggregate([{ $listLocalSessions: { allUsers: true } }])],
  ["$changeStream for the cluster", (c) => c.aggregate([{ $changeStream: { allChangesForCluster: true } }])],
  ["$queryStats (other projects' query shapes)", (c) => c.aggregate([{ $queryStats: {} }])],
  ["$listClusterCatalog", (c) => c.aggregate([{ $listClusterCatalog: {} }])],
  ["$planCacheStats", (c) => c.aggregate([{ $planCacheStats: {} }])],
  ["an internal stage", (c) => c.aggregate([{ $_internalSplitPipeline: {} }])],
  ["a stage with two fields", (c, v) => c.aggregate([{ $match: {}, ...out(v) }])],
  ["$out to a system collection", (c) => c.aggregate([{ $out: "system.js" }])],
  ["a stream of $out", (c, v) => Stream.runCollect(c.aggregateStream([out(v)]))],
  ["an update pipeline with $merge", (c, v) => c.updateMany({}, [{ $merge: { into: { db: v, coll: "secrets" } } }])],
  [
    "an update pipeline with $lookup",
    (c, v) => c.updateOne({}, [{ $lookup: { from: { db: v, coll: "secrets" }, pipeline: [], as: "x" } }])
  ],
  ["a bulk update with a $out pipeline", (c, v) => c.bulkWrite([{ updateOne: { filter: {}, update: [out(v)] } }])],
  ["a pipeline that is a string", (c) => c.aggregate("$currentOp")],
  ["a collection named system.profile", (c) => c.other("system.profile").find({})],
  ["a collection named $cmd", (c) => c.other("$cmd").find({})],
  ["a collection name with NUL", (c) => c.other("a\u0000b").find({})]
]

// Objects that look harmless as JavaScript and are sent as a cross-database stage (or the other way round).
let flips = 0
const smuggled: ReadonlyArray<Attack> = [
  ["a stage with toBSON", (c, v) => c.aggregate([{ toBSON: () => out(v) }])],
  [
    "a stage object of a class with toBSON",
    (c, v) =>
      c.aggregate([
        new (class {
          toBSON = () => out(v)
        })()
      ])
  ],
  ["a stage that is a Map", (c, v) => c.aggregate([new Map([["$out", { db: v, coll: "secrets" }]])])],
  [
    "a stage that is a class instance",
    (c, v) =>
      c.aggregate([
        new (class {
          $out = { db: v, coll: "secrets" }
        })()
      ])
  ],
  [
    "a $out spec with toBSON",
    (c, v) => c.aggregate([{ $out: { coll: "x", toBSON: () => ({ db: v, coll: "secrets" }) } }])
  ],
  [
    "a getter that answers a harmless stage once, then $out",
    (c, v) =>
      c.aggregate([
        {
          get $match() {
            return flips++ === 0 ? {} : undefined
          },
          get $out() {
            return flips > 1 ? { db: v, coll: "secrets" } : undefined
          }
        }
      ])
  ],
  ["a DBRef stage carrying $out in its fields", (c, v) => c.aggregate([new DBRef("x", 1 as never, undefined, out(v))])],
  [
    "a duck-typed BSON value",
    (c, v) =>
      c.aggregate([
        { _bsontype: "DBRef", [Symbol.for("@@mdb.bson.version")]: 7, collection: "x", oid: 1, fields: out(v) }
      ])
  ],
  [
    "a __proto__ stage from JSON",
    (c, v) => c.aggregate([JSON.parse(`{"__proto__": {"$out": {"db": "${v}", "coll": "x"}}}`)])
  ],
  [
    "a pipeline array subclass",
    (c, v) => c.aggregate(Object.assign(new (class extends Array {})(), { 0: out(v), length: 1 }))
  ],
  ["an update with toBSON", (c, v) => c.updateMany({}, [{ toBSON: () => out(v) }])],
  ["a filter with toBSON that deletes everything", (c) => c.deleteMany({ toBSON: () => ({}) }, { dbName: "x" })]
]

// Server-side JavaScript, hidden the same ways, for a FREE project (the analyzer refuses it).
const javaScript: ReadonlyArray<Attack> = [
  ["$where in a filter with toBSON", (c) => c.find({ toBSON: () => ({ $where: "sleep(100) || true" }) })],
  ["$where in a Map filter", (c) => c.find(new Map([["$where", "true"]]))],
  [
    "$where in a class instance",
    (c) =>
      c.find(
        new (class {
          $where = "true"
        })()
      )
  ],
  [
    "$function in a projection",
    (c) => c.find({}, { projection: { x: { $function: { body: "return 1", args: [], lang: "js" } } } })
  ],
  [
    "$function in let",
    (c) => c.find({ $expr: true }, { let: { x: { $function: { body: "1", args: [], lang: "js" } } } })
  ],
  [
    "$function in an update pipeline",
    (c) => c.updateOne({}, [{ $set: { x: { $function: { body: "1", args: [], lang: "js" } } } }])
  ],
  ["$where in a bulk-write filter", (c) => c.bulkWrite([{ deleteOne: { filter: { $where: "true" } } }])]
]

describe("MongoEngine isolation against an attacker", () => {
  it.live(
    "every attack is refused before it is sent; the victim's data and the server's databases are unchanged",
    () => {
      const rec = Fx.recording()
      return Effect.gen(function* () {
        const { observer, victimDb, attackerDb, marker, tenancy, mongo, attacker, docs, victimView } = yield* arena(
          "adv",
          canary
        )
        const snapshot = Effect.gen(function* () {
          const view = yield* victimView
          const attackerCollections = yield* Fx.call(() => observer.db(attackerDb.name).listCollections().toArray())
          return { ...view, attacker: attackerCollections.map((c) => c.name).sort() }
        })
        const before = yield* snapshot
        const sentBefore = rec.commands.length

        const target = {
          ...docs,
          other: (name: string) => mongo.collection(name),
          transactionWith: (o: unknown) => mongo.transaction(() => Effect.void, o as never)
        }
        const refusals: Array<string> = []
        for (const [label, run] of [...options, ...stages, ...smuggled, ...javaScript]) {
          const error = yield* Effect.flip(
            Effect.suspend(() => run(target, victimDb.name, marker)).pipe(tenancy.withProject(attacker))
          )
          const tag = (error as { _tag?: string })._tag
          if (error instanceof MongoError) {
            assert.isFalse(error.sent, label)
            assert.include(["forbidden", "invalid_argument"], error.kind, `${label}: ${error.message}`)
            assert.isDefined(error.argument, `${label}: the error names the argument (${error.message})`)
            refusals.push(`${label} → ${error.kind} ${error.argument}`)
          } else {
            assert.strictEqual(tag, "QueryRejected", `${label}: ${String(error)}`)
            refusals.push(`${label} → ${tag}`)
          }
        }
        assert.deepStrictEqual(
          rec.commands.slice(sentBefore).map((c) => `${c.name} ${String(c.command["$db"])}`),
          [],
          "no command of an attack left the process"
        )
        const after = yield* snapshot
        assert.deepStrictEqual(
          after,
          before,
          "the victim's documents and collections, and the attacker's, are unchanged"
        )
        const databases = yield* Fx.call(() => observer.db("admin").admin().listDatabases({ nameOnly: true }))
        assert.isFalse(
          databases.databases.some((d) => d.name.startsWith(marker)),
          "no database was created by an attack"
        )
        const leaked = yield* Fx.call(() =>
          observer.db(attackerDb.name).collection("docs").countDocuments({ s: canary })
        )
        assert.strictEqual(leaked, 0)
        assert.strictEqual(refusals.length, options.length + stages.length + smuggled.length + javaScript.length)
        const state = yield* tenancy.connections
        assert.isTrue(
          state.every((c) => c.breaker === "closed"),
          "refusals count toward no breaker"
        )
      }).pipe(
        Effect.provide(
          Fx.layer({ factory: rec.factory }).pipe(
            Layer.provideMerge(ApiProtections.layerWith({ sql: false, redis: false, rateLimit: false }))
          )
        )
      )
    },
    60_000
  )

  it.live(
    "what is sent is the copy that was checked: getters, proxies, toBSON and later mutations change nothing",
    () => {
      const rec = Fx.recording()
      return Effect.gen(function* () {
        const url = TestServers.url("mongodb")
        const observer = yield* Fx.raw(url)
        const db = yield* Fx.database(observer, url, "adv_sent")
        const registry = yield* MemoryRegistry
        const tenancy = yield* Tenancy.Tenancy
        const mongo = yield* MongoEngine
        const id = Fx.projectId("adv-sent")
        yield* registry.register({ id, tier: "PRO", mongodb: db.url })
        const docs = mongo.collection("docs")
        const as = tenancy.withProject(id)
        yield* docs.insertMany([{ n: 1 }, { n: 2 }]).pipe(as)
        const sent = (name: string) => rec.commands.filter((c) => c.name === name).at(-1)!.command

        let reads = 0
        const changing = {
          get n() {
            return reads++ === 0 ? 1 : { $gt: 0 }
          }
        }
        assert.strictEqual((yield* docs.find(changing).pipe(as)).length, 1)
        assert.deepStrictEqual(plain(sent("find")["filter"]), { n: 1 }, "the getter was read once, and that was sent")

        let calls = 0
        const custom = {
          toBSON() {
            calls++
            return calls === 1 ? { n: 2 } : { n: { $exists: true } }
          }
        }
        assert.strictEqual((yield* docs.find(custom).pipe(as)).length, 1)
        assert.strictEqual(calls, 1, "toBSON was called once, by the engine's copy")
        assert.deepStrictEqual(plain(sent("find")["filter"]), { n: 2 })

        let keyReads = 0
        const proxy = new Proxy({} as Document, {
          ownKeys: () => (keyReads++ === 0 ? ["$match"] : ["$out"]),
          getOwnPropertyDescriptor: () => ({ enumerable: true, configurable: true }),
          get: (_, key) => (key === "$match" ? { n: 1 } : key === "$out" ? { db: "elsewhere", coll: "x" } : undefined)
        })
        yield* docs.aggregate([proxy]).pipe(as)
        assert.deepStrictEqual(plain(sent("aggregate")["pipeline"]), [{ $match: { n: 1 } }], "the proxy was read once")

        const later: Document = { n: 1 }
        const call = docs.deleteMany(later)
        later["n"] = { $exists: true }
        assert.strictEqual((yield* call.pipe(as)).deletedCount, 1, "the filter as it was when the call was made")
        assert.strictEqual(yield* Fx.call(() => observer.db(db.name).collection("docs").countDocuments()), 1)
      }).pipe(Effect.provide(Fx.layer({ factory: rec.factory })))
    }
  )
})
