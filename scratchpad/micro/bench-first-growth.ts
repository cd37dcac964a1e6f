// Does a project's first call cost more when more projects are bound to its target? Binds N projects one after the
// other (first call each) on one target per engine and prints the median first call per bucket of 500.
//   node scratchpad/micro/bench-first-growth.ts [postgres|mongodb|redis] [projects 3000]
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Reactivity from "effect/reactivity/Reactivity"
import * as SqlClient from "effect/sql/SqlClient"
import { MemoryRegistry } from "@tenantpool/core/Registry"
import * as Tenancy from "@tenantpool/core/Tenancy"
import * as MongoEngine from "@tenantpool/mongodb/MongoEngine"
import * as PgEngine from "@tenantpool/pg/PgEngine"
import * as RedisEngine from "@tenantpool/redis/RedisEngine"
import * as Servers from "@tenantpool/testing/Servers"

const engine = (process.argv[2] ?? "postgres") as "postgres" | "mongodb" | "redis"
const n = Number(process.argv[3] ?? 3000)
const server = await Servers.startPrivateServer(engine)
const tenancy = Tenancy.layerMemory({ healthCheckInterval: 0, shutdownTimeout: 0 })
const layer: Layer.Layer<any, any> =
  engine === "postgres"
    ? PgEngine.layer().pipe(Layer.provideMerge(tenancy), Layer.provide(Reactivity.layer))
    : engine === "mongodb"
      ? MongoEngine.layer().pipe(Layer.provideMerge(tenancy))
      : RedisEngine.layer().pipe(Layer.provideMerge(tenancy))
const call: Effect.Effect<unknown, unknown, any> =
  engine === "postgres"
    ? Effect.flatMap(SqlClient.SqlClient, (sql) => sql`select 1`)
    : engine === "mongodb"
      ? Effect.flatMap(MongoEngine.MongoEngine, (m) => m.collection("items").findOne({ n: 1 }))
      : Effect.flatMap(RedisEngine.RedisEngine, (r) => r.get("k"))
const median = (xs: Array<number>) => xs.sort((a, b) => a - b)[xs.length >> 1]!
const program = Effect.gen(function* () {
  const registry = yield* MemoryRegistry
  const t = yield* Tenancy.Tenancy
  for (let i = 0; i < n; i++) yield* registry.register({ id: `p-${i}`, tier: "PRO", [engine]: server.url })
  let bucket: Array<number> = []
  for (let i = 0; i < n; i++) {
    const t0 = performance.now()
    yield* call.pipe(t.withProject(`p-${i}`))
    bucket.push((performance.now() - t0) * 1000)
    if (bucket.length === 500) {
      console.log(`${engine}: projects ${i - 499}..${i}: median first call ${median(bucket).toFixed(0)} µs`)
      bucket = []
    }
  }
}).pipe(Effect.provide(layer))
await Effect.runPromise(program)
await server.close()
process.exit(0)
