/**
 * Primary-key lookup at N in flight: raw `@effect/sql-pg` vs the same statement through the tenantpool guard
 * (`PgEngine`'s `SqlClient`: admission, breakers, attempt timeout, metrics, per-statement project routing), in the
 * same run, on a private PostgreSQL (or `TENANTPOOL_PG_URL`).
 *
 * Fairness: both sides use the same pool mode (multiplexed or exclusive) and the same connection count (min = max =
 * `--connections`, opened before measuring), run the same tagged-template statement from `--inflight` Effect fibers,
 * and alternate in interleaved rounds (raw, guard, raw, guard, …). The median of the rounds is reported, with the
 * ratios guard/raw per mode (the ratio of the medians, and the median of the per-round ratios, which pairs each
 * guard round with the raw round just before it and so cancels slow drifts of a shared machine) and
 * multiplexed/exclusive for raw sql-pg.
 *
 * Usage: node packages/bench/src/pg-pk.ts [--seconds 1] [--rounds 10] [--connections 4] [--rows 10000]
 *
 * @since 0.1.0
 */
import * as PgClient from "@effect/sql-pg/PgClient"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Reactivity from "effect/reactivity/Reactivity"
import * as Redacted from "effect/Redacted"
import * as SqlClient from "effect/sql/SqlClient"
import { MemoryRegistry } from "@tenantpool/core/Registry"
import * as Tenancy from "@tenantpool/core/Tenancy"
import * as PgEngine from "@tenantpool/pg/PgEngine"
import * as Servers from "@tenantpool/testing/Servers"
import { arg, median } from "./internal/report.ts"

const seconds = arg("seconds", 1)
const rounds = arg("rounds", 10)
const connections = arg("connections", 4)
const rows = arg("rows", 10_000)
const inflights = [10, 100]

const fromEnv = process.env.TENANTPOOL_PG_URL
const server = fromEnv === undefined || fromEnv === "" ? await Servers.startPrivateServer("postgres") : undefined
const url = server?.url ?? fromEnv!

/** Runs `inflight` fibers looking up random keys for `seconds`; returns lookups per second. */
const measure = (sql: SqlClient.SqlClient, inflight: number) =>
  Effect.gen(function* () {
    let count = 0
    let stop = false
    const deadline = Date.now() + seconds * 1000
    const started = performance.now()
    const loop = Effect.gen(function* () {
      while (!stop) {
        const id = 1 + Math.floor(Math.random() * rows)
        yield* sql`select id, v from bench_kv where id = ${id}`
        count++
        if (Date.now() >= deadline) stop = true
      }
    })
    yield* Effect.forEach(Array.from({ length: inflight }), () => loop, { concurrency: "unbounded", discard: true })
    return count / ((performance.now() - started) / 1000)
  })

/** Opens every connection of a pool before measuring (min = max). */
const warm = (sql: SqlClient.SqlClient) =>
  Effect.forEach(Array.from({ length: 200 }), () => sql`select id from bench_kv where id = 1`, {
    concurrency: "unbounded",
    discard: true
  })

const program = Effect.gen(function* () {
  // The table, through a plain client.
  yield* Effect.scoped(
    Effect.gen(function* () {
      const sql = yield* PgClient.make({ url: Redacted.make(url), maxConnections: 1 })
      yield* sql`drop table if exists bench_kv`
      yield* sql`create table bench_kv (id int primary key, v text not null)`
      yield* sql`insert into bench_kv select i, md5(i::text) from generate_series(1, ${rows}) i`
      yield* sql`analyze bench_kv`
    })
  )

  const results = new Map<string, Array<number>>()
  const record = (name: string, value: number) => {
    const list = results.get(name) ?? []
    list.push(value)
    results.set(name, list)
  }

  for (const multiplex of [true, false]) {
    const mode = multiplex ? "multiplexed" : "exclusive"
    // Raw sql-pg: one pool of `connections`.
    const raw = yield* PgClient.make({
      url: Redacted.make(url),
      multiplex,
      minConnections: connections,
      maxConnections: connections,
      applicationName: "bench-raw"
    })
    // The guard: one project on the same server, its tier sized to the same connection count and limits that never
    // refuse at 100 in flight.
    const guardLayer = PgEngine.layer({ multiplex, applicationName: "bench-guard" }).pipe(
      Layer.provideMerge(
        Tenancy.layerMemory({
          healthCheckInterval: 0,
          shutdownTimeout: "0 millis",
          tiers: { PRO: { minPool: connections, maxPool: connections, maxConcurrent: 1000, maxQueue: 1000 } }
        })
      )
    )
    const guardContext = yield* Layer.build(guardLayer)
    const registry = Context.get(guardContext, MemoryRegistry)
    yield* registry.register({ id: "bench-project", tier: "PRO", postgres: url })
    const tenancy = Context.get(guardContext, Tenancy.Tenancy)
    const guarded = Context.get(guardContext, SqlClient.SqlClient)
    const asProject = tenancy.withProject("bench-project")

    yield* warm(raw)
    yield* asProject(warm(guarded))
    for (const inflight of inflights) {
      // Warm-up round, not recorded.
      yield* measure(raw, inflight)
      yield* asProject(measure(guarded, inflight))
      for (let round = 0; round < rounds; round++) {
        record(`raw ${mode} @${inflight}`, yield* measure(raw, inflight))
        record(`guard ${mode} @${inflight}`, yield* asProject(measure(guarded, inflight)))
      }
    }
  }

  const med = (name: string) => median(results.get(name) ?? [0])
  console.log(
    `\nPK lookup, ${connections} connections, ${rounds} interleaved rounds of ${seconds} s, median ops/s (node ${process.version})`
  )
  for (const [name, values] of results) {
    const spread = values.map((v) => Math.round(v)).join(" ")
    console.log(`  ${name.padEnd(26)} ${Math.round(median(values)).toString().padStart(8)}   [${spread}]`)
  }
  console.log("")
  for (const mode of ["multiplexed", "exclusive"]) {
    for (const inflight of inflights) {
      const guard = results.get(`guard ${mode} @${inflight}`) ?? []
      const raw = results.get(`raw ${mode} @${inflight}`) ?? []
      const ratio = med(`guard ${mode} @${inflight}`) / med(`raw ${mode} @${inflight}`)
      const paired = median(guard.map((g, i) => g / raw[i]!))
      console.log(
        `  guard/raw ${mode} @${inflight}`.padEnd(34) +
          `${ratio.toFixed(3)}x   (median of paired rounds ${paired.toFixed(3)}x)`
      )
    }
  }
  for (const inflight of inflights) {
    const ratio = med(`raw multiplexed @${inflight}`) / med(`raw exclusive @${inflight}`)
    console.log(`  raw multiplexed/exclusive @${inflight}`.padEnd(34) + `${ratio.toFixed(2)}x`)
  }
})

try {
  await Effect.runPromise(Effect.scoped(program).pipe(Effect.provide(Reactivity.layer)))
} finally {
  await server?.close()
}
