/**
 * The Redis engine's operations: their static descriptions (name, idempotency, whether they write, the command name
 * the protections see), made once and never per call, their error mappers, and the two ways an operation runs
 * through the guard: on the shared connection (`run`, a promise; the fast path), on a dedicated connection taken
 * from the project's pool (`runDedicated`, an effect), or as a script (`runScript`: only for projects that may run
 * scripts, and the server's script is killed when its attempt is abandoned).
 *
 * @since 0.1.0
 */
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Pool from "effect/Pool"
import type { Redis as IORedis } from "ioredis"
import * as Durations from "@tenantpool/core/Durations"
import type { AttemptSignal, EngineHandle, Operation } from "@tenantpool/core/Engine"
import type { GuardError } from "@tenantpool/core/Errors"
import type { ProtectionDetail } from "@tenantpool/core/Protections"
import { commandDetail } from "../RedisCommandTable.ts"
import { forbidden, fromUnknown, invalidArgument, type RedisError } from "../RedisError.ts"
import { byCommand } from "./byCommand.ts"
import { type Binding, dedicatedPool, killScripts, mayRunScripts, send } from "./connections.ts"

/** The guard, bound to the Redis engine. */
export type Handle = EngineHandle<Binding, RedisError>

/** An operation, with the detail (its command name) the installed protections check. */
export interface RedisOperation extends Operation<Binding> {
  readonly detail: ProtectionDetail
}

// `write`: an idempotent write that fails after it may have reached the server is reported as UnknownOutcome once
// its retries run out (non-idempotent operations are writes by default).
const op = (name: string, idempotent: boolean, write = !idempotent): RedisOperation => ({
  name,
  idempotent,
  write,
  detail: commandDetail(name)
})

/** Every operation of the engine. */
export const OP = {
  get: op("get", true),
  set: op("set", true, true),
  setnx: op("set", false),
  mget: op("mget", true),
  mset: op("mset", true, true),
  del: op("del", true, true),
  exists: op("exists", true),
  expire: op("expire", true, true),
  ttl: op("ttl", true),
  incr: op("incr", false),
  hset: op("hset", true, true),
  hget: op("hget", true),
  hmget: op("hmget", true),
  hgetall: op("hgetall", true),
  hdel: op("hdel", true, true),
  hincrby: op("hincrby", false),
  hexists: op("hexists", true),
  hlen: op("hlen", true),
  push: op("push", false),
  pop: op("pop", false),
  lrange: op("lrange", true),
  llen: op("llen", true),
  lrem: op("lrem", false),
  ltrim: op("ltrim", true, true),
  bpop: op("bpop", false),
  sadd: op("sadd", true, true),
  srem: op("srem", true, true),
  smembers: op("smembers", true),
  sismember: op("sismember", true),
  scard: op("scard", true),
  zadd: op("zadd", true, true),
  zrange: op("zrange", true),
  zrangebyscore: op("zrangebyscore", true),
  zrem: op("zrem", true, true),
  zscore: op("zscore", true),
  zincrby: op("zincrby", false),
  zcard: op("zcard", true),
  zrank: op("zrank", true),
  publish: op("publish", false),
  multi: op("multi", false),
  watch: op("watch", false),
  eval: op("eval", false),
  evalReadOnly: op("eval", true),
  scan: op("scan", true),
  command: op("command", false),
  commandReadOnly: op("command", true),
  ping: op("ping", true)
} as const

/** The error mapper of a command (lower case), one per name: operations look it up on every call. */
export const errFor: (command: string) => (cause: unknown) => RedisError = byCommand(fromUnknown)

/** Runs a promise-returning call on the shared connection through the guard (and the protections). */
export const run = <A>(
  handle: Handle,
  o: RedisOperation,
  f: (b: Binding, signal: AttemptSignal) => PromiseLike<A>,
  mapError: (cause: unknown) => RedisError
): Effect.Effect<A, RedisError | GuardError> => handle.run(o, f, mapError, undefined, o.detail)

/**
 * Runs `use` with a dedicated connection through the guard; `extraMillis` lengthens the attempt timeout (a
 * blocking command waits on the server by design). While it waits for a connection from the project's pool the
 * attempt says so (`waitingFor`): should it time out then, the caller hears a definite `Timeout` (nothing was
 * sent) and no breaker counts it. A connection whose command failed or was abandoned is closed at once and
 * discarded, not reused: not with QUIT, which waits behind a BLPOP still blocked on the server, which would
 * meanwhile pop (and lose) an element pushed for a caller that is gone.
 */
