/**
 * PostgreSQL errors for the guard: how a failure counts toward the breakers (by SQLSTATE), and how the guard's own
 * refusals (circuit open, overloaded, timeout, unknown outcome, …) travel inside the standard `SqlError`, so that
 * `` sql`…` `` keeps the `SqlError` error type every `effect/sql` user expects.
 *
 * Classification (only errors that say the server is unhealthy count; docs/architecture.md, breaker rules):
 *
 * | SQLSTATE / reason | `errorType` | counts |
 * |---|---|---|
 * | 08xxx, socket errors, closed connections | `connection` | yes (08P01, a protocol violation one statement provokes: the project's only) |
 * | 28xxx (authentication) | `auth` | yes |
 * | 53300 too many connections | `too_many_connections` | yes |
 * | 53xxx other insufficient resources | `resources` | yes |
 * | 57P01–57P03 admin/crash shutdown, cannot connect now | `shutdown` | yes |
 * | 57014 query canceled (a statement timeout, a cancel) | `canceled` | the project's only |
 * | 58xxx system errors, XX000–XX002 internal errors | `system` | yes |
 * | 42501 insufficient privilege | `permission` | no |
 * | 42xxx syntax and names | `syntax` | no |
 * | 23505 / 23xxx | `unique_violation` / `constraint` | no |
 * | 22xxx data exceptions | `data` | no |
 * | 40P01 / 40001 | `deadlock` / `serialization` | no |
 * | 55P03 lock not available | `lock_timeout` | no |
 * | 25xxx transaction state | `transaction_state` | no |
 * | anything else with a SQLSTATE, client-side encode/decode failures | `other` / `client` | no |
 * | a failure of the caller's own code inside a transaction | `application` | no |
 *
 * `sent` (may the statement have taken effect?) is false when the server answered with an error (the statement
 * was rejected or rolled back) and when the connection could not be made; it is true when a connection broke
 * while a statement was on it, which the guard reports as `UnknownOutcome` for non-idempotent operations.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import { type GuardError, InvalidProjectId, isGuardError } from "@tenantpool/core/Errors"
import type { Classification } from "@tenantpool/core/Engine"
import {
  AuthorizationError,
  ConnectionError,
  isSqlError,
  SqlError,
  StatementTimeoutError,
  type SqlErrorReason,
  UnknownError
} from "effect/sql/SqlError"

/**
 * The bounded `error_type` label of a PostgreSQL failure (also the `db_errors_total` label).
 *
 * @category models
 * @since 0.1.0
 */
export type ErrorType =
  | "connection"
  | "auth"
  | "too_many_connections"
  | "resources"
  | "shutdown"
  | "canceled"
  | "system"
  | "permission"
  | "syntax"
  | "unique_violation"
  | "constraint"
  | "data"
  | "deadlock"
  | "serialization"
  | "lock_timeout"
  | "transaction_state"
  | "client"
  | "application"
  | "other"

const infrastructureTypes: ReadonlySet<ErrorType> = new Set([
  "connection",
  "auth",
  "too_many_connections",
  "resources",
  "shutdown",
  "canceled",
  "system"
])

const sqlStatePattern = /^[0-9A-Z]{5}$/

/**
 * The SQLSTATE the server reported, or `undefined` for client-side failures (socket errors, timeouts of the
 * connect handshake, encoding errors). Decided by where the error came from, not by the shape of its code: a
 * server's `ErrorResponse` always carries a severity, a Node socket error (`EPIPE`, `ECONNRESET`, … five letters
 * too) carries a `syscall` and none.
 *
 * @category accessors
 * @since 0.1.0
 */
export const sqlState = (error: SqlError): string | undefined => total(undefined, () => sqlStateOf(error))

const sqlStateOf = (error: SqlError): string | undefined => {
  if (!isSqlError(error)) return undefined
  const cause = error.reason.cause
  if (typeof cause !== "object" || cause === null) return undefined
  const fields = cause as { readonly code?: unknown; readonly severity?: unknown; readonly syscall?: unknown }
  if (typeof fields.severity !== "string" || fields.syscall !== undefined) return undefined
  const code = fields.code
  return typeof code === "string" && sqlStatePattern.test(code) ? code : undefined
}

/**
 * SQLSTATEs one statement provokes by what it sends rather than by the server's health: a protocol violation
 * (08P01: malformed input), and a statement the server canceled for its own timeout (57014: `statement_timeout`,
 * or a cancel). They count toward the project's breaker, never the target's, which every project shares.
 */
const provoked: ReadonlySet<string> = new Set(["08P01", "57014"])

/**
 * The error type of a SQLSTATE.
 *
 * @category classification
 * @since 0.1.0
 */
export const errorTypeOfSqlState = (code: string): ErrorType => {
  if (typeof code !== "string") return "other"
  if (code.startsWith("08")) return "connection"
  if (code.startsWith("28")) return "auth"
  if (code === "53300") return "too_many_connections"
  if (code.startsWith("53")) return "resources"
  if (code === "57P01" || code === "57P02" || code === "57P03") return "shutdown"
  if (code === "57014") return "canceled"
  if (code.startsWith("58") || code === "XX000" || code === "XX001" || code === "XX002") return "system"
  if (code === "42501") return "permission"
  if (code.startsWith("42")) return "syntax"
  if (code === "23505") return "unique_violation"
  if (code.startsWith("23")) return "constraint"
  if (code.startsWith("22")) return "data"
  if (code === "40P01") return "deadlock"
  if (code === "40001") return "serialization"
  if (code === "55P03") return "lock_timeout"
  if (code.startsWith("25")) return "transaction_state"
  return "other"
}

