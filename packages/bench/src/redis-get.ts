/**
 * GET at N in flight: raw ioredis vs the tenantpool guard, in the same run, on a private Redis.
 *
 * Variants (interleaved, several rounds, median reported):
 * - raw: one ioredis connection, no auto-pipelining (how most applications use it), async/await loops;
 * - raw+ap: the same with auto-pipelining;
 * - guard / guard+ap: `RedisEngine.get` through the full guard (admission, breakers, attempt timeout, metrics),
 *   in Effect fibers, same connection mode;
 * - spec: the spec's design, a generic-pool of 10 ioredis connections and an opossum breaker;
 * - naive: a straightforward Effect wrapper (Semaphore + Effect.timeout + two metric updates) over raw ioredis.
 *
 * Usage: node packages/bench/src/redis-get.ts [--inflight 50] [--seconds 2] [--rounds 3]
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Semaphore from "effect/Semaphore"
import * as genericPool from "generic-pool"
import { Redis as IORedis } from "ioredis"
import CircuitBreaker from "opossum"
import { MemoryRegistry } from "@tenantpool/core/Registry"
import * as Tenancy from "@tenantpool/core/Tenancy"
import * as RedisEngine from "@tenantpool/redis/RedisEngine"
import * as Servers from "@tenantpool/testing/Servers"
import { arg, median, report, type Result } from "./internal/report.ts"

const inflight = arg("inflight", 50)
const seconds = arg("seconds", 2)
const rounds = arg("rounds", 3)

const server = await Servers.startPrivateServer("redis")
const url = new URL(server.url)
const connect = (autoPipelining: boolean) =>
  new IORedis({ host: url.hostname, port: Number(url.port), enableAutoPipelining: autoPipelining, lazyConnect: true })

const seed = connect(false)
await seed.connect()
await seed.set("bench:key", "x".repeat(100))
await seed.set("bench-project:bench:key", "x".repeat(100))

// Runs `inflight` async loops for `seconds`; returns operations per second.
const promiseLoops = async (op: () => Promise<unknown>): Promise<number> => {
  let stop = false
  let count = 0
  const timer = setTimeout(() => (stop = true), seconds * 1000)
  const started = performance.now()
  await Promise.all(
    Array.from({ length: inflight }, async () => {
      while (!stop) {
        await op()
        count++
      }
    })
  )
  clearTimeout(timer)
  return count / ((performance.now() - started) / 1000)
}

// The same with `inflight` Effect fibers.
const effectLoops = <E, R>(op: Effect.Effect<unknown, E, R>): Effect.Effect<number, E, R> =>
  Effect.suspend(() => {
    let stop = false
    let count = 0
    const timer = setTimeout(() => (stop = true), seconds * 1000)
    const started = performance.now()
    const worker = Effect.whileLoop({
      while: () => !stop,
      body: () => op,
      step: () => {
        count++
      }
    })
    return Effect.all(
      Array.from({ length: inflight }, () => worker),
      { concurrency: "unbounded", discard: true }
    ).pipe(
      Effect.map(() => {
        clearTimeout(timer)
        return count / ((performance.now() - started) / 1000)
      })
    )
  })

const raw = connect(false)
const rawAp = connect(true)
await raw.connect()
await rawAp.connect()

const pool = genericPool.createPool(
  {
    create: async () => {
      const c = connect(false)
      await c.connect()
      return c
    },
    destroy: async (c) => {
      c.disconnect()
    }
  },
  { min: 2, max: 10 }
)
const specBreaker = new CircuitBreaker(
  async () => {
    const c = await pool.acquire()
    try {
      return await c.get("bench:key")
    } finally {
      await pool.release(c)
    }
  },
  { timeout: 1000, errorThresholdPercentage: 70, resetTimeout: 15000, volumeThreshold: 10 }
)

const naiveSem = Semaphore.makeUnsafe(200)
const naiveCounter = Metric.counter("bench_naive_total")
const naiveHist = Metric.histogram("bench_naive_seconds", { boundaries: [0.001, 0.01, 0.1, 1] })
const naive = Effect.gen(function* () {
  const started = performance.now()
  const value = yield* Effect.tryPromise(() => raw.get("bench:key")).pipe(
    Effect.timeout("1 second"),
    naiveSem.withPermits(1)
  )
  yield* Metric.update(naiveCounter, 1)
  yield* Metric.update(naiveHist, (performance.now() - started) / 1000)
  return value
})

const guardVariant = (autoPipelining: boolean) =>
  Effect.gen(function* () {
    yield* (yield* MemoryRegistry).register({ id: "bench-project", tier: "ENTERPRISE", redis: server.url })
    const redis = yield* RedisEngine.RedisEngine
    const tenancy = yield* Tenancy.Tenancy
    return yield* effectLoops(redis.get("bench:key")).pipe(tenancy.withProject("bench-project"))
  }).pipe(
    Effect.provide(
      RedisEngine.layer({ autoPipelining }).pipe(Layer.provideMerge(Tenancy.layerMemory({ healthCheckInterval: 0 })))
    )
  )

const variants: ReadonlyArray<readonly [string, () => Promise<number>]> = [
  ["raw", () => promiseLoops(() => raw.get("bench:key"))],
  ["raw+ap", () => promiseLoops(() => rawAp.get("bench:key"))],
  ["effect-raw", () => Effect.runPromise(effectLoops(Effect.promise(() => raw.get("bench:key"))))],
  ["effect-raw+ap", () => Effect.runPromise(effectLoops(Effect.promise(() => rawAp.get("bench:key"))))],
  ["guard", () => Effect.runPromise(guardVariant(false))],
  ["guard+ap", () => Effect.runPromise(guardVariant(true))],
  ["spec(pool10+opossum)", () => promiseLoops(() => specBreaker.fire())],
  ["naive-effect", () => Effect.runPromise(effectLoops(naive))]
]

const samples = new Map<string, Array<number>>()
for (let r = 0; r < rounds; r++) {
  for (const [name, run] of variants) {
    const opsPerSecond = await run()
    samples.set(name, [...(samples.get(name) ?? []), opsPerSecond])
  }
}
const results: Array<Result> = variants.map(([name]) => ({ name, opsPerSecond: median(samples.get(name)!) }))
report(`Redis GET, ${inflight} in flight, ${seconds} s x ${rounds} rounds (median)`, results, [
  ["guard", "raw"],
  ["guard", "effect-raw"],
  ["guard+ap", "raw+ap"],
  ["guard+ap", "effect-raw+ap"],
  ["effect-raw+ap", "raw+ap"],
  ["guard+ap", "raw"],
  ["spec(pool10+opossum)", "raw"],
  ["naive-effect", "raw"]
])

await pool.drain()
await pool.clear()
raw.disconnect()
rawAp.disconnect()
seed.disconnect()
await server.close()
process.exit(0)
