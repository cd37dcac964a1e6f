import { Effect } from "effect"
import * as Tenancy from "../../packages/core/src/Tenancy.ts"
import { MemoryRegistry } from "../../packages/core/src/Registry.ts"
import * as Fake from "../../packages/core/test/fixtures/FakeEngine.ts"

const N = 200_000
const server = Fake.makeServer()
const program = Effect.gen(function* () {
  const tenancy = yield* Tenancy.Tenancy
  yield* (yield* MemoryRegistry).register({ id: "acme", tier: "ENTERPRISE", redis: "redis://127.0.0.1:6379/0" })
  const engine = yield* tenancy.register(Fake.adapter(server))
  const get = { name: "get", idempotent: true } as const
  const resolved = Promise.resolve(1)
  const asyncEff = Effect.promise(() => resolved)
  const variants: Array<[string, Effect.Effect<any, any>]> = [
    ["Effect.promise (no guard)", asyncEff],
    [
      "guard.run (promise)",
      engine.run(
        get,
        () => resolved,
        (e) => e as any
      )
    ],
    ["guard.runEffect (Effect.promise)", engine.runEffect(get, () => asyncEff)],
    ["guard.runEffect (sync succeed)", engine.runEffect(get, () => Effect.succeed(1))]
  ]
  const loop = (body: Effect.Effect<any, any>) =>
    Effect.gen(function* () {
      for (let i = 0; i < N; i++) yield* body
    })
  yield* Effect.gen(function* () {
    for (const [name, body] of variants) {
      yield* loop(body)
      const samples: number[] = []
      for (let r = 0; r < 5; r++) {
        const t0 = process.hrtime.bigint()
        yield* loop(body)
        samples.push(Number(process.hrtime.bigint() - t0) / N / 1000)
      }
      samples.sort((a, b) => a - b)
      console.log(name.padEnd(36), "median", samples[2]!.toFixed(3), "µs/call  min", samples[0]!.toFixed(3))
    }
  }).pipe(tenancy.withProject("acme"))
}).pipe(Effect.scoped, Effect.provide(Tenancy.layerMemory({ healthCheckInterval: 0 })))
await Effect.runPromise(program)
