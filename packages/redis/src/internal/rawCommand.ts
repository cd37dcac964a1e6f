/**
 * The raw paths: `command` (any allowed command by name) and the preparation every queued command of `multi` and
 * `watch` goes through. A command is sent only when `RedisCommandTable` allows it; its keys and channels get the
 * project's prefix at the positions the table gives, plus any the caller adds (never fewer); read-only commands
 * are retried like reads; scripts run only for projects that may run them.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import type { GuardError } from "@tenantpool/core/Errors"
import { check, commandDetail, explain, type Verdict } from "../RedisCommandTable.ts"
import { forbidden, invalidArgument, RedisError } from "../RedisError.ts"
import * as A from "./arguments.ts"
import { send } from "./connections.ts"
import { type Prefixed, prefixArgs } from "./keys.ts"
import { errFor, type Handle, OP, runScript } from "./operations.ts"

/** An allowed command, ready to send for any project. */
export interface Prepared {
  readonly verdict: Extract<Verdict, { readonly _tag: "Allowed" }>
  readonly args: ReadonlyArray<string | number>
  readonly positions: ReadonlyArray<number>
}

// A call whose keys cannot be located is the caller's mistake, never sent: `arity` when the key count or positions
// do not fit the arguments (the server would refuse it too), `argument` when a keyword is repeated.
const unlocatable = (command: string, why: "arguments" | "ambiguous"): RedisError =>
  why === "arguments"
    ? new RedisError({
        kind: "arity",
        command,
        detail: "the key count or key positions do not fit the arguments",
        sent: false
      })
    : invalidArgument(
        command,
        "a keyword that keys follow occurs more than once: the keys cannot be located for certain"
      )

/** How a raw command's parts are named in errors (`args`, `commands[2].args`). */
export interface Fields {
  readonly name: string
  readonly args: string
  readonly keys: string
}

const commandFields: Fields = { name: "name", args: "args", keys: "options.keys" }

/** The fields of the `i`-th queued command of a transaction. */
export const queuedFields = (i: number): Fields => ({
  name: `commands[${i}].command`,
  args: `commands[${i}].args`,
  keys: `commands[${i}].keys`
})

/**
 * Checks one raw command: its arguments' types, then the table's verdict; `keys` adds argument positions to
 * prefix.
 */
export const prepare = (fields: Fields, name: unknown, rawArgs: unknown, rawKeys: unknown): Prepared | RedisError => {
  const nameInvalid = A.string("command", fields.name, name)
  if (nameInvalid !== undefined) return nameInvalid
  // Read once into plain arrays: what is checked is what is sent (a getter, a Proxy or an Array subclass could
  // answer differently, or lie through its own methods, between the check and the send).
  const copiedArgs = A.copy(String(name), fields.args, rawArgs)
  if (copiedArgs instanceof RedisError) return copiedArgs
  const args: unknown = copiedArgs ?? rawArgs
  const copiedKeys = rawKeys === undefined ? undefined : A.copy(String(name), fields.keys, rawKeys)
  if (copiedKeys instanceof RedisError) return copiedKeys
  const keys: unknown = copiedKeys ?? rawKeys
  const invalid =
    A.commandArgs(String(name), fields.args, args) ??
    (keys === undefined
      ? undefined
      : A.positions(String(name), fields.keys, keys, (args as ReadonlyArray<unknown>).length))
  if (invalid !== undefined) return invalid
  const list = args as ReadonlyArray<string | number>
  const verdict = check(name as string, list)
  switch (verdict._tag) {
    case "Refused":
      return forbidden(verdict.command, explain(verdict.why))
    case "Invalid":
      return unlocatable(verdict.command, verdict.why)
  }
  const extra = keys as ReadonlyArray<number> | undefined
  const positions =
    extra === undefined || extra.length === 0
      ? verdict.positions
      : [...verdict.positions, ...extra.filter((p) => !verdict.positions.includes(p))]
  return { verdict, args: list, positions }
}

/** The arguments as sent: the table's spelling of the subcommand, the project's prefix at the positions. */
export const argsFor = (b: Prefixed, p: Prepared): Array<string | number> => {
  const out = prefixArgs(b, p.args, p.positions)
  if (p.verdict.subcommand !== undefined) out[0] = p.verdict.subcommand
  return out
}

/** Runs `name` with `args` for the current project, unless the command table refuses it. */
export const command =
  (handle: Handle) =>
  (
    name: string,
    args: ReadonlyArray<string | number>,
    options?: { readonly keys?: ReadonlyArray<number> }
  ): Effect.Effect<unknown, RedisError | GuardError> => {
    const o = A.record("command", "options", options, ["keys"] as const)
    const p = o instanceof RedisError ? o : prepare(commandFields, name, args, o.keys)
    if (!("verdict" in p)) return Effect.fail(p)
    const v = p.verdict
    const op = v.readOnly ? OP.commandReadOnly : OP.command
    // ioredis looks its reply transformers up by the exact (lower-case) name: an upper-case name would get RESP3
    // shapes (e.g. nested [member, score] pairs) instead of the ones its own methods return.
    if (v.script)
      return runScript(handle, op, (c, b) => c.call(v.name, ...argsFor(b, p)), errFor(v.name), commandDetail(v.command))
    return handle.run(
      op,
      (b, s) => send(b, s, (c) => c.call(v.name, ...argsFor(b, p))),
      errFor(v.name),
      undefined,
      commandDetail(v.command)
    )
  }
