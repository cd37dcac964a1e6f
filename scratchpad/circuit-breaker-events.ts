/**
 * The spec's best practice 2 ("Handle Circuit Breaker Events"): subscribe to events as an Effect Stream.
 * A private Redis is stopped under traffic: the breaker opens; it is started again: the breaker closes.
 *
 *   npx node scratchpad/circuit-breaker-events.ts   (starts its own Redis, which it stops and restarts)
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import { specName } from "@tenantpool/core/Events"
import { MemoryRegistry } from "@tenantpool/core/Registry"
import * as Tenancy from "@tenantpool/core/Tenancy"
import * as RedisEngine from "@tenantpool/redis/RedisEngine"
import * as Servers from "@tenantpool/testing/Servers"

const server = await Servers.startPrivateServer("redis")

const program = Effect.gen(function* () {
  const tenancy = yield* Tenancy.Tenancy
  const redis = yield* RedisEngine.RedisEngine
  yield* (yield* MemoryRegistry).register({ id: "my-project", tier: "PRO", redis: server.url })
  // connectionManager.on('circuit-open', ({ projectId, dbType }) => …)
  yield* tenancy.events.pipe(
    Stream.filter((e) => e._tag === "CircuitOpen" || e._tag === "CircuitClosed"),
    Stream.runForEach((e) =>
      Effect.sync(() =>
        console.log(
          `${specName(e)}: ${e._tag === "CircuitOpen" || e._tag === "CircuitClosed" ? `${e.scope} ${e.engine} ${e.projectId ?? e.target}` : ""}`
        )
      )
    ),
    Effect.forkScoped
  )
  const traffic = redis.get("key").pipe(Effect.ignore, tenancy.withProject("my-project"))
  yield* traffic
  yield* Effect.promise(() => server.stop())
  for (let i = 0; i < 30; i++) yield* traffic
  console.log("breaker:", yield* tenancy.breakerState("my-project", "redis"))
  yield* Effect.promise(() => server.start())
  // The breaker probes by itself when its open time ends (and again, for longer, while the client reconnects).
  for (let i = 0; i < 100 && (yield* tenancy.breakerState("my-project", "redis")) !== "closed"; i++) {
    yield* Effect.sleep("100 millis")
  }
  yield* traffic
  console.log("breaker:", yield* tenancy.breakerState("my-project", "redis"))
}).pipe(
  Effect.scoped,
  Effect.provide(
    RedisEngine.layer().pipe(
      Layer.provideMerge(
        Tenancy.layerMemory({
          healthCheckInterval: 0,
          breakers: { redis: { resetTimeout: "1 second", attemptTimeout: "200 millis" } }
        })
      )
    )
  )
)

await Effect.runPromise(program)
await server.close()
