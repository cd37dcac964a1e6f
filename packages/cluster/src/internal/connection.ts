/**
 * The fleet's connections to its coordinator: one ioredis client for commands and scripts, one for the breaker
 * channel, and Effect's `Redis` service over the first (for `Redis.script` and the `RateLimiter` store).
 *
 * Unlike `RedisPersistence.layer`, nothing here waits for Redis: a process must start, serve and keep serving while
 * its coordinator is unreachable (on a conservative share), and rejoin when it answers. So the clients connect in
 * the background and reconnect forever, and commands fail at once while disconnected (no offline queue) or after
 * `commandTimeout`, instead of piling up behind a dead socket.
 *
 * @internal
 */
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import { Redis } from "effect/persistence"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import { Redis as IORedis } from "ioredis"
import { fromUnknown } from "@tenantpool/redis/RedisError"

/** What the fleet talks to Redis with. @internal */
export interface Connection {
  readonly client: IORedis
  readonly subscriber: IORedis
  readonly redis: Redis.Redis["Service"]
}

// Effect's RedisError with a sanitized cause: the command's name and the server's reply, never its arguments.
const toRedisError = (command: string) => (cause: unknown) =>
  new Redis.RedisError({ cause: fromUnknown(command)(cause) })

const clientOf = (url: Redacted.Redacted<string>, name: string, commandTimeout: number): IORedis => {
  const client = new IORedis(Redacted.value(url), {
    lazyConnect: true,
    connectionName: name,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    connectTimeout: Math.max(1000, commandTimeout * 2),
    commandTimeout,
    // Reconnect forever, at most every second: the coordinator coming back is the normal end of an outage.
    retryStrategy: (attempt: number) => Math.min(100 * attempt, 1000)
  })
  // Errors reach the commands that fail; the client's own error events would otherwise be unhandled.
  client.on("error", () => {})
  client.connect().catch(() => {})
  return client
}

const sendWith =
  (client: IORedis) =>
  <A = unknown>(command: string, ...args: ReadonlyArray<string>): Effect.Effect<A, Redis.RedisError> =>
    Effect.tryPromise({
      try: () => client.call(command, ...args) as Promise<A>,
      catch: toRedisError(command.toLowerCase())
    })

const close = (client: IORedis): Effect.Effect<void> =>
  Effect.promise(() => client.quit().catch(() => "closed")).pipe(
    Effect.timeoutOption("1 second"),
    Effect.ensuring(Effect.sync(() => client.disconnect()))
  )

/**
 * Opens the fleet's clients in the current scope (closed with it) without waiting for Redis to answer.
 *
 * @internal
 */
export const open = (
  url: Redacted.Redacted<string>,
  commandTimeout: number
): Effect.Effect<Connection, never, Scope.Scope> =>
  Effect.gen(function* () {
    const client = yield* Effect.acquireRelease(
      Effect.sync(() => clientOf(url, "tenantpool:fleet", commandTimeout)),
      close
    )
    const subscriber = yield* Effect.acquireRelease(
      Effect.sync(() => clientOf(url, "tenantpool:fleet:sub", commandTimeout)),
      close
    )
    const redis = yield* Redis.make({
      send: sendWith(client),
      connect: Effect.tryPromise({
        try: async () => {
          const c = clientOf(url, "tenantpool:fleet:reserved", commandTimeout)
          await c.ping()
          return c
        },
        catch: toRedisError("connect")
      }).pipe(Effect.map((c) => ({ send: sendWith(c), close: Effect.sync(() => c.disconnect()) }))),
      subscribe: Effect.fnUntraced(function* (channel, onMessage) {
        const ended = yield* Deferred.make<void, Redis.RedisError>()
        yield* Effect.acquireRelease(
          Effect.tryPromise({
            try: async () => {
              const sub = client.duplicate()
              sub.on("error", () => {})
              sub.on("message", (ch: string, message: string) => onMessage({ channel: ch, message }))
              sub.on("end", () =>
                Deferred.doneUnsafe(ended, Effect.fail(new Redis.RedisError({ cause: "subscriber connection ended" })))
              )
              await sub.subscribe(channel)
              return sub
            },
            catch: toRedisError("subscribe")
          }),
          (sub) => Effect.sync(() => sub.disconnect())
        )
        return Deferred.await(ended)
      })
    })
    return { client, subscriber, redis }
  })

/**
 * Waits up to `millis` for a client to be connected (the first sync at start-up is worth a short wait; after that,
 * the process runs on fallback shares until the coordinator answers).
 *
 * @internal
 */
export const ready = (client: IORedis, millis: number): Effect.Effect<boolean> =>
  client.status === "ready"
    ? Effect.succeed(true)
    : Effect.callback<boolean>((resume) => {
        let timer: ReturnType<typeof setTimeout> | undefined = undefined
        const done = () => {
          clearTimeout(timer)
          resume(Effect.succeed(true))
        }
        client.once("ready", done)
        timer = setTimeout(() => {
          client.off("ready", done)
          resume(Effect.succeed(false))
        }, millis)
        return Effect.sync(() => {
          clearTimeout(timer)
          client.off("ready", done)
        })
      })
