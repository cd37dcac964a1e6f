/**
 * Every command family of the engine against the shared Redis server: results as the server returns them, keys
 * stored under the project's prefix (checked with a raw client), and the caller's errors classified without
 * touching the breakers.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import * as Protections from "@tenantpool/core/Protections"
import { MemoryRegistry } from "@tenantpool/core/Registry"
import * as Tenancy from "@tenantpool/core/Tenancy"
import * as TestServers from "@tenantpool/testing/TestServers"
import { RedisEngine } from "../src/RedisEngine.ts"
import { RedisError } from "../src/RedisError.ts"
import * as Fx from "./fixtures/Redis.ts"

/**
 * Registers a fresh project on the shared server and runs `body` as that project (trusted to run scripts when
 * `trusted`).
 */
const asProject = <A, E, R>(
  label: string,
  body: (ctx: {
    readonly id: string
    readonly redis: RedisEngine["Service"]
    readonly tenancy: Tenancy.Tenancy["Service"]
    readonly url: string
  }) => Effect.Effect<A, E, R>,
  options?: { readonly trusted?: boolean }
) =>
  Effect.gen(function* () {
    const url = TestServers.url("redis")
    const id = Fx.projectId(label)
    yield* (yield* MemoryRegistry).register({ id, tier: "PRO", redis: url })
    const redis = yield* RedisEngine
    const tenancy = yield* Tenancy.Tenancy
    return yield* body({ id, redis, tenancy, url }).pipe(tenancy.withProject(id))
  }).pipe(
    Effect.provide(
      Fx.layer(options?.trusted === true ? { engine: { scripts: { trusted: (id) => id.startsWith(label) } } } : {})
    )
  )

const kindOf = (error: unknown): string | undefined => (error instanceof RedisError ? error.kind : undefined)

