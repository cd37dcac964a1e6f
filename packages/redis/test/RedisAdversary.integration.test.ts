/**
 * A hostile project against another on the same server and the same Redis user (prefixes are all that separate
 * them): the attacker tries every class of command that could reach the victim's keys, another database, the
 * server's configuration, other clients or the state of the connection both share, through `command`, `multi` and
 * `watch`. The operator's raw client decides: the victim's keys, every other database, the configuration, the other
 * clients' connections, functions and ACL users are as they were (snapshot before and after), no message reached a
 * channel outside the attacker's prefix, and the victim's own reads on the shared connection still get its values.
 * Also the cases a later red-team pass found: arguments that change between the check and the send (a getter, a
 * Proxy, an Array subclass whose `map` lies, an endless iterator), and key-locating corner cases.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import { RedisError } from "../src/RedisError.ts"
import * as Op from "./fixtures/Operator.ts"
import * as Fx from "./fixtures/Redis.ts"

/** Two projects on a private server, the victim's data, an operator's keys, and a listener on every channel. */
const arena = Effect.gen(function* () {
  const { server, operator, redis, tenancy, ids } = yield* Fx.onPrivateServer([
    ["victim", "PRO"],
    ["attacker", "PRO"]
  ])
  const [victim, attacker] = ids as [string, string]
  const asVictim = tenancy.withProject(victim)
  const asAttacker = tenancy.withProject(attacker)
  yield* Effect.gen(function* () {
    yield* redis.set("secret", "victim's secret")
    yield* redis.hset("profile", { name: "V", email: "v@example.com" })
    yield* redis.rpush("queue", "job-1", "job-2")
    yield* redis.sadd("members", "a", "b")
    yield* redis.zadd("scores", { member: "m", score: 1 })
  }).pipe(asVictim)
  yield* Fx.call(() => operator.xadd(`${victim}:stream`, "*", "f", "v"))
  yield* Fx.call(() => operator.set("operator:config", "kept"))
  yield* Fx.call(() => operator.set("secret", "an unprefixed key"))
  yield* Fx.call(() =>
    operator
      .select(1)
      .then(() => operator.set("db1:key", "in db 1"))
      .then(() => operator.select(0))
  )
  yield* redis.get("warm-up").pipe(asAttacker)
  const leaked = yield* Op.listenOutside(server.url, `${attacker}:`)
  const before = yield* Op.snapshot(operator, `${attacker}:`)
  return { server, operator, redis, tenancy, victim, attacker, asVictim, asAttacker, leaked, before }
})

type Arena = Effect.Success<typeof arena>

/** The operator's verdict: nothing outside the attacker's prefix changed, and the shared connection is sound. */
const untouched = (a: Arena) =>
  Effect.gen(function* () {
    // Published messages reach the listener asynchronously.
    yield* Effect.sleep("50 millis")
    assert.deepStrictEqual(Op.changes(a.before, yield* Op.snapshot(a.operator, `${a.attacker}:`)), [])
    assert.deepStrictEqual(a.leaked, [], "no message reached a channel outside the attacker's prefix")
    const shared = (yield* Fx.clientList(a.operator)).filter((c) => c.name === "tenantpool")
    assert.strictEqual(shared.length, 1)
    const s = shared[0]!.fields
    assert.deepStrictEqual(
      [s["db"], s["multi"], s["sub"], s["psub"], s["flags"]],
      ["0", "-1", "0", "0", "N"],
      "the shared connection: database 0, no transaction, no subscription, no special mode"
    )
    const reads = yield* Effect.all(
      Array.from({ length: 20 }, () => a.redis.get("secret").pipe(a.asVictim)),
      { concurrency: "unbounded" }
    )
    assert.isTrue(
      reads.every((r) => r === "victim's secret"),
      "the victim's replies are its own"
    )
  })

/** Runs an attack; returns its error (a `RedisError`) or its value. */
const attempt = <A, E, R>(attack: Effect.Effect<A, E, R>) =>
  Effect.map(Effect.exit(attack), (exit) =>
    Exit.isSuccess(exit) ? { ok: true as const, value: exit.value as unknown } : { ok: false as const, exit }
  )

