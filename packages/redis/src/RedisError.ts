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
import type { Classification } from "@tenantpool/core/Engine"

/**
 * What went wrong, in a bounded vocabulary (also the `error_type` metric label).
 *
 * Infrastructure (count toward breakers): `connection` (refused, reset, closed, not writable), `timeout`,
 * `loading`, `busy`, `masterdown`, `max_clients`, `readonly`, `oom`, `auth`.
 * The caller's (never count): `wrongtype`, `syntax`, `noscript`, `arity`, `script`, `aborted`, `conflict`,
 * `forbidden`, `other`.
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

/**
 * Converts whatever ioredis rejected with into a `RedisError`.
 *
 * @category constructors
 * @since 0.1.0
 */
export const fromUnknown =
  (command: string) =>
  (cause: unknown): RedisError => {
    if (cause instanceof RedisError) return cause
    const err = cause as { name?: unknown; message?: unknown; code?: unknown } | undefined
    const name = typeof err?.name === "string" ? err.name : ""
    const message = typeof err?.message === "string" ? err.message : String(cause)
    if (name === "ReplyError") {
      // The server answered: the command was not applied (or, for EXECABORT, the transaction was discarded).
      return new RedisError({ kind: replyKind(message), command, detail: clean(message), sent: false })
    }
    if (name === "MaxRetriesPerRequestError") {
      return new RedisError({ kind: "connection", command, detail: "connection lost (retries exhausted)", sent: true })
    }
    const code = typeof err?.code === "string" ? err.code : ""
    if (message.includes("enableOfflineQueue") || message.includes("isn't writeable")) {
      return new RedisError({ kind: "connection", command, detail: "not connected", sent: false })
    }
    if (code === "ECONNREFUSED" || code === "ENOTFOUND" || code === "EAI_AGAIN") {
      return new RedisError({ kind: "connection", command, detail: code, sent: false })
    }
    if (message.includes("timed out") || code === "ETIMEDOUT") {
      return new RedisError({ kind: "timeout", command, detail: "timed out", sent: true })
    }
    return new RedisError({
      kind: "connection",
      command,
      detail: code !== "" ? code : clean(message.split("\n")[0] ?? "connection error"),
      sent: true
    })
  }

/**
 * How a `RedisError` counts for the breakers.
 *
 * @category classification
 * @since 0.1.0
 */
export const classify = (error: RedisError): Classification => ({
  infrastructure: error.isInfrastructure,
  errorType: error.kind,
  sent: error.sent
})
