/**
 * Lua scripts for a project: a script is its source and SHA-1, run with EVALSHA and, when the server does not know
 * it yet (NOSCRIPT), with EVAL, which also loads it. The script's keys get the project's prefix, but a script can
 * name any other key itself, so scripts run only for projects that may run them (`mayRunScripts`: the project's
 * own ACL user, or trusted by the operator); a script whose attempt is abandoned is killed on the server.
 *
 * @since 0.1.0
 */
import { createHash } from "node:crypto"
import * as Effect from "effect/Effect"
import type { GuardError } from "@tenantpool/core/Errors"
import { invalidArgument, RedisError } from "../RedisError.ts"
import * as A from "./arguments.ts"
import { keys as prefixed } from "./keys.ts"
import { errFor, type Handle, OP, runScript } from "./operations.ts"

/** A Lua script usable with `evalScript` (published as `RedisEngine.Script`). */
export interface Script {
  readonly lua: string
  readonly sha1: string
}

/**
 * A script from its source. Never throws: a source that is not a string makes a script that `evalScript` refuses
 * with the caller's error.
 */
export const script = (lua: string): Script => ({
  lua,
  sha1: typeof lua === "string" ? createHash("sha1").update(lua).digest("hex") : ""
})

// The script (made by `script`, or by hand with a source and its SHA-1), keys and arguments `evalScript` takes.
const scriptArguments = (
  s: unknown,
  keys: unknown,
  args: unknown,
  o: unknown
): { readonly script: Script; readonly readOnly: boolean } | RedisError => {
  const candidate = A.record("evalsha", "script", s ?? null, ["lua", "sha1"] as const)
  if (
    candidate instanceof RedisError ||
    typeof candidate.lua !== "string" ||
    typeof candidate.sha1 !== "string" ||
    !/^[0-9a-f]{40}$/.test(candidate.sha1)
  ) {
    return invalidArgument("evalsha", "script: expected a script made by `script(lua)`")
  }
  const options = A.record("evalsha", "options", o, ["readOnly"] as const)
  return (
    A.strings("evalsha", "keys", keys, 0) ??
    A.commandArgs("evalsha", "args", args) ??
    (options instanceof RedisError
      ? options
      : { script: { lua: candidate.lua, sha1: candidate.sha1 }, readOnly: options.readOnly === true })
  )
}

/** Runs a script with the project's keys (not retried unless `readOnly`). */
export const evalScript =
  (handle: Handle) =>
  (
    s: Script,
    keys: ReadonlyArray<string>,
    args: ReadonlyArray<string | number>,
    options?: { readonly readOnly?: boolean }
  ): Effect.Effect<unknown, RedisError | GuardError> => {
    // Plain copies, checked and sent: never the caller's own iterator (a Proxy's could be endless).
    const copied = A.copy("eval", "args", args)
    if (copied instanceof RedisError) return Effect.fail(copied)
    const argv = (copied ?? args) as ReadonlyArray<string | number>
    const checked = scriptArguments(s, keys, argv, options)
    if (checked instanceof RedisError) return Effect.fail(checked)
    const { script, readOnly } = checked
    return runScript(
      handle,
      readOnly ? OP.evalReadOnly : OP.eval,
      (c, b) => {
        const ks = prefixed(b, keys)
        return (c.evalsha(script.sha1, ks.length, ...ks, ...argv) as Promise<unknown>).catch((e: unknown) =>
          String((e as Error)?.message).startsWith("NOSCRIPT")
            ? (c.eval(script.lua, ks.length, ...ks, ...argv) as Promise<unknown>)
            : Promise.reject(e)
        )
      },
      errFor("evalsha")
    )
  }
