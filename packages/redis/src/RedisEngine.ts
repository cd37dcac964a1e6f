/**
 * Redis per project on ioredis, through the tenantpool guard.
 *
 * Connections (ARCHITECTURE §4):
 * - one shared ioredis connection per target serves plain commands for every project on it (ioredis
 *   multiplexes; a pool for plain commands only costs throughput). Auto-pipelining is an option
 *   (`autoPipelining`), on by default: measured here it raises throughput at 50 in flight, at some cost in p99;
 * - a small per-project pool of dedicated connections (created on first need, up to the tier's max pool) serves
 *   blocking commands (BLPOP/BRPOP), WATCH transactions, and each subscription gets a connection of its own;
 * - ioredis's offline queue is off and unfulfilled commands are not re-sent after a reconnect, so nothing waits
 *   in a client queue past its deadline and nothing reported failed is replayed later. While a connection is
 *   (re)connecting, a command waits for it, but only within its attempt timeout, and it is dropped (never sent)
 *   if the attempt was abandoned meanwhile.
 *
 * Isolation: every key, key pattern, channel and script key gets the project's prefix (`<project>:` by default),
 * and results are returned without it. Commands that reach across the keyspace (KEYS, FLUSHALL, CONFIG, …) are
 * refused by `command`. For isolation against hand-written Lua, give projects their own ACL users
 * (`~<project>:*`); projects with their own user get their own connection.
 *
 * @since 0.1.0
 */
import { createHash } from "node:crypto"
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Pool from "effect/Pool"
import * as Queue from "effect/Queue"
import * as Redacted from "effect/Redacted"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as RedisCommands from "@ioredis/commands"
import { Redis as IORedis } from "ioredis"
import type { ProjectHandle } from "@tenantpool/core/CurrentProject"
import { type GuardError, isGuardError, isUnavailable } from "@tenantpool/core/Errors"
import type { ProtectionDetail } from "@tenantpool/core/Protections"
import type { Target } from "@tenantpool/core/Target"
import { Tenancy } from "@tenantpool/core/Tenancy"
import type { AttemptSignal, EngineHandle, Operation, PoolStats } from "@tenantpool/core/Engine"
import { Tiers } from "@tenantpool/core/Tier"
import { byCommand } from "./internal/byCommand.ts"
import { commandDetail, refusal } from "./RedisCommandTable.ts"
import { classify, forbidden, fromUnknown, RedisError } from "./RedisError.ts"

// ---------------------------------------------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------------------------------------------

/**
 * Options of the Redis engine.
 *
 * @category models
 * @since 0.1.0
 */
export interface Options {
  /** ioredis auto-pipelining on the shared connections (default true). */
  readonly autoPipelining?: boolean | undefined
  /** Key prefix of a project (default `<project id>:`). */
  readonly prefix?: ((projectId: string) => string) | undefined
  /** Operations in flight per target from this process, across projects (default 1,000). */
  readonly targetCapacity?: number | undefined
  /** Connect timeout of a connection, handshake included (default 5 seconds). */
  readonly connectTimeout?: Duration.Input | undefined
  /** How long an unused dedicated connection is kept (default 1 minute). */
  readonly dedicatedIdleTimeout?: Duration.Input | undefined
  /** Client name shown in CLIENT LIST (default `tenantpool`). */
  readonly clientName?: string | undefined
}

/**
 * Options of `SET`.
 *
 * @category models
 * @since 0.1.0
 */
export interface SetOptions {
  /** Expire after this long. */
  readonly ttl?: Duration.Input | undefined
  /** Only set if the key does not exist. */
  readonly nx?: boolean | undefined
  /** Only set if the key exists. */
  readonly xx?: boolean | undefined
}

/**
 * A member of a sorted set with its score.
 *
 * @category models
 * @since 0.1.0
 */
export interface ScoredMember {
  readonly member: string
  readonly score: number
}

/**
 * A pub/sub message.
 *
 * @category models
 * @since 0.1.0
 */
export interface Message {
  readonly channel: string
  readonly message: string
  /** The pattern that matched (PSUBSCRIBE only). */
  readonly pattern?: string | undefined
}

/**
 * The commands of a WATCH transaction: read with `get`/`hget`/…, then return the commands to queue.
 *
 * @category models
 * @since 0.1.0
 */
export interface WatchedConnection {
  readonly get: (key: string) => Effect.Effect<string | null, RedisError>
  readonly hget: (key: string, field: string) => Effect.Effect<string | null, RedisError>
  readonly hgetall: (key: string) => Effect.Effect<Record<string, string>, RedisError>
  readonly smembers: (key: string) => Effect.Effect<ReadonlyArray<string>, RedisError>
  readonly zscore: (key: string, member: string) => Effect.Effect<number | null, RedisError>
}

/**
 * A queued command of a transaction: the command name, then its arguments. `keys` lists which argument
 * positions (0-based, after the name) are keys, to be prefixed; by default the first argument is the key.
 *
 * @category models
 * @since 0.1.0
 */
export interface QueuedCommand {
  readonly command: string
  readonly args: ReadonlyArray<string | number>
  readonly keys?: ReadonlyArray<number> | undefined
}

/**
 * A Lua script usable with `evalScript` (EVALSHA, falling back to EVAL on NOSCRIPT).
 *
 * @category models
 * @since 0.1.0
 */
export interface Script {
  readonly lua: string
  readonly sha1: string
}

