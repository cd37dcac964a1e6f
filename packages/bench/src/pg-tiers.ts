/**
 * Tier limits on PostgreSQL, measured on the server: the two scenarios of issue #13, through the guard and through
 * raw `@effect/sql-pg` (one shared pool, as a naive multi-tenant set-up would have it), in the same run.
 *
 * - **Slow statements**: a FREE project (maxPool 5) sends 20 concurrent `select pg_sleep(0.5)`: wall time, failures,
 *   and the most sessions running `pg_sleep` at once (pg_stat_activity, sampled every 10 ms). Raw: a pool of 5,
 *   multiplexed and exclusive.
 * - **Noisy neighbour**: a FREE project floods `pg_sleep(0.2)` from 200 fibers while a PRO project on the same
 *   database runs primary-key lookups from 4 fibers: the PRO lookups' p50/p99 unloaded and loaded. Raw: both on
 *   one multiplexed pool of 50.
 *
 * Usage: node packages/bench/src/pg-tiers.ts [--lookups 500]
 *
 * @since 0.1.0
 */
import * as PgClient from "@effect/sql-pg/PgClient"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Reactivity from "effect/reactivity/Reactivity"
import * as Redacted from "effect/Redacted"
import * as SqlClient from "effect/sql/SqlClient"
import { MemoryRegistry } from "@tenantpool/core/Registry"
import * as Tenancy from "@tenantpool/core/Tenancy"
import * as PgEngine from "@tenantpool/pg/PgEngine"
import * as Servers from "@tenantpool/testing/Servers"
import { arg } from "./internal/report.ts"

const lookupsPerFiber = arg("lookups", 500)

const fromEnv = process.env.TENANTPOOL_PG_URL
const server = fromEnv === undefined || fromEnv === "" ? await Servers.startPrivateServer("postgres") : undefined
const url = server?.url ?? fromEnv!

const percentile = (values: ReadonlyArray<number>, p: number): number => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length - 1) * p))] ?? 0
}

/** The most sessions of `application_name` running pg_sleep at once while `effect` runs. */
const sampled = <A, E>(observer: SqlClient.SqlClient, name: string, effect: Effect.Effect<A, E>) =>
  Effect.gen(function* () {
    let most = 0
    const count = observer<{ n: number }>`select count(*)::int as n from pg_stat_activity
      where application_name = ${name} and state = 'active' and query like '%pg_sleep%'`
    const sampler = yield* Effect.forkChild(
      Effect.forever(
        Effect.andThen(
          Effect.map(Effect.orDie(count), (rows) => (most = Math.max(most, rows[0]!.n))),
          Effect.sleep("10 millis")
        )
      )
    )
    const started = performance.now()
    const result = yield* effect
    const millis = performance.now() - started
    yield* Fiber.interrupt(sampler)
    return { result, millis, most }
  })

const slow = (sql: SqlClient.SqlClient) =>
  Effect.map(
    Effect.forEach(Array.from({ length: 20 }), () => Effect.result(sql`select pg_sleep(0.5)`), {
      concurrency: "unbounded"
    }),
    (results) => results.filter((r) => r._tag === "Failure").length
  )

// Failed lookups are counted (and left out of the latencies), not fatal: a raw pool under a flood may fail some.
let failedLookups = 0

const lookups = (sql: SqlClient.SqlClient) =>
  Effect.gen(function* () {
    const out: Array<number> = []
    yield* Effect.forEach(
      Array.from({ length: 4 }),
      () =>
        Effect.gen(function* () {
          for (let i = 0; i < lookupsPerFiber; i++) {
            const started = performance.now()
            const result = yield* Effect.result(
              sql`select id, v from tiers_kv where id = ${1 + Math.floor(Math.random() * 1000)}`
            )
            if (result._tag === "Failure" && failedLookups++ === 0)
              console.log("  first failed lookup:", String(result.failure))
            else out.push(performance.now() - started)
          }
        }),
      { concurrency: "unbounded", discard: true }
    )
    return out
  })

const flood = (sql: SqlClient.SqlClient, stop: { done: boolean }) =>
  Effect.forEach(
    Array.from({ length: 200 }),
    () =>
      Effect.whileLoop({
        while: () => !stop.done,
        body: () => Effect.catch(Effect.asVoid(sql`select pg_sleep(0.2)`), () => Effect.sleep("20 millis")),
        step: () => {}
      }),
    { concurrency: "unbounded", discard: true }
  )

