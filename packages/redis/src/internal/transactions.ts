/**
 * Transactions for a project: MULTI/EXEC of queued commands on the shared connection (atomic, no WATCH), and
 * WATCH transactions on a dedicated connection (WATCH the keys, read, then MULTI/EXEC what the reads decided; a
 * watched key changed meanwhile is a `conflict`). Queued commands' keys get the project's prefix.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import type { Redis as IORedis } from "ioredis"
import type { GuardError } from "@tenantpool/core/Errors"
import { RedisError } from "../RedisError.ts"
import { send } from "./connections.ts"
import { key, keys, prefixArgs, type Prefixed } from "./keys.ts"
import { errFor, type Handle, OP, onConn, run, runDedicated } from "./operations.ts"

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
 * A queued command of a transaction: the command name, then its arguments. `keys` lists which argument positions
 * (0-based, after the name) are keys, to be prefixed; by default the first argument is the key (published as
 * `RedisEngine.QueuedCommand`).
 */
export interface QueuedCommand {
  readonly command: string
  readonly args: ReadonlyArray<string | number>
  readonly keys?: ReadonlyArray<number> | undefined
}

const firstArgument: ReadonlyArray<number> = [0]

// MULTI, the commands, EXEC: `null` when a watched key changed.
const exec = (
  c: IORedis,
  b: Prefixed,
  commands: ReadonlyArray<QueuedCommand>
): Promise<Array<[Error | null, unknown]> | null> => {
  const tx = c.multi()
  for (const q of commands) tx.call(q.command.toLowerCase(), ...prefixArgs(b, q.args, q.keys ?? firstArgument))
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

/** MULTI/EXEC of the given commands on the shared connection. */
export const multi =
  (handle: Handle) =>
  (commands: ReadonlyArray<QueuedCommand>): Effect.Effect<Array<unknown>, RedisError | GuardError> =>
    run(handle, OP.multi, (b, s) => send(b, s, (c) => exec(c, b, commands)).then(unwrapExec), errFor("exec"))

const reader = (conn: IORedis, b: Prefixed): WatchedConnection => ({
  get: (k) => onConn(conn, "get", (c) => c.get(key(b, k))),
  hget: (k, field) => onConn(conn, "hget", (c) => c.hget(key(b, k), field)),
  hgetall: (k) => onConn(conn, "hgetall", (c) => c.hgetall(key(b, k))),
  smembers: (k) => onConn(conn, "smembers", (c) => c.smembers(key(b, k))),
  zscore: (k, member) =>
    onConn(conn, "zscore", (c) => c.zscore(key(b, k), member)).pipe(Effect.map((r) => (r === null ? null : Number(r))))
})

const conflict = () =>
  new RedisError({
    kind: "conflict",
    command: "exec",
    detail: "a watched key changed; the transaction was not applied",
    sent: false
  })

/** WATCH `watched` on a dedicated connection, run `body` (reads), then MULTI/EXEC the commands it returns. */
export const watch =
  (handle: Handle) =>
  <E>(
    watched: ReadonlyArray<string>,
    body: (conn: WatchedConnection) => Effect.Effect<ReadonlyArray<QueuedCommand>, E | RedisError>
  ): Effect.Effect<Array<unknown>, E | RedisError | GuardError> =>
    runDedicated(handle, OP.watch, 0, (conn, b) =>
      Effect.gen(function* () {
        yield* onConn(conn, "watch", (c) => c.watch(...keys(b, watched)))
        const commands = yield* body(reader(conn, b)).pipe(
          Effect.onError(() => Effect.promise(() => conn.unwatch().catch(() => "OK")))
        )
        const result = yield* onConn(conn, "exec", (c) => exec(c, b, commands))
        if (result === null) return yield* Effect.fail(conflict())
        return yield* Effect.try({ try: () => unwrapExec(result), catch: errFor("exec") })
      })
    )