/**
 * Pool statistics of a project's Redis in the spec's shape, with the parts that make them up.
 *
 * @category models
 * @since 0.1.0
 */
export interface RedisPoolStats extends PoolStats {
  readonly shared: { readonly status: string; readonly pendingReplies: number }
  readonly dedicated: { readonly open: number; readonly inUse: number; readonly pending: number }
}

// ---------------------------------------------------------------------------------------------------------------
// Internals: shared connections, bindings
// ---------------------------------------------------------------------------------------------------------------

class SharedConnection {
  readonly conn: IORedis
  refs = 0
  /** Why the last connection attempt failed, until the connection is ready again. */
  lastError: RedisError | undefined = undefined
  private waiters: { promise: Promise<void>; resolve: () => void; reject: (e: RedisError) => void } | undefined =
    undefined
  constructor(conn: IORedis) {
    this.conn = conn
    conn.on("error", (e: unknown) => {
      if (conn.status === "ready") return
      const error = fromUnknown("connect")(e)
      this.lastError = new RedisError({ kind: error.kind, command: "connect", detail: error.detail, sent: false })
      // Commands waiting for the connection learn at once that this attempt failed.
      const w = this.waiters
      this.waiters = undefined
      w?.reject(this.lastError)
    })
    conn.on("ready", () => {
      this.lastError = undefined
      const w = this.waiters
      this.waiters = undefined
      w?.resolve()
    })
  }
  /** Resolves when the connection is ready, rejects when the current attempt fails; shared by every waiter. */
  whenReady(): Promise<void> {
    if (this.waiters === undefined) {
      let resolve!: () => void
      let reject!: (e: RedisError) => void
      const promise = new Promise<void>((res, rej) => {
        resolve = res
        reject = rej
      })
      // A rejection nobody awaits (every waiter was abandoned) is not an error of the process.
      promise.catch(() => {})
      this.waiters = { promise, resolve, reject }
    }
    return this.waiters.promise
  }
}

interface Binding {
  readonly shared: SharedConnection
  readonly conn: IORedis
  readonly prefix: string
  readonly project: ProjectHandle
  readonly target: Target
  readonly dedicated: Effect.Effect<Pool.Pool<IORedis, RedisError>>
  dedicatedStats: () => { open: number; inUse: number; pending: number }
}

const abandoned = new RedisError({ kind: "timeout", command: "-", detail: "abandoned before sending", sent: false })

// Runs a command on the shared connection now, or once it is ready if the attempt is still on by then. While the
// last connection attempt failed (refused, wrong password), commands fail at once instead of waiting out their
// timeout: the breaker learns fast, and a wrong password is reported as such rather than as a timeout.
const send = <A>(b: Binding, signal: AttemptSignal, f: (conn: IORedis) => Promise<A>): Promise<A> => {
  if (b.conn.status === "ready") return f(b.conn)
  if (b.shared.lastError !== undefined) return Promise.reject(b.shared.lastError)
  return b.shared.whenReady().then(() => (signal.active ? f(b.conn) : Promise.reject(abandoned)))
}