type As = <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, unknown, R>
const asIs: As = (effect) => effect

/** PRO lookups unloaded, then under the FREE flood (`asPro` / `asFree` make them the projects' statements). */
const neighbour = (pro: SqlClient.SqlClient, free: SqlClient.SqlClient, asPro: As = asIs, asFree: As = asIs) =>
  Effect.gen(function* () {
    yield* asPro(lookups(pro))
    const unloaded = yield* asPro(lookups(pro))
    const stop = { done: false }
    const fiber = yield* Effect.forkChild(asFree(flood(free, stop)))
    yield* Effect.sleep("500 millis")
    const loaded = yield* asPro(lookups(pro))
    stop.done = true
    yield* Fiber.join(fiber)
    const failed = failedLookups
    failedLookups = 0
    const fmt = (xs: ReadonlyArray<number>) =>
      `p50 ${percentile(xs, 0.5).toFixed(2)} ms, p99 ${percentile(xs, 0.99).toFixed(2)} ms`
    return `unloaded ${fmt(unloaded)}; under the flood ${fmt(loaded)} (p99 ${(percentile(loaded, 0.99) / percentile(unloaded, 0.99)).toFixed(2)}x), ${failed} lookups failed`
  })

const program = Effect.gen(function* () {
  const observer = yield* PgClient.make({ url: Redacted.make(url), maxConnections: 1, applicationName: "tiers-obs" })
  yield* observer`drop table if exists tiers_kv`
  yield* observer`create table tiers_kv (id int primary key, v text not null)`
  yield* observer`insert into tiers_kv select i, md5(i::text) from generate_series(1, 1000) i`

  console.log(`\nPostgreSQL tier limits (node ${process.version})`)
  for (const multiplex of [true, false]) {
    const name = `tiers-raw-${multiplex ? "mux" : "excl"}`
    const raw = yield* PgClient.make({ url: Redacted.make(url), multiplex, maxConnections: 5, applicationName: name })
    const r = yield* sampled(observer, name, slow(raw))
    console.log(
      `  slow, raw sql-pg ${multiplex ? "multiplexed" : "exclusive"} (5 connections): ${r.millis.toFixed(0)} ms, ` +
        `${r.result} failed, at most ${r.most} running at once`
    )
  }

  const guardLayer = PgEngine.layer({ applicationName: "tiers-guard" }).pipe(
    Layer.provideMerge(Tenancy.layerMemory({ healthCheckInterval: 0, shutdownTimeout: "0 millis" }))
  )
  const context = yield* Layer.build(guardLayer)
  const registry = Context.get(context, MemoryRegistry)
  const tenancy = Context.get(context, Tenancy.Tenancy)
  const guarded = Context.get(context, SqlClient.SqlClient)
  yield* registry.register({ id: "tiers-free", tier: "FREE", postgres: url })
  yield* registry.register({ id: "tiers-pro", tier: "PRO", postgres: url })
  const asFree = tenancy.withProject("tiers-free")
  const asPro = tenancy.withProject("tiers-pro")
  yield* asFree(guarded`select 1`)
  yield* asPro(guarded`select 1`)
  const appName = (yield* asFree(Context.get(context, PgEngine.PgEngine).poolStats)).applicationName
  for (const wave of ["first", "second"]) {
    const g = yield* sampled(observer, appName, asFree(slow(guarded)))
    console.log(
      `  slow, guard FREE (maxPool 5), ${wave} wave: ${g.millis.toFixed(0)} ms, ${g.result} failed, ` +
        `at most ${g.most} running at once`
    )
  }

  console.log(
    `  noisy neighbour, guard (FREE flood, PRO lookups, same database): ${yield* neighbour(guarded, guarded, asPro, asFree)}`
  )
  const shared = yield* PgClient.make({ url: Redacted.make(url), multiplex: true, maxConnections: 50 })
  console.log(`  noisy neighbour, raw sql-pg (one multiplexed pool of 50): ${yield* neighbour(shared, shared)}`)
})

// Raw sql-pg, flooded, has thrown a SqlError from a socket callback here (outside any effect): say so, carry on.
process.on("uncaughtException", (error) => console.log(`  (raw sql-pg threw outside its effects: ${String(error)})`))

try {
  await Effect.runPromise(Effect.scoped(program).pipe(Effect.provide(Reactivity.layer)))
} finally {
  await server?.close()
}
