/**
 * Guard cost per call while other callers wait: 0, 1,000 and 10,000 callers of another project queued behind its
 * concurrency limit (each holding a deadline entry), and one project calling in a loop through the guard (a
 * driver call that resolves at once, on an engine with no server). With deadlines kept in lanes per relative
 * timeout the figure stays flat; with one sorted list every attempt's entry was inserted in front of all waiters.
 *
 *   node packages/bench/src/guard-waiters.ts [--calls 200000] [--rounds 5]
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import { MemoryRegistry } from "@tenantpool/core/Registry"
import * as Tenancy from "@tenantpool/core/Tenancy"
import { fakeAdapter } from "./internal/fakeEngine.ts"
import { arg, median } from "./internal/report.ts"

const calls = arg("calls", 200_000)
const rounds = arg("rounds", 5)
const waiterCounts = [0, 1_000, 10_000]

const program = Effect.gen(function* () {
  const tenancy = yield* Tenancy.Tenancy
  const registry = yield* MemoryRegistry
  yield* registry.register({ id: "caller", tier: "ENTERPRISE", redis: "redis://bench.invalid:6379/0" })
  const engine = yield* tenancy.register(fakeAdapter("redis"))
  const get = { name: "get", idempotent: true } as const
  const resolved = Promise.resolve(1)
  const never = new Promise<number>(() => {})
  const call = engine.run(
    get,
    () => resolved,
    (e) => e as never
  )
  const loop = Effect.gen(function* () {
    for (let i = 0; i < calls; i++) yield* call
  }).pipe(tenancy.withProject("caller"))

  const rows: Array<{ waiters: number; micros: number; samples: Array<number> }> = []
  for (const waiters of waiterCounts) {
    // A FREE project (1 running, up to `waiters` queued, 120 s deadline) whose one running call never ends.
    const id = `waiters-${waiters}`
    yield* registry.register({ id, tier: "STARTER", redis: `redis://waiters-${waiters}.invalid:6379/0` })
    const blocked = engine.run(
      get,
      () => never,
      (e) => e as never
    )
    const fibers = []
    for (let i = 0; i < waiters + 1; i++) fibers.push(yield* Effect.forkChild(tenancy.withProject(id)(blocked)))
    yield* Effect.yieldNow
    const queued = (yield* tenancy.connections).find((c) => c.projectId === id)?.queued ?? 0
    if (queued !== waiters) throw new Error(`expected ${waiters} queued callers, found ${queued}`)
    yield* loop // warm-up
    const samples: Array<number> = []
    for (let r = 0; r < rounds; r++) {
      const t0 = process.hrtime.bigint()
      yield* loop
      samples.push(Number(process.hrtime.bigint() - t0) / calls / 1000)
    }
    rows.push({ waiters, micros: median(samples), samples })
    yield* Fiber.interruptAll(fibers)
  }
  console.log(`\nguard cost per call with callers waiting  (node ${process.version}, ${calls} calls x ${rounds})`)
  for (const r of rows) {
    const detail = r.samples.map((s) => s.toFixed(3)).join(" ")
    console.log(`  ${String(r.waiters).padStart(6)} waiting   ${r.micros.toFixed(3)} µs/call   (${detail})`)
  }
  const flat = rows[rows.length - 1]!.micros / rows[0]!.micros
  console.log(`  10,000 waiting / none: ${flat.toFixed(2)}x`)
}).pipe(
  Effect.provide(
    Tenancy.layerMemory({
      healthCheckInterval: 0,
      shutdownTimeout: 0,
      tiers: { STARTER: { maxConcurrent: 1, maxQueue: 20_000, timeout: "120 seconds" } }
    })
  )
)

await Effect.runPromise(program)
