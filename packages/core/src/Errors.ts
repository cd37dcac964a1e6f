/**
 * The typed errors of tenantpool. Messages are written for people and never contain a secret:
 * connection strings and passwords are not echoed, and project ids appear only once validated.
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import * as Schema from "effect/Schema"
import { Engine, TierName } from "./Vocabulary.ts"

/**
 * A project id failed validation.
 *
 * @category errors
 * @since 0.1.0
 */
export class InvalidProjectId extends Schema.TaggedError<InvalidProjectId>()("InvalidProjectId", {
  input: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `invalid project id "${this.input}": ${this.reason}`
  }
}

/**
 * A connection string could not be used. The string itself is never echoed: it may hold a password.
 *
 * @category errors
 * @since 0.1.0
 */
export class InvalidConnectionString extends Schema.TaggedError<InvalidConnectionString>()("InvalidConnectionString", {
  engine: Schema.optional(Engine),
  field: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `invalid ${this.engine ?? "database"} connection string (${this.field}): ${this.reason}`
  }
}

/**
 * Tier or limit configuration failed validation.
 *
 * @category errors
 * @since 0.1.0
 */
export class InvalidConfig extends Schema.TaggedError<InvalidConfig>()("InvalidConfig", {
  field: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `invalid configuration (${this.field}): ${this.reason}`
  }
}

/**
 * The registry has no project with this id.
 *
 * @category errors
 * @since 0.1.0
 */
export class ProjectNotFound extends Schema.TaggedError<ProjectNotFound>()("ProjectNotFound", {
  projectId: Schema.String
}) {
  override get message(): string {
    return `project "${this.projectId}" is not registered`
  }
}

/**
 * The project exists but has no target for the engine an operation asked for.
 *
 * @category errors
 * @since 0.1.0
 */
export class EngineNotConfigured extends Schema.TaggedError<EngineNotConfigured>()("EngineNotConfigured", {
  projectId: Schema.String,
  engine: Engine
}) {
  override get message(): string {
    return `project "${this.projectId}" has no ${this.engine} database configured`
  }
}

/**
 * An engine operation ran outside any project (no `withProject` or project layer around it).
 *
 * @category errors
 * @since 0.1.0
 */
export class NoCurrentProject extends Schema.TaggedError<NoCurrentProject>()("NoCurrentProject", {
  engine: Engine
}) {
  override get message(): string {
    return `a ${this.engine} operation ran outside a project: wrap it in withProject(id) or provide a project layer`
  }
}

/**
 * Admission refused the operation at once: its wait could not fit the deadline, or the wait queue is full.
 *
 * @category errors
 * @since 0.1.0
 */
export class Overloaded extends Schema.TaggedError<Overloaded>()("Overloaded", {
  projectId: Schema.String,
  engine: Engine,
  scope: Schema.Literals(["project", "target"]),
  reason: Schema.Literals(["queue-full", "deadline"]),
  retryAfterMillis: Schema.Number
}) {
  /** How long the caller should wait before trying again. */
  get retryAfter(): Duration.Duration {
    return Duration.millis(this.retryAfterMillis)
  }
  override get message(): string {
    const where = this.scope === "project" ? "the project's concurrency limit" : "the database's shared budget"
    const why = this.reason === "queue-full" ? "the wait queue is full" : "the expected wait exceeds the deadline"
    return `${this.engine} overloaded for project "${this.projectId}" at ${where}: ${why}; retry after ${Math.ceil(this.retryAfterMillis)} ms`
  }
}

/**
 * A circuit breaker is open: the call was rejected without touching the database.
 *
 * @category errors
 * @since 0.1.0
 */
export class CircuitOpen extends Schema.TaggedError<CircuitOpen>()("CircuitOpen", {
  projectId: Schema.String,
  engine: Engine,
  scope: Schema.Literals(["project", "target"]),
  untilMillis: Schema.Number,
  retryAfterMillis: Schema.Number
}) {
  /** How long until the breaker lets a probe through. */
  get retryAfter(): Duration.Duration {
    return Duration.millis(this.retryAfterMillis)
  }
  /** When the breaker lets a probe through. */
  get until(): Date {
    return new Date(this.untilMillis)
  }
  override get message(): string {
    const which = this.scope === "project" ? "project's" : "database's shared"
    return `${this.engine} circuit open for project "${this.projectId}" (${which} breaker) until ${this.until.toISOString()}`
  }
}

/**
 * An attempt or the whole operation ran out of time. The attempt was interrupted and its resources freed.
 *
 * @category errors
 * @since 0.1.0
 */
