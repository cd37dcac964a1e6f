/**
 * Idle projects: heap per registered project at 100,000 projects (three engines each, spread over 20 shared
 * servers like a real fleet), live runtimes and timers while idle, and what is left after 1,000 of them were used
 * once and freed. Needs `--expose-gc` (the runner passes it).
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import { MemoryRegistry } from "@tenantpool/core/Registry"
import * as Tenancy from "@tenantpool/core/Tenancy"
import { type Binding, fakeAdapter } from "../internal/fakeEngine.ts"
import type { Row, Run } from "../internal/suite.ts"

const handles = () => (process as unknown as { _getActiveHandles(): Array<unknown> })._getActiveHandles().length

/** @internal */
export const run: Run = async (ctx) => {
  const projects = ctx.quick ? 10_000 : 100_000
  const gc = (globalThis as { gc?: () => void }).gc
  if (gc === undefined) throw new Error("idle: run with node --expose-gc")
  const heap = () => {
    gc()
    gc()
    return process.memoryUsage().heapUsed
  }
  const program = Effect.gen(function* () {
    const registry = yield* MemoryRegistry
    const tenancy = yield* Tenancy.Tenancy
    const engine = yield* tenancy.register(fakeAdapter("redis"))
    const get = { name: "get", idempotent: true } as const
    const before = heap()
    const handlesBefore = handles()
    ctx.progress(`registering ${projects} projects`)
    for (let i = 0; i < projects; i++) {
      const server = i % 20
      yield* registry.register({
        id: `project-${i}`,
        tier: (["FREE", "STARTER", "PRO", "ENTERPRISE"] as const)[i % 4],
        postgres: `postgres://app:secret@pg-${server}.internal:5432/app`,
        redis: `redis://:secret@redis-${server}.internal:6379/0`,
        mongodb: `mongodb://app:secret@mongo-${server}.internal:27017/project_${i}`
      })
    }
    const perProject = (heap() - before) / projects
    const idle = yield* tenancy.stats
    const handlesIdle = handles() - handlesBefore
    ctx.progress("using 1,000 once, then freeing them")
    for (let i = 0; i < 1000; i++) {
      yield* engine
        .run(
          get,
          (_b: Binding) => Promise.resolve(1),
          (e) => e as never
        )
        .pipe(tenancy.withProject(`project-${i}`))
    }
    yield* tenancy.closeIdleConnections({ idleFor: 0 })
    const after = yield* tenancy.stats
    const w = "idle"
    const zero = { on: "figure", op: "<=", value: 0 } as const
    return [
      {
        workload: w,
        name: `heap per registered idle project (${projects.toLocaleString("en-US")})`,
        unit: "bytes",
        figure: perProject
      },
      { workload: w, name: "live runtimes while idle", unit: "", figure: idle.liveProjects, target: zero },
      {
        workload: w,
        name: "timers and handles added while idle",
        unit: "",
        figure: handlesIdle + (idle.timerArmed ? 1 : 0),
        target: zero
      },
      {
        workload: w,
        name: "runtimes left after 1,000 used and freed",
        unit: "",
        figure: after.liveProjects,
        target: zero
      }
    ] satisfies Array<Row>
  }).pipe(Effect.scoped, Effect.provide(Tenancy.layerMemory({ healthCheckInterval: 0 })))
  return Effect.runPromise(program)
}
