/**
 * What the platform store's three services (registry, admin, recorder) share besides the SQL handle: their error,
 * reading the key ring from the options, and the one-line reason of a failure as it may be shown (never a secret).
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import type * as Redacted from "effect/Redacted"
import { isSqlError } from "effect/sql/SqlError"
import { InvalidConfig } from "@tenantpool/core/Errors"
import { type KeyRing, KeyRingError, parseKeyRing } from "./crypto.ts"
import { serverError } from "./pgError.ts"

/** The key ring of the options, or `InvalidConfig` naming the part that is wrong (never quoting a key). */
export const keyRingOf = (keys: Redacted.Redacted<string>): Effect.Effect<KeyRing, InvalidConfig> =>
  Effect.suspend(() => {
    try {
      return Effect.succeed(parseKeyRing(keys))
    } catch (e) {
      return Effect.fail(
        new InvalidConfig({
          field: e instanceof KeyRingError ? `platform.${e.field}` : "platform.keys",
          // A KeyRingError's message is ours (it never quotes a key); anything else thrown while the keys were read
          // (a proxy, a getter) may carry the input.
          reason: e instanceof KeyRingError ? e.message : "could not be read"
        })
      )
    }
  })

/** A failure as one short line: the server's message for a SQL error, the message of any other error. */
export const reasonOf = (error: unknown): string => {
  if (isSqlError(error)) return serverError(error).message.replace(/\s+/g, " ").slice(0, 300)
  if (error instanceof Error) return error.message.replace(/\s+/g, " ").slice(0, 300)
  return "failed"
}

/**
 * A platform-store operation failed. The message names the operation, the project and the engine, never a
 * connection string.
 *
 * @category errors
 * @since 0.1.0
 */
export class PlatformStoreError extends Schema.TaggedError<PlatformStoreError>()("PlatformStoreError", {
  operation: Schema.String,
  reason: Schema.String,
  projectId: Schema.optional(Schema.String)
}) {
  override get message(): string {
    const project = this.projectId === undefined ? "" : ` for project "${this.projectId}"`
    return `platform store ${this.operation}${project} failed: ${this.reason}`
  }
}

/** The failure of `operation` (for `projectId`) as a `PlatformStoreError`, with a reason that is safe to show. */
export const failure =
  (operation: string, projectId?: string) =>
  (error: unknown): PlatformStoreError =>
    new PlatformStoreError({ operation, reason: reasonOf(error), ...(projectId !== undefined ? { projectId } : {}) })
