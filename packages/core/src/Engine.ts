/**
 * The database engines tenantpool manages (the spec's `DatabaseType`).
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
