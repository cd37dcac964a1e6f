/**
 * MongoDB findOne by `_id` at 10 and 100 in flight: the raw driver (plain and from Effect) against the guard
 * (`MongoEngine`), same pool size, same server, interleaved rounds; the spec's design (the driver's pool, an
 * opossum breaker, prom-client metrics) as a contrast row.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { MongoClient, ObjectId } from "mongodb"
import { MemoryRegistry } from "@tenantpool/core/Registry"
import * as Tenancy from "@tenantpool/core/Tenancy"
import * as MongoEngine from "@tenantpool/mongodb/MongoEngine"
import { effectLoops, interleave, p99Row, promiseLoops, throughputRow, type Variant } from "../internal/loops.ts"
import { specMetrics, specProject } from "../internal/spec.ts"
import { build } from "../internal/stack.ts"
import type { Row, Run } from "../internal/suite.ts"

const pool = 20
const project = "bench-project"

/** `url` with `db` as its database. @internal */
export const withDb = (url: string, db: string): string => {
  const u = new URL(url)
  u.pathname = `/${db}`
  return u.toString()
}

/** @internal */
export const run: Run = async (ctx) => {
  const dbName = `tp_bench_findone_${process.pid}`
  const url = withDb(ctx.urls.mongodb!, dbName)
  const ids = Array.from({ length: 1_000 }, () => new ObjectId())
  const raw = new MongoClient(url, {
    appName: "bench-raw",
    maxPoolSize: pool,
    minPoolSize: 0,
    maxConnecting: 2,
    retryReads: false,
    serverSelectionTimeoutMS: 5_000
  })
  await raw.connect()
  const items = raw.db(dbName).collection("items")
  await items.deleteMany({})
  await items.insertMany(ids.map((_id, n) => ({ _id, n, payload: "x".repeat(100) })))
  const id = (i: number) => ids[i % ids.length]!

  const guard = await build(
    MongoEngine.layer({ maxPoolSize: pool }).pipe(
      Layer.provideMerge(
        Tenancy.layerMemory({
          healthCheckInterval: 0,
          shutdownTimeout: 0,
          tiers: { PRO: { minPool: 0, maxPool: pool, maxConcurrent: 200, maxQueue: 200 } }
        })
      )
    )
  )
  await guard.run(Effect.flatMap(MemoryRegistry, (r) => r.register({ id: project, tier: "PRO", mongodb: url })))
  const guardRound = (n: number, k: number) =>
    guard.run(
      Effect.gen(function* () {
        const tenancy = yield* Tenancy.Tenancy
        const coll = (yield* MongoEngine.MongoEngine).collection<{ n: number; payload: string }>("items")
        return yield* effectLoops(n, ctx.seconds * k, (i) => coll.findOne({ _id: id(i) })).pipe(
          tenancy.withProject(project)
        )
      })
    )
  const spec = specProject(specMetrics(), "mongodb", project, "PRO", { _tag: "shared", conn: items })

  const variants: ReadonlyArray<Variant> = [
    ["raw", (n, k) => promiseLoops(n, ctx.seconds * k, (i) => items.findOne({ _id: id(i) }))],
    [
      "effect-raw",
      (n, k) =>
        Effect.runPromise(effectLoops(n, ctx.seconds * k, (i) => Effect.promise(() => items.findOne({ _id: id(i) }))))
    ],
    ["guard", guardRound],
    ["spec", (n, k) => promiseLoops(n, ctx.seconds * k, (i) => spec.call("findOne", (c) => c.findOne({ _id: id(i) })))]
  ]
  const inflights = [10, 100]
  const samples = await interleave(variants, inflights, ctx.rounds, ctx.progress)
  const w = "mongodb-findone"
  const rows: Array<Row> = []
  for (const n of inflights) {
    rows.push(throughputRow(w, samples, "guard", "raw", n, { on: "ratio", op: ">=", value: 0.9 }))
    rows.push(throughputRow(w, samples, "guard", "effect-raw", n))
    rows.push(throughputRow(w, samples, "spec", "raw", n))
    rows.push(p99Row(w, samples, "guard", "raw", n, { on: "ratio", op: "<=", value: 1.2 }))
  }
  await spec.close()
  await guard.close()
  await raw.db(dbName).dropDatabase()
  await raw.close()
  return rows
}
