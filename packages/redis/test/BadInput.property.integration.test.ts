/**
 * Bad input to every public function of `@tenantpool/redis` (issue #14 items 1 and 7), against
 * the harness's Redis: fast-check properties over hostile arguments (`@tenantpool/testing/Hostile`). Each asserts
 * that the call ends in a success or a typed failure (`RedisError` or a guard verdict) — never a defect, an
 * interruption, a hang or a synchronous throw escaping the Effect —, that a failure names the argument, that a failed
 * call left nothing behind (the project's keys on the server, read with a raw client, are those it had before), that
 * nothing reached the server outside the project's prefix, and that no canary secret appears in the error's message,
 * its JSON, its cause or the logs.
 *
 * Inventory (79 functions, methods and options users call):
 * - RedisEngine (57): `make`/`layer` (options: autoPipelining, prefix, targetCapacity, connectTimeout,
 *   dedicatedIdleTimeout, clientName, scripts.trusted, scripts.ownUser); get, set, mget, mset, del, exists, expire,
 *   ttl, incr, incrby, decr; hset, hget, hmget, hgetall, hdel, hincrby, hexists, hlen; lpush, rpush, lpop, rpop,
 *   lrange, llen, lrem, ltrim, blpop, brpop; sadd, srem, smembers, sismember, scard; zadd, zrange, zrangeWithScores,
 *   zrangebyscore, zrem, zscore, zincrby, zcard, zrank; publish, subscribe, psubscribe; multi, watch (and the
 *   WatchedConnection's get, hget, hgetall, smembers, zscore); script, evalScript; scan; command; healthCheck,
 *   poolStats.
 * - RedisClient (19): `layer`, `layerStandalone` (projectId, options: connectionString, tier, config); get, set (with
 *   ttlSeconds), del, hset, hget, hgetall, lpush, lrange, sadd, smembers, zadd, zrange, publish, healthCheck,
 *   getPoolStats, run, close.
 * - RedisCommandTable: `check`, `entry`, `commandDetail`, `explain`, `names`. RedisError: `forbidden`,
 *   `invalidArgument`, `fromUnknown`, `classify`. RedisPersistence: `layer` (url, pool, clientName).
 *
 * Seeded: `TENANTPOOL_PROPERTY_SEED=<n>` replays another run; fast-check prints the seed of a failure.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import type { Redis as IORedis } from "ioredis"
import * as fc from "fast-check"
import { MemoryRegistry } from "@tenantpool/core/Registry"
import * as Tenancy from "@tenantpool/core/Tenancy"
import * as Canary from "@tenantpool/testing/Canary"
import * as H from "@tenantpool/testing/Hostile"
import * as TestServers from "@tenantpool/testing/TestServers"
import * as RedisClient from "../src/RedisClient.ts"
import * as RedisCommandTable from "../src/RedisCommandTable.ts"
import * as RedisEngine from "../src/RedisEngine.ts"
import * as RedisError from "../src/RedisError.ts"
import * as RedisPersistence from "../src/RedisPersistence.ts"
import * as Fx from "./fixtures/Redis.ts"

const canary = Canary.make()
const c = canary.secret

const tags = ["RedisError", "Closed", "InvalidProjectId", "InvalidConnectionString", "InvalidConfig", ...H.guardTags]

const expectation = (names: ReadonlyArray<string>, extra?: Partial<H.Expectation>): H.Expectation => ({
  tags,
  names,
  forms: canary.forms,
  logs: canary.logs,
  // Refusals of an argument name it; the server's replies (a wrong arity inside MULTI, WRONGTYPE) need not.
  named: (e) => e instanceof RedisError.RedisError && e.kind === "argument",
  ...extra
})

// Valid values, mixed in so that later arguments are reached.
const key = fc.constantFrom("k", "list", "hash", "set", "zset", "a:b", "ünï")
const value = fc.constantFrom("v", "", "1", "x y")
const int = fc.integer({ min: -3, max: 3 })
const keyList = fc.array(key, { minLength: 1, maxLength: 3 })
const duration = fc.constantFrom<unknown>("20 millis", 30, "1 second")

type Engine = RedisEngine.RedisEngine["Service"]

/** A public operation: its argument names, a valid value for each, and the call. */
interface Op {
  readonly name: string
  readonly args: ReadonlyArray<readonly [name: string, valid: fc.Arbitrary<unknown>]>
  readonly call: (redis: Engine, args: ReadonlyArray<unknown>) => unknown
  /** The call waits by design (subscriptions): reaching the timeout is fine. */
  readonly waits?: boolean
}

