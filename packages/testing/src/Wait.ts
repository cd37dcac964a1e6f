/**
 * Small helpers for integration tests that wait on real servers: poll until a condition holds, time an effect.
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"

/**
 * Polls `check` every 20 ms until it holds; fails the test (a defect) naming `what` after `within` (default 5 s).
 *
 * @category combinators
 * @since 0.1.0
 */
export const eventually = <E, R>(
  what: string,
  check: Effect.Effect<boolean, E, R>,
  within: Duration.Input = "5 seconds"
): Effect.Effect<void, E, R> =>
  Effect.gen(function* () {
    const deadline = Date.now() + Duration.toMillis(Duration.fromInputUnsafe(within))
    for (;;) {
      if (yield* check) return
      if (Date.now() > deadline) return yield* Effect.die(new Error(`timed out waiting for: ${what}`))
      yield* Effect.sleep("20 millis")
    }
  })

/**
 * Wall-clock milliseconds an effect takes, with its result.
 *
 * @category combinators
 * @since 0.1.0
 */
export const timed = <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<readonly [A, number], E, R> =>
  Effect.suspend(() => {
    const started = performance.now()
    return Effect.map(self, (a) => [a, performance.now() - started] as const)
  })
