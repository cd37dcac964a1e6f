/**
 * Effect's `Redis` service (`effect/persistence`) implemented over ioredis, so that Effect's
 * `CircuitBreaker.layerStoreRedis` and `RateLimiter.layerStoreRedis` can share state between processes.
 *
 * `@effect/platform-node` ships `NodeRedis` on the `redis` package; this is the same service on the ioredis the
 * rest of tenantpool uses. It is for coordination (breaker state, rate limits), not tenant traffic: it has its own
 * connection and is not guarded per project. Commands fail with Effect's `RedisError`, whose cause never carries
 * the command's arguments.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { CircuitBreaker, RateLimiter, Redis } from "effect/persistence"
import * as Redacted from "effect/Redacted"
import { Redis as IORedis } from "ioredis"
import { quit } from "./internal/connections.ts"
import { fromUnknown } from "./RedisError.ts"

/**
 * Options of the coordination connection.
 *
 * @category models
 * @since 0.1.0
 */
export interface Options {
  /** `redis://[user:password@]host:port/db` (or `rediss://`). */
  readonly url: Redacted.Redacted<string>
  /** Pool of dedicated connections for blocking commands (Effect's `Redis.reserve`). */
  readonly pool?: Redis.PoolOptions | undefined
  /** Client name in CLIENT LIST (default `tenantpool:coordination`). */
  readonly clientName?: string | undefined
}

/**
 * The ioredis client behind the service.
 *
 * @category services
 * @since 0.1.0
 */
export class IoRedisClient extends Context.Service<IoRedisClient, IORedis>()(
  "@tenantpool/redis/RedisPersistence/IoRedisClient"
) {}

// Effect's RedisError with a sanitized cause: our RedisError (kind, command name, server reply), never the arguments.
const toRedisError = (command: string) => (cause: unknown) =>
  new Redis.RedisError({ cause: fromUnknown(command)(cause) })

const open = (options: Options) =>
  Effect.tryPromise({
    try: async () => {
      const client = new IORedis(Redacted.value(options.url), {
        lazyConnect: true,
        connectionName: options.clientName ?? "tenantpool:coordination",
        maxRetriesPerRequest: 1,
        enableOfflineQueue: true
      })
      client.on("error", () => {})
      try {
        await client.connect()
      } catch (e) {
        client.disconnect()
        throw e
      }
      return client
    },
    catch: toRedisError("connect")
  })

const sendWith =
  (client: IORedis) =>
  <A = unknown>(command: string, ...args: ReadonlyArray<string>): Effect.Effect<A, Redis.RedisError> =>
    Effect.tryPromise({
      try: () => client.call(command, ...args) as Promise<A>,
      catch: toRedisError(command.toLowerCase())
    })

/**
 * Effect's `Redis` service over ioredis (plus the ioredis client itself).
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = (options: Options): Layer.Layer<Redis.Redis | IoRedisClient, Redis.RedisError> =>
  Layer.effectContext(
    Effect.gen(function* () {
      // Closed like the engine's connections: QUIT within a second, then the socket is dropped (a server that does
      // not answer, e.g. a paused one, would otherwise hold shutdown behind its QUIT).
      const client = yield* Effect.acquireRelease(open(options), quit)
      const redis = yield* Redis.make({
        send: sendWith(client),
        connect: Effect.map(open(options), (c) => ({
          send: sendWith(c),
          close: Effect.sync(() => c.disconnect())
        })),
        subscribe: Effect.fnUntraced(function* (channel, onMessage) {
          const ended = yield* Deferred.make<void, Redis.RedisError>()
          yield* Effect.acquireRelease(
            Effect.tryPromise({
              try: async () => {
                const sub = client.duplicate()
                sub.on("error", () => {})
                sub.on("message", (ch: string, message: string) => onMessage({ channel: ch, message }))
                sub.on("end", () =>
                  Deferred.doneUnsafe(
                    ended,
                    Effect.fail(new Redis.RedisError({ cause: "subscriber connection ended" }))
                  )
                )
                await sub.subscribe(channel)
                return sub
              },
              catch: toRedisError("subscribe")
            }),
            (sub) => Effect.sync(() => sub.disconnect())
          )
          return Deferred.await(ended)
        }),
        pool: options.pool
      })
      return Context.make(Redis.Redis, redis).pipe(Context.add(IoRedisClient, client))
    })
  )

/**
 * A circuit-breaker store in Redis, shared by every process that uses the same Redis and prefix.
 *
 * @category layers
 * @since 0.1.0
 */
export const layerBreakerStore = (
  options: Options & { readonly prefix?: string | undefined }
): Layer.Layer<CircuitBreaker.CircuitBreakerStore, Redis.RedisError> =>
  CircuitBreaker.layerStoreRedis({ prefix: options.prefix ?? "tenantpool:breaker:" }).pipe(
    Layer.provide(layer(options))
  )

/**
 * A rate-limiter store in Redis, shared by every process that uses the same Redis and prefix.
 *
 * @category layers
 * @since 0.1.0
 */
export const layerRateLimiterStore = (
  options: Options & { readonly prefix?: string | undefined }
): Layer.Layer<RateLimiter.RateLimiterStore, Redis.RedisError> =>
  RateLimiter.layerStoreRedis({ prefix: options.prefix ?? "tenantpool:ratelimit:" }).pipe(Layer.provide(layer(options)))