const op = (
  name: string,
  args: Op["args"],
  call: Op["call"] = (redis, a) => (redis as any)[name](...a),
  waits = false
): Op => ({ name, args, call, waits })

const scored = fc.record({ member: value, score: fc.oneof(int, fc.constantFrom(Infinity, -Infinity, 1.5)) })

const operations: ReadonlyArray<Op> = [
  op("get", [["key", key]]),
  op("set", [
    ["key", key],
    ["value", value],
    ["options", fc.record({ ttl: duration, nx: fc.boolean() }, { requiredKeys: [] })]
  ]),
  op("mget", [["keys", keyList]]),
  op("mset", [["entries", fc.dictionary(key, value, { minKeys: 1, maxKeys: 2 })]]),
  op("del", [["keys", key]]),
  op("exists", [["keys", key]]),
  op("expire", [
    ["key", key],
    ["ttl", duration]
  ]),
  op("ttl", [["key", key]]),
  op("incr", [["key", key]]),
  op("incrby", [
    ["key", key],
    ["by", int]
  ]),
  op("decr", [["key", key]]),
  op("hset", [
    ["key", key],
    ["fieldOrValues", fc.oneof(value, fc.dictionary(key, value, { minKeys: 1, maxKeys: 2 }))],
    ["value", value]
  ]),
  op("hget", [
    ["key", key],
    ["field", value]
  ]),
  op("hmget", [
    ["key", key],
    ["fields", keyList]
  ]),
  op("hgetall", [["key", key]]),
  op("hdel", [
    ["key", key],
    ["fields", value]
  ]),
  op("hincrby", [
    ["key", key],
    ["field", value],
    ["by", int]
  ]),
  op("hexists", [
    ["key", key],
    ["field", value]
  ]),
  op("hlen", [["key", key]]),
  op("lpush", [
    ["key", key],
    ["values", value]
  ]),
  op("rpush", [
    ["key", key],
    ["values", value]
  ]),
  op("lpop", [["key", key]]),
  op("rpop", [["key", key]]),
  op("lrange", [
    ["key", key],
    ["start", int],
    ["stop", int]
  ]),
  op("llen", [["key", key]]),
  op("lrem", [
    ["key", key],
    ["count", int],
    ["value", value]
  ]),
  op("ltrim", [
    ["key", key],
    ["start", int],
    ["stop", int]
  ]),
  op("blpop", [
    ["keys", keyList],
    ["timeout", duration]
  ]),
  op("brpop", [
    ["keys", keyList],
    ["timeout", duration]
  ]),
  op("sadd", [
    ["key", key],
    ["members", value]
  ]),
  op("srem", [
    ["key", key],
    ["members", value]
  ]),
  op("smembers", [["key", key]]),
  op("sismember", [
    ["key", key],
    ["member", value]
  ]),
  op("scard", [["key", key]]),
  op("zadd", [
    ["key", key],
    ["members", scored]
  ]),
  op("zrange", [
    ["key", key],
    ["start", int],
    ["stop", int]
  ]),
  op("zrangeWithScores", [
    ["key", key],
    ["start", int],
    ["stop", int]
  ]),
  op("zrangebyscore", [
    ["key", key],
    ["min", fc.oneof(int, fc.constantFrom("-inf", "(1"))],
    ["max", fc.oneof(int, fc.constantFrom("+inf", "(5"))],
    [
      "options",
      fc.record(
        { withScores: fc.boolean(), limit: fc.record({ offset: fc.nat(3), count: fc.integer({ min: 1, max: 5 }) }) },
        { requiredKeys: [] }
      )
    ]
  ]),
  op("zrem", [
    ["key", key],
    ["members", value]
  ]),
  op("zscore", [
    ["key", key],
    ["member", value]
  ]),
  op("zincrby", [
    ["key", key],
    ["by", int],
    ["member", value]
  ]),
  op("zcard", [["key", key]]),
  op("zrank", [
    ["key", key],
    ["member", value]
  ]),
  op("publish", [
    ["channel", key],
    ["message", value]
  ]),
  op("subscribe", [["channels", key]], undefined, true),
  op("psubscribe", [["patterns", fc.constantFrom("k*", "a?")]], undefined, true),
  op("multi", [
    [
      "commands",
      fc.array(fc.record({ command: fc.constantFrom("SET", "GET", "INCR"), args: fc.constant(["k", "1"]) }), {
        maxLength: 2
      })
    ]
  ]),
  op(
    "watch",
    [
      ["keys", keyList],
      ["body", fc.constant((conn: RedisEngine.WatchedConnection) => Effect.as(conn.get("k"), []))]
    ],
    (redis, [keys, body]) => redis.watch(keys as any, body as any)
  ),
  op("evalScript", [
    [
      "script",
      fc.constant(undefined).map(() => ({ lua: "return 1", sha1: "e0e1f9fabfc9d4800c877a703b823ac0578ff8db" }))
    ],
    ["keys", fc.array(key, { maxLength: 2 })],
    ["args", fc.array(fc.oneof(value, int), { maxLength: 2 })],
    ["options", fc.record({ readOnly: fc.boolean() })]
  ]),
  op("scan", [
    ["pattern", fc.constantFrom("*", "k*")],
    [
      "options",
      fc.record(
        { count: fc.integer({ min: 1, max: 50 }), type: fc.constantFrom("string", "list") },
        { requiredKeys: [] }
      )
    ]
  ]),
  op("command", [
    ["name", fc.constantFrom("GET", "SET", "HSET", "LPUSH", "OBJECT", "FLUSHALL", "KEYS", "SORT")],
    ["args", fc.array(fc.oneof(key, int), { maxLength: 3 })],
    ["options", fc.record({ keys: fc.array(fc.nat(2), { maxLength: 2 }) })]
  ])
]