/** The attack failed with a `RedisError` of one of `kinds`, sent nothing; returns it. */
const refused = <A, E, R>(attack: Effect.Effect<A, E, R>, kinds: ReadonlyArray<string>, what: string) =>
  Effect.gen(function* () {
    const error = yield* Effect.flip(attack)
    assert.instanceOf(error, RedisError, what)
    const e = error as unknown as RedisError
    assert.include(kinds, e.kind, `${what}: ${e.message}`)
    assert.isFalse(e.sent, what)
    return e
  })

// Everything that reaches another database or host, the server's configuration, other clients, or the state of
// the connection the projects share, with the command name the refusal must carry.
const reachAttacks: ReadonlyArray<readonly [string, ReadonlyArray<string | number>, string]> = [
  ["KEYS", ["*"], "KEYS"],
  ["SCAN", [0, "MATCH", "*"], "SCAN"],
  ["RANDOMKEY", [], "RANDOMKEY"],
  ["DBSIZE", [], "DBSIZE"],
  ["FLUSHALL", [], "FLUSHALL"],
  ["FLUSHDB", ["ASYNC"], "FLUSHDB"],
  ["SELECT", [1], "SELECT"],
  ["SWAPDB", [0, 1], "SWAPDB"],
  ["MOVE", ["secret", 1], "MOVE"],
  ["COPY", ["secret", "stolen", "DB", 1], "COPY"],
  ["MIGRATE", ["127.0.0.1", 1, "", 0, 1000, "KEYS", "secret"], "MIGRATE"],
  ["CONFIG", ["SET", "maxmemory", "1"], "CONFIG"],
  ["config", ["get", "requirepass"], "CONFIG"],
  ["CLIENT", ["LIST"], "CLIENT"],
  ["CLIENT", ["KILL", "SKIPME", "yes"], "CLIENT"],
  ["CLIENT", ["REPLY", "OFF"], "CLIENT"],
  ["CLIENT", ["SETNAME", "evil"], "CLIENT"],
  ["CLIENT", ["PAUSE", 10000], "CLIENT"],
  ["CLIENT", ["TRACKING", "on", "BCAST"], "CLIENT"],
  ["HELLO", [2], "HELLO"],
  ["AUTH", ["default", "guess"], "AUTH"],
  ["RESET", [], "RESET"],
  ["READONLY", [], "READONLY"],
  ["READWRITE", [], "READWRITE"],
  ["ASKING", [], "ASKING"],
  ["QUIT", [], "QUIT"],
  ["MULTI", [], "MULTI"],
  ["EXEC", [], "EXEC"],
  ["DISCARD", [], "DISCARD"],
  ["WATCH", ["secret"], "WATCH"],
  ["UNWATCH", [], "UNWATCH"],
  ["SUBSCRIBE", ["c"], "SUBSCRIBE"],
  ["PSUBSCRIBE", ["*"], "PSUBSCRIBE"],
  ["SSUBSCRIBE", ["c"], "SSUBSCRIBE"],
  ["MONITOR", [], "MONITOR"],
  ["PUBSUB", ["CHANNELS", "*"], "PUBSUB"],
  ["DEBUG", ["SLEEP", 1], "DEBUG"],
  ["SHUTDOWN", ["NOSAVE"], "SHUTDOWN"],
  ["SAVE", [], "SAVE"],
  ["BGSAVE", [], "BGSAVE"],
  ["REPLICAOF", ["127.0.0.1", 1], "REPLICAOF"],
  ["FAILOVER", [], "FAILOVER"],
  ["ACL", ["SETUSER", "evil", "on", "nopass", "~*", "+@all"], "ACL"],
  ["MODULE", ["LOAD", "/tmp/x.so"], "MODULE"],
  ["SLOWLOG", ["GET"], "SLOWLOG"],
  ["LATENCY", ["RESET"], "LATENCY"],
  ["MEMORY", ["PURGE"], "MEMORY PURGE"],
  ["INFO", ["keyspace"], "INFO"],
  ["FUNCTION", ["FLUSH"], "FUNCTION"],
  ["SCRIPT", ["FLUSH"], "SCRIPT FLUSH"],
  ["SCRIPT", ["KILL"], "SCRIPT KILL"],
  ["RESTORE", ["x", 0, "\u0000"], "RESTORE"],
  ["WAIT", [0, 0], "WAIT"],
  ["BLPOP", ["queue", 0], "BLPOP"],
  ["XREAD", ["BLOCK", 0, "STREAMS", "s", "$"], "XREAD"],
  ["SYNC", [], "SYNC"],
  ["PFDEBUG", ["GETREG", "x"], "PFDEBUG"],
  ["OBJECT", ["HELP"], "OBJECT HELP"],
  ["COMMAND", ["GETKEYS", "GET", "x"], "COMMAND"]
]

