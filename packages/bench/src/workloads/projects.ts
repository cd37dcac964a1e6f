/**
 * Redis GET through the guard spread over 1, 100, 1,000 and 10,000 projects on one target, 50 in flight: each
 * call runs as the next project in turn (`withProject` per call, as a request handler does), every project warmed
 * first. Throughput should not depend on how many projects share the target.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import { MemoryRegistry } from "@tenantpool/core/Registry"
import * as Tenancy from "@tenantpool/core/Tenancy"
import * as RedisEngine from "@tenantpool/redis/RedisEngine"
import { effectLoops, interleave, throughputRow, type Variant } from "../internal/loops.ts"
import type { Row, Run } from "../internal/suite.ts"
import { redisStack } from "./redisGet.ts"

const counts = [1, 100, 1_000, 10_000]

/** Registers `ids` on the Redis at `url` and makes each one's first call. @internal */
export const registerAndWarm = (ids: ReadonlyArray<string>, url: string) =>
  Effect.gen(function* () {
    const registry = yield* MemoryRegistry
    const tenancy = yield* Tenancy.Tenancy
    const redis = yield* RedisEngine.RedisEngine
    for (const id of ids) yield* registry.register({ id, tier: "ENTERPRISE", redis: url })
    yield* Effect.forEach(ids, (id) => redis.get("bench:key").pipe(tenancy.withProject(id)), {
      concurrency: 50,
      discard: true
    })
  })

/** GETs at `inflight` in flight for `seconds`, each call as the next of the first `count` of `ids`. @internal */
export const spread = (ids: ReadonlyArray<string>, count: number, inflight: number, seconds: number) =>
  Effect.gen(function* () {
    const tenancy = yield* Tenancy.Tenancy
    const redis = yield* RedisEngine.RedisEngine
    let next = 0
    return yield* effectLoops(inflight, seconds, () =>
      redis.get("bench:key").pipe(tenancy.withProject(ids[next++ % count]!))
    )
  })

/** @internal */
export const run: Run = async (ctx) => {
  const url = ctx.urls.redis!
  const stack = await redisStack(true)
  const ids = Array.from({ length: counts[counts.length - 1]! }, (_, i) => `project-${i}`)
  ctx.progress(`registering and warming ${ids.length} projects`)
  await stack.run(registerAndWarm(ids, url))
  const round = (count: number) => (n: number, k: number) => stack.run(spread(ids, count, n, ctx.seconds * k))
  const variants: ReadonlyArray<Variant> = counts.map((c) => [`${c} projects`, round(c)] as const)
  const samples = await interleave(variants, [50], ctx.rounds, ctx.progress)
  const rows: Array<Row> = counts
    .slice(1)
    .map((c) =>
      throughputRow("projects", samples, `${c} projects`, "1 projects", 50, { on: "ratio", op: ">=", value: 0.9 })
    )
  await stack.close()
  return rows
}
