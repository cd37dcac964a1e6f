/**
 * Bad input to the public functions of `@tenantpool/mongodb` (issue #14 item 7), against
 * the harness's MongoDB-wire server: fast-check properties over hostile arguments (`@tenantpool/testing/Hostile`).
 * Each asserts that the call ends in a success or a typed failure (`MongoError` or a guard verdict) — never a defect,
 * an interruption, a hang or a synchronous throw escaping the Effect —, that a failed call created nothing on the
 * server (the project database's collections and their documents, read with a raw driver client, are as before),
 * and that no canary secret appears in the error's message, its JSON, its cause or the logs. `MongoInput` checks
 * fixed cases by argument name; these properties cover the space around them.
 *
 * Inventory: MongoEngine `layer` (its options), `collection(name, schema)` and the collection's insertOne,
 * insertMany, findOne, find, stream, countDocuments, distinct, updateOne, updateMany, replaceOne, findOneAndUpdate,
 * deleteOne, deleteMany, bulkWrite, aggregate, aggregateStream, createIndex, createIndexes, listIndexes, dropIndex;
 * `transaction`; MongoClient `layerStandalone` (projectId, options); MongoError `fromUnknown`, `scrub`, `classify`.
 *
 * Seeded: `TENANTPOOL_PROPERTY_SEED=<n>` replays another run; fast-check prints the seed of a failure.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as fc from "fast-check"
import type { MongoClient as Driver } from "mongodb"
import { MemoryRegistry } from "@tenantpool/core/Registry"
import * as Tenancy from "@tenantpool/core/Tenancy"
import * as Canary from "@tenantpool/testing/Canary"
import * as H from "@tenantpool/testing/Hostile"
import * as TestServers from "@tenantpool/testing/TestServers"
import * as MongoClientModule from "../src/MongoClient.ts"
import { MongoEngine } from "../src/MongoEngine.ts"
import * as MongoEngineModule from "../src/MongoEngine.ts"
import * as MongoError from "../src/MongoError.ts"
import * as Fx from "./fixtures/Mongo.ts"

const canary = Canary.make()
const c = canary.secret

const tags = ["MongoError", "InvalidConfig", "InvalidProjectId", "InvalidConnectionString", ...H.guardTags]

const expectation = (extra?: Partial<H.Expectation>): H.Expectation => ({
  tags,
  forms: canary.forms,
  logs: canary.logs,
  ...extra
})

// Valid values, mixed in so that later arguments are reached.
const doc = fc.constantFrom<object>({ a: 1 }, { b: "x" }, { a: 2, c: [1, 2] })
const filter = fc.constantFrom<object>({}, { a: 1 }, { a: { $gt: 0 } })
const update = fc.constantFrom<object>({ $set: { a: 3 } }, { $inc: { a: 1 } })
const pipeline = fc.constantFrom<ReadonlyArray<object>>([], [{ $match: {} }], [{ $project: { a: 1 } }])
const findOptions = fc.record({ limit: fc.nat(5), projection: fc.constant({ a: 1 }) }, { requiredKeys: [] })

type Collection = any
type Op = readonly [
  name: string,
  args: ReadonlyArray<fc.Arbitrary<unknown>>,
  call: (c: Collection, a: Array<any>) => unknown
]

const operations: ReadonlyArray<Op> = [
  ["insertOne", [doc], (col, [d]) => col.insertOne(d)],
  ["insertMany", [fc.array(doc, { minLength: 1, maxLength: 2 })], (col, [d]) => col.insertMany(d)],
  ["findOne", [filter, findOptions], (col, [f, o]) => col.findOne(f, o)],
  ["find", [filter, findOptions], (col, [f, o]) => col.find(f, o)],
  ["stream", [filter, findOptions], (col, [f, o]) => col.stream(f, o)],
  ["countDocuments", [filter], (col, [f]) => col.countDocuments(f)],
  ["distinct", [fc.constantFrom("a", "b"), filter], (col, [k, f]) => col.distinct(k, f)],
  ["updateOne", [filter, update], (col, [f, u]) => col.updateOne(f, u)],
  ["updateMany", [filter, update], (col, [f, u]) => col.updateMany(f, u)],
  ["replaceOne", [filter, doc], (col, [f, d]) => col.replaceOne(f, d)],
  ["findOneAndUpdate", [filter, update], (col, [f, u]) => col.findOneAndUpdate(f, u)],
  ["deleteOne", [filter], (col, [f]) => col.deleteOne(f)],
  ["deleteMany", [filter], (col, [f]) => col.deleteMany(f)],
  [
    "bulkWrite",
    [fc.constantFrom([{ insertOne: { document: { a: 1 } } }], [{ deleteOne: { filter: {} } }])],
    (col, [o]) => col.bulkWrite(o)
  ],
  ["aggregate", [pipeline], (col, [p]) => col.aggregate(p)],
  ["aggregateStream", [pipeline], (col, [p]) => col.aggregateStream(p)],
  ["createIndex", [fc.constantFrom({ a: 1 }, { b: -1 })], (col, [i]) => col.createIndex(i)],
  ["createIndexes", [fc.constantFrom([{ key: { a: 1 } }])], (col, [i]) => col.createIndexes(i)],
  ["dropIndex", [fc.constantFrom("a_1", "nope")], (col, [n]) => col.dropIndex(n)]
]

// The project database's collections, their documents and their indexes: what a failed call must leave as it was.
const snapshot = (observer: Driver, database: string) =>
  Fx.call(async () => {
    const db = observer.db(database)
    const names = (await db.listCollections({}, { nameOnly: true }).toArray()).map((x) => x.name).sort()
    const parts = await Promise.all(
      names.map(async (n) => {
        const docs = await db
          .collection(n)
          .find({}, { projection: { _id: 0 } })
          .toArray()
        const indexes = (await db.collection(n).listIndexes().toArray()).map((i) => i.name as string).sort()
        return `${n}:${JSON.stringify(docs)}:${indexes.join("+")}`
      })
    )
    return parts.join("|")
  })

const ofArgs = (args: ReadonlyArray<fc.Arbitrary<unknown>>) => fc.tuple(...args.map((valid) => H.orValid(c, valid, 2)))

describe("mongodb bad input: the engine's collections", () => {
  it.live("every operation: a success or a MongoError, and a failed call leaves the database as it was", () =>
    Effect.gen(function* () {
      const url = TestServers.url("mongodb")
      const observer = yield* Fx.raw(url)
      const db = yield* Fx.database(observer, url, "badinput")
      const id = Fx.projectId("badinput")
      yield* (yield* MemoryRegistry).register({ id, tier: "PRO", mongodb: db.url })
      const tenancy = yield* Tenancy.Tenancy
      const mongo = yield* MongoEngine
      const items = mongo.collection("items")
      for (const [name, args, call] of operations) {
        yield* H.check(
          [ofArgs(args)],
          (samples) =>
            Effect.gen(function* () {
              const before = yield* snapshot(observer, db.name)
              const outcome = yield* H.run(
                () =>
                  call(
                    items,
                    samples.map((s) => s.make())
                  ),
                {
                  timeout: "10 seconds"
                }
              ).pipe(tenancy.withProject(id), Effect.orDie)
              H.expect(`${name}(${samples.map((s) => s.label).join(", ")})`, outcome, expectation())
              if (outcome._tag !== "Success") {
                assert.strictEqual(yield* snapshot(observer, db.name), before, `${name}: a failed call changed nothing`)
              }
            }),
          15
        )
      }
    }).pipe(Effect.scoped, Effect.provide(Layer.mergeAll(Fx.layer(), canary.captureLogs)))
  )

  it.live("collection(name, schema) and transaction(body, options): a MongoError, nothing created", () =>
    Effect.gen(function* () {
      const url = TestServers.url("mongodb")
      const observer = yield* Fx.raw(url)
      const db = yield* Fx.database(observer, url, "badinput_names")
      const id = Fx.projectId("badinput")
      yield* (yield* MemoryRegistry).register({ id, tier: "PRO", mongodb: db.url })
      const tenancy = yield* Tenancy.Tenancy
      const mongo = yield* MongoEngine
      yield* H.check(
        [H.orValid(c, fc.constantFrom("items", "other")), H.orValid(c, fc.constant(undefined))],
        (n, s) =>
          Effect.gen(function* () {
            const before = yield* snapshot(observer, db.name)
            const outcome = yield* H.run(() => (mongo.collection as any)(n.make(), s.make()).insertOne({ a: 1 }), {
              timeout: "10 seconds"
            }).pipe(tenancy.withProject(id), Effect.orDie)
            H.expect(`collection(${n.label}, ${s.label}).insertOne`, outcome, expectation())
            if (outcome._tag !== "Success") assert.strictEqual(yield* snapshot(observer, db.name), before)
          }),
        60
      )
      yield* H.check(
        [
          H.orValid(
            c,
            fc.constant(() => Effect.void)
          ),
          H.orValid(c, fc.constant({}))
        ],
        (b, o) =>
          Effect.gen(function* () {
            const outcome = yield* H.run(() => (mongo.transaction as any)(b.make(), o.make()), {
              timeout: "10 seconds"
            }).pipe(tenancy.withProject(id), Effect.orDie)
            H.expect(`transaction(${b.label}, ${o.label})`, outcome, expectation())
          }),
        40
      )
    }).pipe(Effect.scoped, Effect.provide(Layer.mergeAll(Fx.layer(), canary.captureLogs)))
  )
})

describe("mongodb bad input: layers", () => {
  it.live(
    "MongoEngine.layer: InvalidConfig naming the option, or an engine whose calls end typed",
    () =>
      Effect.gen(function* () {
        const url = TestServers.url("mongodb")
        const observer = yield* Fx.raw(url)
        const db = yield* Fx.database(observer, url, "badinput_layer")
        yield* H.check(
          [
            H.options(c, {
              maxPoolSize: fc.integer({ min: 1, max: 5 }),
              minPoolSize: fc.nat(1),
              connectTimeout: fc.constantFrom("2 seconds", 2000),
              serverSelectionTimeout: fc.constantFrom("2 seconds", 2000),
              appName: fc.constantFrom("tp-badinput"),
              targetCapacity: fc.integer({ min: 1, max: 50 })
            })
          ],
          (o) =>
            Effect.gen(function* () {
              const id = Fx.projectId("layer")
              const outcome = yield* H.run(
                () =>
                  Effect.gen(function* () {
                    yield* (yield* MemoryRegistry).register({ id, tier: "FREE", mongodb: db.url })
                    const mongo = yield* MongoEngine
                    const tenancy = yield* Tenancy.Tenancy
                    return yield* mongo.collection("items").countDocuments({}).pipe(tenancy.withProject(id))
                  }).pipe(
                    Effect.provide(
                      MongoEngineModule.layer(o.make() as any).pipe(
                        Layer.provideMerge(Tenancy.layerMemory({ healthCheckInterval: 0, shutdownTimeout: 0 }))
                      )
                    )
                  ),
                { timeout: "15 seconds" }
              )
              H.expect(`MongoEngine.layer(${o.label})`, outcome, expectation())
            }),
          8
        )
      }).pipe(Effect.scoped, Effect.provide(canary.captureLogs)),
    { timeout: 180_000 }
  )

  it.live("MongoClient.layerStandalone: a typed error, or a client whose calls end typed", () =>
    Effect.gen(function* () {
      const url = TestServers.url("mongodb")
      yield* H.check(
        [
          H.orValid(
            c,
            fc.constant(null).map(() => Fx.projectId("client")),
            2
          ),
          H.options(c, {
            connectionString: fc.constantFrom(Fx.withDatabase(url, "tp_badinput_client")),
            tier: fc.constantFrom("FREE", "PRO")
          })
        ],
        (i, o) =>
          Effect.gen(function* () {
            const outcome = yield* H.run(
              () =>
                Effect.gen(function* () {
                  const client = yield* MongoClientModule.MongoClient
                  return yield* client.find("items", {})
                }).pipe(Effect.provide(MongoClientModule.layerStandalone(i.make() as any, o.make() as any))),
              { timeout: "15 seconds" }
            )
            H.expect(`MongoClient.layerStandalone(${i.label}, ${o.label})`, outcome, expectation())
          }),
        40
      )
    }).pipe(Effect.provide(canary.captureLogs))
  )
})

describe("mongodb bad input: pure functions", () => {
  it.live("MongoError.fromUnknown, scrub and classify never throw nor echo the canary", () =>
    H.check(
      [H.anything(c)],
      (s) =>
        Effect.sync(() => {
          for (const [name, f] of [
            ["fromUnknown", () => MongoError.fromUnknown("find", s.make())],
            ["scrub", () => MongoError.scrub(s.make() as any, [c])],
            ["classify", () => MongoError.classify(s.make() as any)]
          ] as const) {
            let outcome: H.Outcome
            try {
              const value: unknown = f()
              outcome =
                value instanceof MongoError.MongoError
                  ? { _tag: "Failure", error: value, pretty: value.message }
                  : { _tag: "Success", value: name === "scrub" ? undefined : value }
            } catch (thrown) {
              outcome = { _tag: "Threw", thrown }
            }
            H.expect(`MongoError.${name}(${s.label})`, outcome, expectation())
          }
        }),
      300
    )
  )
})
