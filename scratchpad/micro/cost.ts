import { Effect, Semaphore, Metric } from "effect"
import { CircuitBreaker } from "effect/persistence"

const N = 200_000
const time = async (name: string, eff: Effect.Effect<any, any, never>) => {
  // warm
  await Effect.runPromise(eff)
  const t0 = process.hrtime.bigint()
  await Effect.runPromise(eff)
  const dt = Number(process.hrtime.bigint() - t0) / N
  console.log(name.padEnd(40), (dt / 1000).toFixed(3), "µs/call")
}
const loop = (body: Effect.Effect<any, any, never>) =>
  Effect.gen(function* () {
    for (let i = 0; i < N; i++) yield* body
  })
const base = Effect.succeed(1)
await time("baseline succeed", loop(base))
const sem = Semaphore.makeUnsafe(100)
await time("semaphore.withPermits(1)", loop(sem.withPermits(1)(base)))
await time("Effect.timeout 1s", loop(Effect.timeout(base, "1 second")))
const c = Metric.counter("x_total")
await time("Metric.update counter", loop(Metric.update(c, 1)))
const h = Metric.histogram("h", { boundaries: [0.001, 0.01, 0.1, 1] })
await time("Metric.update histogram", loop(Metric.update(h, 0.005)))
await time("withSpan", loop(Effect.withSpan(base, "x")))
await time("Effect.exit", loop(Effect.exit(base)))
await time("onExit", loop(Effect.onExit(base, () => Effect.void)))
await time("uninterruptibleMask", loop(Effect.uninterruptibleMask((r) => r(base))))
await time("Clock.currentTimeMillis", loop(Effect.clockWith((c) => Effect.succeed(c.currentTimeMillisUnsafe()))))
await Effect.runPromise(
  Effect.gen(function* () {
    const cb = yield* CircuitBreaker.make({
      tripPolicy: CircuitBreaker.rate({ threshold: 0.5, size: 100, minimumCalls: 10 }),
      openDuration: "30 seconds"
    })
    const t0 = process.hrtime.bigint()
    for (let i = 0; i < N; i++) yield* base.pipe(cb.execute({ key: "k" }))
    console.log(
      "CircuitBreaker.execute (memory)".padEnd(40),
      (Number(process.hrtime.bigint() - t0) / N / 1000).toFixed(3),
      "µs/call"
    )
  }).pipe(Effect.scoped, Effect.provide(CircuitBreaker.layerStoreMemory()))
)
