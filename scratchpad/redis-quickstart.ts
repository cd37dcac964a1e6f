/**
 * The spec's Quick Start §3 ("Use Redis Client"), on tenantpool.
 *
 *   npx node scratchpad/redis-quickstart.ts   (uses TENANTPOOL_REDIS_URL, or starts a local Redis)
 */
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as RedisClient from "@tenantpool/redis/RedisClient"
import * as Servers from "@tenantpool/testing/Servers"

const server = await Servers.resolveServer("redis")

// const redis = createRedisClient('my-project-id', { connectionString, tier: Tier.PRO, config: { minPoolSize: 2, maxPoolSize: 10 } })
const RedisLive = RedisClient.layerStandalone("my-project-id", {
  connectionString: Redacted.make(server.url),
  tier: "PRO",
  config: { minPoolSize: 2, maxPoolSize: 10 }
})

const program = Effect.gen(function* () {
  const redis = yield* RedisClient.RedisClient
  // Basic operations
  yield* redis.set("key", "value", 3600) // Set with 1-hour TTL
  const value = yield* redis.get("key")
  console.log("value:", value)
  // Hash operations
  yield* redis.hset("user:1", "name", "John Doe")
  const profile = yield* redis.hgetall("user:1")
  console.log("profile:", profile)
  // Health check
  const isHealthy = yield* redis.healthCheck
  console.log("healthy:", isHealthy)
  // Pool stats
  const stats = yield* redis.getPoolStats
  console.log("Pool:", stats.size, "Available:", stats.available)
  // Cleanup (also happens by itself after 5 idle minutes, and when the layer is released)
  yield* redis.close // releases this project's connections; later calls on this client fail with Closed
  console.log("closed:", yield* Effect.flip(redis.get("greeting")).pipe(Effect.map((e) => e._tag)))
}).pipe(Effect.provide(RedisLive))

await Effect.runPromise(program)
await server.close()
