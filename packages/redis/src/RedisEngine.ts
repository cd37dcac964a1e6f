/**
 * Redis per project on ioredis, through the tenantpool guard.
 *
 * Connections (see docs/architecture.md):
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
 * and results are returned without it. The raw paths (`command`, and every command `multi` and `watch` queue)
 * accept only what `RedisCommandTable` lists as confined to a project's keys, deny by default. Scripts can name any
 * key, so they run only for projects on their own ACL user or trusted by the operator (`scripts` option); see the
 * package README for what prefixes stop and what needs ACL users.
 *
 * This module is the public surface (options, models, the service, `make`, `layer`); the parts live in
 * `internal/`: `connections` (shared and dedicated connections, per target and per project), `keys` (prefixing),
 * `operations` (the operation table, error mappers, running through the guard), `commands` (the typed data
 * commands), `pubsub`, `scripts`, `transactions` and `rawCommand` (`command`, and the check every queued command
 * of a transaction goes through); `arguments` checks what callers pass, `keySpecs` reads Redis key specifications.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Stream from "effect/Stream"
import * as Durations from "@tenantpool/core/Durations"
import type { EngineHandle, PoolStats } from "@tenantpool/core/Engine"
import { type GuardError, InvalidConfig, isGuardError, isUnavailable } from "@tenantpool/core/Errors"
import { Tenancy } from "@tenantpool/core/Tenancy"
import { Tiers } from "@tenantpool/core/Tier"
import * as Commands from "./internal/commands.ts"
import * as Connections from "./internal/connections.ts"
import { errFor, OP, run } from "./internal/operations.ts"
import * as PubSub from "./internal/pubsub.ts"
import { command } from "./internal/rawCommand.ts"
import * as Scripts from "./internal/scripts.ts"
import * as Transactions from "./internal/transactions.ts"
import { classify, RedisError } from "./RedisError.ts"

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
  /**
   * Who may run Lua scripts and functions (`evalScript`, and EVAL, EVALSHA, FCALL, SCRIPT LOAD/EXISTS through
   * `command`, `multi` and `watch`). A script can name any key its Redis user reaches, so by default only a project
   * whose target connects as its own ACL user may: a username other than `default` for which `ownUser` holds (by
   * default: the username is the project id), and which no other project bound in this process uses. `trusted`
   * names projects an operator lets run scripts whatever their user.
   */
  readonly scripts?:
    | {
        readonly trusted?: ((projectId: string) => boolean) | undefined
        readonly ownUser?: ((projectId: string, username: string) => boolean) | undefined
      }
    | undefined
}

/**
 * Options of `SET`.
 *
 * @category models
 * @since 0.1.0
 */
export interface SetOptions extends Commands.SetOptions {}

/**
 * A member of a sorted set with its score.
 *
 * @category models
 * @since 0.1.0
 */
export interface ScoredMember extends Commands.ScoredMember {}

/**
 * A pub/sub message.
 *
 * @category models
 * @since 0.1.0
 */
export interface Message extends PubSub.Message {}

/**
 * The commands of a WATCH transaction: read with `get`/`hget`/…, then return the commands to queue.
 *
 * @category models
 * @since 0.1.0
 */
export interface WatchedConnection extends Transactions.WatchedConnection {}

/**
 * A queued command of a transaction: the command name, then its arguments. It is checked like `command`: sent only
 * when `RedisCommandTable` allows it, its keys and channels prefixed at the table's positions; `keys` may add
 * positions (0-based, after the name), never remove any.
 *
 * @category models
 * @since 0.1.0
 */
export interface QueuedCommand extends Transactions.QueuedCommand {}

/**
 * A Lua script usable with `evalScript` (EVALSHA, falling back to EVAL on NOSCRIPT).
 *
 * @category models
 * @since 0.1.0
 */
export interface Script extends Scripts.Script {}

/**
 * Pool statistics of a project's Redis in the spec's shape, with the parts that make them up.
 *
 * @category models
 * @since 0.1.0
 */
export interface RedisPoolStats extends PoolStats {
  readonly shared: { readonly status: string; readonly pendingReplies: number }
  readonly dedicated: Connections.DedicatedStats
}

/**
 * The Redis engine: every operation runs for the current project, through the guard.
 *
 * @category services
 * @since 0.1.0
 */
