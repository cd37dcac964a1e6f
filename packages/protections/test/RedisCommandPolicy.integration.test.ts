/**
 * The Redis command policy on the real engine and server: blocked commands are refused before they are sent
 * (checked with a raw client: the keys survive), allowed ones run, per tier.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { Redis as IORedis } from "ioredis"
import { MemoryRegistry } from "@tenantpool/core/Registry"
import * as Tenancy from "@tenantpool/core/Tenancy"
import type { TierName } from "@tenantpool/core/Tier"
import * as RedisEngine from "@tenantpool/redis/RedisEngine"
import * as Isolation from "@tenantpool/testing/Isolation"
import * as TestServers from "@tenantpool/testing/TestServers"
import * as ApiProtections from "../src/ApiProtections.ts"
import * as G from "./fixtures/Guarded.ts"

const raw = (url: string) =>
  Effect.acquireRelease(
    Effect.promise(async () => {
      const client = new IORedis(url, { lazyConnect: true })
      await client.connect()
      return client
    }),
    (client) => Effect.promise(() => client.quit().catch(() => "closed"))
  )

/** The engine and the protections, with a project of each tier on a Redis database of this test's own. */
const setup = Effect.gen(function* () {
  const url = yield* Isolation.freshRedisDb(TestServers.url("redis"))
  const registry = yield* MemoryRegistry
  const tiers: ReadonlyArray<TierName> = ["FREE", "STARTER", "PRO", "ENTERPRISE"]
  const ids = Object.fromEntries(tiers.map((t) => [t, `${t.toLowerCase()}-cmd`])) as Record<TierName, string>
  for (const tier of tiers) yield* registry.register({ id: ids[tier], tier, redis: url })
  const redis = yield* RedisEngine.RedisEngine
  const tenancy = yield* Tenancy.Tenancy
  // The engine passes each command to the installed protections itself.
  const command = redis.command
  return { url, ids, redis, tenancy, command }
})

const provide = <A, E, R>(self: Effect.Effect<A, E, R>) =>
  self.pipe(
    Effect.provide(ApiProtections.layerWith({ sql: false, mongo: false })),
    Effect.provide(RedisEngine.layer()),
    G.provide()
  )

describe("RedisCommandPolicy", () => {
  it.live("refuses KEYS and FLUSHALL for FREE before they reach the server, and runs allowed commands", () =>
    provide(
      Effect.gen(function* () {
        const { url, ids, redis, tenancy, command } = yield* setup
        const client = yield* raw(url)
        const asFree = tenancy.withProject(ids.FREE)
        yield* redis.set("kept", "v").pipe(asFree)
        // KEYS and FLUSHALL never reach the policy: the engine refuses them for every project (they reach past
        // the project's keys). The policy refuses what the engine allows, by tier (SORT, set algebra below).
        for (const name of ["KEYS", "flushall"]) {
          const error = yield* Effect.flip(command(name, name === "KEYS" ? ["*"] : []).pipe(asFree))
          assert.strictEqual(error._tag, "RedisError", name)
          if (error._tag === "RedisError") assert.strictEqual(error.kind, "forbidden")
        }
        const sort = yield* Effect.flip(command("SORT", ["kept"], { keys: [0] }).pipe(asFree))
        assert.strictEqual(sort._tag, "QueryRejected")
        if (sort._tag === "QueryRejected") {
          assert.strictEqual(sort.rule, "redis-command")
          assert.strictEqual(sort.tier, "FREE")
          assert.strictEqual(sort.projectId, ids.FREE)
        }
        assert.strictEqual(yield* Effect.promise(() => client.get(`${ids.FREE}:kept`)), "v", "nothing was flushed")
        assert.strictEqual(yield* command("SET", ["via-command", "1"], { keys: [0] }).pipe(asFree), "OK")
        assert.strictEqual(yield* Effect.promise(() => client.get(`${ids.FREE}:via-command`)), "1")
      })
    )
  )

  it.live("blocks SORT and set algebra by tier: refused for FREE, run for PRO", () =>
    provide(
      Effect.gen(function* () {
        const { ids, redis, tenancy, command } = yield* setup
        for (const tier of ["FREE", "PRO"] as const) {
          const as = tenancy.withProject(ids[tier])
          yield* redis.rpush("nums", "3", "1", "2").pipe(as)
          yield* redis.sadd("s1", "a", "b").pipe(as)
          yield* redis.sadd("s2", "b", "c").pipe(as)
        }
        const asFree = tenancy.withProject(ids.FREE)
        const asPro = tenancy.withProject(ids.PRO)
        const sortFree = yield* Effect.flip(command("SORT", ["nums"], { keys: [0] }).pipe(asFree))
        assert.strictEqual(sortFree._tag, "QueryRejected")
        const unionFree = yield* Effect.flip(command("SUNION", ["s1", "s2"], { keys: [0, 1] }).pipe(asFree))
        assert.strictEqual(unionFree._tag, "QueryRejected")
        assert.deepStrictEqual(yield* command("SORT", ["nums"], { keys: [0] }).pipe(asPro), ["1", "2", "3"])
        const union = (yield* command("SUNION", ["s1", "s2"], { keys: [0, 1] }).pipe(asPro)) as Array<string>
        assert.deepStrictEqual([...union].sort(), ["a", "b", "c"])
        const sortStarter = yield* Effect.flip(
          command("SORT", ["nums"], { keys: [0] }).pipe(tenancy.withProject(ids.STARTER))
        )
        assert.strictEqual(sortStarter._tag, "QueryRejected", "STARTER blocks SORT too")
        const keysEnterprise = yield* Effect.flip(command("KEYS", ["*"]).pipe(tenancy.withProject(ids.ENTERPRISE)))
        assert.strictEqual(keysEnterprise._tag, "RedisError", "KEYS is refused on every tier (by the engine)")
      })
    )
  )

  it.live("checks each command queued by multi or watch like the same command alone: one refusal refuses all", () =>
    provide(
      Effect.gen(function* () {
        const { url, ids, redis, tenancy } = yield* setup
        const client = yield* raw(url)
        const asFree = tenancy.withProject(ids.FREE)
        yield* redis.rpush("nums", "2", "1").pipe(asFree)
        const queued = [
          { command: "SET", args: ["applied", "1"] },
          { command: "SORT", args: ["nums", "STORE", "sorted"] }
        ]
        const viaMulti = yield* Effect.flip(redis.multi(queued).pipe(asFree))
        assert.strictEqual(viaMulti._tag, "QueryRejected")
        if (viaMulti._tag === "QueryRejected") assert.strictEqual(viaMulti.rule, "redis-command")
        const viaWatch = yield* Effect.flip(redis.watch(["nums"], () => Effect.succeed(queued)).pipe(asFree))
        assert.strictEqual(viaWatch._tag, "QueryRejected")
        assert.isNull(yield* Effect.promise(() => client.get(`${ids.FREE}:applied`)), "nothing of either was applied")
        assert.isNull(yield* Effect.promise(() => client.get(`${ids.FREE}:sorted`)))
        const asPro = tenancy.withProject(ids.PRO)
        yield* redis.rpush("nums", "2", "1").pipe(asPro)
        assert.deepStrictEqual(yield* redis.multi(queued).pipe(asPro), ["OK", 2], "PRO may SORT")
        assert.deepStrictEqual(
          yield* Effect.promise(() => client.lrange(`${ids.PRO}:sorted`, 0, -1)),
          ["1", "2"],
          "SORT's STORE key got the project's prefix"
        )
      })
    )
  )
})
