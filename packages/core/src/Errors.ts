/**
 * The typed errors of tenantpool. Messages are written for people and never contain a secret:
 * connection strings and passwords are not echoed, and project ids appear only once validated.
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import * as Schema from "effect/Schema"
import { Engine } from "./Engine.ts"
import type { ProtectionError } from "./Protections.ts"

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
  afterMillis: Schema.Number
}) {
  override get message(): string {
    const which = this.budget === "attempt" ? "attempt timeout" : "tier deadline"
    return `${this.engine} ${this.operation} for project "${this.projectId}" exceeded its ${which} of ${Math.round(this.afterMillis)} ms`
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
