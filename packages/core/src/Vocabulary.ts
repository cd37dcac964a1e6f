/**
 * The closed sets of names tenantpool speaks in: the engines (the spec's `DatabaseType`) and the tiers. A leaf
 * module: errors, tiers, targets and the engine contract all use these names, and it imports none of them, so the
 * module graph has no cycle. `Engine.ts` and `Tier.ts` re-export what belongs to them.
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"

/**
 * The engines: PostgreSQL, Redis and MongoDB.
 *
 * @category models
 * @since 0.1.0
 */
export const Engine = Schema.Literals(["postgres", "redis", "mongodb"])

/**
 * @category models
 * @since 0.1.0
 */
export type Engine = typeof Engine.Type

/**
 * Every engine, in a fixed order.
 *
 * @category constants
 * @since 0.1.0
 */
export const engines: ReadonlyArray<Engine> = ["postgres", "redis", "mongodb"]

/**
 * An engine's position in `engines` (for per-engine slots in arrays).
 *
 * @category constants
 * @since 0.1.0
 */
export const engineIndex: Readonly<Record<Engine, 0 | 1 | 2>> = { postgres: 0, redis: 1, mongodb: 2 }

/**
 * The four tiers.
 *
 * @category models
 * @since 0.1.0
 */
export const TierName = Schema.Literals(["FREE", "STARTER", "PRO", "ENTERPRISE"])

/**
 * @category models
 * @since 0.1.0
 */
export type TierName = typeof TierName.Type

/**
 * Every tier, cheapest first.
 *
 * @category constants
 * @since 0.1.0
 */
export const tierNames: ReadonlyArray<TierName> = ["FREE", "STARTER", "PRO", "ENTERPRISE"]

/**
 * A tier's rank, cheapest 0: `tierRank[a] > tierRank[b]` when `a` is the higher tier.
 *
 * @category constants
 * @since 0.1.0
 */
export const tierRank: Readonly<Record<TierName, number>> = { FREE: 0, STARTER: 1, PRO: 2, ENTERPRISE: 3 }

/**
 * The higher of two tiers.
 *
 * @category combinators
 * @since 0.1.0
 */
export const higherTier = (a: TierName, b: TierName): TierName => (tierRank[b] > tierRank[a] ? b : a)
