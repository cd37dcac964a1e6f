/**
 * The API protections through the real MongoDB engine: filters and pipelines reach the installed protections, so
 * the tier's policy (no server-side JavaScript on FREE, rate limits) applies to the engine's operations.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { MemoryRegistry } from "@tenantpool/core/Registry"
import * as Tenancy from "@tenantpool/core/Tenancy"
import * as ApiProtections from "@tenantpool/protections/ApiProtections"
import * as Isolation from "@tenantpool/testing/Isolation"
import * as TestServers from "@tenantpool/testing/TestServers"
import * as MongoEngine from "../src/MongoEngine.ts"

const dbUrl = (name: string) => {
  const u = new URL(TestServers.url("mongodb"))
  u.pathname = `/${Isolation.freshMongoDbName(name)}`
  return u.toString()
}

describe("MongoEngine with protections", () => {
  it.live(
    "refuses server-side JavaScript for FREE, before the server sees it, and rate-limits per project",
    () =>
      Effect.gen(function* () {
        const registry = yield* MemoryRegistry
        const tenancy = yield* Tenancy.Tenancy
        const mongo = yield* MongoEngine.MongoEngine
        yield* registry.register({ id: "mprot-free", tier: "FREE", mongodb: dbUrl("mprot_free") })
        const docs = mongo.collection<{ n: number }>("docs")
        const asFree = tenancy.withProject("mprot-free")
        yield* Effect.gen(function* () {
          yield* docs.insertOne({ n: 1 }).pipe(asFree)
          assert.strictEqual(yield* docs.countDocuments({ n: 1 }).pipe(asFree), 1)
          const js = yield* Effect.flip(docs.find({ $where: "this.n > 0" } as never).pipe(asFree))
          assert.strictEqual(js._tag, "QueryRejected")
          if (js._tag === "QueryRejected") assert.strictEqual(js.rule, "mongo-javascript")
          const inPipeline = yield* Effect.flip(
            docs
              .aggregate([{ $match: { $expr: { $function: { body: "return true", args: [], lang: "js" } } } }])
              .pipe(asFree)
          )
          assert.strictEqual(inPipeline._tag, "QueryRejected")
        }).pipe(Effect.provide(ApiProtections.layerWith({ sql: false, redis: false, rateLimit: false })))
        // A tiny rate: the third call in the same second is refused with RateLimited and a retry hint.
        const limited = yield* Effect.gen(function* () {
          const results = []
          for (let i = 0; i < 3; i++) results.push(yield* Effect.result(docs.countDocuments({}).pipe(asFree)))
          return results
        }).pipe(
          Effect.provide(
            ApiProtections.layerWith({
              sql: false,
              redis: false,
              mongo: false,
              rateLimit: { tiers: { FREE: { perSecond: 1, burst: 2 } } }
            })
          )
        )
        assert.deepStrictEqual(
          limited.map((r) => (r._tag === "Success" ? "ok" : r.failure._tag)),
          ["ok", "ok", "RateLimited"]
        )
      }).pipe(
        Effect.provide(MongoEngine.layer().pipe(Layer.provideMerge(Tenancy.layerMemory({ healthCheckInterval: 0 }))))
      ),
    60_000
  )
})