export class RedisEngine extends Context.Service<
  RedisEngine,
  {
    readonly handle: EngineHandle<Connections.Binding, RedisError>
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
     * Any other command that `RedisCommandTable` allows (deny by default: others fail with kind `forbidden`, naming
     * the command). Its keys and channels get the project's prefix at the positions the table gives; `keys` may add
     * positions, never remove any. Read-only commands (by the table) are retried like other reads.
     */
    readonly command: (
      name: string,
      args: ReadonlyArray<string | number>,
      options?: { readonly keys?: ReadonlyArray<number> }
    ) => Effect.Effect<unknown, RedisError | GuardError>
    // health and stats
    /** PING with a short timeout; never fails. */
    readonly healthCheck: Effect.Effect<boolean, GuardError>
    /** The current project's pool statistics in the spec's shape. */
    readonly poolStats: Effect.Effect<RedisPoolStats, RedisError | GuardError>
  }
>()("@tenantpool/redis/RedisEngine") {}

// The option names, read once into a plain copy: a getter or proxy that throws is an InvalidConfig naming the
// option, and what was checked is what is used.
const optionNames = [
  "autoPipelining",
  "prefix",
  "targetCapacity",
  "connectTimeout",
  "dedicatedIdleTimeout",
  "clientName",
  "scripts"
] as const

const readOptions = (options: unknown): Options | InvalidConfig => {
  if (options === undefined) return {}
  if (typeof options !== "object" || options === null || isArray(options)) {
    return new InvalidConfig({ field: "redis.options", reason: "must be an object" })
  }
  const copy: Record<string, unknown> = {}
  for (const name of optionNames) {
    try {
      copy[name] = (options as Record<string, unknown>)[name]
    } catch {
      return new InvalidConfig({ field: `redis.${name}`, reason: "could not be read (a getter or proxy threw)" })
    }
  }
  const scripts = copy["scripts"]
  if (typeof scripts === "object" && scripts !== null && !isArray(scripts)) {
    try {
      const { trusted, ownUser } = scripts as Record<string, unknown>
      copy["scripts"] = { trusted, ownUser }
    } catch {
      return new InvalidConfig({ field: "redis.scripts", reason: "could not be read (a getter or proxy threw)" })
    }
  }
  return copy as Options
}

const isArray = (u: unknown): boolean => {
  try {
    return Array.isArray(u)
  } catch {
    return true
  }
}

// The options that are not durations: a wrong type fails the layer with `InvalidConfig` naming the option.
const checkOptions = (o: Options): InvalidConfig | undefined => {
  const scripts = o.scripts as Record<string, unknown> | undefined
  const wrong = (field: string, ok: boolean, reason: string) =>
    ok ? undefined : new InvalidConfig({ field: `redis.${field}`, reason })
  const optional = (u: unknown, type: string) => u === undefined || typeof u === type
  return (
    wrong("autoPipelining", optional(o.autoPipelining, "boolean"), "must be a boolean") ??
    wrong("prefix", optional(o.prefix, "function"), "must be a function of the project id") ??
    wrong(
      "targetCapacity",
      o.targetCapacity === undefined || (Number.isSafeInteger(o.targetCapacity) && o.targetCapacity > 0),
      "must be a positive integer"
    ) ??
    wrong(
      "clientName",
      o.clientName === undefined || (typeof o.clientName === "string" && /^[!-~]+$/.test(o.clientName)),
      "must be a non-empty string without spaces"
    ) ??
    wrong("scripts", scripts === undefined || (typeof scripts === "object" && scripts !== null), "must be an object") ??
    wrong("scripts.trusted", optional(scripts?.["trusted"], "function"), "must be a function of the project id") ??
    wrong(
      "scripts.ownUser",
      optional(scripts?.["ownUser"], "function"),
      "must be a function of the project id and username"
    )
  )
}

// A project's prefix from the `prefix` option: a non-empty string (an empty one would share the whole keyspace),
// else the project's calls fail with the configuration's error, never a defect.
const prefixFor = (prefixOf: (projectId: string) => string, projectId: string): string | RedisError => {
  let prefix: unknown
  try {
    prefix = prefixOf(projectId)
  } catch {
    prefix = undefined
  }
  return typeof prefix === "string" && prefix.length > 0
    ? prefix
    : new RedisError({
        kind: "client",
        command: "bind",
        detail: "the prefix option did not return a non-empty string for the project",
        sent: false
      })
}

