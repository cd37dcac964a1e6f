import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { MemoryRegistry } from "@tenantpool/core/Registry"
import * as Tenancy from "@tenantpool/core/Tenancy"
import * as RedisEngine from "@tenantpool/redis/RedisEngine"
import * as Servers from "@tenantpool/testing/Servers"
const server = await Servers.startPrivateServer("redis")
const prog = Effect.gen(function* () {
  yield* (yield* MemoryRegistry).register({ id: "p", tier: "ENTERPRISE", redis: server.url })
  const redis = yield* RedisEngine.RedisEngine
  const tenancy = yield* Tenancy.Tenancy
  let stop = false
  setTimeout(() => (stop = true), 6000)
  let n = 0
  const worker = Effect.whileLoop({
    while: () => !stop,
    body: () => redis.get("k"),
    step: () => {
      n++
    }
  })
  yield* Effect.all(
    Array.from({ length: 50 }, () => worker),
    { concurrency: "unbounded", discard: true }
  ).pipe(tenancy.withProject("p"))
  console.log("ops/s", n / 6)
}).pipe(
  Effect.provide(
    RedisEngine.layer({ autoPipelining: true }).pipe(
      Layer.provideMerge(Tenancy.layerMemory({ healthCheckInterval: 0 }))
    )
  )
)
await Effect.runPromise(prog)
await server.close()
process.exit(0)
