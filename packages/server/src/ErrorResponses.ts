/**
 * How the example server turns failures into HTTP responses: a clear JSON body, the right status, and
 * `Retry-After` where the caller should come back later. Secrets never reach a body: every error that can
 * get here has a message built from ids and codes only.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import { HttpServerResponse } from "effect/http"
import { type GuardError, isGuardError, retryAfterMillis } from "@tenantpool/core/Errors"

/**
 * The JSON error body.
 *
 * @category models
 * @since 0.1.0
 */
export interface ErrorBody {
  readonly error: string
  readonly message: string
  readonly retryAfterSeconds?: number | undefined
}

const respond = (status: number, body: ErrorBody, retryAfterMillis?: number) =>
  HttpServerResponse.jsonUnsafe(
    retryAfterMillis === undefined
      ? body
      : { ...body, retryAfterSeconds: Math.max(1, Math.ceil(retryAfterMillis / 1000)) },
    retryAfterMillis === undefined
      ? { status }
      : { status, headers: { "retry-after": String(Math.max(1, Math.ceil(retryAfterMillis / 1000))) } }
  )

interface Tagged {
  readonly _tag: string
  readonly message: string
  readonly retryAfterMillis?: number
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
      return 404
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

/**
 * Maps any failure of a handler to a response.
 *
 * @category combinators
 * @since 0.1.0
 */
export const toResponse = (error: unknown): HttpServerResponse.HttpServerResponse => {
  const e = error as Partial<Tagged> | undefined
  if (e === undefined || e === null || typeof e._tag !== "string") {
    return respond(500, { error: "InternalError", message: "internal error" })
  }
  const tagged = e as Tagged
  const status = statusOf(tagged)
  const retryAfter =
    (isGuardError(tagged) ? retryAfterMillis(tagged) : undefined) ?? (status === 503 ? 1000 : undefined)
  return respond(status, { error: tagged._tag, message: tagged.message }, retryAfter)
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
    Effect.catchDefect((defect) =>
      Effect.logError("handler defect", defect).pipe(
        Effect.as(respond(500, { error: "InternalError", message: "internal error" }))
      )
    )
  )

/**
 * A 400 for bad input.
 *
 * @category constructors
 * @since 0.1.0
 */
export const badRequest = (message: string) => ({ _tag: "BadRequest" as const, message })

/**
 * A 404 for a missing resource.
 *
 * @category constructors
 * @since 0.1.0
 */
export const notFound = (message: string) => ({ _tag: "NotFound" as const, message })
