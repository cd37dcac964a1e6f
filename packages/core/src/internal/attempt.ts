/**
 * A guarded call as an Effect: its first attempt (`attempt`), and the retry loop its failure may enter
 * (`retryFrom`): infrastructure failures of idempotent operations are retried by the service's `Schedule` while the
 * next attempt can start before the deadline; the breakers count the call once. See `call.ts` for one attempt.
 *
 * @internal
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import { isWrite, type Operation } from "../Engine.ts"
import { type GuardError, isGuardError, Timeout, UnknownOutcome } from "../Errors.ts"
import { Call, DONE, type Retry, type Runner } from "./call.ts"
import type { EngineState, ProjectEngine, TenancyState } from "./state.ts"

/**
 * One attempt as an Effect. `t` is the caller's clock reading (the first attempt reuses it; a retry passes -1 and
 * reads the clock). Interrupting the fiber releases whatever the attempt holds.
 *
 * @internal
 */
export const attempt = <A, B, E>(
  g: TenancyState,
  pe: ProjectEngine<B, E>,
  op: Operation<B>,
  t: number,
  deadline: number,
  span: number,
  extraMillis: number,
  runner: Runner<A, B, E>,
  retries: boolean,
  first?: Call<A, E> | undefined
): Effect.Effect<A, E | GuardError> => {
  let clock = t
  return Effect.callback<A, E | GuardError>((resume) => {
    const call = new Call<A, E>(
      g,
      pe,
      op,
      deadline,
      span,
      extraMillis,
      retries ? (retryFrom as Retry) : undefined,
      first,
      runner,
      resume
    )
    call.begin(clock >= 0 ? clock : g.now())
    clock = -1
    if (call.state === DONE) return
    return Effect.sync(() => call.interrupt())
  })
}

// ---- retries ---------------------------------------------------------------------------------------------------

// Retried: infrastructure failures of idempotent operations, and attempt timeouts only where the operation asks
// (a statement that ran to its timeout has shown it is slow). Never the guard's own verdicts.
const isRetryable = (es: EngineState<any, any>, op: Operation<any>, error: unknown): boolean => {
  if (!op.idempotent) return false
  if (error instanceof Timeout)
    return error.budget === "attempt" && error.waitingFor === undefined && op.retryOnTimeout === true
  if (isGuardError(error)) return false
  return es.adapter.classify(error).infrastructure
}

/**
 * The retry loop, entered from the first attempt's failure only (see `Call.finish`); later attempts are plain,
 * and the breakers do not count them (they count calls). Retries by the service's schedule while the next attempt
 * can start before the deadline. Giving up on a write that some attempt may have applied is `UnknownOutcome`.
 */
const retryFrom = <A, E>(call: Call<A, E>, failure: unknown): Effect.Effect<A, E | GuardError> => {
  const firstError = failure as E | GuardError
  const { deadline, g, op, pe } = call
  const es = pe.es
  const giveUp = (error: E | GuardError): Effect.Effect<never, E | GuardError> =>
    Effect.fail(
      isWrite(op) && call.applied && !(error instanceof UnknownOutcome)
        ? new UnknownOutcome({ projectId: pe.rt.id, engine: es.engine, operation: op.name, cause: error })
        : error
    )
  if (!isRetryable(es, op, firstError)) return giveUp(firstError)
  const once = attempt<A, any, E>(g, pe, op, -1, deadline, call.span, call.extraMillis, call.runner, false, call)
  return Effect.gen(function* () {
    const step = yield* Schedule.toStep(g.settings.retry)
    let error: E | GuardError = firstError
    for (;;) {
      const next = yield* Effect.exit(step(g.now(), error))
      if (next._tag === "Failure") return yield* giveUp(error)
      const delay = Duration.toMillis(next.value[1])
      if (g.now() + delay >= deadline) return yield* giveUp(error)
      yield* Effect.sleep(Duration.millis(delay))
      const result = yield* Effect.result(once)
      if (result._tag === "Success") return result.success
      error = result.failure
      if (!isRetryable(es, op, error)) return yield* giveUp(error)
    }
  })
}