/**
 * Registers the Redis engine with the tenancy service and builds the operations. An option of the wrong type, or
 * a duration option that is not a positive duration, fails with `InvalidConfig` naming it.
 *
 * @category constructors
 * @since 0.1.0
 */
export const make = (
  input?: Options | undefined
): Effect.Effect<RedisEngine["Service"], InvalidConfig, Tenancy | Tiers> =>
  Effect.gen(function* () {
    const options = readOptions(input)
    if (options instanceof InvalidConfig) return yield* Effect.fail(options)
    const invalid = checkOptions(options)
    if (invalid !== undefined) return yield* Effect.fail(invalid)
    const tenancy = yield* Tenancy
    const tiers = yield* Tiers
    const connections = Connections.make({
      autoPipelining: options?.autoPipelining ?? true,
      connectTimeoutMillis: yield* Durations.millis("redis.connectTimeout", options?.connectTimeout, "5 seconds"),
      dedicatedIdleMillis: yield* Durations.millis(
        "redis.dedicatedIdleTimeout",
        options?.dedicatedIdleTimeout,
        "1 minute",
        { allowZero: true }
      ),
      clientName: options?.clientName ?? "tenantpool",
      trustedScripts: options?.scripts?.trusted ?? (() => false),
      ownUser: options?.scripts?.ownUser ?? ((projectId, username) => username === projectId)
    })
    const prefixOf = options?.prefix ?? ((id: string) => `${id}:`)
    const capacity = options?.targetCapacity ?? 1000
    const handle = yield* tenancy.register<Connections.Binding, RedisError>({
      engine: "redis",
      classify,
      targetCapacity: () => capacity,
      bind: (project, target) => {
        const prefix = prefixFor(prefixOf, project.id)
        return prefix instanceof RedisError
          ? Effect.fail(prefix)
          : Connections.bind(connections, project, target, prefix, () => tiers.get(project.tierName).limits.maxPool)
      },
      ping: Connections.ping,
      stats: (b) => Connections.stats(b)
    })
    const ping = run(handle, OP.ping, (b, s) => Connections.send(b, s, (c) => c.ping()), errFor("ping"))
    return RedisEngine.of({
      handle,
      ...Commands.strings(handle),
      ...Commands.hashes(handle),
      ...Commands.lists(handle),
      ...Commands.sets(handle),
      ...Commands.sortedSets(handle),
      publish: PubSub.publish(handle),
      subscribe: (...channels) => PubSub.subscription(handle, "subscribe", channels),
      psubscribe: (...patterns) => PubSub.subscription(handle, "psubscribe", patterns),
      multi: Transactions.multi(handle),
      watch: Transactions.watch(handle),
      script: Scripts.script,
      evalScript: Scripts.evalScript(handle),
      scan: Commands.scan(handle),
      command: command(handle),
      // One attempt timeout in all (the guard would retry a timed-out PING twice), and every sign of an unhealthy
      // server (an open circuit, overload, a timeout, a Redis error) is `false`; only a misconfigured call fails.
      healthCheck: ping.pipe(
        Effect.timeoutOption(handle.policy.attemptTimeoutMillis),
        Effect.map(Option.isSome),
        Effect.catch((e): Effect.Effect<boolean, GuardError> =>
          e instanceof RedisError || (isGuardError(e) && isUnavailable(e))
            ? Effect.succeed(false)
            : Effect.fail(e as GuardError)
        )
      ),
      poolStats: Effect.map(handle.binding, ({ binding: b }) => {
        const dedicated = Connections.dedicatedStats(b)
        return { ...Connections.stats(b, dedicated), shared: Connections.sharedStats(b), dedicated }
      })
    })
  })

/**
 * The Redis engine as a layer (needs the tenancy service and the tier table); fails with `InvalidConfig` on a bad
 * option.
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = (options?: Options | undefined): Layer.Layer<RedisEngine, InvalidConfig, Tenancy | Tiers> =>
  Layer.effect(RedisEngine, make(options))