describe("RedisEngine against a hostile project on the same server and user", () => {
  it.live("commands that reach another database, host, the configuration, clients or the connection are refused", () =>
    Effect.gen(function* () {
      const a = yield* arena
      for (const [name, args, named] of reachAttacks) {
        const e = yield* refused(
          a.redis.command(name, args).pipe(a.asAttacker),
          ["forbidden"],
          `${name} ${args.join(" ")}`
        )
        assert.strictEqual(e.command, named, "the refusal names the command")
        const queued = yield* refused(
          a.redis
            .multi([
              { command: "SET", args: ["innocent", "1"] },
              { command: name, args }
            ])
            .pipe(a.asAttacker),
          ["forbidden"],
          `MULTI ${name}`
        )
        assert.strictEqual(queued.command, named)
        const watched = yield* refused(
          a.redis.watch(["innocent"], () => Effect.succeed([{ command: name, args }])).pipe(a.asAttacker),
          ["forbidden"],
          `WATCH … ${name}`
        )
        assert.strictEqual(watched.command, named)
      }
      assert.isNull(yield* a.redis.get("innocent").pipe(a.asAttacker), "a refused transaction applies nothing")
      yield* untouched(a)
    }).pipe(Effect.provide(Fx.layer()))
  )

  it.live("caller-given key positions add to the table's, never remove them", () =>
    Effect.gen(function* () {
      const a = yield* arena
      const victimKey = `${a.victim}:secret`
      for (const keys of [[], undefined] as const) {
        const got = yield* a.redis
          .command("GET", [victimKey], keys === undefined ? undefined : { keys })
          .pipe(a.asAttacker)
        assert.isNull(got, "GET victim:secret reads the attacker's own attacker:victim:secret")
        const queued = yield* a.redis.multi([{ command: "GET", args: [victimKey], keys: [] }]).pipe(a.asAttacker)
        assert.deepStrictEqual(queued, [null])
      }
      yield* a.redis.command("SET", [victimKey, "overwritten?"], { keys: [] }).pipe(a.asAttacker)
      yield* a.redis.command("DEL", ["secret", victimKey, "operator:config"], { keys: [1] }).pipe(a.asAttacker)
      yield* a.redis.command("RENAME", ["x", victimKey]).pipe(a.asAttacker, Effect.ignore)
      yield* a.redis.command("EXPIRE", [victimKey, 1]).pipe(a.asAttacker)
      for (const bad of [[5], [-1], [0.5], ["0"], null, "0"]) {
        yield* refused(
          a.redis.command("GET", ["k"], { keys: bad as never }).pipe(a.asAttacker),
          ["argument"],
          `keys ${JSON.stringify(bad)}`
        )
      }
      yield* refused(
        a.redis.command("JSON.GET", [victimKey], { keys: [0] }).pipe(a.asAttacker),
        ["forbidden"],
        "a module command"
      )
      yield* untouched(a)
    }).pipe(Effect.provide(Fx.layer()))
  )

  it.live(
    "keys found by keyword, key count and SORT's own reading are prefixed; what cannot be located is not sent",
    () =>
      Effect.gen(function* () {
        const a = yield* arena
        const v = (k: string) => `${a.victim}:${k}`
        const run = (name: string, args: ReadonlyArray<string | number>) =>
          attempt(a.redis.command(name, args).pipe(a.asAttacker))
        // Writes into keys named after the victim's land under the attacker's prefix.
        yield* a.redis.rpush("list", "3", "1").pipe(a.asAttacker)
        yield* a.redis.command("GEOADD", ["geo", 0, 0, "m"]).pipe(a.asAttacker)
        const read = yield* run("XREAD", ["COUNT", 10, "STREAMS", v("stream"), "0"])
        assert.isTrue(read.ok && read.value === null, "XREAD reads the attacker's own (empty) stream")
        yield* run("XADD", [v("stream"), "*", "f", "x"])
        yield* run("SORT", ["list", "STORE", v("secret")])
        yield* run("SORT", ["list", "LIMIT", 0, 1, "STORE", "mine", "STORE", v("secret")])
        yield* run("GEORADIUS", ["geo", 0, 0, 100, "km", "STOREDIST", v("secret")])
        yield* run("ZUNIONSTORE", [v("scores"), 1, v("scores")])
        yield* run("ZUNIONSTORE", [v("scores"), 1, "x", v("scores")])
        yield* run("BITOP", ["OR", v("secret"), "list"])
        yield* run("LMOVE", [v("queue"), v("queue"), "LEFT", "RIGHT"])
        yield* run("SMOVE", [v("members"), "mine", "a"])
        yield* run("COPY", [v("profile"), "stolen"])
        yield* run("GEOSEARCHSTORE", [v("secret"), "geo", "FROMLONLAT", 0, 0, "BYRADIUS", 1, "km"])
        yield* run("XGROUP", ["CREATE", v("stream"), "g", "$", "MKSTREAM"])
        yield* run("PFMERGE", [v("secret"), v("hll")])
        yield* run("MSET", ["mine", 1, v("secret"), 2])
        assert.isNull(yield* a.redis.get("stolen").pipe(a.asAttacker), "COPY read the attacker's own (empty) key")
        // The server's parser takes the last STORE, the specification the first: refused rather than guessed.
        yield* refused(
          a.redis
            .command("GEORADIUS", ["geo", 0, 0, 100, "km", "STORE", "mine", "STORE", v("secret")])
            .pipe(a.asAttacker),
          ["argument"],
          "two STOREs"
        )
        yield* refused(
          a.redis
            .command("XREADGROUP", ["NOACK", "GROUP", "g", "STREAMS", "STREAMS", v("stream"), ">"])
            .pipe(a.asAttacker),
          ["argument"],
          "two STREAMS"
        )
        yield* refused(
          a.redis.command("ZUNIONSTORE", ["d", 3, "a"]).pipe(a.asAttacker),
          ["arity"],
          "a key count too large"
        )
        yield* refused(
          a.redis.command("SORT", ["list", "BY", `${a.victim}:*`]).pipe(a.asAttacker),
          ["forbidden"],
          "SORT BY"
        )
        yield* refused(
          a.redis.command("SORT", ["list", "GET", `${a.victim}:*`]).pipe(a.asAttacker),
          ["forbidden"],
          "SORT GET"
        )
        yield* refused(
          a.redis.command("SORT_RO", ["list", "GET", "#"]).pipe(a.asAttacker),
          ["forbidden"],
          "SORT_RO GET"
        )
        // Redis compares command names and keywords ignoring ASCII case only.
        yield* refused(a.redis.command("ſcan", [0]).pipe(a.asAttacker), ["forbidden"], "a look-alike name")
        yield* refused(a.redis.command("CONFIG|GET", ["*"]).pipe(a.asAttacker), ["forbidden"], "a subcommand path")
        yield* refused(a.redis.command("GET\r\nFLUSHALL", ["k"]).pipe(a.asAttacker), ["forbidden"], "CRLF in a name")
        yield* untouched(a)
      }).pipe(Effect.provide(Fx.layer()))
  )

  it.live("publishing reaches only the attacker's channels, through command, multi and the typed publish", () =>
    Effect.gen(function* () {
      const a = yield* arena
      const channel = `${a.victim}:events`
      yield* a.redis.command("PUBLISH", [channel, "spoofed"]).pipe(a.asAttacker)
      yield* a.redis.command("SPUBLISH", [channel, "spoofed"]).pipe(a.asAttacker)
      yield* a.redis.command("PUBLISH", [channel, "spoofed"], { keys: [] }).pipe(a.asAttacker)
      yield* a.redis.multi([{ command: "PUBLISH", args: [channel, "spoofed"] }]).pipe(a.asAttacker)
      yield* a.redis.publish(channel, "spoofed").pipe(a.asAttacker)
      yield* a.redis.publish("events", "own").pipe(a.asAttacker)
      yield* untouched(a)
    }).pipe(Effect.provide(Fx.layer()))
  )

  it.live("scripts and functions are refused on a shared user, however they are sent", () =>
    Effect.gen(function* () {
      const a = yield* arena
      const lua = `redis.call('SET', '${a.victim}:secret', 'pwned') return 1`
      const sha = (yield* Fx.call(() => a.operator.script("LOAD", lua))) as string
      yield* Fx.call(() =>
        a.operator.call(
          "FUNCTION",
          "LOAD",
          "#!lua name=ops\nredis.register_function('touch', function(k) return redis.call('DEL', 'operator:config') end)"
        )
      )
      const before = yield* Op.snapshot(a.operator, `${a.attacker}:`)
      const attacks = [
        a.redis.command("EVAL", [lua, 0]),
        a.redis.command("eval_ro", ["return redis.call('GET', KEYS[1])", 1, "k"]),
        a.redis.command("EVALSHA", [sha, 0]),
        a.redis.command("FCALL", ["touch", 0]),
        a.redis.command("FCALL_RO", ["touch", 0]),
        a.redis.command("SCRIPT", ["LOAD", lua]),
        a.redis.multi([{ command: "EVAL", args: [lua, 0] }]),
        a.redis.watch(["x"], () => Effect.succeed([{ command: "EVALSHA", args: [sha, 0] }])),
        a.redis.evalScript(a.redis.script(lua), [], [])
      ]
      for (const [i, attack] of attacks.entries())
        yield* refused(attack.pipe(a.asAttacker), ["forbidden"], `script ${i}`)
      assert.deepStrictEqual(Op.changes(before, yield* Op.snapshot(a.operator, `${a.attacker}:`)), [])
      assert.strictEqual(yield* Fx.call(() => a.operator.get(`${a.victim}:secret`)), "victim's secret")
    }).pipe(Effect.provide(Fx.layer()))
  )

  it.live("arguments the engine cannot send as they are fail as the caller's error, before anything is sent", () =>
    Effect.gen(function* () {
      const a = yield* arena
      const odd: ReadonlyArray<unknown> = [undefined, null, {}, [], { toString: () => "FLUSHALL" }, NaN, Infinity, 1n]
      for (const value of odd) {
        const what = String(typeof value)
        yield* refused(a.redis.command("SET", ["k", value as never]).pipe(a.asAttacker), ["argument"], `arg ${what}`)
        yield* refused(a.redis.command(value as never, ["k"]).pipe(a.asAttacker), ["argument"], `name ${what}`)
        yield* refused(
          a.redis.multi([{ command: "SET", args: ["k", value as never] }]).pipe(a.asAttacker),
          ["argument"],
          `queued ${what}`
        )
      }
      yield* refused(a.redis.command("SET", "k v" as never).pipe(a.asAttacker), ["argument"], "args not an array")
      yield* refused(a.redis.multi("SET k v" as never).pipe(a.asAttacker), ["argument"], "multi of a string")
      yield* refused(a.redis.multi([null as never]).pipe(a.asAttacker), ["argument"], "a null queued command")
      yield* refused(
        a.redis.watch(["k"], (() => "FLUSHALL") as never).pipe(a.asAttacker),
        ["argument"],
        "a body that is no Effect"
      )
      yield* untouched(a)
    }).pipe(Effect.provide(Fx.layer()))
  )
})

