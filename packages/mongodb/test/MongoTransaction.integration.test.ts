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
import * as Schema from "effect/Schema"
import { MemoryRegistry } from "@tenantpool/core/Registry"
import * as Tenancy from "@tenantpool/core/Tenancy"
import * as TestServers from "@tenantpool/testing/TestServers"
import { MongoEngine } from "../src/MongoEngine.ts"
import { MongoError } from "../src/MongoError.ts"
import * as Fx from "./fixtures/Mongo.ts"

const server = await Fx.flavor(TestServers.url("mongodb"))

class Refused extends Schema.TaggedError<Refused>()("Refused", { reason: Schema.String }) {}

const setup = (label: string) =>
  Effect.gen(function* () {
    const url = TestServers.url("mongodb")
    const observer = yield* Fx.raw(url)
    const db = yield* Fx.database(observer, url, `tx_${label}`)
    const id = Fx.projectId(label)
    yield* (yield* MemoryRegistry).register({ id, tier: "PRO", mongodb: db.url })
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
})
