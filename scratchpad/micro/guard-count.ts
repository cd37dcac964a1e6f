// Guard calls only, N from the environment, for instruction counts that load on the machine does not change:
//   N=20000 valgrind --tool=callgrind --callgrind-out-file=/dev/null npx node scratchpad/micro/guard-count.ts
//   N=120000 … (the same); (I(120000) - I(20000)) / 100000 is the cost of one guarded call in instructions.
import { Effect } from "effect"
import * as Tenancy from "../../packages/core/src/Tenancy.ts"
import { MemoryRegistry } from "../../packages/core/src/Registry.ts"
import * as Fake from "../../packages/core/test/fixtures/FakeEngine.ts"

const N = Number(process.env.N ?? 10000)
const server = Fake.makeServer()
const program = Effect.gen(function* () {
  const tenancy = yield* Tenancy.Tenancy
  yield* (yield* MemoryRegistry).register({ id: "acme", tier: "ENTERPRISE", redis: "redis://127.0.0.1:6379/0" })
  const engine = yield* tenancy.register(Fake.adapter(server))
  const get = { name: "get", idempotent: true } as const
  const resolved = Promise.resolve(1)
  const guarded = engine.run(
    get,
    () => resolved,
    (e) => e as any
  )
  yield* Effect.gen(function* () {
    for (let i = 0; i < N; i++) yield* guarded
  }).pipe(tenancy.withProject("acme"))
}).pipe(Effect.scoped, Effect.provide(Tenancy.layerMemory({ healthCheckInterval: 0 })))
await Effect.runPromise(program)
