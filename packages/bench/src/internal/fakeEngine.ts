/**
 * An engine adapter with no server behind it, for benchmarks of the guard itself.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import type { Engine, EngineAdapter } from "@tenantpool/core/Engine"

/** @internal */
export interface Binding {
  readonly projectId: string
}

/** @internal */
export const fakeAdapter = (engine: Engine): EngineAdapter<Binding, never> => ({
  engine,
  bind: (project) => Effect.succeed({ projectId: project.id }),
  classify: () => ({ infrastructure: true, errorType: "fake", sent: false }),
  ping: () => Effect.void,
  targetCapacity: () => 10_000
})
