/**
 * The spec's `createRedisClient(projectId, { connectionString, tier, config })`, as a Layer.
 *
 * The spec's client is one object per project with its own pool; here the project is registered with the
 * tenancy service and the client's methods run as that project through the shared engine, so the project gets
 * its tier's limits and breakers while sharing the server's connection with every other project on it.
 *
 * ```ts
 * const RedisLive = RedisClient.layer("my-project-id", { connectionString: Redacted.make(url), tier: "PRO" })
 * const program = Effect.gen(function* () {
 *   const redis = yield* RedisClient.RedisClient
 *   yield* redis.set("key", "value", 3600)
 *   const value = yield* redis.get("key")
 * }).pipe(Effect.provide(RedisLive))
 * ```
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import {
  type GuardError,
  type InvalidConnectionString,
  InvalidConfig,
  type InvalidProjectId,
  type ProjectNotFound
} from "@tenantpool/core/Errors"
import { MemoryRegistry, ProjectRegistry } from "@tenantpool/core/Registry"
import * as Tenancy from "@tenantpool/core/Tenancy"
import type { TierName, TierOverride } from "@tenantpool/core/Tier"
import * as RedisEngine from "./RedisEngine.ts"
import { invalidArgument, type RedisError } from "./RedisError.ts"

/**
 * Options of `layer`, after the spec's `createRedisClient` options.
 *
 * @category models
 * @since 0.1.0
 */
export interface Options {
  readonly connectionString: string | Redacted.Redacted<string>
  readonly tier: TierName
  /** The spec's `config` (`minPoolSize` / `maxPoolSize`) override the tier's pool sizes for this client's tier. */
  readonly config?: { readonly minPoolSize?: number | undefined; readonly maxPoolSize?: number | undefined } | undefined
}

/**
 * The client was closed (`close`): it no longer runs anything for its project.
 *
 * @category errors
 * @since 0.1.0
 */
export class Closed extends Schema.TaggedError<Closed>()("Closed", {
  projectId: Schema.String
}) {
  override get message(): string {
    return `the Redis client of project "${this.projectId}" is closed`
  }
}

type Op<A> = Effect.Effect<A, RedisError | GuardError | ProjectNotFound | InvalidProjectId | Closed>

/**
 * The spec's client: its methods run as the project the layer was made for.
 *
 * @category services
 * @since 0.1.0
 */
export class RedisClient extends Context.Service<
  RedisClient,
  {
    readonly projectId: string
    readonly get: (key: string) => Op<string | null>
    /** `ttlSeconds` as in the spec (`redis.set('key', 'value', 3600)`). */
    readonly set: (key: string, value: string, ttlSeconds?: number) => Op<boolean>
    readonly del: (key: string) => Op<number>
    readonly hset: (key: string, field: string, value: string) => Op<number>
    readonly hget: (key: string, field: string) => Op<string | null>
    readonly hgetall: (key: string) => Op<Record<string, string>>
    readonly lpush: (key: string, ...values: ReadonlyArray<string>) => Op<number>
    readonly lrange: (key: string, start: number, stop: number) => Op<Array<string>>
    readonly sadd: (key: string, ...members: ReadonlyArray<string>) => Op<number>
    readonly smembers: (key: string) => Op<Array<string>>
    readonly zadd: (key: string, score: number, member: string) => Op<number>
    readonly zrange: (key: string, start: number, stop: number) => Op<Array<string>>
    readonly publish: (channel: string, message: string) => Op<number>
    readonly healthCheck: Effect.Effect<boolean, GuardError | ProjectNotFound | InvalidProjectId | Closed>
    readonly getPoolStats: Op<RedisEngine.RedisPoolStats>
    /**
     * The spec's `close()`: the client stops (every later call fails with `Closed`) and its project is removed from
     * the registry, so the tenancy service frees that project's runtime and connections, and only those (other
     * projects on the same server keep theirs; a shared connection closes with the last project using it): at
     * once when the project has no work in progress, else as soon as its work drains. Closing twice is harmless.
     */
    readonly close: Effect.Effect<void>
    /** Any other operation of the engine, as this project. */
    readonly run: <A, E>(
      f: (redis: RedisEngine.RedisEngine["Service"]) => Effect.Effect<A, E>
    ) => Effect.Effect<A, E | RedisError | ProjectNotFound | InvalidProjectId | Closed>
  }
>()("@tenantpool/redis/RedisClient") {}