/**
 * The project's keys without an expiry and their values' types, read by the operator's raw client (keys with a time
 * to live, which earlier successful calls may have set, go by themselves).
 */
const snapshot = (raw: IORedis, prefix: string) =>
  Fx.call(async () => {
    const keys = (await raw.keys(`${prefix.replace(/[*?[\]\\]/g, "\\$&")}*`)).sort()
    const info = await Promise.all(keys.map(async (k) => [await raw.type(k), await raw.pttl(k)] as const))
    return keys.flatMap((k, i) => (info[i]![1] === -1 ? [`${k}=${info[i]![0]}`] : [])).join(",")
  })

const clear = (raw: IORedis, prefix: string) =>
  Fx.call(async () => {
    const keys = await raw.keys(`${prefix}*`)
    if (keys.length > 0) await raw.del(...keys)
  })

// Keys on the server that carry the canary's unique middle: something hostile reached the server as a key name.
const canaryKeys = (raw: IORedis) => Fx.call(() => raw.keys(`*${c.slice(7, 43)}*`))

describe("Redis bad input: the engine's operations", () => {
  for (const o of operations) {
    it.live(`${o.name}: a success or a RedisError naming the argument; a failure leaves the keys as they were`, () =>
      Effect.gen(function* () {
        const url = TestServers.url("redis")
        const raw = yield* Fx.raw(url)
        const registry = yield* MemoryRegistry
        const tenancy = yield* Tenancy.Tenancy
        const redis = yield* RedisEngine.RedisEngine
        const id = Fx.projectId("badinput")
        yield* registry.register({ id, tier: "PRO", redis: url })
        const prefix = `${id}:`
        yield* H.check(
          [fc.tuple(...o.args.map(([, valid]) => H.orValid(c, valid, 2)))],
          (samples) =>
            Effect.gen(function* () {
              const args = samples.map((s) => s.make())
              const before = yield* snapshot(raw, prefix)
              const outcome = yield* H.run(() => o.call(redis, args), {
                timeout: o.waits === true ? "150 millis" : "5 seconds"
              }).pipe(tenancy.withProject(id), Effect.orDie)
              H.expect(
                `${o.name}(${samples.map((s) => s.label).join(", ")})`,
                outcome,
                expectation(
                  o.args.map(([name]) => name),
                  { mayHang: o.waits === true }
                )
              )
              if (outcome._tag !== "Success" && outcome._tag !== "Hung") {
                assert.strictEqual(yield* snapshot(raw, prefix), before, `${o.name}: a failed call changed no key`)
              }
            }),
          o.waits === true ? 15 : 60
        )
        assert.deepStrictEqual(yield* canaryKeys(raw), [], "no key outside the project carries the canary")
        yield* clear(raw, prefix)
      }).pipe(Effect.provide(Layer.mergeAll(Fx.layer(), canary.captureLogs)))
    )
  }
})

