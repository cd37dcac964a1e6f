import { Effect } from "effect"
import * as Tenancy from "../../packages/core/src/Tenancy.ts"
import { MemoryRegistry } from "../../packages/core/src/Registry.ts"
import * as Fake from "../../packages/core/test/fixtures/FakeEngine.ts"

const N = 300_000
const server = Fake.makeServer()
const program = Effect.gen(function* () {
  const tenancy = yield* Tenancy.Tenancy
  yield* (yield* MemoryRegistry).register({ id: "acme", tier: "ENTERPRISE", redis: "redis://127.0.0.1:6379/0" })
  const engine = yield* tenancy.register(Fake.adapter(server))
  const get = { name: "get", idempotent: true } as const
  const resolved = Promise.resolve(1)
  const raw = Effect.promise(() => resolved)
  const guarded = engine.run(
    get,
    () => resolved,
    (e) => e as any
  )
  const loop = (body: Effect.Effect<any, any>) =>
    Effect.gen(function* () {
      for (let i = 0; i < N; i++) yield* body
    })
  const measure = function* (name: string, body: Effect.Effect<any, any>) {
    yield* loop(body)
    const samples: number[] = []
    for (let r = 0; r < 5; r++) {
      const t0 = process.hrtime.bigint()
      yield* loop(body)
      samples.push(Number(process.hrtime.bigint() - t0) / N / 1000)
    }
    samples.sort((a, b) => a - b)
    console.log(
      name.padEnd(36),
      "median",
      samples[2]!.toFixed(3),
      "µs/call",
      samples.map((s) => s.toFixed(3)).join(" ")
    )
    return samples[2]!
  }
  yield* Effect.gen(function* () {
    const a = yield* measure("Effect.promise (no guard)", raw)
    const b = yield* measure("guard.run (promise path)", guarded)
    console.log("guard overhead".padEnd(36), (b - a).toFixed(3), "µs/call")
  }).pipe(tenancy.withProject("acme"))
}).pipe(Effect.scoped, Effect.provide(Tenancy.layerMemory({ healthCheckInterval: 0 })))
await Effect.runPromise(program)
