// Profiling aid for the bench's redis-get workload: one variant (effect-raw or the guard) at 50 in flight, with or
// without auto-pipelining; prints ops/s and client CPU per GET; PROF_OUT=file writes a CPU profile of the measured
// part (read it with packages/bench/src/bin/profile.ts).
//   node scratchpad/micro/bench-prof-redis.ts guard|raw [ap|noap] [seconds 6]
import * as Effect from "effect/Effect"
import { Session } from "node:inspector/promises"
import { writeFileSync } from "node:fs"
const session = new Session()
session.connect()
await session.post("Profiler.enable")
await session.post("Profiler.setSamplingInterval", { interval: 100 })
const profOut = process.env["PROF_OUT"]
const startProf = () => (profOut ? Effect.promise(() => session.post("Profiler.start")) : Effect.void)
const stopProf = () =>
  profOut
    ? Effect.promise(async () => {
        const { profile } = await session.post("Profiler.stop")
        writeFileSync(profOut, JSON.stringify(profile))
      })
    : Effect.void
import { Redis as IORedis } from "ioredis"
import { MemoryRegistry } from "@tenantpool/core/Registry"
import * as Tenancy from "@tenantpool/core/Tenancy"
import * as RedisEngine from "@tenantpool/redis/RedisEngine"
import * as Servers from "@tenantpool/testing/Servers"
import { effectLoops } from "../../packages/bench/src/internal/loops.ts"
import { redisStack } from "../../packages/bench/src/workloads/redisGet.ts"
const variant = process.argv[2] ?? "guard"
const ap = process.argv[3] !== "noap"
const secs = Number(process.argv[4] ?? 6)
const server = await Servers.startPrivateServer("redis")
if (variant === "guard") {
  const s = await redisStack(ap)
  await s.run(Effect.flatMap(MemoryRegistry, (r) => r.register({ id: "p", tier: "ENTERPRISE", redis: server.url })))
  const r = await s.run(
    Effect.gen(function* () {
      const redis = yield* RedisEngine.RedisEngine
      const t = yield* Tenancy.Tenancy
      yield* effectLoops(50, 1, () => redis.get("k")).pipe(t.withProject("p"))
      yield* startProf()
      const cpu = process.cpuUsage()
      const r = yield* effectLoops(50, secs, () => redis.get("k")).pipe(t.withProject("p"))
      const u = process.cpuUsage(cpu)
      yield* stopProf()
      return { ...r, cpu: (u.user + u.system) / (r.opsPerSecond * secs) }
    })
  )
  console.log(variant, ap, Math.round(r.opsPerSecond), r.cpu.toFixed(2), "µs CPU/op")
} else {
  const url = new URL(server.url)
  const c = new IORedis({ host: url.hostname, port: Number(url.port), enableAutoPipelining: ap })
  await Effect.runPromise(effectLoops(50, 1, () => Effect.promise(() => c.get("p:k"))))
  await Effect.runPromise(startProf())
  const cpu = process.cpuUsage()
  const r0 = await Effect.runPromise(effectLoops(50, secs, () => Effect.promise(() => c.get("p:k"))))
  const u = process.cpuUsage(cpu)
  await Effect.runPromise(stopProf())
  const r = { ...r0, cpu: (u.user + u.system) / (r0.opsPerSecond * secs) }
  console.log(variant, ap, Math.round(r.opsPerSecond), r.cpu.toFixed(2), "µs CPU/op")
  c.disconnect()
}
await server.close()
process.exit(0)