export const runDedicated = <A, E>(
  handle: Handle,
  o: RedisOperation,
  extraMillis: number,
  use: (conn: IORedis, b: Binding) => Effect.Effect<A, E | RedisError>
): Effect.Effect<A, E | RedisError | GuardError> =>
  handle.runEffect<A, never>(
    o,
    (b, signal) =>
      Effect.flatMap(dedicatedPool(b), (pool) =>
        Effect.scoped(
          Effect.gen(function* () {
            signal.waitingFor("dedicated connection")
            const started = performance.now()
            const conn = yield* Pool.get(pool)
            handle.recordAcquire(b.project, (performance.now() - started) / 1000)
            signal.sending()
            return yield* use(conn, b).pipe(
              Effect.onExit((exit) =>
                Exit.isSuccess(exit)
                  ? Effect.void
                  : Effect.andThen(
                      Effect.sync(() => conn.disconnect()),
                      Pool.invalidate(pool, conn)
                    )
              )
            )
          })
        )
      ) as Effect.Effect<A, RedisError>,
    extraMillis,
    o.detail
  ) as Effect.Effect<A, E | RedisError | GuardError>

/** The refusal of a script for a project that may not run scripts. */
export const scriptsRefused = (command: string): RedisError =>
  forbidden(
    command,
    "scripts can name any key: they run only for a project on its own ACL user or one an operator trusts (scripts option)"
  )

/**
 * A call that runs a script, as an effect: `run` sends it and calls `markSent` as it hands it to the driver.
 * Interrupted after that and before the reply (its attempt was abandoned), it stops the server's script: a busy
 * script holds up every project on the server.
 */
export const scriptCall = <A>(
  b: Binding,
  run: (markSent: () => void) => Promise<A>,
  mapError: (cause: unknown) => RedisError
): Effect.Effect<A, RedisError> =>
  Effect.callback<A, RedisError>((resume) => {
    let sent = false
    let settled = false
    run(() => {
      sent = true
    }).then(
      (a) => {
        settled = true
        resume(Effect.succeed(a))
      },
      (e: unknown) => {
        settled = true
        resume(Effect.fail(mapError(e)))
      }
    )
    return Effect.promise(() => (sent && !settled ? killScripts(b.settings, b.target) : Promise.resolve()))
  })

/**
 * Runs a script on the shared connection through the guard (and the protections), for projects that may run
 * scripts (`mayRunScripts`); the server's script is stopped if the attempt is abandoned.
 */
export const runScript = <A>(
  handle: Handle,
  o: RedisOperation,
  f: (conn: IORedis, b: Binding) => Promise<A>,
  mapError: (cause: unknown) => RedisError,
  detail: ProtectionDetail = o.detail
): Effect.Effect<A, RedisError | GuardError> =>
  handle.runEffect<A, never>(
    o,
    (b, signal) =>
      mayRunScripts(b)
        ? scriptCall(
            b,
            (markSent) =>
              send(b, signal, (c) => {
                markSent()
                return f(c, b)
              }),
            mapError
          )
        : Effect.fail(scriptsRefused(o.name)),
    undefined,
    detail
  ) as Effect.Effect<A, RedisError | GuardError>

/** A call on a dedicated connection, its failure mapped for `command`. */
export const onConn = <A>(
  conn: IORedis,
  command: string,
  f: (c: IORedis) => Promise<A>
): Effect.Effect<A, RedisError> => Effect.tryPromise({ try: () => f(conn), catch: errFor(command) })

/**
 * A duration argument of a call (a TTL, a blocking timeout) in whole milliseconds, at least 1 (a blocking pop reads
 * 0 as "forever"); one that is not a duration, negative or infinite is the caller's mistake, a `RedisError` of kind
 * `argument` that is never sent.
 */
export const callMillis = (command: string, field: string, input: Duration.Input): number | RedisError => {
  const ms = Durations.millisOrError(field, input, input, { allowZero: true })
  return typeof ms === "number" ? Math.max(1, Math.round(ms)) : invalidArgument(command, `${field}: ${ms.reason}`)
}