describe("RedisEngine commands", () => {
  it.live("strings: GET/SET with TTL, NX and XX, MGET/MSET, DEL, EXISTS, EXPIRE, TTL, INCR/INCRBY/DECR", () =>
    asProject("strings", ({ id, redis, url }) =>
      Effect.gen(function* () {
        const rawClient = yield* Fx.raw(url)
        assert.isNull(yield* redis.get("missing"))
        assert.isTrue(yield* redis.set("s", "v1"))
        assert.strictEqual(yield* redis.get("s"), "v1")
        assert.strictEqual(yield* Fx.call(() => rawClient.get(`${id}:s`)), "v1", "stored under the project prefix")
        assert.isNull(yield* Fx.call(() => rawClient.get("s")), "never stored without the prefix")

        assert.isFalse(yield* redis.set("s", "v2", { nx: true }), "NX on an existing key does nothing")
        assert.strictEqual(yield* redis.get("s"), "v1")
        assert.isTrue(yield* redis.set("s", "v3", { xx: true }))
        assert.strictEqual(yield* redis.get("s"), "v3")
        assert.isFalse(yield* redis.set("nope", "v", { xx: true }), "XX on a missing key does nothing")
        assert.strictEqual(yield* redis.exists("nope"), 0)
        assert.isTrue(yield* redis.set("fresh", "v", { nx: true, ttl: "1 minute" }))
        const pttl = yield* Fx.call(() => rawClient.pttl(`${id}:fresh`))
        assert.isTrue(pttl > 50_000 && pttl <= 60_000, `PX applied with NX (pttl ${pttl})`)

        yield* redis.mset({ a: "1", b: "2" })
        assert.deepStrictEqual(yield* redis.mget(["a", "missing", "b"]), ["1", null, "2"])
        assert.strictEqual(yield* Fx.call(() => rawClient.get(`${id}:b`)), "2")
        assert.strictEqual(yield* redis.exists("a", "b", "missing"), 2)
        assert.strictEqual(yield* redis.del("a", "missing"), 1)
        assert.strictEqual(yield* redis.exists("a"), 0)

        assert.strictEqual(yield* redis.ttl("b"), -1, "no expiry yet")
        assert.strictEqual(yield* redis.ttl("missing"), -2)
        assert.isTrue(yield* redis.expire("b", "30 seconds"))
        const ttl = yield* redis.ttl("b")
        assert.isTrue(ttl > 25 && ttl <= 30, `ttl ${ttl}`)
        assert.isFalse(yield* redis.expire("missing", "30 seconds"))

        assert.strictEqual(yield* redis.incr("n"), 1)
        assert.strictEqual(yield* redis.incrby("n", 10), 11)
        assert.strictEqual(yield* redis.decr("n"), 10)
        assert.strictEqual(yield* Fx.call(() => rawClient.get(`${id}:n`)), "10")
      })
    )
  )

  it.live("a key set with a 200 ms TTL is gone after 300 ms", () =>
    asProject("ttl", ({ redis }) =>
      Effect.gen(function* () {
        assert.isTrue(yield* redis.set("short", "v", { ttl: "200 millis" }))
        assert.strictEqual(yield* redis.get("short"), "v")
        yield* Effect.sleep("300 millis")
        assert.isNull(yield* redis.get("short"))
        assert.strictEqual(yield* redis.exists("short"), 0)
      })
    )
  )

  it.live("hashes: HSET, HGET, HMGET, HGETALL, HDEL, HINCRBY, HEXISTS, HLEN", () =>
    asProject("hashes", ({ id, redis, url }) =>
      Effect.gen(function* () {
        const rawClient = yield* Fx.raw(url)
        assert.strictEqual(yield* redis.hset("h", { f1: "a", f2: "b" }), 2)
        assert.strictEqual(yield* redis.hset("h", "f3", "c"), 1)
        assert.strictEqual(yield* redis.hget("h", "f1"), "a")
        assert.isNull(yield* redis.hget("h", "nope"))
        assert.deepStrictEqual(yield* redis.hmget("h", ["f2", "nope", "f3"]), ["b", null, "c"])
        assert.deepStrictEqual(yield* redis.hgetall("h"), { f1: "a", f2: "b", f3: "c" })
        assert.deepStrictEqual(yield* redis.hgetall("missing"), {})
        assert.isTrue(yield* redis.hexists("h", "f2"))
        assert.strictEqual(yield* redis.hdel("h", "f2", "nope"), 1)
        assert.isFalse(yield* redis.hexists("h", "f2"))
        assert.strictEqual(yield* redis.hincrby("h", "count", 5), 5)
        assert.strictEqual(yield* redis.hincrby("h", "count", -2), 3)
        assert.strictEqual(yield* redis.hlen("h"), 3)
        assert.deepStrictEqual(yield* Fx.call(() => rawClient.hgetall(`${id}:h`)), { f1: "a", f3: "c", count: "3" })
      })
    )
  )

  it.live("lists: LPUSH, RPUSH, LPOP, RPOP, LRANGE, LLEN, LREM, LTRIM", () =>
    asProject("lists", ({ id, redis, url }) =>
      Effect.gen(function* () {
        const rawClient = yield* Fx.raw(url)
        assert.strictEqual(yield* redis.rpush("l", "b", "c"), 2)
        assert.strictEqual(yield* redis.lpush("l", "a"), 3)
        assert.deepStrictEqual(yield* redis.lrange("l", 0, -1), ["a", "b", "c"])
        assert.strictEqual(yield* redis.llen("l"), 3)
        assert.strictEqual(yield* redis.lpop("l"), "a")
        assert.strictEqual(yield* redis.rpop("l"), "c")
        assert.isNull(yield* redis.lpop("empty"))
        yield* redis.rpush("l", "x", "b", "x", "y")
        assert.strictEqual(yield* redis.lrem("l", 0, "x"), 2)
        assert.deepStrictEqual(yield* redis.lrange("l", 0, -1), ["b", "b", "y"])
        yield* redis.ltrim("l", 1, -1)
        assert.deepStrictEqual(yield* Fx.call(() => rawClient.lrange(`${id}:l`, 0, -1)), ["b", "y"])
      })
    )
  )

  it.live("BLPOP/BRPOP pop at once when the list has items and return None when the timeout passes", () =>
    asProject("blocking", ({ redis }) =>
      Effect.gen(function* () {
        yield* redis.rpush("q", "first", "second", "third")
        assert.deepStrictEqual(yield* redis.blpop(["q"], "1 second"), Option.some(["q", "first"] as const))
        assert.deepStrictEqual(yield* redis.brpop(["other", "q"], "1 second"), Option.some(["q", "third"] as const))
        const [empty, ms] = yield* Fx.timed(redis.blpop(["nothing"], "300 millis"))
        assert.isTrue(Option.isNone(empty))
        assert.isTrue(ms >= 250 && ms < 1_000, `waited the server-side timeout (${Math.round(ms)} ms)`)
      })
    )
  )

  it.live("sets: SADD, SREM, SMEMBERS, SISMEMBER, SCARD", () =>
    asProject("sets", ({ id, redis, url }) =>
      Effect.gen(function* () {
        const rawClient = yield* Fx.raw(url)
        assert.strictEqual(yield* redis.sadd("s", "a", "b", "c", "a"), 3)
        assert.strictEqual(yield* redis.srem("s", "b", "nope"), 1)
        assert.deepStrictEqual([...(yield* redis.smembers("s"))].sort(), ["a", "c"])
        assert.isTrue(yield* redis.sismember("s", "a"))
        assert.isFalse(yield* redis.sismember("s", "b"))
        assert.strictEqual(yield* redis.scard("s"), 2)
        assert.strictEqual(yield* Fx.call(() => rawClient.scard(`${id}:s`)), 2)
      })
    )
  )

  it.live("sorted sets: ZADD, ZRANGE with scores, ZRANGEBYSCORE, ZREM, ZSCORE, ZINCRBY, ZCARD, ZRANK", () =>
    asProject("zsets", ({ id, redis, url }) =>
      Effect.gen(function* () {
        const rawClient = yield* Fx.raw(url)
        const added = yield* redis.zadd(
          "z",
          { member: "a", score: 1 },
          { member: "b", score: 2.5 },
          { member: "c", score: 10 }
        )
        assert.strictEqual(added, 3)
        assert.deepStrictEqual(yield* redis.zrange("z", 0, -1), ["a", "b", "c"])
        assert.deepStrictEqual(yield* redis.zrangeWithScores("z", 0, 1), [
          { member: "a", score: 1 },
          { member: "b", score: 2.5 }
        ])
        assert.deepStrictEqual(yield* redis.zrangebyscore("z", 2, "+inf"), [
          { member: "b", score: 2.5 },
          { member: "c", score: 10 }
        ])
        assert.deepStrictEqual(yield* redis.zrangebyscore("z", "-inf", "+inf", { limit: { offset: 1, count: 1 } }), [
          { member: "b", score: 2.5 }
        ])
        assert.strictEqual(yield* redis.zscore("z", "b"), 2.5)
        assert.isNull(yield* redis.zscore("z", "nope"))
        assert.strictEqual(yield* redis.zincrby("z", 20, "a"), 21)
        assert.strictEqual(yield* redis.zrank("z", "a"), 2)
        assert.isNull(yield* redis.zrank("z", "nope"))
        assert.strictEqual(yield* redis.zrem("z", "b", "nope"), 1)
        assert.strictEqual(yield* redis.zcard("z"), 2)
        assert.strictEqual(yield* Fx.call(() => rawClient.zscore(`${id}:z`, "a")), "21")
      })
    )
  )

  it.live("MULTI/EXEC runs the queued commands atomically on prefixed keys", () =>
    asProject("multi", ({ id, redis, url }) =>
      Effect.gen(function* () {
        const rawClient = yield* Fx.raw(url)
        const results = yield* redis.multi([
          { command: "SET", args: ["m", "5"] },
          { command: "INCRBY", args: ["m", 2] },
          { command: "RPUSH", args: ["ml", "x", "y"] },
          { command: "LMOVE", args: ["ml", "ml2", "LEFT", "RIGHT"], keys: [0, 1] }
        ])
        assert.deepStrictEqual(results, ["OK", 7, 2, "x"])
        assert.strictEqual(yield* Fx.call(() => rawClient.get(`${id}:m`)), "7")
        assert.deepStrictEqual(yield* Fx.call(() => rawClient.lrange(`${id}:ml2`, 0, -1)), ["x"])
        const failed = yield* Effect.flip(
          redis.multi([
            { command: "SET", args: ["m", "not a number"] },
            { command: "INCR", args: ["m"] }
          ])
        )
        assert.strictEqual(kindOf(failed), "syntax", "a command failing inside EXEC surfaces as the caller's error")
      })
    )
  )

  it.live(
    "WATCH applies the transaction when nothing changed and fails with kind conflict when a watched key did",
    () =>
      asProject("watch", ({ id, redis, url }) =>
        Effect.gen(function* () {
          const rawClient = yield* Fx.raw(url)
          yield* redis.set("balance", "100")
          const ok = yield* redis.watch(["balance"], (tx) =>
            Effect.map(tx.get("balance"), (v) => [{ command: "SET", args: ["balance", String(Number(v) - 30)] }])
          )
          assert.deepStrictEqual(ok, ["OK"])
          assert.strictEqual(yield* redis.get("balance"), "70")

          const conflict = yield* Effect.flip(
            redis.watch(["balance"], (tx) =>
              Effect.gen(function* () {
                const v = yield* tx.get("balance")
                // Another client changes the watched key between the read and EXEC.
                yield* Fx.call(() => rawClient.set(`${id}:balance`, "500"))
                return [{ command: "SET", args: ["balance", String(Number(v) - 30)] }]
              })
            )
          )
          assert.strictEqual(kindOf(conflict), "conflict")
          assert.strictEqual(yield* redis.get("balance"), "500", "the conflicting transaction was not applied")
        })
      )
  )

  it.live("evalScript runs EVALSHA, falls back to EVAL on NOSCRIPT, and prefixes the script's keys", () =>
    asProject(
      "scripts",
      ({ id, redis, url }) =>
        Effect.gen(function* () {
          const rawClient = yield* Fx.raw(url)
          // A script text unique to this run, so the server cannot have it cached yet.
          const script = redis.script(
            `-- ${id}\nredis.call('SET', KEYS[1], ARGV[1]); return {KEYS[1], redis.call('INCRBY', KEYS[2], ARGV[2])}`
          )
          const cached = (yield* Fx.call(() => rawClient.script("EXISTS", script.sha1))) as Array<number>
          assert.deepStrictEqual(cached, [0])
          const first = yield* redis.evalScript(script, ["sk", "sn"], ["hello", 5])
          assert.deepStrictEqual(first, [`${id}:sk`, 5], "KEYS[1] arrived prefixed")
          const nowCached = (yield* Fx.call(() => rawClient.script("EXISTS", script.sha1))) as Array<number>
          assert.deepStrictEqual(nowCached, [1], "the EVAL fallback loaded the script")
          assert.deepStrictEqual(yield* redis.evalScript(script, ["sk", "sn"], ["again", 1]), [`${id}:sk`, 6])
          assert.strictEqual(yield* Fx.call(() => rawClient.get(`${id}:sk`)), "again")
          const broken = yield* Effect.flip(redis.evalScript(redis.script("return redis.call('NOPE')"), [], []))
          assert.instanceOf(broken, RedisError)
        }),
      { trusted: true }
    )
  )

  it.live("SCAN streams only the project's keys, without the prefix, across many pages", () =>
    Effect.gen(function* () {
      const url = TestServers.url("redis")
      const { a, b, redis, tenancy } = yield* Fx.twoProjects(url, ["scan-a", "PRO"], ["scan-b", "PRO"])
      const keys = Array.from({ length: 120 }, (_, i) => `item:${i}`)
      yield* redis.mset(Object.fromEntries(keys.map((k) => [k, "a"]))).pipe(tenancy.withProject(a))
      yield* redis.mset(Object.fromEntries(keys.map((k) => [k, "b"]))).pipe(tenancy.withProject(b))
      yield* redis.set("other", "b").pipe(tenancy.withProject(b))

      const all = yield* redis.scan("*", { count: 10 }).pipe(Stream.runCollect, tenancy.withProject(a))
      assert.deepStrictEqual([...new Set(all)].sort(), [...keys].sort())
      const some = yield* redis.scan("item:1?", { count: 10 }).pipe(Stream.runCollect, tenancy.withProject(a))
      assert.deepStrictEqual(
        [...new Set(some)].sort(),
        keys.filter((k) => /^item:1\d$/.test(k)).sort(),
        "the pattern applies within the project"
      )
      const bOnly = yield* redis.scan("oth*").pipe(Stream.runCollect, tenancy.withProject(b))
      assert.deepStrictEqual([...bOnly], ["other"])
      const none = yield* redis.scan("oth*").pipe(Stream.runCollect, tenancy.withProject(a))
      assert.strictEqual([...none].length, 0, "project a never sees project b's key")
    }).pipe(Effect.provide(Fx.layer()))
  )

  it.live("command runs an allowed command with its key positions prefixed", () =>
    asProject("raw-cmd", ({ id, redis, url }) =>
      Effect.gen(function* () {
        const rawClient = yield* Fx.raw(url)
        assert.strictEqual(yield* redis.command("SET", ["c", "1"], { keys: [0] }), "OK")
        assert.strictEqual(yield* redis.command("get", ["c"], { keys: [0] }), "1")
        assert.strictEqual(yield* redis.command("APPEND", ["c", "23"], { keys: [0] }), 3)
        assert.strictEqual(yield* redis.command("COPY", ["c", "c2"], { keys: [0, 1] }), 1)
        assert.strictEqual(yield* Fx.call(() => rawClient.get(`${id}:c2`)), "123")
        assert.strictEqual(yield* redis.command("PING", []), "PONG")
        yield* redis.zadd("cz", { member: "m", score: 1.5 })
        assert.deepStrictEqual(
          yield* redis.command("ZRANGE", ["cz", 0, -1, "WITHSCORES"], { keys: [0] }),
          ["m", "1.5"],
          "the same reply shape as ioredis's own zrange"
        )
        assert.deepStrictEqual(yield* redis.multi([{ command: "ZRANGE", args: ["cz", 0, -1, "WITHSCORES"] }]), [
          ["m", "1.5"]
        ])
      })
    )
  )

  it.live(
    "multi and watch pass every queued command to the installed protections, as a single command would be",
    () => {
      const seen: Array<string> = []
      const recording = Protections.layer({
        check: (_project, engine, operation, detail) => {
          seen.push(`${engine} ${operation} ${detail.command}`)
          return undefined
        }
      })
      return asProject("protected", ({ redis }) =>
        Effect.gen(function* () {
          yield* redis.command("incr", ["n"])
          yield* redis.multi([
            { command: "set", args: ["a", "1"] },
            { command: "OBJECT", args: ["encoding", "a"] }
          ])
          yield* redis.watch(["a"], () => Effect.succeed([{ command: "Get", args: ["a"] }]))
          assert.deepStrictEqual(seen, [
            "redis command INCR",
            "redis multi SET",
            "redis multi OBJECT",
            "redis multi MULTI",
            "redis watch WATCH",
            "redis watch GET"
          ])
        }).pipe(Effect.provide(recording))
      )
    }
  )

  it.live("command refuses KEYS, FLUSHALL and CONFIG with kind forbidden before touching the server", () =>
    asProject("forbidden", ({ id, redis, tenancy, url }) =>
      Effect.gen(function* () {
        const rawClient = yield* Fx.raw(url)
        yield* Fx.call(() => rawClient.set(`${id}:keep`, "1"))
        const flushesBefore = yield* commandCalls(rawClient, "flushall")
        const attempts = [
          redis.command("KEYS", ["*"]),
          redis.command("keys", ["*"]),
          redis.command("FLUSHALL", []),
          redis.command("FlushAll", ["ASYNC"]),
          redis.command("CONFIG", ["SET", "maxmemory", "1"]),
          redis.command("config", ["GET", "requirepass"])
        ]
        for (const attempt of attempts) {
          const error = yield* Effect.flip(attempt)
          assert.strictEqual(kindOf(error), "forbidden")
          assert.isFalse((error as RedisError).sent)
        }
        assert.strictEqual(yield* commandCalls(rawClient, "flushall"), flushesBefore, "no FLUSHALL reached the server")
        assert.strictEqual(yield* Fx.call(() => rawClient.get(`${id}:keep`)), "1")
        const connections = yield* tenancy.connections
        assert.isFalse(
          connections.some((c) => c.projectId === id),
          "the project never even bound a connection"
        )
      })
    )
  )

  it.live("1,000 WRONGTYPE, syntax and arity errors leave the breakers closed and the next GET succeeds", () =>
    asProject("caller-errors", ({ id, redis, tenancy }) =>
      Effect.gen(function* () {
        yield* redis.hset("hash", "f", "v")
        yield* redis.set("str", "v")
        const kinds = new Map<string, number>()
        const errors = yield* Effect.forEach(
          Array.from({ length: 1_000 }, (_, i) => i),
          (i) =>
            Effect.flip(
              i % 10 === 0
                ? redis.command("SET", ["str", "v", "NOPE"], { keys: [0] })
                : i % 10 === 1
                  ? redis.command("GET", [])
                  : redis.get("hash")
            ),
          { concurrency: 50 }
        )
        for (const e of errors) {
          assert.instanceOf(e, RedisError, "the caller's error, not a guard error")
          kinds.set((e as RedisError).kind, (kinds.get((e as RedisError).kind) ?? 0) + 1)
          assert.isFalse((e as RedisError).isInfrastructure)
        }
        assert.deepStrictEqual(Object.fromEntries(kinds), { syntax: 100, arity: 100, wrongtype: 800 })
        assert.strictEqual(yield* tenancy.breakerState(id, "redis"), "closed")
        const meta = (yield* tenancy.connections).find((c) => c.projectId === id)
        assert.strictEqual(meta?.targetBreaker, "closed")
        assert.strictEqual(yield* redis.get("str"), "v")
      })
    )
  )

  it.live("healthCheck is true on a live server and poolStats reports size, available and pending", () =>
    asProject("health", ({ redis }) =>
      Effect.gen(function* () {
        assert.isTrue(yield* redis.healthCheck)
        const stats = yield* redis.poolStats
        assert.strictEqual(stats.size, 1, "one shared connection, no dedicated ones yet")
        assert.strictEqual(stats.available, 1)
        assert.strictEqual(stats.pending, 0)
        assert.strictEqual(stats.shared.status, "ready")
        yield* redis.blpop(["none"], "10 millis")
        const after = yield* redis.poolStats
        assert.strictEqual(after.dedicated.open, 1, "the BLPOP's dedicated connection is kept for reuse")
        assert.strictEqual(after.dedicated.inUse, 0)
        assert.strictEqual(after.size, 2)
        assert.strictEqual(after.available, 2)
      })
    )
  )
})

const commandCalls = (client: import("ioredis").Redis, name: string) =>
  Fx.call(() => client.info("commandstats")).pipe(
    Effect.map((text) => Number(new RegExp(`cmdstat_${name}:calls=(\\d+)`).exec(text)?.[1] ?? 0))
  )
