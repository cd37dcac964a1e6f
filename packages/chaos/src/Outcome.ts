/**
 * Reads an operation's `Exit` the way a careful caller would, from the library's own error types only:
 *
 * - `UnknownOutcome` (also inside a PostgreSQL `SqlError`) is **unknown**: the write may have been applied;
 * - any other guard error (`isGuardError`: `CircuitOpen`, `Overloaded`, `Timeout`, …) is **fail**: the library
 *   says nothing was applied;
 * - the engine's own error (`SqlError`, `RedisError`, `MongoError`) is **fail**: the library's contract is that
 *   a write that may have reached the server comes back as `UnknownOutcome`, so anything else is definite;
 * - a defect (`Die`) is **unknown** and counted as a defect; an error of no known type is **unknown** and counted
 *   as unclassified. Both are bugs: the library must answer with its own errors.
 *
 * The checker then holds the library to it: a `fail` whose id is on the server is a falsely failed write.
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import { isSqlError } from "effect/sql/SqlError"
import { isGuardError } from "@tenantpool/core/Errors"
import { MongoError } from "@tenantpool/mongodb/MongoError"
import * as PgError from "@tenantpool/pg/PgError"
import { RedisError } from "@tenantpool/redis/RedisError"
import type { Outcome } from "./History.ts"

/**
 * The verdict on one operation.
 *
 * @category models
 * @since 0.1.0
 */
export interface Verdict {
  readonly outcome: Outcome
  readonly tag: string
  readonly defect: boolean
  readonly unclassified: boolean
  /** The error, for secret scanning (never printed). */
  readonly error: unknown
}

const ok: Verdict = { outcome: "ok", tag: "ok", defect: false, unclassified: false, error: undefined }

/**
 * The verdict on an error value.
 *
 * @category classification
 * @since 0.1.0
 */
export const ofError = (error: unknown): Verdict => {
  const verdict = (outcome: Outcome, tag: string, unclassified = false): Verdict => ({
    outcome,
    tag,
    defect: false,
    unclassified,
    error
  })
  if (isGuardError(error)) return verdict(error._tag === "UnknownOutcome" ? "unknown" : "fail", error._tag)
  if (isSqlError(error)) {
    const refusal = PgError.guardError(error)
    if (refusal !== undefined) return verdict(refusal._tag === "UnknownOutcome" ? "unknown" : "fail", refusal._tag)
    // The driver's error code (EPIPE, ECONNRESET, 57P01…) says what the library took for a server's answer.
    const code = (error.reason.cause as { readonly code?: unknown } | undefined)?.code
    return verdict("fail", `SqlError:${error.reason._tag}${typeof code === "string" ? `<${code}>` : ""}`)
  }
  if (error instanceof RedisError) return verdict("fail", `RedisError:${error.kind}`)
  if (error instanceof MongoError) return verdict("fail", `MongoError:${error.kind}`)
  const tag = (error as { readonly _tag?: unknown } | null)?._tag
  return verdict("unknown", `unclassified:${typeof tag === "string" ? tag : typeof error}`, true)
}

// A defect's type, never its message (which could hold anything, a secret included).
const defectName = (defect: unknown): string => {
  const tag = (defect as { readonly _tag?: unknown } | null)?._tag
  if (typeof tag === "string") return tag
  return defect instanceof Error ? defect.constructor.name : typeof defect
}

/**
 * The verdict on an operation's exit.
 *
 * @category classification
 * @since 0.1.0
 */
export const ofExit = (exit: Exit.Exit<unknown, unknown>): Verdict => {
  if (Exit.isSuccess(exit)) return ok
  const error = Cause.findErrorOption(exit.cause)
  if (Option.isSome(error)) return ofError(error.value)
  if (Cause.hasDies(exit.cause)) {
    const defect = Cause.squash(exit.cause)
    return { outcome: "unknown", tag: `Die:${defectName(defect)}`, defect: true, unclassified: false, error: defect }
  }
  // Only interruption: the run never interrupts an operation, so this is the library's doing.
  return { outcome: "unknown", tag: "Interrupt", defect: true, unclassified: false, error: undefined }
}
