/**
 * Pub/sub: PUBLISH and SUBSCRIBE / PSUBSCRIBE as scoped streams on connections of their own, channels under the
 * project's prefix, the subscriber connection closed with the stream, and resubscription after a server restart.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Stream from "effect/Stream"
import type { Redis as IORedis } from "ioredis"
import { MemoryRegistry } from "@tenantpool/core/Registry"
import * as Tenancy from "@tenantpool/core/Tenancy"
import * as Servers from "@tenantpool/testing/Servers"
import * as TestServers from "@tenantpool/testing/TestServers"
import { RedisEngine } from "../src/RedisEngine.ts"
import * as Fx from "./fixtures/Redis.ts"

const subscribers = (client: IORedis, channel: string) =>
  Fx.call(() => client.pubsub("NUMSUB", channel) as Promise<Array<string | number>>).pipe(
    Effect.map((reply) => Number(reply[1]))
  )

const patterns = (client: IORedis) =>
  Fx.call(() => client.pubsub("NUMPAT") as Promise<unknown>).pipe(Effect.map((n) => Number(n)))

describe("RedisEngine pub/sub", () => {
  it.live("SUBSCRIBE delivers the project's messages without the prefix, and never another project's", () =>
    Effect.gen(function* () {
      const url = TestServers.url("redis")
      const rawClient = yield* Fx.raw(url)
      const { a, b, redis, tenancy } = yield* Fx.twoProjects(url, ["pub-a", "FREE"], ["pub-b", "FREE"])

      const received = yield* redis
        .subscribe("news", "alerts")
        .pipe(Stream.take(3), Stream.runCollect, tenancy.withProject(a), Effect.forkChild)
      yield* Fx.eventually(
        "a's subscription is active",
        Effect.map(subscribers(rawClient, `${a}:alerts`), (n) => n === 1)
      )
      assert.strictEqual(yield* redis.publish("news", "from b").pipe(tenancy.withProject(b)), 0, "b reaches nobody")
      assert.strictEqual(yield* redis.publish("news", "one").pipe(tenancy.withProject(a)), 1)
      assert.strictEqual(yield* Fx.call(() => rawClient.publish(`${a}:alerts`, "two")), 1)
      assert.strictEqual(yield* Fx.call(() => rawClient.publish("news", "unprefixed")), 0)
      yield* redis.publish("news", "three").pipe(tenancy.withProject(a))
      assert.deepStrictEqual(
        [...(yield* Fiber.join(received))],
        [
          { channel: "news", message: "one" },
          { channel: "alerts", message: "two" },
          { channel: "news", message: "three" }
        ]
      )
      yield* Fx.eventually(
        "the subscriber connection is closed with the stream",
        Effect.map(subscribers(rawClient, `${a}:news`), (n) => n === 0)
      )
    }).pipe(Effect.provide(Fx.layer()))
  )

  it.live("PSUBSCRIBE matches only the project's channels and reports the pattern without the prefix", () =>
    Effect.gen(function* () {
      const server = yield* Servers.acquirePrivate("redis")
      const rawClient = yield* Fx.raw(server.url)
      const { a, b, redis, tenancy } = yield* Fx.twoProjects(server.url, ["psub-a", "FREE"], ["psub-b", "FREE"])

      const received = yield* redis
        .psubscribe("orders.*")
        .pipe(Stream.take(2), Stream.runCollect, tenancy.withProject(a), Effect.forkChild)
      yield* Fx.eventually(
        "the pattern subscription is active",
        Effect.map(patterns(rawClient), (n) => n === 1)
      )
      assert.strictEqual(yield* redis.publish("orders.eu", "b's order").pipe(tenancy.withProject(b)), 0)
      yield* redis.publish("orders.eu", "first").pipe(tenancy.withProject(a))
      yield* redis.publish("payments.eu", "not matched").pipe(tenancy.withProject(a))
      yield* redis.publish("orders.us", "second").pipe(tenancy.withProject(a))
      assert.deepStrictEqual(
        [...(yield* Fiber.join(received))],
        [
          { channel: "orders.eu", message: "first", pattern: "orders.*" },
          { channel: "orders.us", message: "second", pattern: "orders.*" }
        ]
      )
      yield* Fx.eventually(
        "the subscriber connection is closed",
        Effect.map(Fx.countNamed(rawClient, "tenantpool:dedicated"), (n) => n === 0)
      )
    }).pipe(Effect.provide(Fx.layer()))
  )

  it.live("interrupting a subscription closes its connection", () =>
    Effect.gen(function* () {
      const server = yield* Servers.acquirePrivate("redis")
      const rawClient = yield* Fx.raw(server.url)
      const registry = yield* MemoryRegistry
      const redis = yield* RedisEngine
      const tenancy = yield* Tenancy.Tenancy
      const id = Fx.projectId("sub-int")
      yield* registry.register({ id, tier: "FREE", redis: server.url })
      const fiber = yield* redis.subscribe("c").pipe(Stream.runDrain, tenancy.withProject(id), Effect.forkChild)
      yield* Fx.eventually(
        "subscribed",
        Effect.map(subscribers(rawClient, `${id}:c`), (n) => n === 1)
      )
      yield* Fiber.interrupt(fiber)
      yield* Fx.eventually(
        "the subscriber connection is gone",
        Effect.map(Fx.countNamed(rawClient, "tenantpool:dedicated"), (n) => n === 0)
      )
      assert.strictEqual(yield* subscribers(rawClient, `${id}:c`), 0)
    }).pipe(Effect.provide(Fx.layer()))
  )

  it.live("a subscription resubscribes after a server restart and keeps receiving", () =>
    Effect.gen(function* () {
      const server = yield* Servers.acquirePrivate("redis")
      const rawClient = yield* Fx.raw(server.url)
      const registry = yield* MemoryRegistry
      const redis = yield* RedisEngine
      const tenancy = yield* Tenancy.Tenancy
      const id = Fx.projectId("resub")
      yield* registry.register({ id, tier: "FREE", redis: server.url })

      const received = yield* redis
        .subscribe("events")
        .pipe(Stream.take(2), Stream.runCollect, tenancy.withProject(id), Effect.forkChild)
      yield* Fx.eventually(
        "subscribed",
        Effect.map(subscribers(rawClient, `${id}:events`), (n) => n === 1)
      )
      yield* Fx.call(() => rawClient.publish(`${id}:events`, "before"))

      yield* Servers.stop(server)
      yield* Servers.start(server)
      yield* Fx.eventually(
        "resubscribed on the restarted server",
        Effect.map(subscribers(rawClient, `${id}:events`), (n) => n === 1),
        "5 seconds"
      )
      yield* Fx.call(() => rawClient.publish(`${id}:events`, "after"))
      assert.deepStrictEqual(
        [...(yield* Fiber.join(received))],
        [
          { channel: "events", message: "before" },
          { channel: "events", message: "after" }
        ]
      )
    }).pipe(Effect.provide(Fx.layer()))
  )
})
