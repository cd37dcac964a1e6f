/**
 * The `command` escape hatch: any command by name, refused when the Redis command table says it reaches past the
 * project's keys or blocks, with its key arguments prefixed at the positions Redis's own command table gives (or
 * the caller's, for commands it does not know), and retried like a read when it is read-only.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as RedisCommands from "@ioredis/commands"
import type { GuardError } from "@tenantpool/core/Errors"
import { commandDetail, refusal } from "../RedisCommandTable.ts"
import { forbidden, type RedisError } from "../RedisError.ts"
import { send } from "./connections.ts"
import { prefixArgs } from "./keys.ts"
import { errFor, type Handle, OP } from "./operations.ts"

const refusedBecause = {
  "reaches-past-keys": "this command reaches past the project's keys or changes the connection; use the typed API",
  blocking: "a blocking command would stall the connection the target's projects share; use blpop/brpop"
} as const

/** Runs `name` with `args` for the current project, unless the command table refuses it. */
export const command =
  (handle: Handle) =>
  (
    name: string,
    args: ReadonlyArray<string | number>,
    options?: { readonly keys?: ReadonlyArray<number>; readonly readOnly?: boolean }
  ): Effect.Effect<unknown, RedisError | GuardError> => {
    const upper = name.toUpperCase()
    const refused = refusal(upper, args)
    if (refused !== undefined) return Effect.fail(forbidden(upper, refusedBecause[refused]))
    // ioredis looks its reply transformers up by the exact (lower-case) name: an upper-case name would get RESP3
    // shapes (e.g. nested [member, score] pairs) instead of the ones its own methods return.
    const lower = upper.toLowerCase()
    const known = RedisCommands.exists(lower)
    if (!known && options?.keys === undefined) {
      return Effect.fail(forbidden(upper, "unknown command: pass its key argument positions in `keys`"))
    }
    // Key positions from Redis's command table, so the project's prefix applies without being asked for.
    const keys = options?.keys ?? RedisCommands.getKeyIndexes(lower, args.map(String))
    const readOnly = options?.readOnly ?? (known && RedisCommands.hasFlag(lower, "readonly"))
    return handle.run(
      readOnly ? OP.commandReadOnly : OP.command,
      (b, s) => send(b, s, (c) => c.call(lower, ...prefixArgs(b, args, keys))),
      errFor(lower),
      undefined,
      commandDetail(upper)
    )
  }
