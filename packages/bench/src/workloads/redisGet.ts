/**
 * Redis GET at 1, 50 and 500 in flight: the guard against the raw ioredis driver, same run, same key.
 *
 * Variants (interleaved rounds, medians):
 * - raw / raw+ap: one ioredis connection called from async/await loops, without and with auto-pipelining (raw is
 *   how most applications use ioredis);
 * - effect-raw / effect-raw+ap: the same driver calls from Effect fibers (`Effect.promise`), the baseline the
 *   guard is held to (the guard runs in fibers too);
 * - guard / guard+ap: `RedisEngine.get` through the whole guard (admission, breakers, attempt timeout, metrics) in
 *   the same connection mode;
 * - spec: the spec's design, a generic-pool of 10 ioredis connections, an opossum breaker and prom-client metrics.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { Redis as IORedis } from "ioredis"
import { MemoryRegistry } from "@tenantpool/core/Registry"
import * as Tenancy from "@tenantpool/core/Tenancy"
import * as RedisEngine from "@tenantpool/redis/RedisEngine"
import { effectLoops, interleave, p99Row, promiseLoops, throughputRow, type Variant } from "../internal/loops.ts"
import { specMetrics, specProject } from "../internal/spec.ts"
import { build } from "../internal/stack.ts"
import type { Row, Run } from "../internal/suite.ts"

const project = "bench-project"
const key = "bench:key"
const rawKey = `${project}:${key}`

/** The guard's stack (projects registered by the caller), limits that never refuse at 500 in flight. @internal */
export const redisStack = (autoPipelining: boolean) =>
  build(
    RedisEngine.layer({ autoPipelining, targetCapacity: 10_000 }).pipe(
      Layer.provideMerge(
        Tenancy.layerMemory({
          healthCheckInterval: 0,
          shutdownTimeout: 0,
          tiers: { ENTERPRISE: { maxConcurrent: 10_000, maxQueue: 10_000 } }
        })
      )
    )
  )

/** An ioredis connection to `url`. @internal */
export const connect = async (url: string, autoPipelining: boolean): Promise<IORedis> => {
  const u = new URL(url)
  const conn = new IORedis({
    host: u.hostname,
    port: Number(u.port),
    enableAutoPipelining: autoPipelining,
    lazyConnect: true
  })
  await conn.connect()
  return conn
}

/** @internal */
export const run: Run = async (ctx) => {
  const url = ctx.urls.redis!
  const raw = await connect(url, false)
  const rawAp = await connect(url, true)
  await raw.set(rawKey, "x".repeat(100))
  const guards = await Promise.all([redisStack(false), redisStack(true)])
  for (const g of guards)
    await g.run(Effect.flatMap(MemoryRegistry, (r) => r.register({ id: project, tier: "ENTERPRISE", redis: url })))
  const m = specMetrics()
  const spec = specProject(m, "redis", project, "ENTERPRISE", {
    _tag: "pool",
    create: () => connect(url, false),
    destroy: async (c) => {
      c.disconnect()
    }
  })
  const guardRound = (g: (typeof guards)[number]) => (n: number, k: number) =>
    g.run(
      Effect.gen(function* () {
        const redis = yield* RedisEngine.RedisEngine
        const tenancy = yield* Tenancy.Tenancy
        return yield* effectLoops(n, ctx.seconds * k, () => redis.get(key)).pipe(tenancy.withProject(project))
      })
    )
  const variants: ReadonlyArray<Variant> = [
    ["raw", (n, k) => promiseLoops(n, ctx.seconds * k, () => raw.get(rawKey))],
    ["raw+ap", (n, k) => promiseLoops(n, ctx.seconds * k, () => rawAp.get(rawKey))],
    [
      "effect-raw",
      (n, k) => Effect.runPromise(effectLoops(n, ctx.seconds * k, () => Effect.promise(() => raw.get(rawKey))))
    ],
    [
      "effect-raw+ap",
      (n, k) => Effect.runPromise(effectLoops(n, ctx.seconds * k, () => Effect.promise(() => rawAp.get(rawKey))))
    ],
    ["guard", guardRound(guards[0])],
    ["guard+ap", guardRound(guards[1])],
    ["spec", (n, k) => promiseLoops(n, ctx.seconds * k, () => spec.call("get", (c) => c.get(rawKey)))]
  ]
  const inflights = [1, 50, 500]
  const samples = await interleave(variants, inflights, ctx.rounds, ctx.progress)
  const rows: Array<Row> = []
  const w = "redis-get"
  const atLeast = (value: number) => ({ on: "ratio", op: ">=", value }) as const
  const p99Target = { on: "ratio", op: "<=", value: 1.2 } as const
  for (const n of inflights) {
    rows.push(throughputRow(w, samples, "guard", "effect-raw", n, atLeast(0.9)))
    rows.push(throughputRow(w, samples, "guard+ap", "effect-raw+ap", n, atLeast(0.9)))
    rows.push(throughputRow(w, samples, "guard", "raw", n))
    rows.push(throughputRow(w, samples, "guard+ap", "raw+ap", n))
    rows.push(throughputRow(w, samples, "guard+ap", "raw", n, atLeast(1.0)))
    rows.push(throughputRow(w, samples, "effect-raw+ap", "raw+ap", n))
    rows.push(throughputRow(w, samples, "spec", "raw", n))
    rows.push(p99Row(w, samples, "guard", "effect-raw", n, p99Target))
    rows.push(p99Row(w, samples, "guard+ap", "effect-raw+ap", n, p99Target))
  }
  await spec.close()
  for (const g of guards) await g.close()
  raw.disconnect()
  rawAp.disconnect()
  return rows
}