const reasonErrorType = (reason: SqlErrorReason): ErrorType => {
  switch (reason._tag) {
    case "ConnectionError":
      return "connection"
    case "AuthenticationError":
      return "auth"
    case "AuthorizationError":
      return "permission"
    case "SqlSyntaxError":
      return "syntax"
    case "UniqueViolation":
      return "unique_violation"
    case "ConstraintError":
      return "constraint"
    case "DeadlockError":
      return "deadlock"
    case "SerializationError":
      return "serialization"
    case "LockTimeoutError":
      return "lock_timeout"
    case "StatementTimeoutError":
      return "canceled"
    case "UnknownError":
      return "client"
  }
}

/**
 * The error type of a `SqlError`: by SQLSTATE when the server reported one, else by the reason's tag.
 *
 * @category classification
 * @since 0.1.0
 */
export const errorType = (error: SqlError): ErrorType => {
  if (total(false, () => isSqlError(error)) !== true) return "other"
  const code = sqlState(error)
  return code !== undefined ? errorTypeOfSqlState(code) : reasonErrorType(error.reason)
}

/**
 * How any failure of a PostgreSQL operation counts for the breakers. Values that are not a `SqlError` are the
 * caller's own failures inside a transaction (`application`); a guard refusal wrapped by `fromGuardError` never
 * counts (the guard has already accounted for it).
 *
 * @category classification
 * @since 0.1.0
 */
export const classify = (error: unknown): Classification =>
  total<Classification>({ infrastructure: false, errorType: "application", sent: false }, () => classifyOf(error))

const classifyOf = (error: unknown): Classification => {
  if (!isSqlError(error)) return { infrastructure: false, errorType: "application", sent: false }
  if (guardError(error) !== undefined) return { infrastructure: false, errorType: "other", sent: false }
  const code = sqlState(error)
  const type = code !== undefined ? errorTypeOfSqlState(code) : reasonErrorType(error.reason)
  // The server answered: the statement was rejected or rolled back. Without an answer, a broken connection may
  // have carried the statement; a failed connect carried nothing.
  const sent = code === undefined && type === "connection" && error.reason.operation !== "connect"
  const infrastructure = infrastructureTypes.has(type)
  return {
    infrastructure,
    shared: infrastructure && !(code !== undefined && provoked.has(code)),
    errorType: type,
    sent
  }
}

/**
 * Whether a failure says the server or the path to it is unhealthy.
 *
 * @category classification
 * @since 0.1.0
 */
export const isInfrastructure = (error: unknown): boolean => classify(error).infrastructure

/**
 * Every error the guard and the project lookup can produce before or around a statement.
 *
 * @category models
 * @since 0.1.0
 */
export type Refusal = GuardError | InvalidProjectId

const isRefusal = (u: unknown): u is Refusal => isGuardError(u) || u instanceof InvalidProjectId

/**
 * Carries a guard refusal inside a `SqlError`, with the refusal as the reason's `cause` and its (secret-free)
 * message. Circuit open, overloaded and shutting down become `ConnectionError` (retryable later), a timeout of an
 * idempotent statement `StatementTimeoutError`, everything else (unknown outcome, no current project, …)
 * `UnknownError`.
 *
 * @category constructors
 * @since 0.1.0
 */
export const fromGuardError = (error: Refusal, operation: string): SqlError => {
  const props = { cause: error, message: `tenantpool: ${error.message}`, operation }
  switch (error._tag) {
    case "CircuitOpen":
    case "Overloaded":
    case "ShuttingDown":
    case "RateLimited":
      return new SqlError({ reason: new ConnectionError(props) })
    case "QueryRejected":
      return new SqlError({ reason: new AuthorizationError(props) })
    case "Timeout":
      return new SqlError({ reason: new StatementTimeoutError(props) })
    default:
      return new SqlError({ reason: new UnknownError(props) })
  }
}

/**
 * Maps a failure of the guard to a `SqlError` and leaves every other failure as it is.
 *
 * @category constructors
 * @since 0.1.0
 */
export const toSqlError = <E>(error: E | Refusal, operation: string): E | SqlError =>
  isRefusal(error) ? fromGuardError(error, operation) : error

/**
 * The guard refusal a `SqlError` carries, if it carries one.
 *
 * @category accessors
 * @since 0.1.0
 */
export const guardError = (error: SqlError): Refusal | undefined =>
  total(undefined, () => {
    if (!isSqlError(error)) return undefined
    const cause = error.reason.cause
    return isRefusal(cause) ? cause : undefined
  })

// The accessors take what a driver or a caller failed with: a value that throws while it is inspected (a proxy, a
// getter) is not one of ours, never a throw out of the classifier.
const total = <A>(fallback: A, f: () => A): A => {
  try {
    return f()
  } catch {
    return fallback
  }
}

/**
 * Surfaces the guard's refusals as their own typed errors (`CircuitOpen`, `Overloaded`, `Timeout`,
 * `UnknownOutcome`, …) instead of `SqlError`s, for callers that want to `catchTag` them.
 *
 * @category combinators
 * @since 0.1.0
 */
export const unwrapGuardErrors = <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E | Refusal, R> =>
  Effect.mapError(self, (error): E | Refusal => {
    if (!isSqlError(error)) return error
    return guardError(error) ?? error
  })
