/**
 * The MongoDB analyzer against the MongoDB-wire test server (FerretDB): `$where` refused through the guard before
 * it is sent, a whole-collection scan of a big-ish collection refused for FREE and flagged for PRO, small
 * collections let through, and plan verdicts cached per filter shape.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { type Db, MongoClient } from "mongodb"
import * as Tenancy from "@tenantpool/core/Tenancy"
import * as Isolation from "@tenantpool/testing/Isolation"
import * as TestServers from "@tenantpool/testing/TestServers"
import * as ApiProtections from "../src/ApiProtections.ts"
import * as MongoAnalyzer from "../src/MongoAnalyzer.ts"
import * as G from "./fixtures/Guarded.ts"
import { project } from "./fixtures/Projects.ts"

const database = Effect.acquireRelease(
  Effect.promise(async () => {
    const client = await new MongoClient(TestServers.url("mongodb")).connect()
    return { client, db: client.db(Isolation.freshMongoDbName("mongo-protect")) }
  }),
  ({ client, db }) =>
    Effect.promise(() =>
      db.dropDatabase().then(
        () => client.close(),
        () => client.close()
      )
    )
)

const fill = (db: Db, name: string, n: number) =>
  Effect.promise(async () => {
    const docs = Array.from({ length: n }, (_, i) => ({ i, k: i % 10, label: `doc-${i}` }))
    for (let at = 0; at < docs.length; at += 1_000) await db.collection(name).insertMany(docs.slice(at, at + 1_000))
  })

const policies = {
  FREE: { collectionScanMinDocuments: 1_000 },
  PRO: { collectionScanMinDocuments: 1_000 }
} as const

describe("MongoAnalyzer (FerretDB)", () => {
  it.live("refuses $where through the guard for FREE: the engine never runs it, nor an explain", () => {
    let explains = 0
    const protections = ApiProtections.layerWith({
      rateLimit: false,
      sql: false,
      redis: false,
      mongo: {
        policies,
        explain: () =>
          Effect.sync(() => {
            explains++
            return { queryPlanner: { winningPlan: { stage: "COLLSCAN" } } }
          })
      }
    })
    return Effect.gen(function* () {
      const { handle, driver } = yield* G.register("mongodb")
      yield* G.registerProject("js-free", "FREE", "mongodb")
      const tenancy = yield* Tenancy.Tenancy
      const error = yield* Effect.flip(
        G.call(handle, { collection: "docs", filter: { $where: "this.i > 3" } }).pipe(tenancy.withProject("js-free"))
      )
      assert.strictEqual(error._tag, "QueryRejected")
      if (error._tag === "QueryRejected") {
        assert.strictEqual(error.rule, "mongo-javascript")
        assert.strictEqual(error.engine, "mongodb")
      }
      assert.strictEqual(driver.calls, 0)
      assert.strictEqual(explains, 0, "refused before any explain")
    }).pipe(Effect.provide(protections), G.provide())
  })

  it.live("refuses a whole-collection scan of a big-ish collection for FREE, flags it for PRO, passes small ones", () =>
    Effect.gen(function* () {
      const { db } = yield* database
      yield* fill(db, "big", 5_000)
      yield* fill(db, "small", 100)
      const analyzer = yield* MongoAnalyzer.make({
        explain: MongoAnalyzer.explainWith(() => db),
        count: MongoAnalyzer.countWith(() => db),
        policies
      })
      const run = (tier: "FREE" | "PRO", collection: string, filter: unknown) =>
        Effect.gen(function* () {
          const inspection = analyzer.inspect(project(`scan-${tier.toLowerCase()}`, tier), "find", {
            collection,
            filter
          })
          return Effect.isEffect(inspection) ? yield* inspection : inspection
        })

      const explain = yield* Effect.promise(() => db.collection("big").find({ k: 3 }).explain("queryPlanner"))
      console.log(`[FerretDB explain] ${JSON.stringify((explain as { queryPlanner?: unknown }).queryPlanner)}`)
      assert.isTrue(MongoAnalyzer.isCollectionScan(explain), "FerretDB's plan for an unindexed filter is a scan")

      const free = yield* run("FREE", "big", { k: 3 })
      assert.deepStrictEqual([free?.action, free?.rule], ["reject", "mongo-collscan"])
      const pro = yield* run("PRO", "big", { k: 3 })
      assert.deepStrictEqual([pro?.action, pro?.rule], ["flag", "mongo-collscan"])
      assert.isUndefined(yield* run("FREE", "small", { k: 3 }), "100 documents may be scanned")

      const explains = analyzer.stats().explains
      assert.deepStrictEqual((yield* run("FREE", "big", { k: 7 }))?.rule, "mongo-collscan")
      assert.strictEqual(analyzer.stats().explains, explains, "same shape, other values: cached")
      yield* run("FREE", "big", { label: "doc-1" })
      assert.strictEqual(analyzer.stats().explains, explains + 1, "another shape is explained")
    })
  )

  it.live("flags through the guard: a PRO scan runs and is recorded as a flag", () =>
    Effect.gen(function* () {
      const { db } = yield* database
      yield* fill(db, "events", 2_000)
      const protections = ApiProtections.layerWith({
        rateLimit: false,
        sql: false,
        redis: false,
        mongo: { policies, explain: MongoAnalyzer.explainWith(() => db), count: MongoAnalyzer.countWith(() => db) }
      })
      yield* Effect.gen(function* () {
        const { handle, driver } = yield* G.register("mongodb")
        yield* G.registerProject("scan-pro", "PRO", "mongodb")
        const tenancy = yield* Tenancy.Tenancy
        const result = yield* G.call(handle, { collection: "events", filter: { k: 1 } }).pipe(
          tenancy.withProject("scan-pro")
        )
        assert.strictEqual(result, "ok")
        assert.strictEqual(driver.calls, 1)
        const events = yield* (yield* ApiProtections.ApiProtections).recentEvents
        assert.deepStrictEqual(
          events.map((e) => [e._tag, e.rule, e.engine, e.tier]),
          [["Flagged", "mongo-collscan", "mongodb", "PRO"]]
        )
      }).pipe(Effect.provide(protections), G.provide())
    })
  )
})
