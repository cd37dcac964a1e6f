// Profiles the `projects` bench workload at one project count alone (Redis GET, auto-pipelining, 50 in flight, each
// call as the next project in turn): `REDIS_URL=… npx node --cpu-prof --cpu-prof-dir=/tmp/prof scratchpad/prof/projects.ts 1000 [s]`
import * as Effect from "effect/Effect"
import { MemoryRegistry } from "@tenantpool/core/Registry"
import * as Tenancy from "@tenantpool/core/Tenancy"
import * as RedisEngine from "@tenantpool/redis/RedisEngine"
import { effectLoops } from "../../packages/bench/src/internal/loops.ts"
import { redisStack } from "../../packages/bench/src/workloads/redisGet.ts"

const url = process.env["REDIS_URL"] ?? "redis://127.0.0.1:6379"
const count = Number(process.argv[2] ?? 1000)
const seconds = Number(process.argv[3] ?? 5)
const ids = Array.from({ length: count }, (_, i) => `project-${i}`)
const stack = await redisStack(true)
await stack.run(
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
)
const r = await stack.run(
  Effect.gen(function* () {
    const tenancy = yield* Tenancy.Tenancy
    const redis = yield* RedisEngine.RedisEngine
    let next = 0
    return yield* effectLoops(50, seconds, () => redis.get("bench:key").pipe(tenancy.withProject(ids[next++ % count]!)))
  })
)
console.log(count, "projects", Math.round(r.opsPerSecond), "ops/s")
await stack.close()
process.exit(0)