export class Timeout extends Schema.TaggedError<Timeout>()("Timeout", {
  projectId: Schema.String,
  engine: Engine,
  operation: Schema.String,
  budget: Schema.Literals(["attempt", "deadline"]),
  afterMillis: Schema.Number,
  /** The library's own resource the call was still waiting for (nothing was sent), if it was waiting for one. */
  waitingFor: Schema.optional(Schema.String)
}) {
  override get message(): string {
    const which = this.budget === "attempt" ? "attempt timeout" : "tier deadline"
    const where = this.waitingFor === undefined ? "" : ` waiting for ${this.waitingFor} (nothing was sent)`
    return `${this.engine} ${this.operation} for project "${this.projectId}" exceeded its ${which} of ${Math.round(this.afterMillis)} ms${where}`
  }
}

/**
 * A write failed after it may have reached the server: it may or may not have been applied.
 * Callers must not assume either; check, or make the write idempotent.
 *
 * @category errors
 * @since 0.1.0
 */
export class UnknownOutcome extends Schema.TaggedError<UnknownOutcome>()("UnknownOutcome", {
  projectId: Schema.String,
  engine: Engine,
  operation: Schema.String,
  cause: Schema.Defect()
}) {
  override get message(): string {
    const inner = this.cause instanceof Error ? `: ${this.cause.message}` : ""
    return `${this.engine} ${this.operation} for project "${this.projectId}" may or may not have been applied${inner}`
  }
}

/**
 * The library is shutting down and no longer admits work.
 *
 * @category errors
 * @since 0.1.0
 */
export class ShuttingDown extends Schema.TaggedError<ShuttingDown>()("ShuttingDown", {
  engine: Engine
}) {
  override get message(): string {
    return `tenantpool is shutting down: no new ${this.engine} operations are admitted`
  }
}

/**
 * The rules a protection can reject a query by (a bounded set: it is a metric label).
 *
 * - `parse-error`: the SQL does not parse.
 * - `multiple-statements`: several statements where one is expected.
 * - `missing-where`: a whole-table write (UPDATE or DELETE without WHERE, an unconditioned MERGE, TRUNCATE).
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
 * Every error the guard itself can produce, apart from the engine's own errors (including the installed
 * protections' `RateLimited` and `QueryRejected`).
 *
 * @category errors
 * @since 0.1.0
 */
export type GuardError =
  | ProjectNotFound
  | EngineNotConfigured
  | NoCurrentProject
  | Overloaded
  | CircuitOpen
  | Timeout
  | UnknownOutcome
  | ShuttingDown
  | ProtectionError

// Every tag of `GuardError`, checked by the compiler both ways (a missing or an extra tag does not type-check).
const guardTags: Readonly<Record<GuardError["_tag"], true>> = {
  ProjectNotFound: true,
  EngineNotConfigured: true,
  NoCurrentProject: true,
  Overloaded: true,
  CircuitOpen: true,
  Timeout: true,
  UnknownOutcome: true,
  ShuttingDown: true,
  RateLimited: true,
  QueryRejected: true
}

/**
 * Whether a value is one of the guard's errors (`GuardError`). The one predicate every engine and the example
 * server use to tell the guard's verdicts from the driver's own errors.
 *
 * @category guards
 * @since 0.1.0
 */
export const isGuardError = (u: unknown): u is GuardError => {
  try {
    if (typeof u !== "object" || u === null) return false
    const tag: unknown = (u as { readonly _tag?: unknown })._tag
    return typeof tag === "string" && Object.hasOwn(guardTags, tag)
  } catch {
    // A proxy or a `_tag` getter that throws: not one of ours.
    return false
  }
}

/**
 * Whether a guard error means "not now" (the database, its breaker or the project's budget cannot serve the call
 * at the moment; trying later may succeed), as opposed to a call made wrongly (no project, no such engine, a
 * refused query).
 *
 * @category guards
 * @since 0.1.0
 */
export const isUnavailable = (error: GuardError): boolean => {
  switch (error._tag) {
    case "Overloaded":
    case "CircuitOpen":
    case "Timeout":
    case "UnknownOutcome":
    case "ShuttingDown":
    case "RateLimited":
      return true
    default:
      return false
  }
}

/**
 * How long a caller refused by the guard should wait before trying again, when the refusal says.
 *
 * @category accessors
 * @since 0.1.0
 */
export const retryAfterMillis = (error: GuardError): number | undefined =>
  error._tag === "Overloaded" || error._tag === "CircuitOpen" || error._tag === "RateLimited"
    ? error.retryAfterMillis
    : undefined
