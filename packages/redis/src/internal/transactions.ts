/**
 * Transactions for a project: MULTI/EXEC of queued commands on the shared connection (atomic, no WATCH), and
 * WATCH transactions on a dedicated connection (WATCH the keys, read, then MULTI/EXEC what the reads decided; a
 * watched key changed meanwhile is a `conflict`). Every queued command goes through the same check as `command`
 * (`RedisCommandTable`: refused unless allowed, keys and channels prefixed at the table's positions) and, one by
 * one, through the installed protections, before anything is sent.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import type { Redis as IORedis } from "ioredis"
import type { GuardError, ProtectionError } from "@tenantpool/core/Errors"
import * as Protections from "@tenantpool/core/Protections"
import { commandDetail } from "../RedisCommandTable.ts"
import { invalidArgument, RedisError } from "../RedisError.ts"
import * as A from "./arguments.ts"
import { mayRunScripts, send } from "./connections.ts"
import { key, keys, type Prefixed } from "./keys.ts"
import {
  errFor,
  type Handle,
  OP,
  onConn,
  run,
  runDedicated,
  runScript,
  scriptCall,
  scriptsRefused
} from "./operations.ts"
import { argsFor, type Prepared, prepare, queuedFields } from "./rawCommand.ts"

/**
 * The reads of a WATCH transaction: read with `get`/`hget`/…, then return the commands to queue (published as
 * `RedisEngine.WatchedConnection`).
 */
export interface WatchedConnection {
  readonly get: (key: string) => Effect.Effect<string | null, RedisError>
  readonly hget: (key: string, field: string) => Effect.Effect<string | null, RedisError>
  readonly hgetall: (key: string) => Effect.Effect<Record<string, string>, RedisError>
  readonly smembers: (key: string) => Effect.Effect<ReadonlyArray<string>, RedisError>
  readonly zscore: (key: string, member: string) => Effect.Effect<number | null, RedisError>
}

/**
 * A queued command of a transaction: the command name, then its arguments. Its keys and channels are prefixed at
 * the positions `RedisCommandTable` gives; `keys` may add positions (0-based, after the name), never remove any
 * (published as `RedisEngine.QueuedCommand`).
 */
export interface QueuedCommand {
  readonly command: string
  readonly args: ReadonlyArray<string | number>
  readonly keys?: ReadonlyArray<number> | undefined
}

/** Checks every queued command (the first refusal or bad argument fails the whole transaction, nothing sent). */
const prepareAll = (command: string, queued: unknown): ReadonlyArray<Prepared> | RedisError => {
  // Read once by index (not through an iterator a Proxy could make endless).
  const list = A.copy(command, "commands", queued)
  if (list instanceof RedisError) return list
  if (list === undefined) return invalidArgument(command, "commands: expected an array of queued commands")
  const out: Array<Prepared> = []
  for (let i = 0; i < list.length; i++) {
    const q = A.record(command, `commands[${i}]`, list[i] ?? null, ["command", "args", "keys"] as const)
    if (q instanceof RedisError) {
      return q.detail.includes("could not be read")
        ? q
        : invalidArgument(command, `commands[${i}]: expected a queued command ({ command, args, keys? })`)
    }
    const p = prepare(queuedFields(i), q.command, q.args, q.keys)
    if (p instanceof RedisError) return p
    out.push(p)
  }
  return out
}

// Each queued command passes the installed protections as if it were sent alone.
const protect = (operation: string, prepared: ReadonlyArray<Prepared>): Effect.Effect<void, ProtectionError> =>
  Effect.forEach(prepared, (p) => Protections.check("redis", operation, commandDetail(p.verdict.command)), {
    discard: true
  })

// MULTI, the commands, EXEC: `null` when a watched key changed.
const exec = (
  c: IORedis,
  b: Prefixed,
  prepared: ReadonlyArray<Prepared>
): Promise<Array<[Error | null, unknown]> | null> => {
  const tx = c.multi()
  for (const p of prepared) tx.call(p.verdict.name, ...argsFor(b, p))
  return tx.exec()
}

// The replies of EXEC, or the first queued command's error.
const unwrapExec = (result: Array<[Error | null, unknown]> | null): Array<unknown> => {
  if (result === null) {
    throw new RedisError({ kind: "aborted", command: "exec", detail: "transaction discarded", sent: false })
  }
  return result.map(([err, value]) => {
    if (err !== null) throw err
    return value
  })
}

const hasScript = (prepared: ReadonlyArray<Prepared>): boolean => prepared.some((p) => p.verdict.script)

