// Profiling aid for the first call of a project with no I/O: N fresh projects' first call through a fake engine
// (lookup, runtime, binding, call) against a warm project's; PROF_OUT=file writes a CPU profile of the first calls.
//   node scratchpad/micro/bench-prof-first-fake.ts [projects 20000]
import { writeFileSync } from "node:fs"
import { Session } from "node:inspector/promises"
import * as Effect from "effect/Effect"
import { MemoryRegistry } from "@tenantpool/core/Registry"
import * as Tenancy from "@tenantpool/core/Tenancy"
import { fakeAdapter } from "../../packages/bench/src/internal/fakeEngine.ts"

const n = Number(process.argv[2] ?? 20_000)
const session = new Session()
session.connect()
await session.post("Profiler.enable")
await session.post("Profiler.setSamplingInterval", { interval: 50 })
const program = Effect.gen(function* () {
  const registry = yield* MemoryRegistry
  const tenancy = yield* Tenancy.Tenancy
  const engine = yield* tenancy.register(fakeAdapter("redis"))
  const call = engine.run(
    { name: "get", idempotent: true },
    () => Promise.resolve(1),
    (e) => e as never
  )
  for (let i = 0; i < 2 * n + 1000; i++)
    yield* registry.register({ id: `p-${i}`, tier: "PRO", redis: "redis://x:6379/0" })
  for (let i = 0; i < 1000; i++) yield* call.pipe(tenancy.withProject(`p-${i}`))
  for (let i = 0; i < 20_000; i++) yield* call.pipe(tenancy.withProject("p-0"))
  const out = process.env["PROF_OUT"]
  if (out) yield* Effect.promise(() => session.post("Profiler.start"))
  const t0 = performance.now()
  for (let i = 1000; i < n + 1000; i++) yield* call.pipe(tenancy.withProject(`p-${i}`))
  const first = ((performance.now() - t0) * 1000) / n
  if (out) {
    const { profile } = yield* Effect.promise(() => session.post("Profiler.stop"))
    writeFileSync(out, JSON.stringify(profile))
  }
  const t1 = performance.now()
  for (let i = 0; i < n; i++) yield* call.pipe(tenancy.withProject("p-0"))
  const warm = ((performance.now() - t1) * 1000) / n
  console.log(
    `first call ${first.toFixed(1)} µs, warm ${warm.toFixed(1)} µs, difference ${(first - warm).toFixed(1)} µs`
  )
}).pipe(Effect.provide(Tenancy.layerMemory({ healthCheckInterval: 0, shutdownTimeout: 0 })))
await Effect.runPromise(program)
process.exit(0)
