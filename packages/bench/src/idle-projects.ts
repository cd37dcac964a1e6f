/**
 * Cost of idle projects: heap per registered project at 100,000 projects, and timers alive.
 *
 * Registers N projects (three engines each, spread over a few shared servers like a real fleet) in the
 * in-memory registry, uses 1,000 of them once (runtimes created, then freed by the idle sweep), and reports
 * the heap growth per registered project and the live timers/handles before and after.
 *
 * Usage: node --expose-gc packages/bench/src/idle-projects.ts [--projects 100000]
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import { MemoryRegistry } from "@tenantpool/core/Registry"
import * as Tenancy from "@tenantpool/core/Tenancy"
import type { Binding } from "./internal/fakeEngine.ts"
import { fakeAdapter } from "./internal/fakeEngine.ts"
import { arg } from "./internal/report.ts"

const projects = arg("projects", 100_000)
const gc = (globalThis as { gc?: () => void }).gc
if (gc === undefined) throw new Error("run with node --expose-gc")
const heap = () => {
  gc()
  gc()
  return process.memoryUsage().heapUsed
}
const handles = () => (process as unknown as { _getActiveHandles(): Array<unknown> })._getActiveHandles().length

const program = Effect.gen(function* () {
  const registry = yield* MemoryRegistry
  const tenancy = yield* Tenancy.Tenancy
  const engine = yield* tenancy.register(fakeAdapter("redis"))
  const get = { name: "get", idempotent: true } as const
  const before = heap()
  const handlesBefore = handles()
  for (let i = 0; i < projects; i++) {
    const server = i % 20
    const tier = (["FREE", "STARTER", "PRO", "ENTERPRISE"] as const)[i % 4]
    yield* registry.register({
      id: `project-${i}`,
      tier,
      postgres: `postgres://app:secret@pg-${server}.internal:5432/app`,
      redis: `redis://:secret@redis-${server}.internal:6379/0`,
      mongodb: `mongodb://app:secret@mongo-${server}.internal:27017/project_${i}`
    })
  }
  const afterRegister = heap()
  const statsIdle = yield* tenancy.stats
  // Use 1,000 projects once, then free them.
  for (let i = 0; i < 1000; i++) {
    yield* engine
      .run(
        get,
        (_b: Binding) => Promise.resolve(1),
        (e) => e as never
      )
      .pipe(tenancy.withProject(`project-${i}`))
  }
  const statsBusy = yield* tenancy.stats
  const closed = yield* tenancy.closeIdleConnections({ idleFor: 0 })
  const statsAfter = yield* tenancy.stats
  const afterEvict = heap()
  console.log(`\nIdle projects (node ${process.version})`)
  console.log(`  registered projects                ${projects}`)
  console.log(`  heap per registered project        ${((afterRegister - before) / projects).toFixed(0)} bytes`)
  console.log(
    `  live runtimes while idle           ${statsIdle.liveProjects} (timer armed: ${statsIdle.timerArmed}, pending deadlines: ${statsIdle.pendingDeadlines})`
  )
  console.log(`  active handles (timers, sockets)   before ${handlesBefore}, after registering ${handles()}`)
  console.log(
    `  after using 1,000 once             runtimes ${statsBusy.liveProjects}, pending deadlines ${statsBusy.pendingDeadlines}`
  )
  console.log(
    `  closeIdleConnections()             closed ${closed}; runtimes now ${statsAfter.liveProjects}, timer armed ${statsAfter.timerArmed}`
  )
  console.log(`  heap after eviction vs registered  ${((afterEvict - afterRegister) / 1024).toFixed(0)} KiB`)
}).pipe(Effect.scoped, Effect.provide(Tenancy.layerMemory({ healthCheckInterval: 0 })))

await Effect.runPromise(program)
