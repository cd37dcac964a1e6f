/**
 * A layer built once and used for many rounds: the guard's stack (tenancy + engine) stays up between rounds, so
 * no round pays for connecting, and it is closed at the end.
 *
 * @internal
 */
import type * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Scope from "effect/Scope"

/** A built layer: run effects with its services, then close it. @internal */
export interface Stack<R> {
  readonly context: Context.Context<R>
  readonly run: <A, E>(effect: Effect.Effect<A, E, R>) => Promise<A>
  readonly close: () => Promise<void>
}

/** Builds `layer` in a scope of its own. @internal */
export const build = async <R, E>(layer: Layer.Layer<R, E>): Promise<Stack<R>> => {
  const scope = Scope.makeUnsafe()
  const context = await Effect.runPromise(Layer.buildWithScope(layer, scope))
  return {
    context,
    run: (effect) => Effect.runPromise(Effect.provideContext(effect, context)),
    close: () => Effect.runPromise(Scope.close(scope, Exit.void))
  }
}