const plainTags = [
  "RedisError",
  "InvalidConfig",
  "InvalidConnectionString",
  "InvalidProjectId",
  "Closed",
  ...H.guardTags
]

describe("Redis bad input: layers and clients", () => {
  it.live("RedisEngine.layer: InvalidConfig naming the option, or an engine whose calls end typed", () =>
    Effect.gen(function* () {
      const url = TestServers.url("redis")
      yield* H.check(
        [
          H.options(c, {
            autoPipelining: fc.boolean(),
            prefix: fc.constant((id: string) => `${id}:`),
            targetCapacity: fc.integer({ min: 1, max: 100 }),
            connectTimeout: duration,
            dedicatedIdleTimeout: duration,
            clientName: fc.constantFrom("tp-badinput"),
            scripts: fc.record({ trusted: fc.constant(() => false) })
          })
        ],
        (o) =>
          Effect.gen(function* () {
            const id = Fx.projectId("layer")
            const outcome = yield* H.run(() =>
              Effect.gen(function* () {
                yield* (yield* MemoryRegistry).register({ id, tier: "FREE", redis: url })
                const redis = yield* RedisEngine.RedisEngine
                const tenancy = yield* Tenancy.Tenancy
                return yield* redis.get("k").pipe(tenancy.withProject(id))
              }).pipe(
                Effect.provide(
                  RedisEngine.layer(o.make() as any).pipe(
                    Layer.provideMerge(Tenancy.layerMemory({ healthCheckInterval: 0, shutdownTimeout: 0 }))
                  )
                )
              )
            )
            H.expect(`RedisEngine.layer(${o.label})`, outcome, {
              ...expectation(["redis."]),
              tags: plainTags,
              named: (e) => (e as { _tag?: unknown })._tag === "InvalidConfig"
            })
          }),
        80
      )
    }).pipe(Effect.provide(canary.captureLogs))
  )

  it.live("RedisClient.layerStandalone: a typed error naming the argument, or a client whose calls end typed", () =>
    Effect.gen(function* () {
      const url = TestServers.url("redis")
      yield* H.check(
        [
          H.orValid(
            c,
            fc.constant(null).map(() => Fx.projectId("client")),
            2
          ),
          H.options(c, {
            connectionString: fc.constantFrom(url, Redacted.make(url)),
            tier: fc.constantFrom("FREE", "PRO"),
            config: fc.record(
              { minPoolSize: fc.nat(3), maxPoolSize: fc.integer({ min: 3, max: 6 }) },
              { requiredKeys: [] }
            )
          })
        ],
        (i, o) =>
          Effect.gen(function* () {
            const outcome = yield* H.run(() =>
              Effect.gen(function* () {
                const client = yield* RedisClient.RedisClient
                return yield* client.get("k")
              }).pipe(Effect.provide(RedisClient.layerStandalone(i.make() as any, o.make() as any)))
            )
            H.expect(`RedisClient.layerStandalone(${i.label}, ${o.label})`, outcome, {
              ...expectation([]),
              tags: plainTags
            })
          }),
        80
      )
    }).pipe(Effect.provide(canary.captureLogs))
  )

  it.live("RedisClient's methods: a success or a RedisError naming the argument, nothing left behind on failure", () =>
    Effect.gen(function* () {
      const url = TestServers.url("redis")
      const raw = yield* Fx.raw(url)
      const id = Fx.projectId("client")
      const prefix = `${id}:`
      const client = yield* RedisClient.RedisClient
      const methods: ReadonlyArray<readonly [string, ReadonlyArray<readonly [string, fc.Arbitrary<unknown>]>]> = [
        ["get", [["key", key]]],
        [
          "set",
          [
            ["key", key],
            ["value", value],
            ["ttlSeconds", fc.constantFrom(1, 60)]
          ]
        ],
        ["del", [["key", key]]],
        [
          "hset",
          [
            ["key", key],
            ["field", value],
            ["value", value]
          ]
        ],
        [
          "hget",
          [
            ["key", key],
            ["field", value]
          ]
        ],
        [
          "lpush",
          [
            ["key", key],
            ["values", value]
          ]
        ],
        [
          "lrange",
          [
            ["key", key],
            ["start", int],
            ["stop", int]
          ]
        ],
        [
          "zadd",
          [
            ["key", key],
            ["score", int],
            ["member", value]
          ]
        ],
        [
          "publish",
          [
            ["channel", key],
            ["message", value]
          ]
        ],
        ["run", [["f", fc.constant((redis: Engine) => redis.get("k"))]]]
      ]
      for (const [name, args] of methods) {
        yield* H.check(
          [fc.tuple(...args.map(([, valid]) => H.orValid(c, valid, 2)))],
          (samples) =>
            Effect.gen(function* () {
              const before = yield* snapshot(raw, prefix)
              const outcome = yield* H.run(() => (client as any)[name](...samples.map((s) => s.make())))
              H.expect(`RedisClient.${name}(${samples.map((s) => s.label).join(", ")})`, outcome, {
                ...expectation(args.map(([n]) => n)),
                tags: plainTags
              })
              if (outcome._tag === "Failure") {
                assert.strictEqual(yield* snapshot(raw, prefix), before, `${name}: a failed call changed no key`)
              }
            }),
          30
        )
      }
      yield* clear(raw, prefix)
    }).pipe(
      Effect.provide(
        Layer.mergeAll(
          RedisClient.layerStandalone(Fx.projectId("client"), {
            connectionString: TestServers.url("redis"),
            tier: "PRO"
          }),
          canary.captureLogs
        )
      )
    )
  )

  it.live("RedisPersistence.layer: a RedisError or a client, never a defect, never the URL's password", () =>
    H.check(
      [
        H.options(c, {
          url: fc.constantFrom(
            Redacted.make(TestServers.url("redis")),
            Redacted.make(`redis://:${encodeURIComponent(c)}@127.0.0.1:1/0`),
            Redacted.make(`redis://:${c}@[::zz]:6379`)
          ),
          clientName: fc.constant("tp-badinput"),
          pool: fc.record({ minSize: fc.nat(1), maxSize: fc.integer({ min: 1, max: 2 }) }, { requiredKeys: [] })
        })
      ],
      (o) =>
        Effect.gen(function* () {
          const outcome = yield* H.run(() => RedisPersistence.layer(o.make() as any), { timeout: "5 seconds" })
          H.expect(`RedisPersistence.layer(${o.label})`, outcome, {
            ...expectation([]),
            tags: ["RedisError"]
          })
        }),
      40
    ).pipe(Effect.provide(canary.captureLogs))
  )
})

