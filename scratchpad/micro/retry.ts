import { Effect, Schedule } from "effect"
const N = 200_000
const time = async (name: string, eff: Effect.Effect<any, any, never>) => {
  await Effect.runPromise(eff)
  const t0 = process.hrtime.bigint()
  await Effect.runPromise(eff)
  console.log(name.padEnd(40), (Number(process.hrtime.bigint() - t0) / N / 1000).toFixed(3), "µs/call")
}
const loop = (body: Effect.Effect<any, any, never>) =>
  Effect.gen(function* () {
    for (let i = 0; i < N; i++) yield* body
  })
const base = Effect.succeed(1)
const sched = Schedule.exponential("50 millis").pipe(Schedule.jittered, Schedule.upTo({ times: 2 }))
await time("baseline", loop(base))
await time("retry(schedule, while)", loop(Effect.retry(base, { schedule: sched, while: () => true })))
await time("catch", loop(Effect.catch(base, () => Effect.succeed(2))))
await time(
  "callback sync resume",
  loop(
    Effect.callback<number>((r) => {
      r(Effect.succeed(1))
    })
  )
)
await time(
  "callback + cleanup",
  loop(
    Effect.callback<number>((r) => {
      r(Effect.succeed(1))
      return Effect.void
    })
  )
)
await time("withFiber", loop(Effect.withFiber(() => base)))
await time("promise", loop(Effect.promise(() => Promise.resolve(1))))
await time(
  "callback queueMicrotask",
  loop(
    Effect.callback<number>((r) => {
      queueMicrotask(() => r(Effect.succeed(1)))
    })
  )
)
