/**
 * MongoDB errors and their classification for the breakers.
 *
 * Every driver error becomes a `MongoError` with a bounded `kind` (also the `error_type` metric label), the server's
 * error `code` when there is one, the `operation`, a short `detail`, and `sent` (whether the request may have reached
 * the server). The detail is the driver's or the server's message, cleaned: `user:password@` in anything that looks
 * like a connection string is removed, and so is any password the engine knows of. The driver's own error object never
 * leaves this module, so nothing it carries (topology descriptions, server replies) is printed by `Cause.pretty`.
 *
 * Infrastructure (counts toward breakers): network errors and network timeouts, server selection timeouts, pool
 * clears and pool wait timeouts, not-primary / node-is-recovering / shutdown codes, our own `maxTimeMS` expiring,
 * write-concern failures, authentication failures, a closed client.
 * The caller's (never counts): duplicate keys, document validation, bad queries and pipelines, invalid arguments,
 * unsupported features, missing namespaces or indexes, write conflicts, refused cross-database stages.
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"
import * as Driver from "mongodb"
import type { Classification } from "@tenantpool/core/Engine"

/**
 * What went wrong, in a bounded vocabulary (also the `error_type` metric label).
 *
 * @category models
 * @since 0.1.0
 */
export const MongoErrorKind = Schema.Literals([
  "network",
  "timeout",
  "server_selection",
  "pool_cleared",
  "pool_timeout",
  "not_primary",
  "shutdown",
  "write_concern",
  "auth",
  "closed",
  "duplicate_key",
  "validation",
  "bad_query",
  "invalid_argument",
  "not_supported",
  "transactions_unsupported",
  "not_found",
  "conflict",
  "cursor_not_found",
  "forbidden",
  "server",
  "other"
])

/**
 * @category models
 * @since 0.1.0
 */
export type MongoErrorKind = typeof MongoErrorKind.Type

const infrastructureKinds: ReadonlySet<MongoErrorKind> = new Set<MongoErrorKind>([
  "network",
  "timeout",
  "server_selection",
  "pool_cleared",
  "pool_timeout",
  "not_primary",
  "shutdown",
  "write_concern",
  "auth",
  "closed"
])

/**
 * A MongoDB operation failed.
 *
 * @category errors
 * @since 0.1.0
 */
export class MongoError extends Schema.TaggedError<MongoError>()("MongoError", {
  kind: MongoErrorKind,
  /** The server's error code (11000, 50, 10107, …) when the server answered with one. */
  code: Schema.optional(Schema.Number),
  operation: Schema.String,
  /** The argument or option at fault (`filter`, `options.dbName`, `pipeline[2].$out`), for refused input. */
  argument: Schema.optional(Schema.String),
  detail: Schema.String,
  /** Whether the request may have reached the server (false when it was refused or never left the process). */
  sent: Schema.Boolean
}) {
  /** Whether this error says the server or the path to it is unhealthy. */
  get isInfrastructure(): boolean {
    return infrastructureKinds.has(this.kind)
  }
  override get message(): string {
    const code = this.code === undefined ? "" : ` ${this.code}`
    const argument = this.argument === undefined ? "" : `${this.argument} `
    return `MongoDB ${this.operation} failed (${this.kind}${code}): ${argument}${this.detail}`
  }
}

// The driver error behind a MongoError, for the transaction loop only (it reads error labels). Kept out of the
// error's fields so that neither printing nor serialising the error can reach it.
const origins = new WeakMap<MongoError, unknown>()

/**
 * The driver error a `MongoError` was made from, if any (used to hand error labels back to the driver).
 *
 * @category accessors
 * @since 0.1.0
 */
export const driverErrorOf = (error: MongoError): unknown => origins.get(error)

const codes = {
  notPrimary: new Set([10107, 13435, 13436, 10058, 189]),
  shutdown: new Set([91, 11600, 11602]),
  network: new Set([6, 7, 89, 9001]),
  timeout: new Set([50, 262]),
  writeConcern: new Set([64]),
  auth: new Set([18]),
  duplicateKey: new Set([11000, 11001, 12582]),
  validation: new Set([121]),
  badQuery: new Set([
    2, 4, 9, 14, 15, 16, 17, 31, 40, 52, 72, 168, 15952, 15955, 15959, 15973, 15974, 15976, 15981, 15982, 15983, 16006,
    16410, 16411, 16436, 16554, 17124, 17276, 28667, 28724, 28769, 31249, 31253, 31254, 40156, 40157, 40160, 40234,
    40323, 40324, 40352, 51024, 51075, 51091
  ]),
  notSupported: new Set([20, 59, 115, 238, 303]),
  notFound: new Set([26, 27]),
  conflict: new Set([85, 86, 112, 225, 244, 251, 256, 257]),
  forbidden: new Set([13])
} as const

