/**
 * Redis errors and their classification for the breakers.
 *
 * The message of a `RedisError` is the server's reply or the client's connection message, never the command's
 * arguments: ioredis attaches `command.args` to its errors (an AUTH password, a value), and those never leave
 * this module.
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"
import { ReplyError } from "ioredis"
import type { Classification } from "@tenantpool/core/Engine"

/**
 * What went wrong, in a bounded vocabulary (also the `error_type` metric label).
 *
 * Infrastructure (count toward the project's breaker): `connection` (refused, reset, closed, not writable),
 * `timeout`, `loading`, `busy`, `masterdown`, `max_clients`, `readonly`, `oom`, `auth`. All but `busy` and
 * `timeout` also count toward the breaker every project on the target shares: a busy server is one call's script
 * (the engine kills it when its attempt is abandoned), a timeout may be one slow call.
 * The caller's (never count): `wrongtype`, `syntax`, `noscript`, `arity`, `script`, `aborted`, `conflict`,
 * `forbidden` (refused before sending: see `RedisCommandTable`), `argument` (an argument that is not what the
 * operation takes, refused before sending), `client` (the driver failed the call itself, e.g. with a `TypeError`:
 * neither a server reply nor a connection problem), `other`.
 *
 * @category models
 * @since 0.1.0
 */
export const RedisErrorKind = Schema.Literals([
  "connection",
  "timeout",
  "loading",
  "busy",
  "masterdown",
  "max_clients",
  "readonly",
  "oom",
  "auth",
  "wrongtype",
  "syntax",
  "noscript",
  "arity",
  "script",
  "aborted",
  "conflict",
  "forbidden",
  "argument",
  "client",
  "other"
])

/**
 * @category models
 * @since 0.1.0
 */
export type RedisErrorKind = typeof RedisErrorKind.Type

const infrastructure: ReadonlySet<RedisErrorKind> = new Set([
  "connection",
  "timeout",
  "loading",
  "busy",
  "masterdown",
  "max_clients",
  "readonly",
  "oom",
  "auth"
])

/**
 * A Redis command failed.
 *
 * @category errors
 * @since 0.1.0
 */
export class RedisError extends Schema.TaggedError<RedisError>()("RedisError", {
  kind: RedisErrorKind,
  command: Schema.String,
  detail: Schema.String,
  /** Whether the command may have reached the server (false when it was refused before being written). */
  sent: Schema.Boolean
}) {
  /** Whether this error says the server or the path to it is unhealthy. */
  get isInfrastructure(): boolean {
    return infrastructure.has(this.kind)
  }
  override get message(): string {
    return `Redis ${this.command.toUpperCase()} failed (${this.kind}): ${this.detail}`
  }
}

/**
 * A forbidden command (one that would reach past the project's keys, or that the policy blocks).
 *
 * @category errors
 * @since 0.1.0
 */
export const forbidden = (command: string, why: string): RedisError =>
  new RedisError({ kind: "forbidden", command, detail: why, sent: false })

/**
 * An argument the operation does not take (refused before sending; the caller's mistake).
 *
 * @category errors
 * @since 0.1.0
 */
export const invalidArgument = (command: string, detail: string): RedisError =>
  new RedisError({ kind: "argument", command, detail, sent: false })

const replyKind = (message: string): RedisErrorKind => {
  const code = message.slice(0, message.indexOf(" ") >>> 0).toUpperCase()
  switch (code) {
    case "WRONGTYPE":
      return "wrongtype"
    case "NOSCRIPT":
      return "noscript"
    case "LOADING":
      return "loading"
    case "BUSY":
      return "busy"
    case "MASTERDOWN":
      return "masterdown"
    case "READONLY":
      return "readonly"
    case "OOM":
      return "oom"
    case "NOAUTH":
    case "WRONGPASS":
    case "NOPERM":
      return "auth"
    case "EXECABORT":
      return "aborted"
    case "CROSSSLOT":
      return "syntax"
  }
  const lower = message.toLowerCase()
  if (lower.includes("max number of clients")) return "max_clients"
  if (lower.includes("wrong number of arguments")) return "arity"
  if (lower.includes("syntax") || lower.includes("not an integer") || lower.includes("not a valid float"))
    return "syntax"
  if (lower.includes("unknown command")) return "syntax"
  if (lower.startsWith("err error running script") || lower.includes("user_script") || lower.includes("script")) {
    return "script"
  }
  return "other"
}