// ---- found by a red-team pass: arguments that change between the check and the send ----

/** The victim's data as the operator sees it. */
const victimIntact = (a: Arena) =>
  Effect.gen(function* () {
    assert.strictEqual(yield* Fx.call(() => a.operator.get(`${a.victim}:secret`)), "victim's secret")
    assert.deepStrictEqual(yield* Fx.call(() => a.operator.lrange(`${a.victim}:queue`, 0, -1)), ["job-1", "job-2"])
  })

/** An array that reads `first` on its first read of index `i`, `later` afterwards. */
const flipping = (base: ReadonlyArray<string | number>, i: number, first: string, later: string) => {
  const arr = [...base]
  let reads = 0
  Object.defineProperty(arr, i, { enumerable: true, get: () => (reads++ === 0 ? first : later) })
  return arr
}

/** An array whose every read of index `i` after `n` reads returns `later`. */
const flippingAfter = (base: ReadonlyArray<string | number>, i: number, n: number, later: string) => {
  const arr = [...base]
  const first = arr[i]!
  let reads = 0
  Object.defineProperty(arr, i, { enumerable: true, get: () => (reads++ < n ? first : later) })
  return arr
}

/** An array of strings whose own `map` returns `lie` (an Array subclass; `Array.isArray` is true). */
const lyingMap = (honest: ReadonlyArray<string>, lie: ReadonlyArray<string>): Array<string> => {
  class Lying extends Array<string> {
    override map<U>(): Array<U> {
      return [...lie] as Array<U>
    }
  }
  const out = new Lying()
  for (const s of honest) Array.prototype.push.call(out, s)
  return out
}

