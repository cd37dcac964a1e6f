/**
 * Leases: admission for work that is not one request and one reply — a stream or cursor read as its consumer
 * pulls, a reserved connection, a transaction held open by its caller. A lease is admitted like a call (breakers,
 * the project's bulkhead, the target's budget, the same protections check) and holds its slots until the holder's
 * scope closes; it is bounded by the tier deadline, when `expired` fails with `Timeout` and the operation's
 * `cancel` stops the server-side work; its outcome (the scope's exit) counts toward the breakers like a call's.
 * So nothing a project starts escapes its concurrency limit, the target's budget or its deadline.
 *
 * @internal
 */
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type { Lease, Operation } from "../Engine.ts"
import type { GuardError, ProtectionError } from "../Errors.ts"
import { type ProtectionDetail, Protections } from "../Protections.ts"
import { Call, DONE } from "./call.ts"
import { resolve } from "./runtimes.ts"
import type { EngineState, ProjectEngine, TenancyState } from "./state.ts"

const acquire = <B, E>(
  g: TenancyState,
  pe: ProjectEngine<B, E>,
  op: Operation<B>
): Effect.Effect<Lease<B>, E | GuardError, Scope.Scope> =>
  Effect.uninterruptibleMask((restore) =>
    Effect.flatMap(
      // Waiting for admission stays interruptible; once granted, the finalizer is in place before anything else.
      restore(
        Effect.callback<Call<void, E>, E | GuardError>((resume) => {
          const t = g.now()
          const span = pe.rt.tier.limits.timeoutMillis
          const call: Call<void, E> = new Call<void, E>(
            g,
            pe,
            op,
            t + span,
            span,
            0,
            undefined,
            undefined,
            () => resume(Effect.succeed(call)),
            resume as never
          )
          call.expiry = Deferred.makeUnsafe<never, GuardError>()
          call.begin(t)
          if (call.state === DONE) return
          return Effect.sync(() => call.interrupt())
        })
      ),
      (call) =>
        Effect.as(
          Effect.addFinalizer((exit) => Effect.sync(() => call.settle(exit))),
          {
            binding: pe.binding,
            project: pe.rt,
            signal: call,
            expired: Deferred.await(call.expiry!)
          } satisfies Lease<B>
        )
    )
  )

/** A lease for the current project (see the module comment). @internal */
export const lease = <B, E>(
  g: TenancyState,
  es: EngineState<B, E>,
  op: Operation<B>,
  detail: ProtectionDetail | undefined
): Effect.Effect<Lease<B>, E | GuardError | ProtectionError, Scope.Scope> =>
  Effect.withFiber((fiber) => {
    const start = (pe: ProjectEngine<B, E>): Effect.Effect<Lease<B>, E | GuardError | ProtectionError, Scope.Scope> => {
      const check =
        detail === undefined ? undefined : fiber.getRef(Protections)?.check(pe.rt, es.engine, op.name, detail)
      return check === undefined ? acquire(g, pe, op) : Effect.andThen(check, acquire(g, pe, op))
    }
    const resolved = resolve(g, fiber, es)
    return Effect.isEffect(resolved) ? Effect.flatMap(resolved, start) : start(resolved)
  })