// `write`: an idempotent write that fails after it may have reached the server is reported as UnknownOutcome once
// its retries run out (non-idempotent ones are writes by default).
// `detail` names the command for the installed protections (rate limits, per-tier command policy).
interface RedisOperation extends Operation<Binding> {
  readonly detail: ProtectionDetail
}
const op = (name: string, idempotent: boolean, write = !idempotent): RedisOperation => ({
  name,
  idempotent,
  write,
  detail: commandDetail(name)
})
const OP = {
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

// One error mapper per command name, made once: operations call `errFor` on every call.
const errFor = byCommand(fromUnknown)
const mapErr = { get: errFor("get"), set: errFor("set") }

const toPairs = (flat: ReadonlyArray<string>): Array<ScoredMember> => {
  const out: Array<ScoredMember> = []
  for (let i = 0; i + 1 < flat.length; i += 2) out.push({ member: flat[i]!, score: Number(flat[i + 1]) })
  return out
}

// ---------------------------------------------------------------------------------------------------------------
// The service
// ---------------------------------------------------------------------------------------------------------------

/**
 * The Redis engine: every operation runs for the current project, through the guard.
 *
 * @category services
 * @since 0.1.0
 */
export class RedisEngine extends Context.Service<
  RedisEngine,
  {
    readonly handle: EngineHandle<Binding, RedisError>
    // strings
    readonly get: (key: string) => Effect.Effect<string | null, RedisError | GuardError>
    readonly set: (key: string, value: string, options?: SetOptions) => Effect.Effect<boolean, RedisError | GuardError>
    readonly mget: (keys: ReadonlyArray<string>) => Effect.Effect<Array<string | null>, RedisError | GuardError>
    readonly mset: (entries: Readonly<Record<string, string>>) => Effect.Effect<void, RedisError | GuardError>
    readonly del: (...keys: ReadonlyArray<string>) => Effect.Effect<number, RedisError | GuardError>
    readonly exists: (...keys: ReadonlyArray<string>) => Effect.Effect<number, RedisError | GuardError>
    readonly expire: (key: string, ttl: Duration.Input) => Effect.Effect<boolean, RedisError | GuardError>
    /** Remaining time to live in seconds; -1 without expiry, -2 when the key does not exist. */
    readonly ttl: (key: string) => Effect.Effect<number, RedisError | GuardError>
    readonly incr: (key: string) => Effect.Effect<number, RedisError | GuardError>
    readonly incrby: (key: string, by: number) => Effect.Effect<number, RedisError | GuardError>
    readonly decr: (key: string) => Effect.Effect<number, RedisError | GuardError>
    // hashes
    readonly hset: (
      key: string,
      fieldOrValues: string | Readonly<Record<string, string>>,
      value?: string
    ) => Effect.Effect<number, RedisError | GuardError>
    readonly hget: (key: string, field: string) => Effect.Effect<string | null, RedisError | GuardError>
    readonly hmget: (
      key: string,
      fields: ReadonlyArray<string>
    ) => Effect.Effect<Array<string | null>, RedisError | GuardError>
    readonly hgetall: (key: string) => Effect.Effect<Record<string, string>, RedisError | GuardError>
    readonly hdel: (key: string, ...fields: ReadonlyArray<string>) => Effect.Effect<number, RedisError | GuardError>
    readonly hincrby: (key: string, field: string, by: number) => Effect.Effect<number, RedisError | GuardError>
    readonly hexists: (key: string, field: string) => Effect.Effect<boolean, RedisError | GuardError>
    readonly hlen: (key: string) => Effect.Effect<number, RedisError | GuardError>
    // lists
    readonly lpush: (key: string, ...values: ReadonlyArray<string>) => Effect.Effect<number, RedisError | GuardError>
    readonly rpush: (key: string, ...values: ReadonlyArray<string>) => Effect.Effect<number, RedisError | GuardError>
    readonly lpop: (key: string) => Effect.Effect<string | null, RedisError | GuardError>
    readonly rpop: (key: string) => Effect.Effect<string | null, RedisError | GuardError>
    readonly lrange: (key: string, start: number, stop: number) => Effect.Effect<Array<string>, RedisError | GuardError>
    readonly llen: (key: string) => Effect.Effect<number, RedisError | GuardError>
    readonly lrem: (key: string, count: number, value: string) => Effect.Effect<number, RedisError | GuardError>
    readonly ltrim: (key: string, start: number, stop: number) => Effect.Effect<void, RedisError | GuardError>
    /** BLPOP on a dedicated connection; `None` when `timeout` passes with nothing to pop. */
    readonly blpop: (
      keys: ReadonlyArray<string>,
      timeout: Duration.Input
    ) => Effect.Effect<Option.Option<readonly [key: string, value: string]>, RedisError | GuardError>
    /** BRPOP on a dedicated connection. */
    readonly brpop: (
      keys: ReadonlyArray<string>,
      timeout: Duration.Input
    ) => Effect.Effect<Option.Option<readonly [key: string, value: string]>, RedisError | GuardError>
    // sets
    readonly sadd: (key: string, ...members: ReadonlyArray<string>) => Effect.Effect<number, RedisError | GuardError>
    readonly srem: (key: string, ...members: ReadonlyArray<string>) => Effect.Effect<number, RedisError | GuardError>
    readonly smembers: (key: string) => Effect.Effect<Array<string>, RedisError | GuardError>
    readonly sismember: (key: string, member: string) => Effect.Effect<boolean, RedisError | GuardError>
    readonly scard: (key: string) => Effect.Effect<number, RedisError | GuardError>
    // sorted sets
    readonly zadd: (
      key: string,
      ...members: ReadonlyArray<ScoredMember>
    ) => Effect.Effect<number, RedisError | GuardError>
    readonly zrange: (key: string, start: number, stop: number) => Effect.Effect<Array<string>, RedisError | GuardError>
    readonly zrangeWithScores: (
      key: string,
      start: number,
      stop: number
    ) => Effect.Effect<Array<ScoredMember>, RedisError | GuardError>
    readonly zrangebyscore: (
      key: string,
      min: number | string,
      max: number | string,
      options?: { readonly withScores?: boolean; readonly limit?: { readonly offset: number; readonly count: number } }
    ) => Effect.Effect<Array<ScoredMember>, RedisError | GuardError>
    readonly zrem: (key: string, ...members: ReadonlyArray<string>) => Effect.Effect<number, RedisError | GuardError>
    readonly zscore: (key: string, member: string) => Effect.Effect<number | null, RedisError | GuardError>
    readonly zincrby: (key: string, by: number, member: string) => Effect.Effect<number, RedisError | GuardError>
    readonly zcard: (key: string) => Effect.Effect<number, RedisError | GuardError>
    readonly zrank: (key: string, member: string) => Effect.Effect<number | null, RedisError | GuardError>
    // pub/sub
    readonly publish: (channel: string, message: string) => Effect.Effect<number, RedisError | GuardError>
    /** SUBSCRIBE on a connection of its own, as a stream; resubscribes after a reconnect. */
    readonly subscribe: (...channels: ReadonlyArray<string>) => Stream.Stream<Message, RedisError | GuardError>
    /** PSUBSCRIBE on a connection of its own, as a stream; resubscribes after a reconnect. */
    readonly psubscribe: (...patterns: ReadonlyArray<string>) => Stream.Stream<Message, RedisError | GuardError>
    // transactions
    /** MULTI/EXEC of the given commands, atomically (no WATCH; runs on the shared connection). */
    readonly multi: (commands: ReadonlyArray<QueuedCommand>) => Effect.Effect<Array<unknown>, RedisError | GuardError>
    /**
     * WATCH `keys` on a dedicated connection, run `body` (reads), then MULTI/EXEC the commands it returns.
     * Fails with kind `conflict` when a watched key changed (retry the whole transaction).
     */
    readonly watch: <E>(
      keys: ReadonlyArray<string>,
      body: (conn: WatchedConnection) => Effect.Effect<ReadonlyArray<QueuedCommand>, E | RedisError>
    ) => Effect.Effect<Array<unknown>, E | RedisError | GuardError>
    // scripts
    readonly script: (lua: string) => Script
    readonly evalScript: (
      script: Script,
      keys: ReadonlyArray<string>,
      args: ReadonlyArray<string | number>,
      options?: { readonly readOnly?: boolean }
    ) => Effect.Effect<unknown, RedisError | GuardError>
    // scan
    /** SCAN MATCH `pattern` (within the project's keys) as a stream of keys (without the prefix). */
    readonly scan: (
      pattern?: string,
      options?: { readonly count?: number; readonly type?: string }
    ) => Stream.Stream<string, RedisError | GuardError>
    /**
     * Any other command. Its key arguments get the project's prefix: the positions come from Redis's command table,
     * or from `keys` (required for commands the table does not know, e.g. modules'). Commands that reach across the
     * keyspace, block, or change the connection are refused. Read-only commands (by the table, or `readOnly`) are
     * retried like other reads.
     */
    readonly command: (
      name: string,
      args: ReadonlyArray<string | number>,
      options?: { readonly keys?: ReadonlyArray<number>; readonly readOnly?: boolean }
    ) => Effect.Effect<unknown, RedisError | GuardError>
    // health and stats
    /** PING with a short timeout; never fails. */
    readonly healthCheck: Effect.Effect<boolean, GuardError>
    /** The current project's pool statistics in the spec's shape. */
    readonly poolStats: Effect.Effect<RedisPoolStats, RedisError | GuardError>
  }
>()("@tenantpool/redis/RedisEngine") {}

/**
 * Registers the Redis engine with the tenancy service and builds the operations.
 *
 * @category constructors
 * @since 0.1.0
 */
export const make = (options?: Options | undefined) =>
  Effect.gen(function* () {
    const tenancy = yield* Tenancy
    const tiers = yield* Tiers
    const autoPipelining = options?.autoPipelining ?? true
    const prefixOf = options?.prefix ?? ((id: string) => `${id}:`)
    const capacity = options?.targetCapacity ?? 1000
    const connectTimeout = Duration.toMillis(Duration.fromInputUnsafe(options?.connectTimeout ?? "5 seconds"))
    const dedicatedIdle = Duration.fromInputUnsafe(options?.dedicatedIdleTimeout ?? "1 minute")
    const clientName = options?.clientName ?? "tenantpool"
    const shared = new Map<string, SharedConnection>()

    const connect = (target: Target, dedicated: boolean): IORedis => {
      const conn = new IORedis({
        host: target.host.startsWith("[") ? target.host.slice(1, -1) : target.host,
        port: target.port,
        db: Number(target.database),
        ...(target.user !== undefined ? { username: target.user } : {}),
        ...(target.password !== undefined ? { password: Redacted.value(target.password) } : {}),
        ...(target.tls !== "disable" ? { tls: { rejectUnauthorized: target.tls === "verify-full" } } : {}),
        lazyConnect: true,
        connectionName: dedicated ? `${clientName}:dedicated` : clientName,
        enableOfflineQueue: dedicated,
        autoResendUnfulfilledCommands: false,
        // 0: when a connection closes, ioredis rejects the commands still awaiting a reply (they may have been
        // applied: an unknown outcome). Without this, `autoResendUnfulfilledCommands: false` drops them unsettled,
        // and an auto-pipeline they belonged to never finishes, which stalls every later command on the connection.
        maxRetriesPerRequest: 0,
        enableAutoPipelining: !dedicated && autoPipelining,
        connectTimeout,
        enableReadyCheck: true,
        autoResubscribe: true,
        retryStrategy: (times: number) =>
          Math.min(50 * 2 ** Math.min(times, 10), 2_000) + Math.floor(Math.random() * 100),
        reconnectOnError: (err: Error) => err.message.startsWith("READONLY")
      })
      // Without a listener ioredis prints every connection error; the guard reports them instead.
      conn.on("error", () => {})
      return conn
    }

    const quit = (conn: IORedis) =>
      Effect.promise(() =>
        Promise.race([
          conn.quit().catch(() => "closed"),
          new Promise((resolve) => setTimeout(resolve, 1_000).unref())
        ]).finally(() => conn.disconnect())
      )

    const acquireShared = (target: Target) =>
      Effect.acquireRelease(
        Effect.sync(() => {
          let s = shared.get(target.key)
          if (s === undefined) {
            s = new SharedConnection(connect(target, false))
            shared.set(target.key, s)
            s.conn.connect().catch(() => {})
          }
          s.refs++
          return s
        }),
        (s) =>
          Effect.suspend(() => {
            if (--s.refs > 0) return Effect.void
            shared.delete(target.key)
            return quit(s.conn)
          })
      )

    const connectDedicated = (target: Target) =>
      Effect.acquireRelease(
        Effect.tryPromise({
          try: async () => {
            const conn = connect(target, true)
            try {
              await conn.connect()
            } catch (e) {
              conn.disconnect()
              throw e
            }
            return conn
          },
          // No command of the caller's was written on a connection that never became ready: a definite failure,
          // whatever ioredis says about the socket (e.g. "Connection is closed.").
          catch: (e) => {
            const error = fromUnknown("connect")(e)
            return error.sent
              ? new RedisError({ kind: error.kind, command: "connect", detail: error.detail, sent: false })
              : error
          }
        }),
        quit
      )

    const handle = yield* tenancy.register<Binding, RedisError>({
      engine: "redis",
      classify,
      targetCapacity: () => capacity,
      bind: (project, target) =>
        Effect.gen(function* () {
          const scope = yield* Effect.scope
          const s = yield* acquireShared(target)
          let pool: Pool.Pool<IORedis, RedisError> | undefined
          let stats = { open: 0, inUse: 0, pending: 0 }
          const dedicated = Effect.suspend(() => {
            if (pool !== undefined) return Effect.succeed(pool)
            const limits = tiers.get(project.tierName).limits
            return Pool.makeWithTTL({
              acquire: connectDedicated(target),
              min: 0,
              max: Math.max(1, limits.maxPool),
              timeToLive: dedicatedIdle
            }).pipe(
              Scope.provide(scope),
              Effect.tap((p) =>
                Effect.sync(() => {
                  pool = p
                })
              )
            )
          })
          return {
            shared: s,
            conn: s.conn,
            prefix: prefixOf(project.id),
            project,
            target,
            dedicated,
            dedicatedStats: () => {
              if (pool !== undefined) {
                const st = Effect.runSync(Pool.stats(pool))
                stats = { open: st.idle + st.used, inUse: st.used, pending: st.pending }
              }
              return stats
            }
          } satisfies Binding
        }),
      ping: (b) =>
        Effect.tryPromise({
          // Waits for a reconnecting connection (the caller bounds the wait): a probe right after a restart
          // should find the server, not the client's reconnect backoff.
          try: () => (b.conn.status === "ready" ? b.conn.ping() : b.shared.whenReady().then(() => b.conn.ping())),
          catch: fromUnknown("ping")
        }),
      stats: (b) => {
        const d = b.dedicatedStats()
        return {
          size: 1 + d.open,
          available: (b.conn.status === "ready" ? 1 : 0) + d.open - d.inUse,
          pending: d.pending
        }
      }
    })

    const run = <A>(
      o: RedisOperation,
      f: (b: Binding, s: AttemptSignal) => PromiseLike<A>,
      m: (e: unknown) => RedisError
    ) => handle.run(o, f, m, undefined, o.detail)
    const k = (b: Binding, key: string) => b.prefix + key
    const strip = (b: Binding, key: string) => (key.startsWith(b.prefix) ? key.slice(b.prefix.length) : key)
    const millis = (d: Duration.Input) => Math.max(1, Math.round(Duration.toMillis(Duration.fromInputUnsafe(d))))

    // Runs `use` with a dedicated connection; a connection whose command was abandoned is discarded, not reused.
    const withDedicated = <A, E>(
      op: RedisOperation,
      extraMillis: number,
      use: (conn: IORedis, b: Binding) => Effect.Effect<A, E | RedisError>
    ) =>
      handle.runEffect<A, never>(
        op,
        (b) =>
          Effect.gen(function* () {
            const pool = yield* b.dedicated
            return yield* Effect.scoped(
              Effect.gen(function* () {
                const started = performance.now()
                const conn = yield* Pool.get(pool)
                handle.recordAcquire(b.project, (performance.now() - started) / 1000)
                return yield* use(conn, b).pipe(
                  // Close at once, not with QUIT: QUIT waits behind a BLPOP still blocked on the server, which would
                  // meanwhile pop (and lose) an element pushed for a caller that is gone.
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
          }) as Effect.Effect<A, RedisError>,
        extraMillis,
        op.detail
      ) as Effect.Effect<A, E | RedisError | GuardError>

    const onConn = <A>(conn: IORedis, command: string, f: (c: IORedis) => Promise<A>) =>
      Effect.tryPromise({ try: () => f(conn), catch: errFor(command) })

    const bpop = (side: "blpop" | "brpop") => (keys: ReadonlyArray<string>, timeout: Duration.Input) => {
      const ms = millis(timeout)
      return withDedicated(OP.bpop, ms, (conn, b) =>
        onConn(conn, side, (c) => c[side](...keys.map((key) => k(b, key)), ms / 1000)).pipe(
          Effect.map((r) => (r === null ? Option.none() : Option.some([strip(b, r[0]), r[1]] as const)))
        )
      )
    }

    const prefixArgs = (b: Binding, args: ReadonlyArray<string | number>, keys: ReadonlyArray<number>) =>
      args.map((a, i) => (keys.includes(i) ? k(b, String(a)) : a))

    const subscription = (mode: "subscribe" | "psubscribe", names: ReadonlyArray<string>) =>
      Stream.unwrap(
        Effect.map(handle.binding, ({ binding: b }) =>
          Stream.callback<Message, RedisError>((queue) =>
            Effect.gen(function* () {
              const conn = yield* connectDedicated(b.target)
              const prefixed = names.map((n) => k(b, n))
              if (mode === "subscribe") {
                conn.on("message", (channel: string, message: string) =>
                  Queue.offerUnsafe(queue, { channel: strip(b, channel), message })
                )
              } else {
                conn.on("pmessage", (pattern: string, channel: string, message: string) =>
                  Queue.offerUnsafe(queue, { channel: strip(b, channel), message, pattern: strip(b, pattern) })
                )
              }
              conn.on("end", () =>
                Queue.failCauseUnsafe(
                  queue,
                  Cause.fail(
                    new RedisError({ kind: "connection", command: mode, detail: "subscriber closed", sent: true })
                  )
                )
              )
              yield* Effect.tryPromise({
                try: () => (mode === "subscribe" ? conn.subscribe(...prefixed) : conn.psubscribe(...prefixed)),
                catch: errFor(mode)
              })
            })
          )
        )
      )

    const scanPage = (pattern: string, count: number, type: string | undefined) => (cursor: string) =>
      run(
        OP.scan,
        (b, s) =>
          send(b, s, (c) =>
            type === undefined
              ? c.scan(cursor, "MATCH", k(b, pattern), "COUNT", count)
              : c.scan(cursor, "MATCH", k(b, pattern), "COUNT", count, "TYPE", type)
          ).then(([next, keys]) => [next, keys.map((key) => strip(b, key))] as const),
        errFor("scan")
      )

    const ping = run(OP.ping, (b, s) => send(b, s, (c) => c.ping()), errFor("ping"))

    return RedisEngine.of({
      handle,
      // The hottest command: one closure per call on the fast path (the connection is ready).
      get: (key) =>
        run(
          OP.get,
          (b, s) => (b.conn.status === "ready" ? b.conn.get(b.prefix + key) : send(b, s, (c) => c.get(b.prefix + key))),
          mapErr.get
        ),
      set: (key, value, o) =>
        run(
          o?.nx === true || o?.xx === true ? OP.setnx : OP.set,
          (b, s) =>
            send(b, s, (c) => {
              const args: Array<string | number> = []
              if (o?.ttl !== undefined) args.push("PX", millis(o.ttl))
              if (o?.nx === true) args.push("NX")
              if (o?.xx === true) args.push("XX")
              return args.length === 0
                ? c.set(b.prefix + key, value)
                : (c.call("SET", b.prefix + key, value, ...args) as Promise<string | null>)
            }).then((r) => r === "OK"),
          mapErr.set
        ),
      mget: (keys) =>
        run(OP.mget, (b, s) => send(b, s, (c) => c.mget(...keys.map((key) => k(b, key)))), errFor("mget")),
      mset: (entries) =>
        run(
          OP.mset,
          (b, s) =>
            send(b, s, (c) =>
              c.mset(Object.fromEntries(Object.entries(entries).map(([key, v]) => [k(b, key), v])))
            ).then(() => undefined),
          errFor("mset")
        ),
      del: (...keys) => run(OP.del, (b, s) => send(b, s, (c) => c.del(...keys.map((key) => k(b, key)))), errFor("del")),
      exists: (...keys) =>
        run(OP.exists, (b, s) => send(b, s, (c) => c.exists(...keys.map((key) => k(b, key)))), errFor("exists")),
      expire: (key, ttl) =>
        run(
          OP.expire,
          (b, s) => send(b, s, (c) => c.pexpire(k(b, key), millis(ttl))).then((n) => n === 1),
          errFor("expire")
        ),
      ttl: (key) => run(OP.ttl, (b, s) => send(b, s, (c) => c.ttl(k(b, key))), errFor("ttl")),
      incr: (key) => run(OP.incr, (b, s) => send(b, s, (c) => c.incr(k(b, key))), errFor("incr")),
      incrby: (key, by) => run(OP.incr, (b, s) => send(b, s, (c) => c.incrby(k(b, key), by)), errFor("incrby")),
      decr: (key) => run(OP.incr, (b, s) => send(b, s, (c) => c.decr(k(b, key))), errFor("decr")),
      hset: (key, fieldOrValues, value) =>
        run(
          OP.hset,
          (b, s) =>
            send(b, s, (c) =>
              typeof fieldOrValues === "string"
                ? c.hset(k(b, key), fieldOrValues, value ?? "")
                : c.hset(k(b, key), fieldOrValues)
            ),
          errFor("hset")
        ),
      hget: (key, field) => run(OP.hget, (b, s) => send(b, s, (c) => c.hget(k(b, key), field)), errFor("hget")),
      hmget: (key, fields) =>
        run(OP.hmget, (b, s) => send(b, s, (c) => c.hmget(k(b, key), ...fields)), errFor("hmget")),
      hgetall: (key) => run(OP.hgetall, (b, s) => send(b, s, (c) => c.hgetall(k(b, key))), errFor("hgetall")),
      hdel: (key, ...fields) => run(OP.hdel, (b, s) => send(b, s, (c) => c.hdel(k(b, key), ...fields)), errFor("hdel")),
      hincrby: (key, field, by) =>
        run(OP.hincrby, (b, s) => send(b, s, (c) => c.hincrby(k(b, key), field, by)), errFor("hincrby")),
      hexists: (key, field) =>
        run(
          OP.hexists,
          (b, s) => send(b, s, (c) => c.hexists(k(b, key), field)).then((n) => n === 1),
          errFor("hexists")
        ),
      hlen: (key) => run(OP.hlen, (b, s) => send(b, s, (c) => c.hlen(k(b, key))), errFor("hlen")),
      lpush: (key, ...values) =>
        run(OP.push, (b, s) => send(b, s, (c) => c.lpush(k(b, key), ...values)), errFor("lpush")),
      rpush: (key, ...values) =>
        run(OP.push, (b, s) => send(b, s, (c) => c.rpush(k(b, key), ...values)), errFor("rpush")),
      lpop: (key) => run(OP.pop, (b, s) => send(b, s, (c) => c.lpop(k(b, key))), errFor("lpop")),
      rpop: (key) => run(OP.pop, (b, s) => send(b, s, (c) => c.rpop(k(b, key))), errFor("rpop")),
      lrange: (key, start, stop) =>
        run(OP.lrange, (b, s) => send(b, s, (c) => c.lrange(k(b, key), start, stop)), errFor("lrange")),
      llen: (key) => run(OP.llen, (b, s) => send(b, s, (c) => c.llen(k(b, key))), errFor("llen")),
      lrem: (key, count, value) =>
        run(OP.lrem, (b, s) => send(b, s, (c) => c.lrem(k(b, key), count, value)), errFor("lrem")),
      ltrim: (key, start, stop) =>
        run(
          OP.ltrim,
          (b, s) => send(b, s, (c) => c.ltrim(k(b, key), start, stop)).then(() => undefined),
          errFor("ltrim")
        ),
      blpop: bpop("blpop"),
      brpop: bpop("brpop"),
      sadd: (key, ...members) =>
        run(OP.sadd, (b, s) => send(b, s, (c) => c.sadd(k(b, key), ...members)), errFor("sadd")),
      srem: (key, ...members) =>
        run(OP.srem, (b, s) => send(b, s, (c) => c.srem(k(b, key), ...members)), errFor("srem")),
      smembers: (key) => run(OP.smembers, (b, s) => send(b, s, (c) => c.smembers(k(b, key))), errFor("smembers")),
      sismember: (key, member) =>
        run(
          OP.sismember,
          (b, s) => send(b, s, (c) => c.sismember(k(b, key), member)).then((n) => n === 1),
          errFor("sismember")
        ),
      scard: (key) => run(OP.scard, (b, s) => send(b, s, (c) => c.scard(k(b, key))), errFor("scard")),
      zadd: (key, ...members) =>
        run(
          OP.zadd,
          (b, s) => send(b, s, (c) => c.zadd(k(b, key), ...members.flatMap((m) => [m.score, m.member]))).then(Number),
          errFor("zadd")
        ),
      zrange: (key, start, stop) =>
        run(OP.zrange, (b, s) => send(b, s, (c) => c.zrange(k(b, key), start, String(stop))), errFor("zrange")),
      zrangeWithScores: (key, start, stop) =>
        run(
          OP.zrange,
          (b, s) => send(b, s, (c) => c.zrange(k(b, key), start, String(stop), "WITHSCORES")).then(toPairs),
          errFor("zrange")
        ),
      zrangebyscore: (key, min, max, o) =>
        run(
          OP.zrangebyscore,
          (b, s) =>
            send(b, s, (c) => {
              const args: Array<string | number> = [k(b, key), min, max, "WITHSCORES"]
              if (o?.limit !== undefined) args.push("LIMIT", o.limit.offset, o.limit.count)
              // Lower-case: ioredis flattens RESP3 score pairs only for the lower-case command name.
              return c.call("zrangebyscore", ...args) as Promise<Array<string>>
            }).then(toPairs),
          errFor("zrangebyscore")
        ),
      zrem: (key, ...members) =>
        run(OP.zrem, (b, s) => send(b, s, (c) => c.zrem(k(b, key), ...members)), errFor("zrem")),
      zscore: (key, member) =>
        run(
          OP.zscore,
          (b, s) => send(b, s, (c) => c.zscore(k(b, key), member)).then((r) => (r === null ? null : Number(r))),
          errFor("zscore")
        ),
      zincrby: (key, by, member) =>
        run(OP.zincrby, (b, s) => send(b, s, (c) => c.zincrby(k(b, key), by, member)).then(Number), errFor("zincrby")),
      zcard: (key) => run(OP.zcard, (b, s) => send(b, s, (c) => c.zcard(k(b, key))), errFor("zcard")),
      zrank: (key, member) => run(OP.zrank, (b, s) => send(b, s, (c) => c.zrank(k(b, key), member)), errFor("zrank")),
      publish: (channel, message) =>
        run(OP.publish, (b, s) => send(b, s, (c) => c.publish(k(b, channel), message)), errFor("publish")),
      subscribe: (...channels) => subscription("subscribe", channels),
      psubscribe: (...patterns) => subscription("psubscribe", patterns),
      multi: (commands) =>
        run(
          OP.multi,
          (b, s) =>
            send(b, s, (c) => {
              const tx = c.multi()
              for (const q of commands) tx.call(q.command.toLowerCase(), ...prefixArgs(b, q.args, q.keys ?? [0]))
              return tx.exec()
            }).then(unwrapExec),
          errFor("exec")
        ),
      watch: (keys, body) =>
        withDedicated(OP.watch, 0, (conn, b) =>
          Effect.gen(function* () {
            yield* onConn(conn, "watch", (c) => c.watch(...keys.map((key) => k(b, key))))
            const reader: WatchedConnection = {
              get: (key) => onConn(conn, "get", (c) => c.get(k(b, key))),
              hget: (key, field) => onConn(conn, "hget", (c) => c.hget(k(b, key), field)),
              hgetall: (key) => onConn(conn, "hgetall", (c) => c.hgetall(k(b, key))),
              smembers: (key) => onConn(conn, "smembers", (c) => c.smembers(k(b, key))),
              zscore: (key, member) =>
                onConn(conn, "zscore", (c) => c.zscore(k(b, key), member)).pipe(
                  Effect.map((r) => (r === null ? null : Number(r)))
                )
            }
            const commands = yield* body(reader).pipe(
              Effect.onError(() => Effect.promise(() => conn.unwatch().catch(() => "OK")))
            )
            const result = yield* onConn(conn, "exec", (c) => {
              const tx = c.multi()
              for (const q of commands) tx.call(q.command.toLowerCase(), ...prefixArgs(b, q.args, q.keys ?? [0]))
              return tx.exec()
            })
            if (result === null) {
              return yield* Effect.fail(
                new RedisError({
                  kind: "conflict",
                  command: "exec",
                  detail: "a watched key changed; the transaction was not applied",
                  sent: false
                })
              )
            }
            return yield* Effect.try({ try: () => unwrapExec(result), catch: errFor("exec") })
          })
        ),
      script: (lua) => ({ lua, sha1: sha1(lua) }),
      evalScript: (script, keys, args, o) =>
        run(
          o?.readOnly === true ? OP.evalReadOnly : OP.eval,
          (b, s) =>
            send(b, s, (c) => {
              const prefixed = keys.map((key) => k(b, key))
              return (c.evalsha(script.sha1, prefixed.length, ...prefixed, ...args) as Promise<unknown>).catch(
                (e: unknown) =>
                  String((e as Error)?.message).startsWith("NOSCRIPT")
                    ? (c.eval(script.lua, prefixed.length, ...prefixed, ...args) as Promise<unknown>)
                    : Promise.reject(e)
              )
            }),
          errFor("evalsha")
        ),
      scan: (pattern, o) =>
        Stream.paginate("0", (cursor: string) =>
          Effect.map(
            scanPage(pattern ?? "*", o?.count ?? 100, o?.type)(cursor),
            ([next, keys]) => [keys, next === "0" ? Option.none<string>() : Option.some(next)] as const
          )
        ),
      command: (name, args, o) => {
        const upper = name.toUpperCase()
        const refused = refusal(upper, args)
        if (refused !== undefined) {
          return Effect.fail(
            forbidden(
              upper,
              refused === "blocking"
                ? "a blocking command would stall the connection the target's projects share; use blpop/brpop"
                : "this command reaches past the project's keys or changes the connection; use the typed API"
            )
          )
        }
        // ioredis looks its reply transformers up by the exact (lower-case) name: an upper-case name would get RESP3
        // shapes (e.g. nested [member, score] pairs) instead of the ones its own methods return.
        const lower = upper.toLowerCase()
        const known = RedisCommands.exists(lower)
        if (!known && o?.keys === undefined) {
          return Effect.fail(forbidden(upper, "unknown command: pass its key argument positions in `keys`"))
        }
        // Key positions from Redis's command table, so the project's prefix applies without being asked for.
        const keys = o?.keys ?? RedisCommands.getKeyIndexes(lower, args.map(String))
        const readOnly = o?.readOnly ?? (known && RedisCommands.hasFlag(lower, "readonly"))
        return handle.run(
          readOnly ? OP.commandReadOnly : OP.command,
          (b, s) => send(b, s, (c) => c.call(lower, ...prefixArgs(b, args, keys))),
          errFor(lower),
          undefined,
          commandDetail(upper)
        )
      },
      // One attempt timeout in all (the guard would retry a timed-out PING twice), and every sign of an unhealthy
      // server (an open circuit, overload, a timeout, a Redis error) is `false`; only a misconfigured call fails.
      healthCheck: ping.pipe(
        Effect.timeoutOption(Duration.millis(handle.policy.attemptTimeoutMillis)),
        Effect.map(Option.isSome),
        Effect.catch((e): Effect.Effect<boolean, GuardError> =>
          e instanceof RedisError || (isGuardError(e) && isUnavailable(e))
            ? Effect.succeed(false)
            : Effect.fail(e as GuardError)
        )
      ),
      poolStats: Effect.map(handle.binding, ({ binding: b }) => {
        const d = b.dedicatedStats()
        const pendingReplies = (b.conn as unknown as { commandQueue?: { length: number } }).commandQueue?.length ?? 0
        return {
          size: 1 + d.open,
          available: (b.conn.status === "ready" ? 1 : 0) + d.open - d.inUse,
          pending: d.pending,
          shared: { status: b.conn.status, pendingReplies },
          dedicated: d
        }
      })
    })
  })

const unwrapExec = (result: Array<[Error | null, unknown]> | null): Array<unknown> => {
  if (result === null)
    throw new RedisError({ kind: "aborted", command: "exec", detail: "transaction discarded", sent: false })
  return result.map(([err, value]) => {
    if (err !== null) throw err
    return value
  })
}

const sha1 = (text: string) => createHash("sha1").update(text).digest("hex")

/**
 * The Redis engine as a layer (needs the tenancy service and the tier table).
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = (options?: Options | undefined): Layer.Layer<RedisEngine, never, Tenancy | Tiers> =>
  Layer.effect(RedisEngine, Effect.orDie(make(options)))