/** Ends as a typed RedisError (or success); never a defect. */
const noDefect = <A, E, R>(self: Effect.Effect<A, E, R>, what: string) =>
  Effect.gen(function* () {
    const exit = yield* Effect.exit(self)
    if (Exit.isFailure(exit)) {
      const e = Exit.findErrorOption(exit)
      assert.isTrue(e._tag === "Some" && e.value instanceof RedisError, `${what}: a typed RedisError, not a defect`)
    }
    return exit
  })

describe("RedTeam: arguments that change after the check", () => {
  it.live("command: a SORT keyword that reads ASC at check time and STORE at send time", () =>
    Effect.gen(function* () {
      const a = yield* arena
      yield* a.redis.rpush("list", "3", "1").pipe(a.asAttacker)
      // Read once by commandArgs, once by check's argument scan, once by the SORT rule: flip after those.
      for (const n of [1, 2, 3, 4]) {
        const args = flippingAfter(["list", "ASC", `${a.victim}:secret`], 1, n, "STORE")
        yield* noDefect(a.redis.command("SORT", args, { keys: [2] }).pipe(a.asAttacker), `SORT flip ${n}`)
        const args2 = flippingAfter(["list", "ASC", "ASC", `${a.victim}:*`], 2, n, "GET")
        yield* noDefect(a.redis.command("SORT", args2).pipe(a.asAttacker), `SORT GET flip ${n}`)
      }
      const queued = flipping(["list", "ASC", `${a.victim}:secret`], 1, "ASC", "STORE")
      yield* noDefect(a.redis.multi([{ command: "SORT", args: queued, keys: [2] }]).pipe(a.asAttacker), "multi")
      yield* victimIntact(a)
    }).pipe(Effect.provide(Fx.layer()))
  )

  it.live("command: a Proxy of arguments that answers differently each time", () =>
    Effect.gen(function* () {
      const a = yield* arena
      let n = 0
      const proxy = new Proxy(["k", "v"], {
        get: (t, p, r) =>
          p === "map"
            ? () => [`${a.victim}:secret`, "pwned"]
            : p === "0" && n++ > 2
              ? `${a.victim}:secret`
              : Reflect.get(t, p, r)
      })
      yield* noDefect(a.redis.command("SET", proxy).pipe(a.asAttacker), "SET proxy")
      yield* noDefect(a.redis.multi([{ command: "SET", args: proxy }]).pipe(a.asAttacker), "multi SET proxy")
      yield* noDefect(
        a.redis.watch(["x"], () => Effect.succeed([{ command: "SET", args: proxy }])).pipe(a.asAttacker),
        "watch SET proxy"
      )
      const endless = new Proxy([], {
        get: (t, p, r) =>
          p === Symbol.iterator
            ? function* () {
                for (;;) yield { command: "PING", args: [] }
              }
            : Reflect.get(t, p, r)
      })
      yield* noDefect(a.redis.multi(endless).pipe(a.asAttacker), "multi of an endless iterator")
      // A sparse array as long as an array can be costs nothing to make: refused by its length, not copied.
      const huge: Array<string> = []
      huge.length = 2 ** 32 - 1
      for (const [what, effect] of [
        ["command args", a.redis.command("MGET", huge)],
        ["multi", a.redis.multi(huge as never)],
        ["hmget fields", a.redis.hmget("h", huge)]
      ] as const) {
        const exit = yield* noDefect(effect.pipe(a.asAttacker), what)
        const error = Exit.isFailure(exit) ? Exit.findErrorOption(exit) : undefined
        assert.isTrue(
          error?._tag === "Some" && error.value instanceof RedisError && error.value.kind === "argument",
          `${what}: refused as the caller's argument`
        )
      }
      // The same for every other array argument the engine sends: read by index, never through the iterator.
      const endlessStrings = new Proxy(["f"], {
        get: (t, p, r) =>
          p === Symbol.iterator
            ? function* () {
                for (;;) yield "f"
              }
            : Reflect.get(t, p, r)
      })
      const fields = yield* noDefect(a.redis.hmget("h", endlessStrings).pipe(a.asAttacker), "hmget endless fields")
      assert.isTrue(Exit.isSuccess(fields), "hmget sends the one field the array holds")
      yield* noDefect(
        a.redis.evalScript(a.redis.script("return #ARGV"), [], endlessStrings).pipe(a.asAttacker),
        "evalScript endless args"
      )
      yield* victimIntact(a)
    }).pipe(Effect.provide(Fx.layer()))
  )

  it.live("typed mget with an array whose map lies reads only the attacker's keys", () =>
    Effect.gen(function* () {
      const a = yield* arena
      const exit = yield* noDefect(
        a.redis.mget(lyingMap(["secret"], [`${a.victim}:secret`])).pipe(a.asAttacker),
        "mget"
      )
      if (Exit.isSuccess(exit)) assert.deepStrictEqual(exit.value, [null], "mget read the victim's secret")
    }).pipe(Effect.provide(Fx.layer()))
  )

  it.live("typed mget with a key that turns into a non-string after the check: a typed error, nothing sent", () =>
    Effect.gen(function* () {
      const a = yield* arena
      const ks: Array<string> = ["mine"]
      let reads = 0
      Object.defineProperty(ks, 0, { enumerable: true, get: () => (reads++ === 0 ? "mine" : { toString: () => "x" }) })
      const exit = yield* noDefect(a.redis.mget(ks).pipe(a.asAttacker), "mget flipping key")
      const error = Exit.isFailure(exit) ? Exit.findErrorOption(exit) : undefined
      assert.isTrue(
        error?._tag === "Some" &&
          error.value instanceof RedisError &&
          error.value.kind === "argument" &&
          !error.value.sent,
        "refused as the caller's argument, unsent"
      )
      yield* victimIntact(a)
    }).pipe(Effect.provide(Fx.layer()))
  )

  it.live("typed blpop with an array whose map lies pops only the attacker's lists", () =>
    Effect.gen(function* () {
      const a = yield* arena
      yield* noDefect(
        a.redis.blpop(lyingMap(["queue"], [`${a.victim}:queue`]), "50 millis").pipe(a.asAttacker),
        "blpop"
      )
      yield* victimIntact(a)
    }).pipe(Effect.provide(Fx.layer()))
  )

  it.live("watch with keys whose map lies does not watch the victim's keys", () =>
    Effect.gen(function* () {
      const a = yield* arena
      const exit = yield* Effect.exit(
        a.redis
          .watch(lyingMap(["secret"], [`${a.victim}:secret`]), () =>
            Effect.andThen(
              a.redis.set("secret", "changed by the victim").pipe(a.asVictim, Effect.orDie),
              Effect.succeed([{ command: "SET", args: ["probe", "1"] }])
            )
          )
          .pipe(a.asAttacker)
      )
      const e = Exit.isFailure(exit) ? Exit.findErrorOption(exit) : undefined
      assert.isFalse(
        e !== undefined && e._tag === "Some" && (e.value as RedisError).kind === "conflict",
        "the attacker observed the victim's write through WATCH"
      )
    }).pipe(Effect.provide(Fx.layer()))
  )
})

