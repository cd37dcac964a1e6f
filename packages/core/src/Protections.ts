/**
 * The extension point for API protections (the spec's "Enhanced API Layer": rate limiting, query analysis, cost
 * estimation) and the two errors they fail with.
 *
 * Core only defines the hook; the protections themselves live in `@tenantpool/protections`. The guard reads the
 * `Protections` reference of the calling fiber once per call and, when one is installed, calls its `check` before
 * admission, for calls whose engine passes a `ProtectionDetail` (the statement, command or filter the call sends).
 * Engines opt in per call that way because the call's error type then includes `ProtectionError`. A check that
 * passes synchronously returns `undefined`: no Effect is allocated on the common path, and with no protections
 * installed a call costs one reference read.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { CurrentProject, type ProjectHandle } from "./CurrentProject.ts"
import type { ProtectionError } from "./Errors.ts"
import type { Engine } from "./Vocabulary.ts"

/**
 * What an engine tells the protections about one call. Every field is optional: a typed Redis operation passes
 * only its command name (a constant, so nothing is allocated per call), a SQL statement its text and parameters, a
 * MongoDB operation its collection, filter or pipeline. Values are driver-neutral (`unknown`) so that core stays
 * free of driver types.
 *
 * @category models
 * @since 0.1.0
 */
export interface ProtectionDetail {
  /** The SQL text of a PostgreSQL statement, as sent. */
  readonly statement?: string | undefined
  /** The statement's bound parameters. */
  readonly params?: ReadonlyArray<unknown> | undefined
  /** A Redis command name, upper case (`GET`, `KEYS`). */
  readonly command?: string | undefined
  /** A MongoDB collection name. */
  readonly collection?: string | undefined
  /** A MongoDB query filter (find, count, update, delete). */
  readonly filter?: unknown
  /** A MongoDB aggregation pipeline. */
  readonly pipeline?: ReadonlyArray<unknown> | undefined
}

/**
 * The protections the guard calls.
 *
 * @category models
 * @since 0.1.0
 */
export interface ProtectionsShape {
  /**
   * Checks one call before admission: `undefined` when it passes synchronously, otherwise an Effect that fails
   * with the refusal (or succeeds, after asynchronous work such as an EXPLAIN or a shared rate-limit store).
   */
  readonly check: (
    project: ProjectHandle,
    engine: Engine,
    operation: string,
    detail: ProtectionDetail
  ) => Effect.Effect<void, ProtectionError> | undefined
}

/**
 * The protections of the current fiber (default: none).
 *
 * @category references
 * @since 0.1.0
 */
export const Protections = Context.Reference<ProtectionsShape | undefined>("@tenantpool/core/Protections", {
  defaultValue: () => undefined
})

/**
 * Installs protections for everything the layer is provided to.
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = (protections: ProtectionsShape): Layer.Layer<never> =>
  Layer.succeed(Protections, protections) as Layer.Layer<never>

/**
 * Runs an effect with no protections: for the protections' own work on a project's database (the EXPLAIN of the
 * cost estimator goes through the guard, but must not be rate-limited, analyzed or estimated itself).
 *
 * @category combinators
 * @since 0.1.0
 */
export const unprotected = <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.provideService(self, Protections, undefined)

/**
 * Runs the installed protections for the current project outside the guard, for paths that do not go through
 * `EngineHandle.run` with a detail (streams, subscriptions, an engine's escape hatch wrapped from outside). Passes
 * when no protections are installed or no project is current (the guarded call then fails on its own).
 *
 * @category combinators
 * @since 0.1.0
 */
export const check = (
  engine: Engine,
  operation: string,
  detail: ProtectionDetail
): Effect.Effect<void, ProtectionError> =>
  Effect.withFiber((fiber) => {
    const protections = fiber.getRef(Protections)
    const project = fiber.getRef(CurrentProject)
    if (protections === undefined || project === undefined) return Effect.void
    return protections.check(project, engine, operation, detail) ?? Effect.void
  })