/**
 * Registers the project (in the `MemoryRegistry`) and provides its client. Needs the Redis engine and the
 * tenancy service; `layerStandalone` brings its own.
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = (
  projectId: string,
  options: Options
): Layer.Layer<
  RedisClient,
  InvalidProjectId | InvalidConnectionString | InvalidConfig,
  RedisEngine.RedisEngine | Tenancy.Tenancy | MemoryRegistry
> =>
  Layer.effect(
    RedisClient,
    Effect.gen(function* () {
      const registry = yield* MemoryRegistry
      const tenancy = yield* Tenancy.Tenancy
      const redis = yield* RedisEngine.RedisEngine
      const read = readOptions(options)
      if (read instanceof InvalidConfig) return yield* read
      const config = yield* registry.register({ id: projectId, tier: read.tier, redis: read.connectionString })
      const withProject = tenancy.withProject(projectId)
      let closed = false
      // Checked when each call runs, not when it is made: an effect made before `close` and run after it fails too.
      const as = <A, E, R>(
        self: Effect.Effect<A, E, R>
      ): Effect.Effect<A, E | Closed | ProjectNotFound | InvalidProjectId, R> =>
        Effect.suspend((): Effect.Effect<A, E | Closed | ProjectNotFound | InvalidProjectId, R> =>
          closed ? Effect.fail(new Closed({ projectId })) : withProject(self)
        )
      return RedisClient.of({
        projectId,
        get: (key) => as(redis.get(key)),
        set: (key, value, ttlSeconds) =>
          ttlSeconds !== undefined && !(typeof ttlSeconds === "number" && Number.isFinite(ttlSeconds) && ttlSeconds > 0)
            ? Effect.fail(invalidArgument("set", "ttlSeconds: expected a positive number of seconds"))
            : as(redis.set(key, value, ttlSeconds === undefined ? undefined : { ttl: ttlSeconds * 1000 })),
        del: (key) => as(redis.del(key)),
        hset: (key, field, value) => as(redis.hset(key, field, value)),
        hget: (key, field) => as(redis.hget(key, field)),
        hgetall: (key) => as(redis.hgetall(key)),
        lpush: (key, ...values) => as(redis.lpush(key, ...values)),
        lrange: (key, start, stop) => as(redis.lrange(key, start, stop)),
        sadd: (key, ...members) => as(redis.sadd(key, ...members)),
        smembers: (key) => as(redis.smembers(key)),
        zadd: (key, score, member) => as(redis.zadd(key, { score, member })),
        zrange: (key, start, stop) => as(redis.zrange(key, start, stop)),
        publish: (channel, message) => as(redis.publish(channel, message)),
        healthCheck: as(redis.healthCheck),
        getPoolStats: as(redis.poolStats),
        close: Effect.suspend(() => {
          if (closed) return Effect.void
          closed = true
          return Effect.asVoid(registry.remove(config.id))
        }),
        run: (f) =>
          typeof f !== "function"
            ? Effect.fail(invalidArgument("run", "f: expected a function of the engine"))
            : as(Effect.suspend(() => f(redis)))
      })
    })
  )

/**
 * The client with everything it needs: an in-memory registry, the tier table (with the spec's `config` pool
 * sizes applied to the client's tier), the tenancy service and the Redis engine.
 *
 * @category layers
 * @since 0.1.0
 */
export const layerStandalone = (
  projectId: string,
  options: Options & { readonly tenancy?: Tenancy.Options | undefined }
): Layer.Layer<
  RedisClient | RedisEngine.RedisEngine | Tenancy.Tenancy | ProjectRegistry,
  InvalidProjectId | InvalidConnectionString | InvalidConfig
> => {
  const read = readOptions(options)
  if (read instanceof InvalidConfig) {
    return Layer.unwrap(
      Effect.fail(read) as Effect.Effect<
        Layer.Layer<RedisClient | RedisEngine.RedisEngine | Tenancy.Tenancy | ProjectRegistry>,
        InvalidConfig
      >
    )
  }
  const tierPatch: TierOverride = {
    ...(read.config?.minPoolSize !== undefined ? { minPool: read.config.minPoolSize } : {}),
    ...(read.config?.maxPoolSize !== undefined ? { maxPool: read.config.maxPoolSize } : {})
  }
  return layer(projectId, read).pipe(
    Layer.provideMerge(RedisEngine.layer()),
    Layer.provideMerge(Tenancy.layerMemory({ ...read.tenancy, tiers: { [read.tier]: tierPatch } }))
  )
}

// The options, read once into a plain copy: a value that is not an object, or a getter or proxy that throws, is an
// InvalidConfig naming the option (the registry then validates the connection string and the tier).
const readOptions = (
  options: unknown
): (Options & { readonly tenancy?: Tenancy.Options | undefined }) | InvalidConfig => {
  if (typeof options !== "object" || options === null) {
    return new InvalidConfig({ field: "options", reason: "must be an object with connectionString and tier" })
  }
  let field = "options"
  try {
    field = "connectionString"
    const connectionString = (options as Options).connectionString
    field = "tier"
    const tier = (options as Options).tier
    if (typeof tier !== "string") return new InvalidConfig({ field: "tier", reason: "must be a tier name" })
    field = "tenancy"
    const tenancy = (options as { readonly tenancy?: Tenancy.Options }).tenancy
    field = "config"
    const config: unknown = (options as Options).config
    if (config !== undefined && (typeof config !== "object" || config === null)) {
      return new InvalidConfig({ field: "config", reason: "must be an object with minPoolSize and maxPoolSize" })
    }
    const pool = config as Options["config"]
    const copy = {
      connectionString,
      tier,
      tenancy,
      config: pool === undefined ? undefined : { minPoolSize: pool.minPoolSize, maxPoolSize: pool.maxPoolSize }
    }
    if (tenancy !== undefined && (typeof tenancy !== "object" || tenancy === null)) {
      return new InvalidConfig({ field: "tenancy", reason: "must be an object" })
    }
    return copy
  } catch {
    return new InvalidConfig({ field, reason: "could not be read (a getter or proxy threw)" })
  }
}
