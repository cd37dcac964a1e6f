// Profiles one variant of the redis-get bench alone: `npx node --cpu-prof --cpu-prof-dir=/tmp/prof scratchpad/prof/redis-guard.ts [ap] [n] [s]`
import * as Effect from "effect/Effect"
import { MemoryRegistry } from "@tenantpool/core/Registry"
import * as Tenancy from "@tenantpool/core/Tenancy"
import * as RedisEngine from "@tenantpool/redis/RedisEngine"
import { effectLoops } from "../../packages/bench/src/internal/loops.ts"
import { redisStack, connect } from "../../packages/bench/src/workloads/redisGet.ts"

const url = process.env.REDIS_URL ?? "redis://127.0.0.1:6379"
const mode = process.argv[2] ?? "ap"
const n = Number(process.argv[3] ?? 500)
const s = Number(process.argv[4] ?? 5)
const ap = mode.endsWith("ap")
import { Session } from "node:inspector/promises"
import { writeFileSync } from "node:fs"
const session = new Session()
session.connect()
const heap = process.env["HEAP_OUT"]
const startHeap = () =>
  heap
    ? session.post("HeapProfiler.startSampling", {
        samplingInterval: 1024,
        includeObjectsCollectedByMajorGC: true,
        includeObjectsCollectedByMinorGC: true
      } as any)
    : undefined
const stopHeap = async () => {
  if (heap) writeFileSync(heap, JSON.stringify((await session.post("HeapProfiler.stopSampling")).profile))
}
if (mode.startsWith("raw")) {
  const c = await connect(url, ap)
  await c.set("bench-project:bench:key", "x".repeat(100))
  await startHeap()
  const r = await Effect.runPromise(effectLoops(n, s, () => Effect.promise(() => c.get("bench-project:bench:key"))))
  await stopHeap()
  console.log(mode, n, Math.round(r.opsPerSecond), "ops", Math.round(r.opsPerSecond * s))
  c.disconnect()
} else {
  const g = await redisStack(ap)
  await g.run(
    Effect.flatMap(MemoryRegistry, (r) => r.register({ id: "bench-project", tier: "ENTERPRISE", redis: url }))
  )
  await startHeap()
  const r = await g.run(
    Effect.gen(function* () {
      const redis = yield* RedisEngine.RedisEngine
      const tenancy = yield* Tenancy.Tenancy
      return yield* effectLoops(n, s, () => redis.get("bench:key")).pipe(tenancy.withProject("bench-project"))
    })
  )
  await stopHeap()
  console.log(mode, n, Math.round(r.opsPerSecond), "ops", Math.round(r.opsPerSecond * s))
  await g.close()
}
