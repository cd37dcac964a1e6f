/**
 * Fleet mode: many processes on many machines share each target's connection budget, its breaker state and the
 * per-tier rate limits, coordinated through the Redis the platform already runs (no protocol of our own: one Lua
 * script, one pub/sub channel, Effect's `RateLimiter` Redis store).
 *
 * One layer turns it on; it implements core's `Coordination` hooks:
 * - **Connection budgets.** Every member heartbeats into a sorted set of live instances (scored by expiry in Redis
 *   time) and, per target it uses, reports its demand and what it may hold; the script gives back its share of the
 *   target's budget (demand-weighted, at least 1 each). Grants come only out of budget no live instance holds and
 *   are recorded before they are applied; a shrink is applied first and reported once the engine is under it (the
 *   PostgreSQL engine's pools, generations included). So the sum of what instances may open never exceeds the
 *   budget, also while shares move. A crashed instance's share returns within its heartbeat lifetime (`ttl`).
 *   Shares reach engines through `Coordination.ConnectionShares` (pool sizes) and `Coordination.setCapacity`
 *   (operations in flight).
 * - **Breakers.** A target breaker that opens here is published and stored until its open time ends; the others
 *   open theirs for the same time within milliseconds, and leave the probing to the reporter.
 * - **Rate limits.** A `RateLimit` service (for `@tenantpool/protections`' `ApiProtections`) whose tokens are leased
 *   from one shared bucket per (project, engine): the fleet admits what the tier says, not N times that.
 * - **When Redis is down**, each member keeps serving on its last share, never more than the budget divided by the
 *   last known number of instances, limits rates locally at the rate divided by that number, and rejoins when
 *   Redis answers. No project's data goes through the coordinator.
 *
 * The hot path does not talk to Redis: budgets are applied in the background, and a rate-limit check is local
 * except once per lease (see the README for figures).
 *
 * @since 0.1.0
 */
import { randomBytes } from "node:crypto"
import * as os from "node:os"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { RateLimiter, Redis } from "effect/persistence"
import type * as Redacted from "effect/Redacted"
import * as Coordination from "@tenantpool/core/Coordination"
import * as Durations from "@tenantpool/core/Durations"
import { type Engine, engines } from "@tenantpool/core/Engine"
import { InvalidConfig } from "@tenantpool/core/Errors"
import { Tenancy } from "@tenantpool/core/Tenancy"
import * as RateLimit from "@tenantpool/protections/RateLimit"
import * as Breakers from "./internal/breakers.ts"
import * as Connection from "./internal/connection.ts"
import * as Member from "./internal/member.ts"
import * as Shares from "./internal/shares.ts"

// ---------------------------------------------------------------------------------------------------------------
// Options and models
// ---------------------------------------------------------------------------------------------------------------

/**
 * Options of fleet mode.
 *
 * @category models
 * @since 0.1.0
 */
export interface Options {
  /** The coordinator: `redis://[user:password@]host:port/db` (or `rediss://`). */
  readonly redis: Redacted.Redacted<string>
  /**
   * Connections per target across the whole fleet, per engine (e.g. `{ postgres: 40 }`: a PostgreSQL server's
   * `max_connections` minus what others need). An engine left out is not coordinated.
   */
  readonly budgets: Partial<Record<Engine, number>>
  /** Per-target budgets, by `Target.id`, over the engine's. */
  readonly targetBudgets?: Readonly<Record<string, number>> | undefined
  /**
   * Prefix of every key and of the channel (default `tenantpool:{fleet}:`; the braces put all keys in one Redis
   * Cluster slot, which the script needs). Fleets that share a Redis need different prefixes.
   */
  readonly prefix?: string | undefined
  /** How often a member heartbeats and its shares are rebalanced (default 1 second). */
  readonly interval?: Duration.Input | undefined
  /** How long a member counts as live after its last heartbeat (default 5 seconds); at least twice `interval`. */
  readonly ttl?: Duration.Input | undefined
  /** A member moves to its fair share when the difference is at least this part of the budget (default 0.1). */
  readonly hysteresis?: number | undefined
  /**
   * Operations in flight per connection of a share (`Coordination.setCapacity`; defaults: postgres 32, the
   * engine's pipelining depth; redis 100; mongodb 1).
   */
  readonly operationsPerConnection?: Partial<Record<Engine, number>> | undefined
  /** How many instances to assume when Redis cannot be reached at start-up (default 4). */
  readonly fallbackInstances?: number | undefined
  /** Bound of one coordinator command (default 500 milliseconds). */
  readonly commandTimeout?: Duration.Input | undefined
  /** This member's id in the coordinator (default: random). */
  readonly instanceId?: string | undefined
  /** Share target breakers (default true). */
  readonly breakers?: boolean | undefined
  /** Fleet-wide per-tier rate limits (default: the protections' default rates); `false` leaves `RateLimit` out. */
  readonly rateLimits?: Omit<RateLimit.FleetOptions, "instances"> | false | undefined
}

