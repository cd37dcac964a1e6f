/**
 * The spec's Quick Start §5 ("Monitor Metrics") and best practice 3 ("Monitor Health"): connection metadata,
 * Prometheus text, and health checks.
 *
 *   npx node scratchpad/metrics-and-health.ts   (uses TENANTPOOL_REDIS_URL, or starts a local Redis)
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { MemoryRegistry } from "@tenantpool/core/Registry"
import * as Tenancy from "@tenantpool/core/Tenancy"
import * as PrometheusExporter from "@tenantpool/prometheus/PrometheusExporter"
import * as RedisEngine from "@tenantpool/redis/RedisEngine"
import * as Servers from "@tenantpool/testing/Servers"

const server = await Servers.resolveServer("redis")

const program = Effect.gen(function* () {
  const registry = yield* MemoryRegistry
  const tenancy = yield* Tenancy.Tenancy
  const redis = yield* RedisEngine.RedisEngine
  for (const id of ["my-project", "other-project"]) {
    yield* registry.register({ id, tier: "STARTER", redis: server.url })
    yield* redis.set("counter", "1").pipe(tenancy.withProject(id))
  }
  // connectionManager.getAllConnectionMetadata()
  const connections = yield* tenancy.connections
  for (const conn of connections) {
    console.log(`${conn.projectId}/${conn.databaseType}: ${conn.queryCount} queries, ${conn.errorCount} errors`)
  }
  // connectionManager.getMetrics(): Prometheus format
  const metrics = yield* PrometheusExporter.render()
  console.log(
    metrics
      .split("\n")
      .filter((l) => l.startsWith("db_queries_total"))
      .join("\n")
  )
  // connectionManager.checkHealth('my-project', DatabaseType.REDIS)
  const health = yield* tenancy.checkHealth("my-project", "redis")
  console.log("Healthy:", health.healthy)
}).pipe(
  Effect.provide(RedisEngine.layer().pipe(Layer.provideMerge(Tenancy.layerMemory({ healthCheckInterval: "1 minute" }))))
)

await Effect.runPromise(program)
await server.close()
