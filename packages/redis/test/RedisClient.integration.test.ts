/**
 * The spec's client (`RedisClient`): `close()` frees its own project's connections and nothing of any other
 * project's, and every later call of the client fails with `Closed`; its arguments are checked like the engine's.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Servers from "@tenantpool/testing/Servers"
import * as RedisClient from "../src/RedisClient.ts"
import { RedisError } from "../src/RedisError.ts"
import * as Fx from "./fixtures/Redis.ts"

/** Two clients, for two projects on one private server, over one engine and tenancy service. */
const twoClients = Effect.gen(function* () {
  const server = yield* Servers.acquirePrivate("redis")
  const operator = yield* Fx.raw(server.url)
  const options = { connectionString: server.url, tier: "FREE" } as const
  const ids = [Fx.projectId("client-a"), Fx.projectId("client-b")] as const
  const engine = Fx.layer()
  const context = yield* Layer.build(
    Layer.merge(
      Layer.effect(
        RedisClientA,
        Effect.map(Layer.build(RedisClient.layer(ids[0], options)), (c) => Context.get(c, RedisClient.RedisClient))
      ),
      Layer.effect(
        RedisClientB,
        Effect.map(Layer.build(RedisClient.layer(ids[1], options)), (c) => Context.get(c, RedisClient.RedisClient))
      )
    ).pipe(Layer.provide(engine))
  )
  return { operator, a: Context.get(context, RedisClientA), b: Context.get(context, RedisClientB), ids }
})

class RedisClientA extends Context.Service<RedisClientA, RedisClient.RedisClient["Service"]>()("test/RedisClientA") {}
class RedisClientB extends Context.Service<RedisClientB, RedisClient.RedisClient["Service"]>()("test/RedisClientB") {}

describe("RedisClient", () => {
  it.live("close() frees only its own project's connections; later calls of that client fail with Closed", () =>
    Effect.gen(function* () {
      const { operator, a, b } = yield* twoClients
      for (const client of [a, b]) {
        assert.isTrue(yield* client.set("k", client.projectId))
        // A dedicated connection each, kept idle in the project's pool.
        assert.deepStrictEqual(yield* client.run((redis) => redis.blpop(["q"], "10 millis")), Option.none())
      }
      assert.strictEqual(yield* Fx.countNamed(operator, "tenantpool:dedicated"), 2)
      yield* a.close
      yield* Fx.eventually(
        "a's dedicated connection is closed",
        Effect.map(Fx.countNamed(operator, "tenantpool:dedicated"), (n) => n === 1)
      )
      assert.strictEqual(yield* Fx.countNamed(operator, "tenantpool"), 1, "the shared connection stays: b uses it")
      const calls: ReadonlyArray<Effect.Effect<unknown, unknown>> = [
        a.get("k"),
        a.set("k", "v"),
        a.getPoolStats,
        a.healthCheck,
        a.run((redis) => redis.get("k"))
      ]
      for (const call of calls) {
        const error = yield* Effect.flip(call)
        assert.instanceOf(error, RedisClient.Closed)
        assert.strictEqual((error as RedisClient.Closed).projectId, a.projectId)
      }
      assert.strictEqual(yield* b.get("k"), b.projectId, "b is untouched")
      assert.strictEqual(yield* Fx.countNamed(operator, "tenantpool:dedicated"), 1, "b's idle connection is still open")
      yield* a.close
      yield* b.close
      yield* Fx.eventually(
        "every connection is closed once both clients are",
        Effect.map(Fx.clientList(operator), (l) => !l.some((c) => c.name.startsWith("tenantpool")))
      )
    })
  )

  it.live("refuses a TTL that is not a positive number of seconds, and a run() without a function", () =>
    Effect.gen(function* () {
      const { a } = yield* twoClients
      for (const ttl of ["nonsense", -1, 0, NaN, null]) {
        const error = yield* Effect.flip(a.set("k", "v", ttl as never))
        assert.instanceOf(error, RedisError, String(ttl))
        assert.strictEqual((error as RedisError).kind, "argument")
      }
      const run = yield* Effect.flip(a.run(1 as never))
      assert.strictEqual((run as RedisError).kind, "argument")
      assert.isTrue(yield* a.set("k", "v", 60))
      assert.strictEqual(yield* a.get("k"), "v")
    })
  )
})
