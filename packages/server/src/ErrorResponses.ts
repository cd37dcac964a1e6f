/**
 * How the example server turns failures into HTTP responses: one JSON shape for every error (`ErrorBody`), the
 * right status, and `Retry-After` where the caller should come back later. Secrets never reach a body: every error
 * that can get here has a message built from ids, codes and limits only.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import { HttpServerResponse } from "effect/http"
import { type GuardError, isGuardError, retryAfterMillis } from "@tenantpool/core/Errors"

/**
 * The JSON body of every error response.
 *
 * - `error`: a stable tag (`InvalidProjectId`, `Overloaded`, `MethodNotAllowed`, …), `message`: what went wrong.
 * - `retryAfterMillis` / `retryAfterSeconds` (429, 503): when to come back; the seconds are the `Retry-After`
 *   header, the hint rounded up to whole seconds.
 * - `limit` (400, 413, 431): the limit the input broke, in the unit the message names.
 * - `allow` (405): the methods the path takes, as in the `Allow` header.
 *
 * @category models
 * @since 0.1.0
 */
export interface ErrorBody {
  readonly error: string
  readonly message: string
  readonly retryAfterMillis?: number | undefined
  readonly retryAfterSeconds?: number | undefined
  readonly limit?: number | undefined
  readonly allow?: ReadonlyArray<string> | undefined
}

/**
 * The `Retry-After` value for a hint in milliseconds: whole seconds, rounded up (a 2 ms hint is `1`).
 *
 * @category utils
 * @since 0.1.0
 */
export const retryAfterSeconds = (millis: number): number => Math.ceil(Math.max(0, millis) / 1000)

/**
 * An error response: the JSON body, its status, and the `Retry-After` / `Allow` headers the body's fields call for
 * (the header and the body always carry the same values).
 *
 * @category constructors
 * @since 0.1.0
 */
export const errorResponse = (
  status: number,
  body: Omit<ErrorBody, "retryAfterSeconds">
): HttpServerResponse.HttpServerResponse => {
  const headers: Record<string, string> = { "cache-control": "no-store" }
  let out: ErrorBody = body
  if (body.retryAfterMillis !== undefined) {
    const millis = Math.ceil(Math.max(0, body.retryAfterMillis))
    const seconds = retryAfterSeconds(millis)
    headers["retry-after"] = String(seconds)
    out = { ...body, retryAfterMillis: millis, retryAfterSeconds: seconds }
  }
  if (body.allow !== undefined) headers["allow"] = body.allow.join(", ")
  return HttpServerResponse.jsonUnsafe(out, { status, headers })
}

interface Tagged {
  readonly _tag: string
  readonly message: string
  readonly limit?: number
  readonly allow?: ReadonlyArray<string>
  readonly isInfrastructure?: boolean
  readonly kind?: string
}

// The guard's verdicts, one status each (the switch is exhaustive over `GuardError`).
const guardStatus = (e: GuardError): number => {
  switch (e._tag) {
    case "ProjectNotFound":
      return 404
    case "EngineNotConfigured":
      return 409
    case "NoCurrentProject":
      return 500
    case "QueryRejected":
      return 403
    case "Overloaded":
    case "RateLimited":
      return 429
    case "CircuitOpen":
    case "ShuttingDown":
      return 503
    case "Timeout":
      return 504
    case "UnknownOutcome":
      return 502
  }
}

const statusOf = (e: Tagged): number => {
  if (isGuardError(e)) return guardStatus(e)
  switch (e._tag) {
    case "InvalidProjectId":
    case "SchemaError":
    case "BadRequest":
      return 400
    case "NotFound":
    case "RouteNotFound":
      return 404
    case "MethodNotAllowed":
      return 405
    case "ContentTooLarge":
      return 413
    case "SqlError": {
      const reason = (e as { reason?: { _tag?: string } }).reason?._tag
      if (reason === "UniqueViolation" || reason === "ConstraintError") return 409
      if (reason === "SqlSyntaxError" || reason === "AuthorizationError") return 400
      return 503
    }
    default:
      // Engine errors: the caller's mistakes are 4xx, infrastructure is 503.
      if (e.isInfrastructure === true) return 503
      if (e.kind === "conflict" || e.kind === "duplicate_key") return 409
      return e._tag.endsWith("Error") ? 422 : 500
  }
}

const internal = () => errorResponse(500, { error: "InternalError", message: "internal error" })

/**
 * Maps any failure of a handler to a response.
 *
 * @category combinators
 * @since 0.1.0
 */
export const toResponse = (error: unknown): HttpServerResponse.HttpServerResponse => {
  const e = error as Partial<Tagged> | undefined
  if (e === undefined || e === null || typeof e._tag !== "string") return internal()
  const tagged = e as Tagged
  const status = statusOf(tagged)
  // The guard's own hint where it gives one; infrastructure trouble without a hint: try again in a second.
  const retryAfter =
    (isGuardError(tagged) ? retryAfterMillis(tagged) : undefined) ?? (status === 503 ? 1000 : undefined)
  return errorResponse(status, {
    error: tagged._tag,
    message: tagged.message,
    retryAfterMillis: retryAfter,
    limit: tagged.limit,
    allow: tagged.allow
  })
}

/**
 * Runs a handler, answering failures with `toResponse` (defects become a 500 without details).
 *
 * @category combinators
 * @since 0.1.0
 */
export const handle = <E, R>(
  self: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>
): Effect.Effect<HttpServerResponse.HttpServerResponse, never, R> =>
  self.pipe(
    Effect.catch((e) => Effect.succeed(toResponse(e))),
    Effect.catchDefect((defect) => Effect.logError("handler defect", defect).pipe(Effect.as(internal())))
  )

/**
 * A 400 for bad input; `limit` when the input broke one (a length, a range's bound).
 *
 * @category constructors
 * @since 0.1.0
 */
export const badRequest = (message: string, limit?: number) => ({ _tag: "BadRequest" as const, message, limit })

/**
 * A 413 for content over a size limit (the body, a stored value).
 *
 * @category constructors
 * @since 0.1.0
 */
export const contentTooLarge = (message: string, limit: number) => ({
  _tag: "ContentTooLarge" as const,
  message,
  limit
})

/**
 * A 404 for a missing resource.
 *
 * @category constructors
 * @since 0.1.0
 */
export const notFound = (message: string) => ({ _tag: "NotFound" as const, message })

/**
 * Formats a count for a message: `65,536`.
 *
 * @category utils
 * @since 0.1.0
 */
export const count = (n: number): string => n.toLocaleString("en-US")
