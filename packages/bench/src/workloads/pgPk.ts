/**
 * PostgreSQL primary-key lookup at 10 and 100 in flight: raw `@effect/sql-pg` against the same statement through
 * the guard (`PgEngine`'s `SqlClient`: admission, breakers, attempt timeout, metrics, per-statement routing), in
 * both pool modes (multiplexed, exclusive), same connection count, same server, interleaved rounds.
 *
 * Also: the guard in its default mode against raw sql-pg's best mode (multiplexed), and the spec's design (an
 * opossum breaker and prom-client metrics around the raw pool) as a contrast row.
 *
 * @internal
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
import { effectLoops, interleave, p99Row, throughputRow, type Variant } from "../internal/loops.ts"
import { specMetrics, specProject } from "../internal/spec.ts"
import { build, type Stack } from "../internal/stack.ts"
import type { Row, Run } from "../internal/suite.ts"

const connections = 4
const keys = 10_000
const project = "bench-project"

const lookup = (sql: SqlClient.SqlClient) =>
  sql`select id, v from bench_kv where id = ${1 + Math.floor(Math.random() * keys)}`

/** A raw sql-pg pool of `connections`, opened before measuring. */
const rawStack = (url: string, multiplex: boolean) =>
  build(
    Layer.effect(
      SqlClient.SqlClient,
      Effect.flatMap(
        PgClient.make({
          url: Redacted.make(url),
          multiplex,
          minConnections: connections,
          maxConnections: connections,
          applicationName: "bench-raw"
        }),
        (client) => Effect.succeed(client as SqlClient.SqlClient)
      )
    ).pipe(Layer.provide(Reactivity.layer))
  )

/** The guard: one PRO project sized to the same connection count, limits that never refuse at 100 in flight. */
const guardStack = (multiplex: boolean | undefined) =>
  build(
    PgEngine.layer({ ...(multiplex === undefined ? {} : { multiplex }), applicationName: "bench-guard" }).pipe(
      Layer.provideMerge(
        Tenancy.layerMemory({
          healthCheckInterval: 0,
          shutdownTimeout: 0,
          tiers: { PRO: { minPool: connections, maxPool: connections, maxConcurrent: 1000, maxQueue: 1000 } }
        })
      ),
      Layer.provide(Reactivity.layer)
    )
  )

const warm = (sql: SqlClient.SqlClient) =>
  Effect.forEach(Array.from({ length: 200 }), () => lookup(sql), { concurrency: "unbounded", discard: true })

/** @internal */
export const run: Run = async (ctx) => {
  const url = ctx.urls.postgres!
  await Effect.runPromise(
    Effect.scoped(
      Effect.gen(function* () {
        const sql = yield* PgClient.make({ url: Redacted.make(url), maxConnections: 1 })
        yield* sql`drop table if exists bench_kv`
        yield* sql`create table bench_kv (id int primary key, v text not null)`
        yield* sql`insert into bench_kv select i, md5(i::text) from generate_series(1, ${keys}) i`
        yield* sql`analyze bench_kv`
      })
    ).pipe(Effect.provide(Reactivity.layer))
  )
  const stacks: Array<Stack<any>> = []
  const rawRound = async (multiplex: boolean) => {
    const s = await rawStack(url, multiplex)
    stacks.push(s)
    const sql = Context.get(s.context, SqlClient.SqlClient)
    await s.run(warm(sql))
    return (n: number, k: number) => s.run(effectLoops(n, ctx.seconds * k, () => lookup(sql)))
  }
  const guardRound = async (multiplex: boolean | undefined) => {
    const s = await guardStack(multiplex)
    stacks.push(s)
    await s.run(Effect.flatMap(MemoryRegistry, (r) => r.register({ id: project, tier: "PRO", postgres: url })))
    const sql = Context.get(s.context, SqlClient.SqlClient)
    const as = Context.get(s.context, Tenancy.Tenancy).withProject(project)
    await s.run(as(warm(sql)))
    return (n: number, k: number) => s.run(as(effectLoops(n, ctx.seconds * k, () => lookup(sql))))
  }
  // The spec's design: the driver's own pool (raw sql-pg, multiplexed), an opossum breaker and prom-client metrics.
  const specSql = Context.get((await rawStack(url, true).then((s) => (stacks.push(s), s))).context, SqlClient.SqlClient)
  const spec = specProject(specMetrics(), "postgres", project, "PRO", { _tag: "shared", conn: specSql })
  const specRun = (n: number, k: number) =>
    Effect.runPromise(
      effectLoops(n, ctx.seconds * k, () =>
        Effect.promise(() => spec.call("select", (sql) => Effect.runPromise(lookup(sql))))
      )
    )

  const variants: ReadonlyArray<Variant> = [
    ["raw mux", await rawRound(true)],
    ["guard mux", await guardRound(true)],
    ["raw excl", await rawRound(false)],
    ["guard excl", await guardRound(false)],
    ["guard default", await guardRound(undefined)],
    ["spec", specRun]
  ]
  const inflights = [10, 100]
  const samples = await interleave(variants, inflights, ctx.rounds, ctx.progress)
  const w = "pg-pk"
  const atLeast = { on: "ratio", op: ">=", value: 0.9 } as const
  const p99Target = { on: "ratio", op: "<=", value: 1.2 } as const
  const rows: Array<Row> = []
  for (const n of inflights) {
    rows.push(throughputRow(w, samples, "guard mux", "raw mux", n, atLeast))
    rows.push(throughputRow(w, samples, "guard excl", "raw excl", n, atLeast))
    rows.push(throughputRow(w, samples, "guard default", "raw mux", n))
    rows.push(throughputRow(w, samples, "spec", "raw mux", n))
    rows.push(p99Row(w, samples, "guard mux", "raw mux", n, p99Target))
    rows.push(p99Row(w, samples, "guard excl", "raw excl", n, p99Target))
  }
  await spec.close()
  for (const s of stacks.reverse()) await s.close()
  return rows
}
