/**
 * Tier limits on PostgreSQL, measured on the server (issue #13's scenarios), guard vs raw `@effect/sql-pg`:
 *
 * - slow statements: a FREE project (maxPool 5) sends 20 concurrent `pg_sleep`: wall time and the most sessions
 *   running it at once (`pg_stat_activity`, sampled every 10 ms); raw: one exclusive pool of 5;
 * - noisy neighbour: a FREE project floods `pg_sleep` from 200 fibers while a PRO project on the same database
 *   runs primary-key lookups from 4 fibers: the PRO lookups' p99 under the flood over unloaded; raw: both on one
 *   multiplexed pool of 50.
 *
 * @internal
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
import { quantile, type Row, type Run } from "../internal/suite.ts"

type As = <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, unknown, R>
const asIs: As = (effect) => effect

/** The most sessions of `name` running pg_sleep at once while `effect` runs, and its wall time. */
const sampled = <A, E>(observer: SqlClient.SqlClient, name: string, effect: Effect.Effect<A, E>) =>
  Effect.gen(function* () {
    let most = 0
    const count = observer<{ n: number }>`select count(*)::int as n from pg_stat_activity
      where application_name like ${`${name}%`} and state = 'active' and query like '%pg_sleep%'`
    const sampler = yield* Effect.forkChild(
      Effect.forever(
        Effect.andThen(
          Effect.map(Effect.orDie(count), (rows) => (most = Math.max(most, rows[0]!.n))),
          Effect.sleep("10 millis")
        )
      )
    )
    const started = performance.now()
    yield* effect
    const millis = performance.now() - started
    yield* Fiber.interrupt(sampler)
    return { millis, most }
  })

