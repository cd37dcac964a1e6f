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
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import { CurrentProject, type ProjectHandle } from "./CurrentProject.ts"
import { Engine } from "./Engine.ts"
import { TierName } from "./Tier.ts"

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
 * The rules a protection can reject a query by (a bounded set: it is a metric label).
 *
 * - `parse-error`: the SQL does not parse.
 * - `multiple-statements`: several statements where one is expected.
 * - `missing-where`: UPDATE or DELETE without WHERE.
 * - `statement-kind`: a kind of statement the tier's policy forbids (e.g. DDL).
 * - `statement-command`: a command the tier's policy forbids (e.g. COPY, SET ROLE, LISTEN).
 * - `cost-budget`: the planner's estimate exceeds the tier's budget.
 * - `mongo-javascript`: `$where`, `$function` or `$accumulator`.
 * - `mongo-collscan`: the plan scans a whole (large) collection.
 * - `redis-command`: a Redis command the tier's policy blocks.
 *
 * @category models
 * @since 0.1.0
 */
export const QueryRule = Schema.Literals([
  "parse-error",
  "multiple-statements",
  "missing-where",
  "statement-kind",
  "statement-command",
  "cost-budget",
  "mongo-javascript",
  "mongo-collscan",
  "redis-command"
])

/**
 * @category models
 * @since 0.1.0
 */
export type QueryRule = typeof QueryRule.Type

/**
 * The project went over its tier's request rate for an engine: the call was refused before admission, without
 * touching the database.
 *
 * @category errors
 * @since 0.1.0
 */
export class RateLimited extends Schema.TaggedError<RateLimited>()("RateLimited", {
  projectId: Schema.String,
  engine: Engine,
  tier: TierName,
  /** Requests per second the tier allows (sustained). */
  limit: Schema.Number,
  retryAfterMillis: Schema.Number
}) {
  /** How long until a request would be admitted again. */
  get retryAfter(): Duration.Duration {
    return Duration.millis(this.retryAfterMillis)
  }
  override get message(): string {
    return `${this.engine} rate limit of ${this.limit}/s (${this.tier}) exceeded for project "${this.projectId}"; retry after ${Math.ceil(this.retryAfterMillis)} ms`
  }
}

/**
 * A query analyzer or the cost estimator refused a statement, command or filter. `rule` says which rule; `detail`
 * explains without echoing the query (its literals may hold personal data): it names the command and, for SQL,
 * the statement's fingerprint.
 *
 * @category errors
 * @since 0.1.0
 */
export class QueryRejected extends Schema.TaggedError<QueryRejected>()("QueryRejected", {
  projectId: Schema.String,
  engine: Engine,
  tier: TierName,
  rule: QueryRule,
  detail: Schema.String,
  /** The normalized statement's fingerprint (SQL only). */
  fingerprint: Schema.optional(Schema.String)
}) {
  override get message(): string {
    return `${this.engine} query rejected for project "${this.projectId}" (${this.tier}) by rule ${this.rule}: ${this.detail}`
  }
}

/**
 * Every error a protection can fail a call with.
 *
 * @category errors
 * @since 0.1.0
 */
export type ProtectionError = RateLimited | QueryRejected

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
