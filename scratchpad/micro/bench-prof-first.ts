// Profiling aid for the bench's first-call workload: N fresh projects' first Redis GET (runtime, binding, call) on a
// target whose connection is open; prints µs per first call; PROF_OUT=file writes a CPU profile of the loop.
//   node scratchpad/micro/bench-prof-first.ts [projects 3000]
import { writeFileSync } from "node:fs"
import { Session } from "node:inspector/promises"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { MemoryRegistry } from "@tenantpool/core/Registry"
import * as Tenancy from "@tenantpool/core/Tenancy"
import * as RedisEngine from "@tenantpool/redis/RedisEngine"
import * as Servers from "@tenantpool/testing/Servers"

const n = Number(process.argv[2] ?? 3000)
const session = new Session()
session.connect()
await session.post("Profiler.enable")
await session.post("Profiler.setSamplingInterval", { interval: 50 })
const server = await Servers.startPrivateServer("redis")
const program = Effect.gen(function* () {
  const registry = yield* MemoryRegistry
  const tenancy = yield* Tenancy.Tenancy
  const redis = yield* RedisEngine.RedisEngine
  for (let i = 0; i < n + 500; i++) yield* registry.register({ id: `p-${i}`, tier: "PRO", redis: server.url })
  // Warm: the target's connection and the JIT.
  for (let i = 0; i < 500; i++) yield* redis.get("k").pipe(tenancy.withProject(`p-${i}`))
  for (let i = 0; i < 2000; i++) yield* redis.get("k").pipe(tenancy.withProject("p-0"))
  const out = process.env["PROF_OUT"]
  if (out) yield* Effect.promise(() => session.post("Profiler.start"))
  const t0 = performance.now()
  for (let i = 500; i < n + 500; i++) yield* redis.get("k").pipe(tenancy.withProject(`p-${i}`))
  const first = ((performance.now() - t0) * 1000) / n
  if (out) {
    const { profile } = yield* Effect.promise(() => session.post("Profiler.stop"))
    writeFileSync(out, JSON.stringify(profile))
  }
  const t1 = performance.now()
  for (let i = 0; i < n; i++) yield* redis.get("k").pipe(tenancy.withProject("p-0"))
  const warm = ((performance.now() - t1) * 1000) / n
  console.log(
    `first call ${first.toFixed(1)} µs, warm ${warm.toFixed(1)} µs, difference ${(first - warm).toFixed(1)} µs`
  )
}).pipe(
  Effect.provide(
    RedisEngine.layer().pipe(Layer.provideMerge(Tenancy.layerMemory({ healthCheckInterval: 0, shutdownTimeout: 0 })))
  )
)
await Effect.runPromise(program)
await server.close()
process.exit(0)
