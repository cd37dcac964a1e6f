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
    return `MongoDB ${this.operation} failed (${this.kind}${code}): ${this.detail}`
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

// Scheme-prefixed credentials (`mongodb://user:pass@`, `postgres://…`), and bare `user:pass@host` forms.
const credentialsInUrl = /([a-z][a-z0-9+.-]*:\/\/)[^\s/@]*@/gi
const bareCredentials = /(^|[\s"'(,=])[^\s"'(,=/@:]+:[^\s"'(,=/@]*@(?=[a-z0-9[])/gi

/**
 * Removes credentials from a text: `scheme://user:password@` becomes `scheme://<credentials>@`, and any of the given
 * secrets (raw and percent-encoded) becomes `<redacted>`.
 *
 * @category utils
 * @since 0.1.0
 */
export const scrub = (text: string, secrets?: Iterable<string> | undefined): string => {
  let out = text.replace(credentialsInUrl, "$1<credentials>@").replace(bareCredentials, "$1<credentials>@")
  if (secrets !== undefined) {
    for (const secret of secrets) {
      if (secret.length === 0) continue
      for (const form of new Set([secret, encodeURIComponent(secret)])) out = out.split(form).join("<redacted>")
    }
  }
  return out
}

// Short, single-line, credential-free.
const clean = (text: string, secrets: Iterable<string> | undefined): string =>
  scrub(text.replace(/\s+/g, " ").trim(), secrets).slice(0, 300)

interface DriverErrorLike {
  readonly name?: unknown
  readonly message?: unknown
  readonly code?: unknown
  readonly codeName?: unknown
  readonly beforeHandshake?: unknown
  readonly writeErrors?: unknown
  readonly writeConcernError?: unknown
  readonly result?: unknown
  readonly errorLabelSet?: unknown
}

const firstWriteErrorCode = (err: DriverErrorLike): number | undefined => {
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

const hasLabel = (err: DriverErrorLike, label: string): boolean =>
  err.errorLabelSet instanceof Set && err.errorLabelSet.has(label)

/**
 * Converts whatever the driver rejected with into a `MongoError` for `operation`. `secrets` (passwords the engine
 * knows) are scrubbed from the detail text.
 *
 * @category constructors
 * @since 0.1.0
 */
export const fromUnknown = (operation: string, cause: unknown, secrets?: Iterable<string> | undefined): MongoError => {
  if (cause instanceof MongoError) return cause
  const err = (typeof cause === "object" && cause !== null ? cause : {}) as DriverErrorLike
  const name = typeof err.name === "string" ? err.name : ""
  const rawMessage = typeof err.message === "string" ? err.message : String(cause)
  const serverCode = typeof err.code === "number" ? err.code : undefined
  const code = serverCode ?? firstWriteErrorCode(err)
  let kind: MongoErrorKind
  let sent: boolean
  switch (name) {
    case "MongoNetworkTimeoutError":
      kind = "timeout"
      sent = err.beforeHandshake !== true
      break
    case "MongoNetworkError":
    case "PoolClearedOnNetworkError":
      kind = "network"
      sent = err.beforeHandshake !== true
      break
    case "MongoPoolClearedError":
      kind = "pool_cleared"
      sent = false
      break
    case "MongoWaitQueueTimeoutError":
      kind = "pool_timeout"
      sent = false
      break
    case "MongoServerSelectionError":
      kind = "server_selection"
      sent = false
      break
    case "MongoOperationTimeoutError":
      kind = "timeout"
      sent = true
      break
    case "MongoTopologyClosedError":
    case "MongoClientClosedError":
    case "MongoNotConnectedError":
    case "MongoPoolClosedError":
    case "MongoServerClosedError":
    case "MongoExpiredSessionError":
      kind = "closed"
      sent = false
      break
    case "MongoWriteConcernError":
      kind = code !== undefined && code !== 64 ? (kindOfCode(code) ?? "write_concern") : "write_concern"
      sent = true
      break
    case "MongoInvalidArgumentError":
    case "MongoParseError":
    case "MongoAPIError":
    case "MongoCompatibilityError":
    case "MongoMissingCredentialsError":
    case "MongoMissingDependencyError":
    case "MongoCursorInUseError":
    case "MongoCursorExhaustedError":
    case "MongoTransactionError":
    case "BSONError":
    case "BSONVersionError":
    case "TypeError":
    case "RangeError":
      kind = "invalid_argument"
      sent = false
      break
    default: {
      const byCode = code === undefined ? undefined : kindOfCode(code)
      if (byCode !== undefined) {
        kind = byCode
      } else if (/node is recovering|not (writable )?primary|not master/i.test(rawMessage)) {
        kind = "not_primary"
      } else if (hasLabel(err, "TransientTransactionError")) {
        kind = "conflict"
      } else if (name === "MongoServerError" || name === "MongoBulkWriteError" || code !== undefined) {
        kind = "server"
      } else {
        kind = "other"
      }
      // The server answered; commands it refuses before executing them were not applied.
      sent = !(kind === "not_primary" || kind === "auth" || code === 91)
    }
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
 * A `MongoError` made by the engine itself (a refused request, an unsupported feature): never sent.
 *
 * @category constructors
 * @since 0.1.0
 */
export const refused = (operation: string, kind: MongoErrorKind, detail: string): MongoError =>
  new MongoError({ kind, operation, detail, sent: false })

/**
 * How a `MongoError` counts for the breakers.
 *
 * @category classification
 * @since 0.1.0
 */
export const classify = (error: MongoError): Classification => ({
  infrastructure: error.isInfrastructure,
  errorType: error.kind,
  sent: error.sent
})
