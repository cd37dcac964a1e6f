/**
 * Health: a ping per live target on an interval (jittered, one fiber for all targets), and on demand for one
 * project's engine. A failed ping counts against the target's breaker (so a hung server, whose pings time out
 * for everyone, opens it even though one project's slow queries never do), and a change of health is an event.
 *
 * @internal
 */
import * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Random from "effect/Random"
import { EngineNotConfigured, InvalidConfig, type InvalidProjectId, type ProjectNotFound } from "../Errors.ts"
import * as ProjectId from "../ProjectId.ts"
import { type Engine, engineIndex } from "../Vocabulary.ts"
import { CLOSED } from "./breaker.ts"
import { acquireRuntime, ensureEngine, releaseRuntime } from "./runtimes.ts"
import type { ProjectEngine, TenancyState } from "./state.ts"

/** What one ping found. @internal */
export interface Probe {
  readonly healthy: boolean
  readonly latencyMillis: number
  readonly error: string | undefined
}

const ping = (g: TenancyState, pe: ProjectEngine<any, any>): Effect.Effect<Probe> =>
  Effect.gen(function* () {
    const started = g.stopwatch()
    const exit = yield* Effect.exit(
      pe.es.adapter.ping(pe.binding).pipe(Effect.timeout(Duration.millis(g.settings.healthTimeoutMillis)))
    )
    const latencyMillis = g.stopwatch() - started
    if (exit._tag === "Success") return { healthy: true, latencyMillis, error: undefined }
    const error = Cause.hasInterruptsOnly(exit.cause) ? "interrupted" : errorText(Cause.squash(exit.cause))
    return { healthy: false, latencyMillis, error }
  })

const note = (g: TenancyState, pe: ProjectEngine<any, any>, result: Probe) => {
  const ts = pe.ts
  const t = g.now()
  if (ts.breaker.state === CLOSED) ts.breaker.record(t, !result.healthy, false)
  if (ts.healthy === result.healthy) return
  ts.healthy = result.healthy
  g.events.emit({
    _tag: "HealthChanged",
    at: t,
    engine: pe.es.engine,
    target: ts.label,
    projectId: pe.rt.id,
    healthy: result.healthy,
    latencyMillis: result.latencyMillis,
    error: result.error
  })
}

/** Pings a project's engine now (creating its binding if needed). @internal */
export const checkHealth = (
  g: TenancyState,
  id: string,
  engine: Engine
): Effect.Effect<
  Probe & { readonly projectId: string; readonly engine: Engine },
  ProjectNotFound | InvalidProjectId | EngineNotConfigured | InvalidConfig
> =>
  Effect.gen(function* () {
    const pid = yield* ProjectId.decode(id)
    if (typeof engine !== "string" || !Object.hasOwn(engineIndex, engine)) {
      return yield* new InvalidConfig({ field: "engine", reason: "must be postgres, redis or mongodb" })
    }
    const es = g.engines[engineIndex[engine]]
    if (es === undefined) return yield* new EngineNotConfigured({ projectId: pid, engine })
    return yield* Effect.acquireUseRelease(
      acquireRuntime(g, pid),
      (rt) =>
        Effect.gen(function* () {
          const bound = yield* Effect.exit(ensureEngine(g, rt, es))
          if (bound._tag === "Failure") {
            const error = Cause.squash(bound.cause)
            if (error instanceof EngineNotConfigured) return yield* error
            return { projectId: pid, engine, healthy: false, latencyMillis: 0, error: errorText(error) }
          }
          const result = yield* ping(g, bound.value)
          note(g, bound.value, result)
          return { projectId: pid, engine, ...result }
        }),
      (rt) => releaseRuntime(g, rt)
    )
  })

/** Pings every live target, forever, every interval ±20 %. @internal */
export const healthLoop = (g: TenancyState): Effect.Effect<never> =>
  Effect.forever(
    Effect.gen(function* () {
      const jitter = yield* Random.nextBetween(0.8, 1.2)
      yield* Effect.sleep(Duration.millis(g.settings.healthIntervalMillis * jitter))
      for (const es of g.engines) {
        if (es === undefined) continue
        for (const ts of [...es.targets.values()]) {
          const pe = ts.any()
          if (pe !== undefined) note(g, pe, yield* ping(g, pe))
        }
      }
    })
  )

const errorText = (e: unknown): string => (e instanceof Error ? e.message : typeof e === "string" ? e : "error")
