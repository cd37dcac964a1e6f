/**
 * The status page's history in the running server: a service holding `History.ts`'s state, fed by a fiber that
 * samples `Tenancy.connections` once a second and one that follows `Tenancy.events`, and `recorded`, with which the
 * routes time each guarded call.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import type * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import type { Engine } from "@tenantpool/core/Engine"
import { isGuardError } from "@tenantpool/core/Errors"
import { Tenancy } from "@tenantpool/core/Tenancy"
import { Tiers, type TierName } from "@tenantpool/core/Tier"
import * as History from "./History.ts"

/**
 * The history of the running server.
 *
 * @category services
 * @since 0.1.0
 */
export class StatusHistory extends Context.Service<StatusHistory, History.HistoryState>()(
  "@tenantpool/server/StatusHistory"
) {}

/**
 * Times a guarded call and records how it ended. Put it inside `withProject`, so only registered projects are
 * recorded: `self.pipe(recorded(history, id, "redis"), tenancy.withProject(id))`.
 *
 * @category combinators
 * @since 0.1.0
 */
export const recorded =
  (h: History.HistoryState, projectId: string, engine: Engine, options?: { readonly latency?: boolean }) =>
  <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    Effect.suspend(() => {
      const start = performance.now()
      return Effect.onExit(self, (exit: Exit.Exit<A, E>) =>
        Effect.sync(() => {
          const outcome = outcomeOf(exit)
          if (outcome === undefined) return
          History.record(
            h,
            projectId,
            engine,
            outcome,
            options?.latency === false ? undefined : performance.now() - start
          )
        })
      )
    })

const refusals = new Set(["Overloaded", "RateLimited", "CircuitOpen", "ShuttingDown", "QueryRejected"])

const outcomeOf = <A, E>(exit: Exit.Exit<A, E>): History.Outcome | undefined => {
  if (exit._tag === "Success") return "ok"
  const reasons = exit.cause.reasons
  // An interrupted request (the client went away) says nothing about the database.
  if (reasons.every((r) => r._tag === "Interrupt")) return undefined
  const failure = reasons.find((r) => r._tag === "Fail")
  const error = failure?._tag === "Fail" ? failure.error : undefined
  return isGuardError(error) && refusals.has(error._tag) ? "rejected" : "failed"
}

/**
 * The history as a layer: samples the tenancy service once a second and follows its events, for as long as the
 * layer lives.
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = (
  options?: History.HistoryOptions | undefined
): Layer.Layer<StatusHistory, never, Tenancy | Tiers> =>
  Layer.effect(
    StatusHistory,
    Effect.gen(function* () {
      const tenancy = yield* Tenancy
      const tiers = yield* Tiers
      const h = History.makeState(options)
      // Started at once, so no event published while the server starts is missed.
      yield* Effect.forkScoped(
        Stream.runForEach(tenancy.events, (e) => Effect.sync(() => History.onEvent(h, e))),
        {
          startImmediately: true
        }
      )
      const maxConcurrent = (tier: string) => tiers.all()[tier as TierName]?.maxConcurrent ?? 0
      yield* Effect.forkScoped(
        Effect.flatMap(tenancy.connections, (connections) =>
          Effect.sync(() => History.sample(h, connections, maxConcurrent, Date.now()))
        ).pipe(Effect.repeat(Schedule.spaced("1 second")))
      )
      return h
    })
  )