/**
 * A coordinated target, as this member sees it.
 *
 * @category models
 * @since 0.1.0
 */
export interface TargetStatus {
  readonly engine: Engine
  readonly targetId: string
  readonly budget: number
  /** The share this member's engines use (connections). */
  readonly share: number
  /** What the coordinator records it may hold (the share, or more while a shrink drains). */
  readonly held: number
  /** Its fair share at the last sync. */
  readonly fair: number
  /** Live members on the target at the last sync. */
  readonly instances: number
  /** Smoothed demand (operations running and queued). */
  readonly demand: number
  /** Used by this process now. */
  readonly live: boolean
}

/**
 * This member's view of the fleet.
 *
 * @category models
 * @since 0.1.0
 */
export interface Status {
  readonly instanceId: string
  /** The last sync reached the coordinator. */
  readonly connected: boolean
  /** Live members at the last successful sync. */
  readonly instances: number
  readonly syncs: number
  readonly failures: number
  readonly targets: ReadonlyArray<TargetStatus>
  /** Breaker reports published by this member and reports of others applied here. */
  readonly breakers: { readonly published: number; readonly applied: number }
}

/**
 * The fleet member.
 *
 * @category services
 * @since 0.1.0
 */
export class Fleet extends Context.Service<
  Fleet,
  {
    readonly status: Effect.Effect<Status>
    /** Runs a sync now (heartbeat, report, shares); fails with the coordinator's error, after falling back. */
    readonly sync: Effect.Effect<void, Redis.RedisError>
  }
>()("@tenantpool/cluster/Fleet") {}

// ---------------------------------------------------------------------------------------------------------------
// Construction
// ---------------------------------------------------------------------------------------------------------------

const defaultOperations: Readonly<Record<Engine, number>> = { postgres: 32, redis: 100, mongodb: 1 }

const positive = (field: string, value: number | undefined, integer: boolean): Effect.Effect<void, InvalidConfig> =>
  value === undefined || (Number.isFinite(value) && value > 0 && (!integer || Number.isSafeInteger(value)))
    ? Effect.void
    : Effect.fail(new InvalidConfig({ field, reason: integer ? "must be a positive integer" : "must be positive" }))

const settingsOf = Effect.fnUntraced(function* (options: Options) {
  for (const engine of engines) yield* positive(`fleet.budgets.${engine}`, options.budgets[engine], true)
  for (const [id, budget] of Object.entries(options.targetBudgets ?? {})) {
    yield* positive(`fleet.targetBudgets.${id}`, budget, true)
  }
  const operations = { ...defaultOperations }
  for (const engine of engines) {
    const n = options.operationsPerConnection?.[engine]
    yield* positive(`fleet.operationsPerConnection.${engine}`, n, false)
    if (n !== undefined) operations[engine] = n
  }
  yield* positive("fleet.fallbackInstances", options.fallbackInstances, true)
  const hysteresis = options.hysteresis ?? 0.1
  if (!(hysteresis >= 0 && hysteresis < 1)) {
    return yield* new InvalidConfig({ field: "fleet.hysteresis", reason: "must be a number in [0, 1)" })
  }
  const intervalMillis = yield* Durations.millis("fleet.interval", options.interval, "1 second")
  const ttlMillis = yield* Durations.millis("fleet.ttl", options.ttl, "5 seconds")
  if (ttlMillis < 2 * intervalMillis) {
    return yield* new InvalidConfig({ field: "fleet.ttl", reason: "must be at least twice the interval" })
  }
  const commandTimeout = yield* Durations.millis("fleet.commandTimeout", options.commandTimeout, "500 millis")
  const id = options.instanceId ?? randomBytes(6).toString("hex")
  const settings: Member.Settings = {
    id,
    prefix: options.prefix ?? "tenantpool:{fleet}:",
    intervalMillis,
    ttlMillis,
    hysteresis,
    operationsPerConnection: operations,
    description: JSON.stringify({ host: os.hostname(), pid: process.pid, started: new Date().toISOString() })
  }
  return { settings, commandTimeout }
})

