/**
 * The Redis command policy: commands a tier may not run, refused with `QueryRejected` (rule `redis-command`) before
 * they reach the server.
 *
 * The Redis engine already refuses, for every project, every command its allowlist does not confine to a project's
 * keys (KEYS, FLUSHALL, CONFIG, SELECT, CLIENT, …), on `command` and on every command `multi` and `watch` queue;
 * this policy is the tier-level layer above it, applied through the guard to typed operations, `command` and each
 * queued command alike, with a typed error and a metric. Both read the one Redis command table
 * (`@tenantpool/redis/RedisCommandTable`: its dangerous entries and cost classes). Defaults:
 *
 * | Tier | Blocked |
 * | --- | --- |
 * | every tier | KEYS, FLUSHALL, FLUSHDB, CONFIG, DEBUG, SHUTDOWN |
 * | FREE, STARTER | also SORT, SORT_RO (O(N log N), and BY/GET patterns read other keys) |
 * | FREE | also the set algebra: SUNION, SINTER, SDIFF, ZUNION, ZINTER, ZDIFF and their STORE forms (O(total size)) |
 *
 * The Redis engine passes every call's command name to the guard (typed operations and `command` alike), and each
 * command queued by `multi` or `watch` to core's `Protections.check` with the same detail, so the policy applies
 * to all of them once `ApiProtections` (or this policy's layer) is installed.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Layer from "effect/Layer"
import type { ProjectHandle } from "@tenantpool/core/CurrentProject"
import type * as Protections from "@tenantpool/core/Protections"
import { type TierName, tierNames, tierRank } from "@tenantpool/core/Tier"
import * as RedisCommandTable from "@tenantpool/redis/RedisCommandTable"
import * as Finding from "./Finding.ts"

/**
 * Blocked on every tier: the spec's dangerous commands (the `dangerous` entries of the Redis command table).
 *
 * @category constants
 * @since 0.1.0
 */
export const alwaysBlocked: ReadonlyArray<string> = RedisCommandTable.names((e) => e.dangerous === true)

// The cheapest tier that may run each cost class by default.
const allowedFrom: Readonly<Record<RedisCommandTable.Cost, TierName>> = { sort: "PRO", "set-algebra": "STARTER" }

const blockedByDefault = (tier: TierName): ReadonlyArray<string> => [
  ...alwaysBlocked,
  ...RedisCommandTable.names((e) => e.cost !== undefined && tierRank[tier] < tierRank[allowedFrom[e.cost]])
]

/**
 * The default blocked commands of each tier (see the module comment).
 *
 * @category constants
 * @since 0.1.0
 */
export const defaultBlocked: Readonly<Record<TierName, ReadonlyArray<string>>> = {
  FREE: blockedByDefault("FREE"),
  STARTER: blockedByDefault("STARTER"),
  PRO: blockedByDefault("PRO"),
  ENTERPRISE: blockedByDefault("ENTERPRISE")
}

/**
 * Options of the policy.
 *
 * @category models
 * @since 0.1.0
 */
export interface Options {
  /** Per-tier lists replacing the defaults. */
  readonly blocked?: Partial<Record<TierName, ReadonlyArray<string>>> | undefined
  /** A list for particular projects, else the tier's. */
  readonly blockedFor?: ((project: ProjectHandle) => ReadonlyArray<string> | undefined) | undefined
}

/**
 * The policy.
 *
 * @category services
 * @since 0.1.0
 */
export class RedisCommandPolicy extends Context.Service<
  RedisCommandPolicy,
  {
    readonly blocked: (project: ProjectHandle) => ReadonlySet<string>
    /** The rejection of a command (upper case) for a project, if its policy blocks it. */
    readonly inspect: (project: ProjectHandle, command: string) => Finding.Finding | undefined
  }
>()("@tenantpool/protections/RedisCommandPolicy") {}

/**
 * Builds the policy.
 *
 * @category constructors
 * @since 0.1.0
 */
export const make = (options?: Options | undefined): RedisCommandPolicy["Service"] => {
  const sets = {} as Record<TierName, ReadonlySet<string>>
  for (const tier of tierNames) {
    sets[tier] = new Set((options?.blocked?.[tier] ?? defaultBlocked[tier]).map((c) => c.toUpperCase()))
  }
  const custom = new WeakMap<ReadonlyArray<string>, ReadonlySet<string>>()
  const blocked = (project: ProjectHandle): ReadonlySet<string> => {
    const own = options?.blockedFor?.(project)
    if (own === undefined) return sets[project.tierName]
    let set = custom.get(own)
    if (set === undefined) custom.set(own, (set = new Set(own.map((c) => c.toUpperCase()))))
    return set
  }
  return RedisCommandPolicy.of({
    blocked,
    inspect: (project, command) =>
      blocked(project).has(command) ? Finding.reject("redis-command", `${command} is blocked on this tier`) : undefined
  })
}

/**
 * The policy as a layer.
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = (options?: Options | undefined): Layer.Layer<RedisCommandPolicy> =>
  Layer.sync(RedisCommandPolicy, () => make(options))

/**
 * The detail of a Redis command, one shared object per command name: engines pass it to `run` for typed operations
 * without allocating per call (the Redis command table's `commandDetail`).
 *
 * @category constructors
 * @since 0.1.0
 */
export const commandDetail: (command: string) => Protections.ProtectionDetail = RedisCommandTable.commandDetail