// Keep server text short and free of line breaks; it never contains the command's arguments.
const clean = (text: string): string => text.replace(/\s+/g, " ").trim().slice(0, 300)

// redis-errors' base class, which the server's replies (`ReplyError`) and ioredis's own connection-level errors
// (`AbortError`, `ParserError`, `MaxRetriesPerRequestError`) extend.
const RedisErrorsBase = Object.getPrototypeOf(ReplyError) as abstract new (...args: ReadonlyArray<never>) => object
const isDriverError = (e: Error): boolean => e instanceof RedisErrorsBase

// A Node.js system error (a socket's): a string `code` and the call that failed.
const isSystemError = (e: Error): e is Error & { code: string; syscall?: unknown } =>
  typeof (e as { code?: unknown }).code === "string" && typeof (e as { syscall?: unknown }).syscall === "string"

/**
 * Converts whatever ioredis rejected with into a `RedisError`, by the error's class and how far the call got:
 *
 * - a server reply (`ReplyError`): the command was not applied (EXECABORT: the transaction was discarded);
 * - ioredis's connection-level errors (redis-errors' `AbortError`, `ParserError`, `MaxRetriesPerRequestError`) and
 *   socket errors: `connection`, sent unless the socket never connected;
 * - a plain `Error`, which ioredis raises only for its connection's state ("Connection is closed.", "Stream isn't
 *   writeable"): `connection`;
 * - anything else (a `TypeError` from an argument the driver cannot encode, a bug): `client`, never infrastructure.
 *
 * @category constructors
 * @since 0.1.0
 */
export const fromUnknown =
  (command: string) =>
  (cause: unknown): RedisError => {
    try {
      return fromUnknownUnsafe(command, cause)
    } catch {
      // A value that throws while it is inspected (a revoked proxy, a throwing getter): not an error the driver made.
      return new RedisError({
        kind: "client",
        command,
        detail: "the driver failed with an unreadable value",
        sent: false
      })
    }
  }

const fromUnknownUnsafe = (command: string, cause: unknown): RedisError => {
  if (cause instanceof RedisError) return cause
  if (!(cause instanceof Error)) {
    return new RedisError({
      kind: "client",
      command,
      detail: "the driver failed with a non-error value",
      sent: false
    })
  }
  if (cause instanceof ReplyError) {
    return new RedisError({ kind: replyKind(cause.message), command, detail: clean(cause.message), sent: false })
  }
  if (isSystemError(cause)) {
    // A socket that never connected sent nothing; any other socket error may have cut a command in flight.
    const sent = cause.syscall !== "connect" && cause.syscall !== "getaddrinfo"
    return new RedisError({ kind: "connection", command, detail: cause.code, sent })
  }
  if (isDriverError(cause)) {
    const detail =
      cause.name === "MaxRetriesPerRequestError" ? "connection lost (retries exhausted)" : "connection lost"
    return new RedisError({ kind: "connection", command, detail, sent: true })
  }
  if (Object.getPrototypeOf(cause) === Error.prototype) {
    // ioredis refuses to write on a connection that is not ready (offline queue off): nothing was sent.
    const unsent = cause.message.includes("isn't writeable") || cause.message.includes("enableOfflineQueue")
    if (cause.message.includes("timed out")) {
      return new RedisError({ kind: "timeout", command, detail: "timed out", sent: true })
    }
    // Only ioredis's own phrases are repeated: a plain Error's message may carry anything (a secret).
    const detail = unsent
      ? "not connected"
      : cause.message.startsWith("Connection is closed")
        ? "connection closed"
        : "connection error"
    return new RedisError({ kind: "connection", command, detail, sent: !unsent })
  }
  return new RedisError({ kind: "client", command, detail: `the driver failed: ${cause.name}`, sent: false })
}

/**
 * How a `RedisError` counts for the breakers.
 *
 * @category classification
 * @since 0.1.0
 */
export const classify = (error: RedisError): Classification => ({
  infrastructure: error.isInfrastructure,
  shared: notShared.has(error.kind) ? false : undefined,
  errorType: error.kind,
  sent: error.sent
})

// Infrastructure errors one call provokes: they count toward the project's breaker, not the target's.
const notShared: ReadonlySet<RedisErrorKind> = new Set(["busy", "timeout"])