const statusOf = (m: Member.Member): Status => ({
  instanceId: m.settings.id,
  connected: m.table.connected,
  instances: m.table.live,
  syncs: m.syncs,
  failures: m.failures,
  targets: [...m.table.entries.values()].map((e) => ({
    engine: e.engine,
    targetId: e.targetId,
    budget: e.budget,
    share: e.share,
    held: e.held,
    fair: e.fair,
    instances: e.instances,
    demand: e.demand,
    live: e.live
  })),
  breakers: { ...m.breakers.counts }
})

// Leaving: what this member no longer holds goes back to the others at once instead of after its heartbeat
// lifetime. The engines (built on this layer) have closed their pools by now.
const leave = (m: Member.Member): Effect.Effect<void> =>
  Effect.suspend(() => {
    for (const e of m.table.entries.values()) e.live = false
    const k = Member.keys(m.settings.prefix)
    return Member.sync(m).pipe(
      Effect.andThen(
        m.table.entries.size === 0
          ? Effect.andThen(
              m.redis.send("ZREM", k.members, m.settings.id),
              m.redis.send("DEL", k.instance(m.settings.id))
            )
          : Effect.void
      ),
      Effect.timeoutOption("2 seconds"),
      Effect.ignore
    )
  })

/**
 * Builds a fleet member in the current scope: the coordinator connections, the sync loop and the breaker link
 * (their fibers belong to the scope), and the services to provide.
 *
 * @category constructors
 * @since 0.1.0
 */
export const make = (options: Options) =>
  Effect.gen(function* () {
    const { settings, commandTimeout } = yield* settingsOf(options)
    const tenancy = yield* Tenancy
    const connection = yield* Connection.open(options.redis, commandTimeout)
    const table = Shares.makeTable({
      budgets: options.budgets,
      targetBudgets: options.targetBudgets ?? {},
      fallbackInstances: options.fallbackInstances ?? 4
    })
    const k = Member.keys(settings.prefix)
    const breakers = yield* Breakers.link({
      id: settings.id,
      tenancy,
      client: connection.client,
      subscriber: connection.subscriber,
      channel: k.channel,
      breakerKey: k.breaker,
      enabled: options.breakers ?? true
    })
    const member: Member.Member = {
      settings,
      clock: yield* Clock.Clock,
      table,
      tenancy,
      redis: connection.redis,
      breakers,
      syncs: 0,
      failures: 0,
      lastSync: 0,
      rejoining: false,
      growAfter: 0
    }
    // Joined before the engines are built on this layer, when Redis answers within a few command timeouts;
    // otherwise the member starts on fallback shares and joins from its loop.
    if (yield* Connection.ready(connection.client, commandTimeout * 4)) yield* Effect.ignore(Member.sync(member))
    else yield* Member.fallBack(member)
    yield* Effect.addFinalizer(() => leave(member))
    yield* Effect.forkScoped(Member.run(member))

    const fleet = Fleet.of({
      status: Effect.sync(() => statusOf(member)),
      sync: Effect.asVoid(Member.sync(member))
    })
    const shares = Shares.sharesOf(table)
    const context = Context.make(Fleet, fleet).pipe(Context.add(Coordination.ConnectionShares, shares))
    if (options.rateLimits === false) return context
    const limits = yield* Layer.build(
      RateLimit.layerFleet({
        ...options.rateLimits,
        keyPrefix: options.rateLimits?.keyPrefix ?? `${settings.prefix}rl:`,
        instances: () => Math.max(1, table.live > 0 ? table.live : table.fallbackInstances)
      }).pipe(
        Layer.provide(RateLimiter.layerStoreRedis({ prefix: "" })),
        Layer.provide(Layer.succeed(Redis.Redis, connection.redis))
      )
    )
    return Context.add(context, RateLimit.RateLimit, Context.get(limits, RateLimit.RateLimit))
  })

/**
 * Fleet mode as one layer: provides `Fleet`, core's `Coordination.ConnectionShares` (read by the engines built on
 * it) and, unless `rateLimits: false`, the protections' `RateLimit` in fleet mode. Provide it between the tenancy
 * service and the engines:
 *
 * ```ts
 * Layer.mergeAll(PgEngine.layer(), ApiProtections.layer).pipe(
 *   Layer.provideMerge(Fleet.layer({ redis: Redacted.make(url), budgets: { postgres: 40 } })),
 *   Layer.provideMerge(Tenancy.layerMemory())
 * )
 * ```
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = (options: Options): Layer.Layer<Fleet | RateLimit.RateLimit, InvalidConfig, Tenancy> =>
  Layer.effectContext(make(options)) as Layer.Layer<Fleet | RateLimit.RateLimit, InvalidConfig, Tenancy>