/** MULTI/EXEC of the given commands on the shared connection. */
export const multi =
  (handle: Handle) =>
  (commands: ReadonlyArray<QueuedCommand>): Effect.Effect<Array<unknown>, RedisError | GuardError> => {
    const prepared = prepareAll("multi", commands)
    if (prepared instanceof RedisError) return Effect.fail(prepared)
    const guarded = hasScript(prepared)
      ? runScript(handle, OP.multi, (c, b) => exec(c, b, prepared).then(unwrapExec), errFor("exec"))
      : run(handle, OP.multi, (b, s) => send(b, s, (c) => exec(c, b, prepared)).then(unwrapExec), errFor("exec"))
    return Effect.andThen(protect("multi", prepared), guarded)
  }

const reader = (conn: IORedis, b: Prefixed): WatchedConnection => ({
  get: (k) => A.checked(A.string("get", "key", k), () => onConn(conn, "get", (c) => c.get(key(b, k)))),
  hget: (k, field) =>
    A.checked(A.string("hget", "key", k) ?? A.string("hget", "field", field), () =>
      onConn(conn, "hget", (c) => c.hget(key(b, k), field))
    ),
  hgetall: (k) => A.checked(A.string("hgetall", "key", k), () => onConn(conn, "hgetall", (c) => c.hgetall(key(b, k)))),
  smembers: (k) =>
    A.checked(A.string("smembers", "key", k), () => onConn(conn, "smembers", (c) => c.smembers(key(b, k)))),
  zscore: (k, member) =>
    A.checked(A.string("zscore", "key", k) ?? A.string("zscore", "member", member), () =>
      onConn(conn, "zscore", (c) => c.zscore(key(b, k), member)).pipe(
        Effect.map((r) => (r === null ? null : Number(r)))
      )
    )
})

const conflict = () =>
  new RedisError({
    kind: "conflict",
    command: "exec",
    detail: "a watched key changed; the transaction was not applied",
    sent: false
  })

// The caller's body as an effect: one that throws, or returns something else than an Effect, is the caller's error.
const runBody = <E>(
  body: (conn: WatchedConnection) => Effect.Effect<ReadonlyArray<QueuedCommand>, E | RedisError>,
  conn: WatchedConnection
): Effect.Effect<ReadonlyArray<QueuedCommand>, E | RedisError> =>
  Effect.suspend(() => {
    let out: unknown
    try {
      out = body(conn)
    } catch {
      return Effect.fail(invalidArgument("watch", "body: threw instead of returning an Effect"))
    }
    return Effect.isEffect(out)
      ? (out as Effect.Effect<ReadonlyArray<QueuedCommand>, E | RedisError>)
      : Effect.fail(invalidArgument("watch", "body: expected a function returning an Effect"))
  })

/** WATCH `watched` on a dedicated connection, run `body` (reads), then MULTI/EXEC the commands it returns. */
export const watch =
  (handle: Handle) =>
  <E>(
    watched: ReadonlyArray<string>,
    body: (conn: WatchedConnection) => Effect.Effect<ReadonlyArray<QueuedCommand>, E | RedisError>
  ): Effect.Effect<Array<unknown>, E | RedisError | GuardError> => {
    const invalid =
      A.strings("watch", "keys", watched) ??
      (typeof body === "function" ? undefined : invalidArgument("watch", "body: expected a function"))
    if (invalid !== undefined) return Effect.fail(invalid)
    // A failure after WATCH discards the connection (runDedicated): no watch state reaches the next borrower.
    return runDedicated(handle, OP.watch, 0, (conn, b) =>
      Effect.gen(function* () {
        yield* onConn(conn, "watch", (c) => c.watch(...keys(b, watched)))
        const commands = yield* runBody(body, reader(conn, b))
        const prepared = prepareAll("watch", commands)
        if (prepared instanceof RedisError) return yield* Effect.fail(prepared)
        yield* protect("watch", prepared)
        const scripts = hasScript(prepared)
        if (scripts && !mayRunScripts(b)) return yield* Effect.fail(scriptsRefused("watch"))
        const result = yield* scripts
          ? scriptCall(
              b,
              (markSent) => {
                markSent()
                return exec(conn, b, prepared)
              },
              errFor("exec")
            )
          : onConn(conn, "exec", (c) => exec(c, b, prepared))
        if (result === null) return yield* Effect.fail(conflict())
        return yield* Effect.try({ try: () => unwrapExec(result), catch: errFor("exec") })
      })
    )
  }