const kindOfCode = (code: number): MongoErrorKind | undefined => {
  if (codes.notPrimary.has(code)) return "not_primary"
  if (codes.shutdown.has(code)) return "shutdown"
  if (codes.network.has(code)) return "network"
  if (codes.timeout.has(code)) return "timeout"
  if (codes.writeConcern.has(code)) return "write_concern"
  if (codes.auth.has(code)) return "auth"
  if (codes.duplicateKey.has(code)) return "duplicate_key"
  if (codes.validation.has(code)) return "validation"
  if (codes.badQuery.has(code)) return "bad_query"
  if (codes.notSupported.has(code)) return "not_supported"
  if (codes.notFound.has(code)) return "not_found"
  if (codes.conflict.has(code)) return "conflict"
  if (codes.forbidden.has(code)) return "forbidden"
  if (code === 43) return "cursor_not_found"
  return undefined
}

const isMongoError = (u: unknown): u is MongoError => {
  try {
    return u instanceof MongoError
  } catch {
    return false
  }
}

// Scheme-prefixed credentials (`mongodb://user:pass@`, `postgres://…`), and bare `user:pass@host` forms.
const credentialsInUrl = /([a-z][a-z0-9+.-]*:\/\/)[^\s/@]*@/gi
const bareCredentials = /(^|[\s"'(,=])[^\s"'(,=/@:]+:[^\s"'(,=/@]*@(?=[a-z0-9[])/gi

const maxScrubbed = 4096

/**
 * Removes credentials from a text: `scheme://user:password@` becomes `scheme://<credentials>@`, and any of the given
 * secrets (raw and percent-encoded) becomes `<redacted>`.
 *
 * @category utils
 * @since 0.1.0
 */
export const scrub = (text: string, secrets?: Iterable<string> | undefined): string => {
  // Not text (a caller's `as any`): nothing of it is repeated.
  if (typeof text !== "string") return ""
  // The credential patterns scan back from every ':' (quadratic on a huge text without one): error texts are short,
  // a longer one is cut first (what is cut is not repeated either).
  let out = (text.length > maxScrubbed ? `${text.slice(0, maxScrubbed)}…` : text)
    .replace(credentialsInUrl, "$1<credentials>@")
    .replace(bareCredentials, "$1<credentials>@")
  if (secrets !== undefined) {
    for (const secret of secrets) {
      if (typeof secret !== "string" || secret.length === 0) continue
      for (const form of new Set([secret, encodeURIComponent(secret)])) out = out.split(form).join("<redacted>")
    }
  }
  return out
}

// Short, single-line, credential-free.
const clean = (text: string, secrets: Iterable<string> | undefined): string =>
  scrub(text.replace(/\s+/g, " ").trim(), secrets).slice(0, 300)

interface ServerErrorLike {
  readonly code?: unknown
  readonly writeErrors?: unknown
}

const firstWriteErrorCode = (err: ServerErrorLike): number | undefined => {
  const list = err.writeErrors
  if (Array.isArray(list) && list.length > 0) {
    const code = (list[0] as { code?: unknown }).code
    return typeof code === "number" ? code : undefined
  }
  if (list !== null && typeof list === "object") {
    const code = (list as { code?: unknown }).code
    return typeof code === "number" ? code : undefined
  }
  return undefined
}

// The driver's pool errors are not exported by the package; they are instances of its classes whose `name` is a
// class getter (`MongoPoolClearedError`, …), so among the driver's own errors the name is the class.
const poolErrorName = (err: Driver.MongoError): string => err.name

/** Kind and `sent` of a driver error, by its class (never by the shape of an arbitrary object). */
const byClass = (err: Driver.MongoError): { kind: MongoErrorKind; sent: boolean } | undefined => {
  if (err instanceof Driver.MongoNetworkTimeoutError)
    return { kind: "timeout", sent: (err as { beforeHandshake?: unknown }).beforeHandshake !== true }
  if (err instanceof Driver.MongoNetworkError) {
    const name = poolErrorName(err)
    if (name === "MongoPoolClearedError") return { kind: "pool_cleared", sent: false }
    return { kind: "network", sent: (err as { beforeHandshake?: unknown }).beforeHandshake !== true }
  }
  if (err instanceof Driver.MongoServerSelectionError) return { kind: "server_selection", sent: false }
  if (err instanceof Driver.MongoOperationTimeoutError) return { kind: "timeout", sent: true }
  if (
    err instanceof Driver.MongoTopologyClosedError ||
    err instanceof Driver.MongoClientClosedError ||
    err instanceof Driver.MongoNotConnectedError ||
    err instanceof Driver.MongoServerClosedError ||
    err instanceof Driver.MongoExpiredSessionError
  ) {
    return { kind: "closed", sent: false }
  }
  if (err instanceof Driver.MongoWriteConcernError) {
    const code = typeof err.code === "number" ? err.code : undefined
    return {
      kind: code !== undefined && code !== 64 ? (kindOfCode(code) ?? "write_concern") : "write_concern",
      sent: true
    }
  }
  if (
    err instanceof Driver.MongoAPIError ||
    err instanceof Driver.MongoParseError ||
    err instanceof Driver.MongoCompatibilityError ||
    err instanceof Driver.MongoMissingCredentialsError ||
    err instanceof Driver.MongoMissingDependencyError ||
    err instanceof Driver.MongoCursorInUseError ||
    err instanceof Driver.MongoCursorExhaustedError ||
    err instanceof Driver.MongoTransactionError
  ) {
    return { kind: "invalid_argument", sent: false }
  }
  if (err instanceof Driver.MongoServerError) return undefined
  switch (poolErrorName(err)) {
    case "MongoWaitQueueTimeoutError":
      return { kind: "pool_timeout", sent: false }
    case "MongoPoolClosedError":
      return { kind: "closed", sent: false }
  }
  return undefined
}

/** Kind and `sent` of a server's answer (or another driver error), by its code. */
const byCode = (err: Driver.MongoError, code: number | undefined): { kind: MongoErrorKind; sent: boolean } => {
  let kind: MongoErrorKind
  const byNumber = code === undefined ? undefined : kindOfCode(code)
  if (byNumber !== undefined) kind = byNumber
  else if (/node is recovering|not (writable )?primary|not master/i.test(err.message)) kind = "not_primary"
  else if (err.hasErrorLabel("TransientTransactionError")) kind = "conflict"
  else if (err instanceof Driver.MongoServerError || code !== undefined) kind = "server"
  else kind = "other"
  // The server answered; commands it refuses before executing them were not applied.
  return { kind, sent: !(kind === "not_primary" || kind === "auth" || code === 91) }
}

/**
 * Converts whatever the driver rejected with into a `MongoError` for `operation`, classified by the driver's error
 * classes and the server's codes (an object that merely looks like a driver error is `other`, never
 * infrastructure). `secrets` (passwords the engine knows) are scrubbed from the detail text.
 *
 * @category constructors
 * @since 0.1.0
 */
export const fromUnknown = (operation: string, cause: unknown, secrets?: Iterable<string> | undefined): MongoError => {
  try {
    return fromUnknownUnsafe(operation, cause, secrets)
  } catch {
    // A value that throws while it is inspected (a revoked proxy, a getter): not the driver's.
    return new MongoError({
      kind: "other",
      operation,
      detail: "the driver failed with an unreadable value",
      sent: false
    })
  }
}

const fromUnknownUnsafe = (operation: string, cause: unknown, secrets: Iterable<string> | undefined): MongoError => {
  if (cause instanceof MongoError) return cause
  let kind: MongoErrorKind
  let sent: boolean
  let code: number | undefined
  let rawMessage: string
  if (cause instanceof Driver.MongoError) {
    rawMessage = cause.message
    code = typeof cause.code === "number" ? cause.code : firstWriteErrorCode(cause as ServerErrorLike)
    const known = byClass(cause) ?? byCode(cause, code)
    kind = known.kind
    sent = known.sent
  } else {
    // What the driver throws for bad input before sending: BSON errors, TypeErrors, RangeErrors. Only BSON's own
    // messages are repeated: another error's, or a value that is not an error, may carry the input (a secret).
    const bson = Driver.BSON.BSONError.isBSONError(cause)
    rawMessage = bson
      ? (cause as Error).message
      : cause instanceof Error
        ? `the driver failed: ${typeof cause.name === "string" ? cause.name.slice(0, 40) : "Error"}`
        : "the driver failed with a non-error value"
    const local = bson || cause instanceof TypeError || cause instanceof RangeError
    kind = local ? "invalid_argument" : "other"
    sent = false
  }
  const error = new MongoError({
    kind,
    ...(code !== undefined ? { code } : {}),
    operation,
    detail: clean(rawMessage.split("\n")[0] ?? rawMessage, secrets),
    sent
  })
  origins.set(error, cause)
  return error
}

/**
 * A `MongoError` made by the engine itself (a refused request, an unsupported feature): never sent. `argument`
 * names the argument or option at fault.
 *
 * @category constructors
 * @since 0.1.0
 */
export const refused = (
  operation: string,
  kind: MongoErrorKind,
  detail: string,
  argument?: string | undefined
): MongoError =>
  new MongoError({ kind, operation, detail, sent: false, ...(argument !== undefined ? { argument } : {}) })

// The server's own time limit (our `maxTimeMS`) expired: this call was slow, which says nothing about the server.
const provokedCodes: ReadonlySet<number> = new Set([50, 262])

/**
 * How a `MongoError` counts for the breakers. Infrastructure errors count toward the project's breaker; toward the
 * target's (shared by every project on the server) only when they say something about the server, not about the
 * one call that provoked them (a query that ran into its own `maxTimeMS`).
 *
 * @category classification
 * @since 0.1.0
 */
export const classify = (error: MongoError): Classification => {
  // Not one of ours (a caller's `as any`, a proxy): the caller's own failure, never infrastructure.
  if (!isMongoError(error)) return { infrastructure: false, errorType: "other", sent: false }
  const infrastructure = error.isInfrastructure
  return {
    infrastructure,
    shared: infrastructure && !(error.code !== undefined && provokedCodes.has(error.code)),
    errorType: error.kind,
    sent: error.sent
  }
}
