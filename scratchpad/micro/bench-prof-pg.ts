// Profiling aid for the bench's pg-pk workload: one variant (raw sql-pg or the guard), multiplexed or exclusive, N in
// flight; prints ops/s, client CPU per statement and socket writes per statement; PROF_OUT=file writes a CPU profile
// of the measured part (read it with packages/bench/src/bin/profile.ts). SLOW="10 seconds" sets slowStatement.
//   node scratchpad/micro/bench-prof-pg.ts guard|raw [mux|excl] [inflight 100] [seconds 4]
import * as PgClient from "@effect/sql-pg/PgClient"
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Reactivity from "effect/reactivity/Reactivity"
import * as Redacted from "effect/Redacted"
import * as SqlClient from "effect/sql/SqlClient"
import { Session } from "node:inspector/promises"
import { writeFileSync } from "node:fs"
import * as net from "node:net"
let writes = 0
const w0 = net.Socket.prototype.write
net.Socket.prototype.write = function (this: net.Socket, ...args: Array<any>) {
  writes++
  return (w0 as any).apply(this, args)
} as any
import { MemoryRegistry } from "@tenantpool/core/Registry"
import * as Tenancy from "@tenantpool/core/Tenancy"
import * as PgEngine from "@tenantpool/pg/PgEngine"
import * as Servers from "@tenantpool/testing/Servers"
import { effectLoops } from "../../packages/bench/src/internal/loops.ts"
import { build, type Stack } from "../../packages/bench/src/internal/stack.ts"
const variant = process.argv[2] ?? "guard"
const multiplex = process.argv[3] !== "excl"
const inflight = Number(process.argv[4] ?? 100)
const secs = Number(process.argv[5] ?? 4)
const session = new Session()
session.connect()
await session.post("Profiler.enable")
await session.post("Profiler.setSamplingInterval", { interval: 100 })
const server = await Servers.startPrivateServer("postgres")
const url = server.url
await Effect.runPromise(
  Effect.scoped(
    Effect.gen(function* () {
      const sql = yield* PgClient.make({ url: Redacted.make(url), maxConnections: 1 })
      yield* sql`create table bench_kv (id int primary key, v text not null)`
      yield* sql`insert into bench_kv select i, md5(i::text) from generate_series(1, 10000) i`
    })
  ).pipe(Effect.provide(Reactivity.layer))
)
const lookup = (sql: SqlClient.SqlClient) =>
  sql`select id, v from bench_kv where id = ${1 + Math.floor(Math.random() * 10000)}`
const as0: <A, E, R>(e: Effect.Effect<A, E, R>) => Effect.Effect<A, unknown, R> = (e) => e
let as = as0
let stack: Stack<any>
if (variant === "guard") {
  stack = await build(
    PgEngine.layer({
      multiplex,
      ...(process.env["SLOW"] ? { slowStatement: process.env["SLOW"] as Duration.Input } : {})
    }).pipe(
      Layer.provideMerge(
        Tenancy.layerMemory({
          healthCheckInterval: 0,
          shutdownTimeout: 0,
          tiers: { PRO: { minPool: 4, maxPool: 4, maxConcurrent: 1000, maxQueue: 1000 } }
        })
      ),
      Layer.provide(Reactivity.layer)
    )
  )
  await stack.run(Effect.flatMap(MemoryRegistry, (r) => r.register({ id: "p", tier: "PRO", postgres: url })))
  as = Context.get(stack.context, Tenancy.Tenancy).withProject("p")
} else {
  stack = await build(
    Layer.effect(
      SqlClient.SqlClient,
      Effect.map(
        PgClient.make({ url: Redacted.make(url), multiplex, minConnections: 4, maxConnections: 4 }),
        (c) => c as SqlClient.SqlClient
      )
    ).pipe(Layer.provide(Reactivity.layer))
  )
}
const sql = Context.get(stack.context, SqlClient.SqlClient)
await stack.run(as(effectLoops(inflight, 1.5, () => lookup(sql))))
if (process.env["PROF_OUT"]) await session.post("Profiler.start")
if (process.env["HEAP_OUT"])
  await session.post("HeapProfiler.startSampling", {
    samplingInterval: 1024,
    includeObjectsCollectedByMajorGC: true,
    includeObjectsCollectedByMinorGC: true
  } as any)
const cpu = process.cpuUsage()
writes = 0
const r = await stack.run(as(effectLoops(inflight, secs, () => lookup(sql))))
const u = process.cpuUsage(cpu)
if (process.env["HEAP_OUT"])
  writeFileSync(process.env["HEAP_OUT"], JSON.stringify((await session.post("HeapProfiler.stopSampling")).profile))
if (process.env["PROF_OUT"])
  writeFileSync(process.env["PROF_OUT"], JSON.stringify((await session.post("Profiler.stop")).profile))
console.log(
  variant,
  multiplex ? "mux" : "excl",
  inflight,
  Math.round(r.opsPerSecond),
  ((u.user + u.system) / (r.opsPerSecond * secs)).toFixed(2),
  "µs CPU/op",
  (writes / (r.opsPerSecond * secs)).toFixed(3),
  "writes/op",
  `p50 ${r.p50.toFixed(3)} p99 ${r.p99.toFixed(3)} ms`
)
await stack.close()
await server.close()
process.exit(0)
