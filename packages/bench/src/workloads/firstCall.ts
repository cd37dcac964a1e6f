/**
 * The first call of a project, per engine, over a warm call: what a project that was idle (or never used) pays on
 * its first request, split into the registry lookup, the runtime's creation and the engine binding. Projects are
 * new to the process but their target is not (its connections are open), as for a project of an existing fleet.
 *
 * - warm: a call of a project whose runtime and binding exist;
 * - first: a project's very first call (lookup, runtime, binding, call);
 * - runtime: a first call through a fake engine (no server), less the fake's warm call and the lookup;
 * - binding: the real engine's first call of a project whose runtime exists, less the warm call.
 *
 * Every call is wrapped in `withProject`, as a request handler's is; figures are medians over many projects.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Reactivity from "effect/reactivity/Reactivity"
import * as SqlClient from "effect/sql/SqlClient"
import type { Engine } from "@tenantpool/core/Engine"
import * as ProjectId from "@tenantpool/core/ProjectId"
import { MemoryRegistry, ProjectRegistry, type ProjectInput } from "@tenantpool/core/Registry"
import * as Tenancy from "@tenantpool/core/Tenancy"
import * as MongoEngine from "@tenantpool/mongodb/MongoEngine"
import * as PgEngine from "@tenantpool/pg/PgEngine"
import * as RedisEngine from "@tenantpool/redis/RedisEngine"
import { fakeAdapter } from "../internal/fakeEngine.ts"
import { build } from "../internal/stack.ts"
import { median, type Row, type Run } from "../internal/suite.ts"
import { withDb } from "./mongoFindOne.ts"

const tenancyLayer = Tenancy.layerMemory({ healthCheckInterval: 0, shutdownTimeout: 0 })

interface Subject {
  readonly engine: Engine
  readonly fake: Engine
  readonly layer: Layer.Layer<any, any>
  readonly input: (id: string) => ProjectInput
  readonly call: Effect.Effect<unknown, unknown, any>
}

const subjects = (urls: Record<string, string | undefined>): ReadonlyArray<Subject> => [
  {
    engine: "redis",
    fake: "mongodb",
    layer: RedisEngine.layer().pipe(Layer.provideMerge(tenancyLayer)),
    input: (id) => ({ id, tier: "PRO", redis: urls["redis"]!, mongodb: "mongodb://fake.invalid:27017/x" }),
    call: Effect.flatMap(RedisEngine.RedisEngine, (r) => r.get("bench:key"))
  },
  {
    engine: "postgres",
    fake: "redis",
    layer: PgEngine.layer().pipe(Layer.provideMerge(tenancyLayer), Layer.provide(Reactivity.layer)),
    input: (id) => ({ id, tier: "PRO", postgres: urls["postgres"]!, redis: "redis://fake.invalid:6379/0" }),
    call: Effect.flatMap(SqlClient.SqlClient, (sql) => sql`select 1`)
  },
  {
    engine: "mongodb",
    fake: "redis",
    layer: MongoEngine.layer().pipe(Layer.provideMerge(tenancyLayer)),
    input: (id) => ({
      id,
      tier: "PRO",
      mongodb: withDb(urls["mongodb"]!, "tp_bench_first"),
      redis: "redis://fake.invalid:6379/0"
    }),
    call: Effect.flatMap(MongoEngine.MongoEngine, (m) => m.collection("items").findOne({ n: 1 }))
  }
]

const micros = (t0: number) => (performance.now() - t0) * 1000

const measure = (s: Subject, projects: number, progress: (m: string) => void) =>
  Effect.gen(function* () {
    const registry = yield* MemoryRegistry
    const lookups = yield* ProjectRegistry
    const tenancy = yield* Tenancy.Tenancy
    const fake = yield* tenancy.register(fakeAdapter(s.fake))
    const fakeCall = fake.run(
      { name: "get", idempotent: true },
      () => Promise.resolve(1),
      (e) => e as never
    )
    const timed = <A, E, R>(id: string, effect: Effect.Effect<A, E, R>) =>
      Effect.suspend(() => {
        const t0 = performance.now()
        return Effect.map(effect.pipe(tenancy.withProject(id)), () => micros(t0))
      })
    // The target's connections open with the first project; warm the JIT on it.
    yield* registry.register(s.input("warm"))
    for (let i = 0; i < 300; i++) yield* timed("warm", s.call)
    for (let i = 0; i < 300; i++) yield* timed("warm", fakeCall)
    const warm: Array<number> = []
    const warmFake: Array<number> = []
    const lookup: Array<number> = []
    const runtimeFirst: Array<number> = []
    const bindingFirst: Array<number> = []
    const first: Array<number> = []
    for (let i = 0; i < projects; i++) {
      if (i % 50 === 0) progress(`${s.engine}: project ${i}/${projects}`)
      const a = `${s.engine}-a-${i}`
      const b = `${s.engine}-b-${i}`
      yield* registry.register(s.input(a))
      yield* registry.register(s.input(b))
      const pid = yield* ProjectId.decode(a)
      const t0 = performance.now()
      yield* lookups.lookup(pid)
      lookup.push(micros(t0))
      runtimeFirst.push(yield* timed(a, fakeCall))
      bindingFirst.push(yield* timed(a, s.call))
      first.push(yield* timed(b, s.call))
      warm.push(yield* timed("warm", s.call))
      warmFake.push(yield* timed("warm", fakeCall))
    }
    const w = median(warm)
    const l = median(lookup)
    const row = (name: string, figure: number, target?: number): Row => ({
      workload: "first-call",
      name: `${s.engine}: ${name}`,
      unit: "µs",
      figure,
      target: target === undefined ? undefined : { on: "figure", op: "<=", value: target }
    })
    return [
      { ...row("first call over a warm call", median(first) - w, 50), baseline: w, baselineName: "warm call" },
      row("registry lookup", l),
      row("runtime creation", median(runtimeFirst) - median(warmFake) - l),
      row("binding", median(bindingFirst) - w)
    ]
  })

/** @internal */
export const run: Run = async (ctx) => {
  const projects = ctx.quick ? 40 : 400
  const rows: Array<Row> = []
  for (const s of subjects(ctx.urls)) {
    const stack = await build(s.layer)
    rows.push(...(await stack.run(measure(s, projects, ctx.progress))))
    await stack.close()
  }
  return rows
}
