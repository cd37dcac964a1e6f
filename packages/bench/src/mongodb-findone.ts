/**
 * findOne by _id at N in flight: the raw MongoDB driver vs the tenantpool guard (`MongoEngine`), same pool size,
 * same server, same run. Rounds interleave the variants (the order alternates each round) and the median is
 * reported, with the guard/raw ratio and the client CPU per operation (process.cpuUsage over the round / ops).
 *
 * Variants:
 * - raw: a MongoClient with the engine's pool options (maxPoolSize = --pool, maxConnecting 2, retryReads off),
 *   `collection.findOne({ _id })` in async/await loops;
 * - raw+limits: the raw call with what the guard adds to each command (`maxTimeMS`, an `AbortSignal`), to separate
 *   the cost of the timeout contract on the server from the guard's own;
 * - effect-raw: the same driver call in Effect fibers (`Effect.promise`), to separate the runtime from the guard;
 * - guard: `mongo.collection("items").findOne({ _id })` through the full guard (admission, breakers, attempt
 *   timeout with maxTimeMS and an abort signal, metrics), in Effect fibers, the project's tier sized to --pool;
 *   the per-server budget (`targetCapacity`) is the engine's default, the pool size (or --capacity);
 * - guard-wide: the same with a per-server budget of 10 x the pool, so that the driver's wait queue, not the
 *   guard's fair queue, holds what exceeds the pool.
 *
 * Usage: node packages/bench/src/mongodb-findone.ts [--pool 20] [--seconds 2] [--rounds 5] [--capacity N]
 * Server: TENANTPOOL_MONGODB_URL (or MONGODB_URL) if set, else a private local server (FerretDB) started here.
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { MongoClient, ObjectId } from "mongodb"
import { MemoryRegistry } from "@tenantpool/core/Registry"
import * as Tenancy from "@tenantpool/core/Tenancy"
import * as MongoEngine from "@tenantpool/mongodb/MongoEngine"
import * as Servers from "@tenantpool/testing/Servers"
import { arg, median } from "./internal/report.ts"

const pool = arg("pool", 20)
const capacity = arg("capacity", 0)
const seconds = arg("seconds", 2)
const rounds = arg("rounds", 5)
const inflights = [10, 100]

const envUrl = process.env["TENANTPOOL_MONGODB_URL"] ?? process.env["MONGODB_URL"]
const server = envUrl === undefined ? await Servers.startPrivateServer("mongodb") : undefined
const base = envUrl ?? server!.url
const withDb = (url: string, db: string) => {
  const u = new URL(url)
  u.pathname = `/${db}`
  return u.toString()
}
const dbName = `tp_bench_findone_${process.pid}`
const url = withDb(base, dbName)

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
const rawItems = raw.db(dbName).collection("items")
await rawItems.deleteMany({})
await rawItems.insertMany(ids.map((_id, n) => ({ _id, n, payload: "x".repeat(100) })))
const info = await raw.db("admin").command({ buildInfo: 1 })
const serverName =
  typeof info["ferretdbVersion"] === "string" ? `FerretDB ${info["ferretdbVersion"]}` : `MongoDB ${info["version"]}`

interface Sample {
  readonly opsPerSecond: number
  readonly cpuMicrosPerOp: number
}

const measure = async (loops: () => Promise<number>): Promise<Sample> => {
  const cpu = process.cpuUsage()
  const started = performance.now()
  const count = await loops()
  const elapsed = (performance.now() - started) / 1000
  const used = process.cpuUsage(cpu)
  return { opsPerSecond: count / elapsed, cpuMicrosPerOp: (used.user + used.system) / count }
}

// `inflight` async loops for `seconds`; returns the number of operations.
const promiseLoops = (inflight: number, op: (i: number) => Promise<unknown>) => async (): Promise<number> => {
  let stop = false
  let count = 0
  const timer = setTimeout(() => (stop = true), seconds * 1000)
  await Promise.all(
    Array.from({ length: inflight }, async (_, w) => {
      let i = w
      while (!stop) {
        await op(i++)
        count++
      }
    })
  )
  clearTimeout(timer)
  return count
}

// The same with `inflight` Effect fibers.
const effectLoops = <E>(inflight: number, op: (i: number) => Effect.Effect<unknown, E>): Effect.Effect<number, E> =>
  Effect.suspend(() => {
    let stop = false
    let count = 0
    const timer = setTimeout(() => (stop = true), seconds * 1000)
    const worker = (w: number) => {
      let i = w
      return Effect.whileLoop({
        while: () => !stop,
        body: () => op(i++),
        step: () => {
          count++
        }
      })
    }
    return Effect.all(
      Array.from({ length: inflight }, (_, w) => worker(w)),
      { concurrency: "unbounded", discard: true }
    ).pipe(
      Effect.map(() => {
        clearTimeout(timer)
        return count
      })
    )
  })

// A guard stack (engine + in-memory tenancy) whose per-server budget (`targetCapacity`) is `capacity`.
const stack = (capacity: number) =>
  MongoEngine.layer({ maxPoolSize: pool, targetCapacity: capacity }).pipe(
    Layer.provideMerge(
      Tenancy.layerMemory({
        healthCheckInterval: 0,
        tiers: { PRO: { minPool: 0, maxPool: pool, maxConcurrent: 200, maxQueue: 200 } }
      })
    )
  )

const program = Effect.gen(function* () {
  const guarded = (capacity: number) =>
    Effect.gen(function* () {
      const context = yield* Layer.build(stack(capacity))
      const run = <A, E>(effect: Effect.Effect<A, E, Tenancy.Tenancy | MongoEngine.MongoEngine | MemoryRegistry>) =>
        Effect.runPromiseWith(context)(effect)
      yield* Effect.promise(() =>
        run(Effect.flatMap(MemoryRegistry, (r) => r.register({ id: "bench-project", tier: "PRO", mongodb: url })))
      )
      return (n: number) => () =>
        run(
          Effect.gen(function* () {
            const tenancy = yield* Tenancy.Tenancy
            const items = (yield* MongoEngine.MongoEngine).collection<{ n: number; payload: string }>("items")
            return yield* effectLoops(n, (i) => items.findOne({ _id: ids[i % ids.length]! })).pipe(
              tenancy.withProject("bench-project")
            )
          })
        )
    })
  const narrow = yield* guarded(capacity > 0 ? capacity : pool)
  const wide = yield* guarded(10 * pool)

  const variants: ReadonlyArray<readonly [string, (inflight: number) => () => Promise<number>]> = [
    ["raw", (n) => promiseLoops(n, (i) => rawItems.findOne({ _id: ids[i % ids.length]! }))],
    [
      "effect-raw",
      (n) => () =>
        Effect.runPromise(effectLoops(n, (i) => Effect.promise(() => rawItems.findOne({ _id: ids[i % ids.length]! }))))
    ],
    [
      "raw+limits",
      (n) =>
        promiseLoops(n, (i) =>
          rawItems.findOne({ _id: ids[i % ids.length]! }, { maxTimeMS: 10_000, signal: new AbortController().signal })
        )
    ],
    ["guard", narrow],
    ["guard-wide", wide]
  ]

  // Warm-up: connections of every pool, JIT.
  for (const [, make] of variants) yield* Effect.promise(() => measure(make(100)))

  const samples = new Map<string, Array<Sample>>()
  for (let r = 0; r < rounds; r++) {
    const order = r % 2 === 0 ? variants : [...variants].reverse()
    for (const inflight of inflights) {
      for (const [name, make] of order) {
        const sample = yield* Effect.promise(() => measure(make(inflight)))
        const key = `${name}@${inflight}`
        samples.set(key, [...(samples.get(key) ?? []), sample])
      }
    }
  }

  console.log(
    `\nfindOne by _id on ${serverName}, pool ${pool}, ${seconds} s x ${rounds} rounds, median (node ${process.version})`
  )
  console.log(
    `  guard: per-server budget ${capacity > 0 ? capacity : pool} (the default, = pool size); guard-wide: ${10 * pool}`
  )
  for (const inflight of inflights) {
    const med = (name: string) => {
      const s = samples.get(`${name}@${inflight}`)!
      return {
        ops: median(s.map((x) => x.opsPerSecond)),
        cpu: median(s.map((x) => x.cpuMicrosPerOp)),
        all: s.map((x) => Math.round(x.opsPerSecond))
      }
    }
    const r = med("raw")
    const e = med("effect-raw")
    console.log(`  ${inflight} in flight`)
    for (const name of ["raw", "raw+limits", "effect-raw", "guard", "guard-wide"]) {
      const m = med(name)
      console.log(
        `    ${name.padEnd(11)} ${Math.round(m.ops).toString().padStart(7)} ops/s  ${m.cpu.toFixed(1).padStart(6)} µs CPU/op   rounds: ${m.all.join(" ")}`
      )
    }
    for (const name of ["raw+limits", "guard", "guard-wide"]) {
      const g = med(name)
      console.log(
        `    ${`${name} / raw`.padEnd(24)} ${(g.ops / r.ops).toFixed(3)}x ops/s   (${(g.cpu - r.cpu).toFixed(1)} µs CPU/op)`
      )
      console.log(
        `    ${`${name} / effect-raw`.padEnd(24)} ${(g.ops / e.ops).toFixed(3)}x ops/s   (${(g.cpu - e.cpu).toFixed(1)} µs CPU/op)`
      )
    }
  }
}).pipe(Effect.scoped)

await Effect.runPromise(program)
await raw.db(dbName).dropDatabase()
await raw.close()
await server?.close()
process.exit(0)