describe("Redis bad input: pure functions", () => {
  it.live("RedisCommandTable.check, entry, commandDetail and RedisError.fromUnknown never throw", () =>
    H.check(
      [H.orValid(c, fc.constantFrom("GET", "set", "FLUSHALL", "OBJECT")), H.anything(c)],
      (name, args) =>
        Effect.sync(() => {
          for (const [call, f] of [
            ["RedisCommandTable.check", () => RedisCommandTable.check(name.make() as any, args.make() as any)],
            ["RedisCommandTable.entry", () => RedisCommandTable.entry(name.make() as any)],
            ["RedisCommandTable.commandDetail", () => RedisCommandTable.commandDetail(name.make() as any)],
            ["RedisError.fromUnknown", () => RedisError.fromUnknown("get")(args.make())]
          ] as const) {
            let outcome: H.Outcome
            try {
              const value: unknown = f()
              outcome = { _tag: "Success", value }
              if (value instanceof RedisError.RedisError) {
                outcome = { _tag: "Failure", error: value, pretty: value.message }
              }
            } catch (thrown) {
              outcome = { _tag: "Threw", thrown }
            }
            H.expect(`${call}(${name.label}, ${args.label})`, outcome, { ...expectation([]), tags: ["RedisError"] })
          }
        }),
      300
    )
  )
})
