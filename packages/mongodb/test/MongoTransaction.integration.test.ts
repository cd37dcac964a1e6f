/**
 * Transactions. They need a MongoDB replica set or a sharded cluster: FerretDB (the harness's MongoDB-wire server)
 * has no transactions, and neither has a standalone mongod (the testcontainers `mongo:7`). So which test runs is
 * decided by asking the shared server what it is (`hello` + `buildInfo`) before the tests are collected:
 *
 * - on a server without transactions, the engine must refuse with a typed `transactions_unsupported` error before
 *   running the body or sending anything that could apply;
 * - on a replica set or mongos (point TENANTPOOL_MONGODB_URL or MONGODB_URL at one), commits, aborts and
 *   retries of transient conflicts are checked for real.
 *
 * Exactly one of the two runs (`it.live.runIf`), so this file never passes without asserting something.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import { MemoryRegistry } from "@tenantpool/core/Registry"
import * as Tenancy from "@tenantpool/core/Tenancy"
import * as ApiProtections from "@tenantpool/protections/ApiProtections"
import * as TestServers from "@tenantpool/testing/TestServers"
import { MongoEngine } from "../src/MongoEngine.ts"
import { MongoError } from "../src/MongoError.ts"
import { txCollection } from "../src/internal/transactions.ts"
import * as Fx from "./fixtures/Mongo.ts"

const server = await Fx.flavor(TestServers.url("mongodb"))

class Refused extends Schema.TaggedError<Refused>()("Refused", { reason: Schema.String }) {}

const setup = (label: string, tier: "FREE" | "PRO" = "PRO") =>
  Effect.gen(function* () {
    const url = TestServers.url("mongodb")
    const observer = yield* Fx.raw(url)
    const db = yield* Fx.database(observer, url, `tx_${label}`)
    const id = Fx.projectId(label)
    yield* (yield* MemoryRegistry).register({ id, tier, mongodb: db.url })
    const tenancy = yield* Tenancy.Tenancy
    return {
      mongo: yield* MongoEngine,
      tenancy,
      id,
      raw: observer.db(db.name),
      as: <A, E, R>(effect: Effect.Effect<A, E, R>) => effect.pipe(tenancy.withProject(id))
    }
  })

describe("MongoEngine transactions", () => {
  it.live.runIf(!server.transactions)(
    `a server without transactions (${server.description}) refuses them with a typed error, before the body runs`,
    () => {
      const rec = Fx.recording()
      return Effect.gen(function* () {
        const { mongo, tenancy, id, raw, as } = yield* setup("unsupported")
        let ran = false
        const error = yield* Effect.flip(
          as(
            mongo.transaction((tx) =>
              Effect.sync(() => {
                ran = true
              }).pipe(Effect.andThen(tx.collection("accounts").insertOne({ owner: "a", balance: 10 })))
            )
          )
        )
        assert.instanceOf(error, MongoError)
        const e = error as MongoError
        assert.strictEqual(e.kind, "transactions_unsupported")
        assert.isFalse(e.sent)
        assert.isFalse(e.isInfrastructure, "a missing feature is not an unhealthy server")
        assert.match(e.message, /replica set or sharded cluster/)
        assert.include(e.message, server.ferretdb ? "FerretDB" : "standalone")
        assert.isFalse(ran, "the body never ran")
        assert.isFalse(
          rec.commands.some((c) => c.name === "insert" || c.command["txnNumber"] !== undefined),
          "nothing transactional was sent"
        )
        assert.strictEqual(yield* Fx.call(() => raw.collection("accounts").countDocuments()), 0)
        assert.strictEqual(yield* tenancy.breakerState(id, "mongodb"), "closed")
        // The same project's plain operations are unaffected.
        yield* as(mongo.collection("accounts").insertOne({ owner: "a", balance: 10 }))
      }).pipe(Effect.provide(Fx.layer({ factory: rec.factory })))
    }
  )

  // Real MongoDB only (replica set or mongos): FerretDB and standalone servers have no transactions; the test above
  // covers them. Set TENANTPOOL_MONGODB_URL=mongodb://…/?replicaSet=rs0 to run this one.
  it.live.runIf(server.transactions)(
    "commits every write of the body together, or none of them when the body fails",
    () =>
      Effect.gen(function* () {
        const { mongo, raw, as } = yield* setup("commit")
        const accounts = mongo.collection<{ owner: string; balance: number }>("accounts")
        yield* as(
          accounts.insertMany([
            { owner: "a", balance: 100 },
            { owner: "b", balance: 0 }
          ])
        )

        const moved = yield* as(
          mongo.transaction((tx) =>
            Effect.gen(function* () {
              const c = tx.collection<{ owner: string; balance: number }>("accounts")
              yield* c.updateOne({ owner: "a" }, { $inc: { balance: -30 } })
              yield* c.updateOne({ owner: "b" }, { $inc: { balance: 30 } })
              yield* tx.collection("ledger").insertOne({ from: "a", to: "b", amount: 30 })
              return (yield* c.findOne({ owner: "b" }))?.balance
            })
          )
        )
        assert.strictEqual(moved, 30, "reads inside the transaction see its own writes")
        const balances = yield* Fx.call(() =>
          raw
            .collection("accounts")
            .find({}, { projection: { _id: 0 }, sort: { owner: 1 } })
            .toArray()
        )
        assert.deepStrictEqual(balances as Array<unknown>, [
          { owner: "a", balance: 70 },
          { owner: "b", balance: 30 }
        ])
        assert.strictEqual(yield* Fx.call(() => raw.collection("ledger").countDocuments()), 1)

        const failed = yield* Effect.flip(
          as(
            mongo.transaction((tx) =>
              Effect.gen(function* () {
                const c = tx.collection<{ owner: string; balance: number }>("accounts")
                yield* c.updateOne({ owner: "a" }, { $inc: { balance: -1_000 } })
                const a = yield* c.findOne({ owner: "a" })
                if ((a?.balance ?? 0) < 0) return yield* new Refused({ reason: "insufficient funds" })
                return a
              })
            )
          )
        )
        assert.instanceOf(failed, Refused, "the body's own error comes back as itself")
        const after = yield* Fx.call(() => raw.collection("accounts").findOne({ owner: "a" }))
        assert.strictEqual(after?.["balance"], 70, "the aborted transaction changed nothing")
      }).pipe(Effect.provide(Fx.layer()))
  )

  it.live.runIf(server.transactions)(
    "conflicting transactions are retried by withTransaction until each applies once",
    () =>
      Effect.gen(function* () {
        const { mongo, raw, as } = yield* setup("conflict")
        const counters = mongo.collection<{ _id: string; n: number }>("counters")
        yield* as(counters.insertOne({ _id: "c", n: 0 }))
        yield* Effect.forEach(
          Array.from({ length: 10 }, (_, i) => i),
          () =>
            as(
              mongo.transaction((tx) =>
                Effect.gen(function* () {
                  const c = tx.collection<{ _id: string; n: number }>("counters")
                  const doc = yield* c.findOne({ _id: "c" })
                  yield* Effect.sleep("5 millis")
                  yield* c.updateOne({ _id: "c" }, { $set: { n: (doc?.n ?? 0) + 1 } })
                })
              )
            ),
          { concurrency: 10 }
        )
        const counter = yield* Fx.call(() => raw.collection("counters").findOne({ _id: "c" as never }))
        assert.strictEqual(counter?.["n"], 10, "no increment was lost or applied twice")
      }).pipe(Effect.provide(Fx.layer()))
  )

  // Runs on every server: the body's collections as the engine makes them, on a session no server was asked for
  // (FerretDB has none), with the real protections of a FREE project. What is refused never touches the session or
  // the driver; what passes does.
  it.live("the protections check each operation of a transaction body before it reaches the session", () =>
    Effect.gen(function* () {
      const { as } = yield* setup("tx-checked", "FREE")
      const touched: Array<string> = []
      const spy = (label: string): any =>
        new Proxy(
          {},
          {
            get: (_, key) => {
              touched.push(`${label}.${String(key)}`)
              throw new Error("not sent in this test")
            }
          }
        )
      const c = txCollection(
        {
          database: "tx",
          clients: { secrets: [] },
          collections: new Map(),
          cacheGen: spy("gen"),
          db: spy("db")
        } as any,
        spy("gen"),
        spy("session"),
        "items"
      )
      for (const [label, op] of [
        ["findOne $where", c.findOne({ $where: "true" })],
        ["countDocuments $where", c.countDocuments({ $where: "true" })],
        [
          "updateOne $function",
          c.updateOne({ n: 1 }, [
            { $set: { m: { $function: { body: "function() { return 1 }", args: [], lang: "js" } } } }
          ])
        ],
        ["deleteOne $where", c.deleteOne({ $where: "true" })],
        ["aggregate $where", c.aggregate([{ $match: { $where: "true" } }])]
      ] as ReadonlyArray<readonly [string, Effect.Effect<unknown, unknown>]>) {
        const error = yield* Effect.flip(as(op))
        assert.strictEqual((error as { _tag?: string })._tag, "QueryRejected", `${label}: ${String(error)}`)
      }
      assert.deepStrictEqual(touched, [], "nothing refused reached the session or the driver")
      const passed = yield* Effect.flip(as(c.insertOne({ n: 1 })))
      assert.instanceOf(passed, MongoError, "an operation the protections pass goes on to the driver")
      assert.isAbove(touched.length, 0)
    }).pipe(
      Effect.provide(
        Fx.layer().pipe(Layer.provideMerge(ApiProtections.layerWith({ sql: false, redis: false, rateLimit: false })))
      )
    )
  )

  it.live.runIf(server.transactions)(
    "the protections check every operation in a transaction: a FREE project's server-side JavaScript is refused unsent",
    () => {
      const rec = Fx.recording()
      return Effect.gen(function* () {
        const { mongo, raw, as } = yield* setup("tx-protected", "FREE")
        yield* as(mongo.collection("items").insertOne({ n: 1 }))
        const attempts: ReadonlyArray<readonly [string, (tx: any) => Effect.Effect<unknown, unknown>]> = [
          ["findOne $where", (tx) => tx.collection("items").findOne({ $where: "true" })],
          [
            "find $expr $function",
            (tx) =>
              tx
                .collection("items")
                .find({ $expr: { $function: { body: "function() { return true }", args: [], lang: "js" } } })
          ],
          ["updateMany $where", (tx) => tx.collection("items").updateMany({ $where: "true" }, { $set: { n: 2 } })],
          ["deleteMany $where", (tx) => tx.collection("items").deleteMany({ $where: "true" })],
          [
            "aggregate $accumulator",
            (tx) =>
              tx.collection("items").aggregate([
                {
                  $group: {
                    _id: null,
                    a: {
                      $accumulator: {
                        init: "function() { return 0 }",
                        accumulate: "function(s) { return s }",
                        accumulateArgs: [],
                        merge: "function(a) { return a }",
                        lang: "js"
                      }
                    }
                  }
                }
              ])
          ]
        ]
        for (const [label, attempt] of attempts) {
          const sent = rec.commands.length
          const error = yield* Effect.flip(as(mongo.transaction((tx) => attempt(tx))))
          assert.strictEqual((error as { _tag?: string })._tag, "QueryRejected", `${label}: ${String(error)}`)
          assert.isFalse(
            rec.commands.slice(sent).some((c) => ["find", "update", "delete", "aggregate"].includes(c.name)),
            `${label}: nothing of it was sent`
          )
        }
        const docs = yield* Fx.call(() => raw.collection("items").find({}).toArray())
        assert.deepStrictEqual(
          docs.map((d) => d["n"]),
          [1],
          "the collection is as it was"
        )
      }).pipe(
        Effect.provide(
          Fx.layer({ factory: rec.factory }).pipe(
            Layer.provideMerge(ApiProtections.layerWith({ sql: false, redis: false, rateLimit: false }))
          )
        )
      )
    }
  )
})
