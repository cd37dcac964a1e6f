/**
 * Guard cost per call while other callers wait: 0, 1,000 and 10,000 callers of another project queued behind its
 * concurrency limit (each holding a deadline entry), and one project calling in a loop through the guard (a
 * driver call that resolves at once, on an engine with no server). Rounds alternate the order of the three.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import { MemoryRegistry } from "@tenantpool/core/Registry"
import * as Tenancy from "@tenantpool/core/Tenancy"
import { fakeAdapter } from "../internal/fakeEngine.ts"
import { median, type Row, type Run } from "../internal/suite.ts"

const waiterCounts = [0, 1_000, 10_000]

/** @internal */
export const run: Run = async (ctx) => {
  const calls = ctx.quick ? 30_000 : 200_000
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
    const blocked = engine.run(
      get,
      () => never,
      (e) => e as never
    )
    const samples = new Map<number, Array<number>>(waiterCounts.map((w) => [w, []]))
    let serial = 0
    yield* loop // warm-up
    for (let r = 0; r < Math.max(3, ctx.rounds); r++) {
      const order = r % 2 === 0 ? waiterCounts : [...waiterCounts].reverse()
      for (const waiters of order) {
        ctx.progress(`round ${r + 1}: ${waiters} waiting`)
        // A STARTER project whose one running call never ends, `waiters` callers queued behind it (its deadline is
        // long enough that the queue's expected wait refuses none of them).
        const id = `waiters-${serial++}`
        yield* registry.register({ id, tier: "STARTER", redis: `redis://${id}.invalid:6379/0` })
        const fibers = []
        for (let i = 0; i < waiters + 1; i++) fibers.push(yield* Effect.forkChild(tenancy.withProject(id)(blocked)))
        // The forked callers start in batches: yield until all of them queue.
        let queued = 0
        for (let y = 0; y < 10_000 && queued < waiters; y++) {
          yield* Effect.yieldNow
          queued = (yield* tenancy.connections).find((c) => c.projectId === id)?.queued ?? 0
        }
        if (queued !== waiters) return yield* Effect.die(`expected ${waiters} queued callers, found ${queued}`)
        const t0 = process.hrtime.bigint()
        yield* loop
        samples.get(waiters)!.push(Number(process.hrtime.bigint() - t0) / calls / 1000)
        yield* Fiber.interruptAll(fibers)
      }
    }
    return samples
  }).pipe(
    Effect.provide(
      Tenancy.layerMemory({
        healthCheckInterval: 0,
        shutdownTimeout: 0,
        tiers: { STARTER: { maxConcurrent: 1, maxQueue: 20_000, timeout: "24 hours" } }
      })
    )
  )
  const samples = await Effect.runPromise(program)
  const none = median(samples.get(0)!)
  const rows: Array<Row> = waiterCounts.map((w) => {
    const s = samples.get(w)!
    return {
      workload: "guard-waiters",
      name: `guard cost per call, ${w.toLocaleString("en-US")} waiting`,
      unit: "µs",
      figure: median(s),
      ...(w === 0 ? {} : { baseline: none, baselineName: "0 waiting", ratio: median(s) / none }),
      target: w === 0 ? undefined : { on: "ratio", op: "<=", value: 1.2 },
      detail: `rounds: ${s.map((x) => x.toFixed(3)).join(" ")}`
    }
  })
  return rows
}
