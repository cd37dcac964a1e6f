/**
 * The spec's best practice 5 ("Clean Up Idle Connections"): idle projects are freed by themselves after their
 * tier's idle timeout (5 minutes by default); `closeIdleConnections()` does it on demand and says how many it
 * closed.
 *
 *   npx node scratchpad/idle-cleanup.ts   (uses TENANTPOOL_REDIS_URL, or starts a local Redis)
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { MemoryRegistry } from "@tenantpool/core/Registry"
import * as Tenancy from "@tenantpool/core/Tenancy"
import * as RedisEngine from "@tenantpool/redis/RedisEngine"
import * as Servers from "@tenantpool/testing/Servers"

const server = await Servers.resolveServer("redis")

const program = Effect.gen(function* () {
  const registry = yield* MemoryRegistry
  const tenancy = yield* Tenancy.Tenancy
  const redis = yield* RedisEngine.RedisEngine
  for (let i = 0; i < 5; i++) {
    yield* registry.register({ id: `project-${i}`, tier: "FREE", redis: server.url })
    yield* redis.get("x").pipe(tenancy.withProject(`project-${i}`))
  }
  console.log("live projects:", (yield* tenancy.stats).liveProjects)
  // const closedCount = await connectionManager.closeIdleConnections()
  const closedCount = yield* tenancy.closeIdleConnections({ idleFor: 0 })
  console.log(`Closed ${closedCount} idle connections`)
  console.log("live projects:", (yield* tenancy.stats).liveProjects)
}).pipe(Effect.provide(RedisEngine.layer().pipe(Layer.provideMerge(Tenancy.layerMemory({ healthCheckInterval: 0 })))))

await Effect.runPromise(program)
await server.close()
