/**
 * The README's example, runnable.
 *
 *   npx node scratchpad/readme-example.ts   (uses TENANTPOOL_REDIS_URL, or starts a local Redis)
 */
import { Effect, Layer } from "effect"
import { MemoryRegistry } from "@tenantpool/core/Registry"
import * as Tenancy from "@tenantpool/core/Tenancy"
import * as RedisEngine from "@tenantpool/redis/RedisEngine"
import * as Servers from "@tenantpool/testing/Servers"

const server = await Servers.resolveServer("redis")

const TenantPool = RedisEngine.layer().pipe(
  Layer.provideMerge(Tenancy.layerMemory({ metrics: { projectLabel: false } }))
)

const handler = (projectId: string) =>
  Effect.gen(function* () {
    const redis = yield* RedisEngine.RedisEngine
    yield* redis.set("greeting", "hello", { ttl: "1 hour" })
    return yield* redis.get("greeting")
  }).pipe(Tenancy.withProject(projectId)) // limits, breakers, timeouts and metrics of this project

const program = Effect.gen(function* () {
  yield* (yield* MemoryRegistry).register({ id: "acme", tier: "PRO", redis: server.url })
  console.log(yield* handler("acme"))
}).pipe(Effect.provide(TenantPool))

await Effect.runPromise(program)
await server.close()