describe("RedTeam: key-locating corner cases", () => {
  it.live("keywords as values, odd numbers and names never reach the victim nor die", () =>
    Effect.gen(function* () {
      const a = yield* arena
      const v = `${a.victim}:secret`
      yield* a.redis.command("GEOADD", ["geo", 0, 0, "STORE"]).pipe(a.asAttacker)
      const cases: ReadonlyArray<readonly [string, ReadonlyArray<string | number>, { keys?: Array<number> }?]> = [
        ["GEORADIUSBYMEMBER", ["geo", "STORE", 100, "km", "STORE", v]],
        ["GEORADIUS", ["geo", 0, 0, 100, "km", "COUNT", "STORE", v]],
        ["GEORADIUS", ["geo", 0, 0, 100, "km", "STORE", v], { keys: [5] }],
        ["XREADGROUP", ["GROUP", "block", "c", "STREAMS", v, ">"]],
        ["XREADGROUP", ["GROUP", "g", "c", "COUNT", "STREAMS", "STREAMS", v, ">"]],
        ["OBJECT", ["ENCODING", v], { keys: [0] }],
        ["LMPOP", [1e21, v, "LEFT"]],
        ["LMPOP", ["01", v, "LEFT"]],
        ["LMPOP", [1.5, v, "LEFT"]],
        ["ZMPOP", [-0, v, "MIN"]],
        ["SINTERCARD", [1, v, "LIMIT", 0]],
        ["EXISTS", [v, "\r\nFLUSHALL\r\n"]],
        ["SET", [`${v}\r\n`, "x"]],
        ["get\u0000", [v]],
        ["G\u0130T", [v]],
        ["XINFO", ["STREAM", v, "FULL"]],
        ["MEMORY", ["usage", v, "SAMPLES", 0]],
        ["XGROUP", ["HELP"]],
        ["BITFIELD", [v, "SET", "u8", 0, 1]],
        ["SORT", ["list", "LIMIT", "STORE", 1, "STORE", v]],
        ["SORT", ["list", "by", "NoSort", "STORE", v]],
        ["GETEX", [v, "PERSIST"]],
        ["COPY", ["list", v, "db", 0]],
        ["RENAME", ["list", v]]
      ]
      for (const [name, args, opts] of cases)
        yield* noDefect(a.redis.command(name, args, opts).pipe(a.asAttacker), `${name} ${args.join(" ")}`)
      assert.strictEqual(yield* Fx.call(() => a.operator.get(v)), "victim's secret")
      assert.deepStrictEqual(yield* Fx.call(() => a.operator.lrange(`${a.victim}:queue`, 0, -1)), ["job-1", "job-2"])
      const dbs = yield* Fx.call(() => a.operator.call("CONFIG", "GET", "databases"))
      assert.isDefined(dbs)
    }).pipe(Effect.provide(Fx.layer()))
  )
})