/** @internal */
export const run: Run = async (ctx) => {
  const url = ctx.urls.postgres!
  const sleep = ctx.quick ? 0.1 : 0.5
  const lookupsPerFiber = ctx.quick ? 25 : 500
  const slow = (sql: SqlClient.SqlClient) =>
    Effect.forEach(Array.from({ length: 20 }), () => Effect.result(sql`select pg_sleep(${sleep})`), {
      concurrency: "unbounded",
      discard: true
    })
  const lookups = (sql: SqlClient.SqlClient) =>
    Effect.map(
      Effect.forEach(
        Array.from({ length: 4 }),
        () =>
          Effect.gen(function* () {
            const out: Array<number> = []
            // At most 20 s of lookups: behind the raw contrast's flood each one waits ~0.8 s (500 would take 7 min).
            const end = performance.now() + 20_000
            for (let i = 0; i < lookupsPerFiber && performance.now() < end; i++) {
              const t0 = performance.now()
              const r = yield* Effect.result(
                sql`select id, v from tiers_kv where id = ${1 + Math.floor(Math.random() * 1000)}`
              )
              if (r._tag === "Success") out.push(performance.now() - t0)
            }
            return out
          }),
        { concurrency: "unbounded" }
      ),
      (xs) => xs.flat()
    )
  const flood = (sql: SqlClient.SqlClient, stop: { done: boolean }) =>
    Effect.forEach(
      Array.from({ length: 200 }),
      () =>
        Effect.whileLoop({
          while: () => !stop.done,
          body: () =>
            Effect.catch(Effect.asVoid(sql`select pg_sleep(${sleep * 0.4})`), () => Effect.sleep("20 millis")),
          step: () => {}
        }),
      { concurrency: "unbounded", discard: true }
    )
  const neighbour = (pro: SqlClient.SqlClient, free: SqlClient.SqlClient, asPro: As = asIs, asFree: As = asIs) =>
    Effect.gen(function* () {
      yield* asPro(lookups(pro))
      const unloaded = yield* asPro(lookups(pro))
      const stop = { done: false }
      const fiber = yield* Effect.forkChild(asFree(flood(free, stop)))
      yield* Effect.sleep("300 millis")
      const loaded = yield* asPro(lookups(pro))
      stop.done = true
      yield* Fiber.join(fiber)
      return { unloaded: quantile(unloaded, 0.99), loaded: quantile(loaded, 0.99), p50: quantile(loaded, 0.5) }
    })

  const program = Effect.gen(function* () {
    const observer = yield* PgClient.make({ url: Redacted.make(url), maxConnections: 1, applicationName: "tiers-obs" })
    yield* observer`drop table if exists tiers_kv`
    yield* observer`create table tiers_kv (id int primary key, v text not null)`
    yield* observer`insert into tiers_kv select i, md5(i::text) from generate_series(1, 1000) i`
    ctx.progress("slow statements, raw")
    const raw = yield* PgClient.make({
      url: Redacted.make(url),
      multiplex: false,
      maxConnections: 5,
      applicationName: "tiers-raw"
    })
    const r = yield* sampled(observer, "tiers-raw", slow(raw))

    const context = yield* Layer.build(
      PgEngine.layer({ applicationName: "tiers-guard" }).pipe(
        Layer.provideMerge(Tenancy.layerMemory({ healthCheckInterval: 0, shutdownTimeout: 0 }))
      )
    )
    const registry = Context.get(context, MemoryRegistry)
    const tenancy = Context.get(context, Tenancy.Tenancy)
    const guarded = Context.get(context, SqlClient.SqlClient)
    yield* registry.register({ id: "tiers-free", tier: "FREE", postgres: url })
    yield* registry.register({ id: "tiers-pro", tier: "PRO", postgres: url })
    const asFree = tenancy.withProject("tiers-free")
    const asPro = tenancy.withProject("tiers-pro")
    yield* asFree(guarded`select 1`)
    yield* asPro(guarded`select 1`)
    ctx.progress("slow statements, guard")
    yield* sampled(observer, "tiers-guard", asFree(slow(guarded)))
    const g = yield* sampled(observer, "tiers-guard", asFree(slow(guarded)))
    ctx.progress("noisy neighbour, guard")
    const ng = yield* neighbour(guarded, guarded, asPro, asFree)
    // The raw contrast under the flood is slow (seconds of queued lookups): full runs only.
    let nr: { readonly unloaded: number; readonly loaded: number } | undefined
    if (!ctx.quick) {
      ctx.progress("noisy neighbour, raw")
      const shared = yield* PgClient.make({ url: Redacted.make(url), multiplex: true, maxConnections: 50 })
      nr = yield* neighbour(shared, shared)
    }
    const w = "pg-tiers"
    return [
      {
        workload: w,
        name: `FREE: 20 x pg_sleep(${sleep}), most running at once (maxPool 5)`,
        unit: "",
        figure: g.most,
        target: { on: "figure", op: "<=", value: 5 },
        detail: `raw exclusive pool of 5: ${r.most}`
      },
      {
        workload: w,
        name: `FREE: 20 x pg_sleep(${sleep}), wall time`,
        unit: "ms",
        figure: g.millis,
        baseline: r.millis,
        baselineName: "raw exclusive pool of 5",
        ratio: g.millis / r.millis
      },
      {
        workload: w,
        name: "PRO lookup p99 under a FREE flood / unloaded, guard",
        unit: "ms",
        figure: ng.loaded,
        baseline: ng.unloaded,
        baselineName: "unloaded",
        ratio: ng.loaded / ng.unloaded,
        target: { on: "ratio", op: "<=", value: 3 }
      },
      ...(nr === undefined
        ? []
        : [
            {
              workload: w,
              name: "PRO lookup p99 under a FREE flood / unloaded, raw pool of 50",
              unit: "ms",
              figure: nr.loaded,
              baseline: nr.unloaded,
              baselineName: "unloaded",
              ratio: nr.loaded / nr.unloaded
            }
          ])
    ] satisfies Array<Row>
  })
  // Raw sql-pg, flooded, has thrown a SqlError from a socket callback (outside any effect): not this suite's failure.
  process.on("uncaughtException", (error) => ctx.progress(`raw sql-pg threw outside its effects: ${String(error)}`))
  return Effect.runPromise(Effect.scoped(program).pipe(Effect.provide(Reactivity.layer)))
}
