/**
 * Pooled vs connect-per-request, per engine, one request at a time: the latency of one small read through the
 * guard (connections kept open and shared) against opening a connection for the request and closing it after
 * (what an application without a pool does), and the spec's design (pooled, breaker, metrics). The spec claims
 * "40 % latency improvement (pooled connections)"; the rows say what pooling gives here.
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
import { MongoClient } from "mongodb"
import { MemoryRegistry } from "@tenantpool/core/Registry"
import * as Tenancy from "@tenantpool/core/Tenancy"
import * as MongoEngine from "@tenantpool/mongodb/MongoEngine"
import * as PgEngine from "@tenantpool/pg/PgEngine"
import * as RedisEngine from "@tenantpool/redis/RedisEngine"
import { specMetrics, specProject } from "../internal/spec.ts"
import { build } from "../internal/stack.ts"
import { median, quantile, type Row, type Run } from "../internal/suite.ts"
import { withDb } from "./mongoFindOne.ts"
import { connect } from "./redisGet.ts"

const project = "bench-project"
const tenancyLayer = Tenancy.layerMemory({ healthCheckInterval: 0, shutdownTimeout: 0 })

type Request = () => Promise<unknown>

interface Subject {
  readonly engine: string
  readonly perRequest: Request
  readonly guard: () => Promise<{ readonly request: Request; readonly close: () => Promise<void> }>
  readonly spec: () => Promise<{ readonly request: Request; readonly close: () => Promise<void> }>
}

// The guard's stack with one project, and its request as a promise.
const guarded = async <R>(
  layer: Layer.Layer<R | Tenancy.Tenancy | MemoryRegistry, unknown>,
  input: Parameters<MemoryRegistry["Service"]["register"]>[0],
  request: Effect.Effect<unknown, unknown, R>
) => {
  const stack = await build(layer)
  await stack.run(Effect.flatMap(MemoryRegistry, (r) => r.register(input)))
  const as = Context.get(stack.context, Tenancy.Tenancy).withProject(project)
  return { request: () => stack.run(as(request)), close: stack.close }
}

const subjects = (urls: Record<string, string | undefined>): ReadonlyArray<Subject> => {
  const redis = urls["redis"]!
  const pg = urls["postgres"]!
  const mongo = withDb(urls["mongodb"]!, "tp_bench_connect")
  return [
    {
      engine: "redis",
      perRequest: async () => {
        const c = await connect(redis, false)
        await c.get("bench:key")
        c.disconnect()
      },
      guard: () =>
        guarded(
          RedisEngine.layer().pipe(Layer.provideMerge(tenancyLayer)),
          { id: project, tier: "PRO", redis },
          Effect.flatMap(RedisEngine.RedisEngine, (r) => r.get("bench:key"))
        ),
      spec: async () => {
        const p = specProject(specMetrics(), "redis", project, "PRO", {
          _tag: "pool",
          create: () => connect(redis, false),
          destroy: async (c) => void c.disconnect()
        })
        return { request: () => p.call("get", (c) => c.get("bench:key")), close: p.close }
      }
    },
    {
      engine: "postgres",
      perRequest: () =>
        Effect.runPromise(
          Effect.scoped(
            Effect.flatMap(PgClient.make({ url: Redacted.make(pg), maxConnections: 1 }), (sql) => sql`select 1`)
          ).pipe(Effect.provide(Reactivity.layer))
        ),
      guard: () =>
        guarded(
          PgEngine.layer().pipe(Layer.provideMerge(tenancyLayer), Layer.provide(Reactivity.layer)),
          { id: project, tier: "PRO", postgres: pg },
          Effect.flatMap(SqlClient.SqlClient, (sql) => sql`select 1`)
        ),
      spec: async () => {
        const stack = await build(
          Layer.effect(
            SqlClient.SqlClient,
            Effect.map(PgClient.make({ url: Redacted.make(pg), maxConnections: 10 }), (c) => c as SqlClient.SqlClient)
          ).pipe(Layer.provide(Reactivity.layer))
        )
        const sql = Context.get(stack.context, SqlClient.SqlClient)
        const p = specProject(specMetrics(), "postgres", project, "PRO", { _tag: "shared", conn: sql })
        return {
          request: () => p.call("select", (s) => Effect.runPromise(s`select 1`)),
          close: async () => {
            await p.close()
            await stack.close()
          }
        }
      }
    },
    {
      engine: "mongodb",
      perRequest: async () => {
        const c = new MongoClient(mongo, { serverSelectionTimeoutMS: 5_000 })
        await c.connect()
        await c.db().collection("items").findOne({ n: 1 })
        await c.close()
      },
      guard: () =>
        guarded(
          MongoEngine.layer().pipe(Layer.provideMerge(tenancyLayer)),
          { id: project, tier: "PRO", mongodb: mongo },
          Effect.flatMap(MongoEngine.MongoEngine, (m) => m.collection("items").findOne({ n: 1 }))
        ),
      spec: async () => {
        const client = new MongoClient(mongo, { maxPoolSize: 10 })
        await client.connect()
        const p = specProject(specMetrics(), "mongodb", project, "PRO", { _tag: "shared", conn: client })
        return {
          request: () => p.call("findOne", (c) => c.db().collection("items").findOne({ n: 1 })),
          close: async () => {
            await p.close()
            await client.close()
          }
        }
      }
    }
  ]
}

const timed = async (request: Request, n: number, into: Array<number>) => {
  for (let i = 0; i < n; i++) {
    const t0 = performance.now()
    await request()
    into.push(performance.now() - t0)
  }
}

/** @internal */
export const run: Run = async (ctx) => {
  const requests = ctx.quick ? 30 : 300
  const block = 10
  const rows: Array<Row> = []
  for (const s of subjects(ctx.urls)) {
    const guard = await s.guard()
    const spec = await s.spec()
    const perRequest: Array<number> = []
    const pooled: Array<number> = []
    const specced: Array<number> = []
    // Warm-up, then blocks of each, interleaved.
    await timed(s.perRequest, 5, [])
    await timed(guard.request, 50, [])
    await timed(spec.request, 50, [])
    for (let i = 0; i < requests; i += block) {
      ctx.progress(`${s.engine}: ${i}/${requests}`)
      await timed(s.perRequest, block, perRequest)
      await timed(guard.request, block, pooled)
      await timed(spec.request, block, specced)
    }
    await guard.close()
    await spec.close()
    const base = median(perRequest)
    const row = (name: string, xs: ReadonlyArray<number>, target: boolean): Row => ({
      workload: "pooling",
      name: `${s.engine}: ${name} / connect-per-request`,
      unit: "ms",
      figure: median(xs),
      baseline: base,
      baselineName: "connect per request",
      ratio: median(xs) / base,
      p50: median(xs),
      p99: quantile(xs, 0.99),
      // The spec's claim: pooling improves latency by 40 %, i.e. pooled / connect-per-request <= 0.60.
      target: target ? { on: "ratio", op: "<=", value: 0.6 } : undefined,
      detail: `connect-per-request p50 ${base.toFixed(3)} ms, p99 ${quantile(perRequest, 0.99).toFixed(3)} ms`
    })
    rows.push(row("guard (pooled)", pooled, true), row("spec (pooled)", specced, false))
  }
  return rows
}
