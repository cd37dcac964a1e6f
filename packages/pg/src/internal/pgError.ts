/**
 * Reads the server's own words out of a `SqlError`.
 *
 * `SqlError.message` from `@effect/sql-pg` is only "PgConnection: Query failed"; the PostgreSQL error fields
 * (SQLSTATE, message, detail, hint, position) sit on `error.reason.cause`. Connection settings never appear in
 * these fields, so they are safe to put into error messages.
 *
 * @since 0.1.0
 */
import type * as SqlError from "effect/sql/SqlError"

/**
 * The fields of a PostgreSQL error that help a reader fix a statement.
 *
 * @category models
 * @since 0.1.0
 */
export interface ServerError {
  readonly message: string
  readonly code: string | undefined
  readonly detail: string | undefined
  readonly hint: string | undefined
  /** 1-based character offset into the statement, when the server reported one. */
  readonly position: number | undefined
}

const field = (cause: unknown, key: string): string | undefined => {
  if (typeof cause !== "object" || cause === null) return undefined
  const value = (cause as Record<string, unknown>)[key]
  return typeof value === "string" && value.length > 0 ? value : undefined
}

/**
 * The server's message and fields, falling back to the reason's message and tag for client-side failures.
 *
 * @category errors
 * @since 0.1.0
 */
export const serverError = (error: SqlError.SqlError): ServerError => {
  const cause = error.reason.cause
  const position = field(cause, "position")
  return {
    message: field(cause, "message") ?? error.reason.message ?? error.reason._tag,
    code: field(cause, "code"),
    detail: field(cause, "detail"),
    hint: field(cause, "hint"),
    position: position === undefined ? undefined : Number(position)
  }
}
