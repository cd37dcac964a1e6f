/**
 * The typed data commands of the Redis engine, by family (strings, hashes, lists, sets, sorted sets, SCAN): each
 * checks its arguments (a bad one fails the call before anything is admitted or sent), prefixes its keys, runs
 * through the guard on the shared connection (`blpop`/`brpop` on a dedicated one), and shapes the reply. Each
 * family is a function of the guard's handle returning its part of the service.
 *
 * @since 0.1.0
 */
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import type { Redis as IORedis } from "ioredis"
import { RedisError } from "../RedisError.ts"
import * as A from "./arguments.ts"
import { send } from "./connections.ts"
import { key, keys, pattern as prefixedPattern, strip } from "./keys.ts"
import { callMillis, errFor, type Handle, OP, onConn, type RedisOperation, run, runDedicated } from "./operations.ts"

/** Options of `SET` (published as `RedisEngine.SetOptions`). */
export interface SetOptions {
  /** Expire after this long. */
  readonly ttl?: Duration.Input | undefined
  /** Only set if the key does not exist. */
  readonly nx?: boolean | undefined
  /** Only set if the key exists. */
  readonly xx?: boolean | undefined
}

/** A member of a sorted set with its score (published as `RedisEngine.ScoredMember`). */
export interface ScoredMember {
  readonly member: string
  readonly score: number
}

// Integer replies that mean yes or no (EXPIRE, HEXISTS, SISMEMBER).
const isOne = (n: number): boolean => n === 1

// A command of one key and nothing else: checked, prefixed, sent on the shared connection.
const keyed =
  <A>(handle: Handle, o: RedisOperation, name: string, f: (c: IORedis, key: string) => Promise<A>) =>
  (k: string) => {
    const mapError = errFor(name)
    return A.checked(A.string(name, "key", k), () =>
      run(handle, o, (b, s) => send(b, s, (c) => f(c, key(b, k))), mapError)
    )
  }

const getError = errFor("get")
const setError = errFor("set")

/** GET, SET and the other string commands. */
export const strings = (handle: Handle) => ({
  // The hottest command: one typeof and one closure per call on the fast path (the connection is ready and not
  // auto-pipelining; `send` decides between a direct write and the batch otherwise).
  get: (k: string) =>
    typeof k !== "string"
      ? Effect.fail(A.string("get", "key", k)!)
      : handle.run(
          OP.get,
          (b, s) =>
            b.conn.status === "ready" && !b.shared.adaptive
              ? b.conn.get(b.prefix + k)
              : send(b, s, (c) => c.get(b.prefix + k)),
          getError,
          undefined,
          OP.get.detail
        ),
  set: (k: string, value: string, options?: SetOptions) => {
    const o = A.record("set", "options", options, ["ttl", "nx", "xx"] as const)
    const invalid =
      A.string("set", "key", k) ?? A.string("set", "value", value) ?? (o instanceof RedisError ? o : undefined)
    const px =
      invalid !== undefined || (o as SetOptions).ttl === undefined
        ? undefined
        : callMillis("set", "ttl", (o as SetOptions).ttl!)
    return A.checked(invalid ?? (px instanceof RedisError ? px : undefined), () => {
      const { nx, xx } = o as SetOptions
      return run(
        handle,
        nx === true || xx === true ? OP.setnx : OP.set,
        (b, s) =>
          send(b, s, (c) => {
            const args: Array<string | number> = []
            if (px !== undefined) args.push("PX", px as number)
            if (nx === true) args.push("NX")
            if (xx === true) args.push("XX")
            return args.length === 0
              ? c.set(b.prefix + k, value)
              : (c.call("SET", b.prefix + k, value, ...args) as Promise<string | null>)
          }).then((r) => r === "OK"),
        setError
      )
    })
  },
  mget: (ks: ReadonlyArray<string>) =>
    A.checked(A.strings("mget", "keys", ks), () =>
      run(handle, OP.mget, (b, s) => send(b, s, (c) => c.mget(...keys(b, ks))), errFor("mget"))
    ),
  mset: (entries: Readonly<Record<string, string>>) =>
    A.checked(A.entries("mset", "entries", entries), () =>
      run(
        handle,
        OP.mset,
        (b, s) =>
          send(b, s, (c) => c.mset(Object.fromEntries(Object.entries(entries).map(([k, v]) => [key(b, k), v])))).then(
            () => undefined
          ),
        errFor("mset")
      )
    ),
  del: (...ks: ReadonlyArray<string>) =>
    A.checked(A.strings("del", "keys", ks), () =>
      run(handle, OP.del, (b, s) => send(b, s, (c) => c.del(...keys(b, ks))), errFor("del"))
    ),
  exists: (...ks: ReadonlyArray<string>) =>
    A.checked(A.strings("exists", "keys", ks), () =>
      run(handle, OP.exists, (b, s) => send(b, s, (c) => c.exists(...keys(b, ks))), errFor("exists"))
    ),
  expire: (k: string, ttl: Duration.Input) => {
    const invalid = A.string("expire", "key", k)
    const ms = invalid === undefined ? callMillis("expire", "ttl", ttl) : invalid
    return A.checked(ms instanceof RedisError ? ms : undefined, () =>
      run(
        handle,
        OP.expire,
        (b, s) => send(b, s, (c) => c.pexpire(key(b, k), ms as number)).then(isOne),
        errFor("expire")
      )
    )
  },
  ttl: keyed(handle, OP.ttl, "ttl", (c, k) => c.ttl(k)),
  incr: keyed(handle, OP.incr, "incr", (c, k) => c.incr(k)),
  incrby: (k: string, by: number) =>
    A.checked(A.string("incrby", "key", k) ?? A.integer("incrby", "by", by), () =>
      run(handle, OP.incr, (b, s) => send(b, s, (c) => c.incrby(key(b, k), by)), errFor("incrby"))
    ),
  decr: keyed(handle, OP.incr, "decr", (c, k) => c.decr(k))
})

/** The hash commands. */
export const hashes = (handle: Handle) => ({
  hset: (k: string, fieldOrValues: string | Readonly<Record<string, string>>, value?: string) =>
    A.checked(
      A.string("hset", "key", k) ??
        (typeof fieldOrValues === "string"
          ? A.string("hset", "value", value)
          : A.entries("hset", "fieldOrValues", fieldOrValues)),
      () =>
        run(
          handle,
          OP.hset,
          (b, s) =>
            send(b, s, (c) =>
              typeof fieldOrValues === "string"
                ? c.hset(key(b, k), fieldOrValues, value!)
                : c.hset(key(b, k), fieldOrValues)
            ),
          errFor("hset")
        )
    ),
  hget: (k: string, field: string) =>
    A.checked(A.string("hget", "key", k) ?? A.string("hget", "field", field), () =>
      run(handle, OP.hget, (b, s) => send(b, s, (c) => c.hget(key(b, k), field)), errFor("hget"))
    ),
  hmget: (k: string, fields: ReadonlyArray<string>) => {
    // A plain copy, checked and sent: never the caller's own iterator (a Proxy's could be endless).
    const fs = A.copy("hmget", "fields", fields)
    if (fs instanceof RedisError) return Effect.fail(fs)
    const plain = (fs ?? fields) as ReadonlyArray<string>
    return A.checked(A.string("hmget", "key", k) ?? A.strings("hmget", "fields", plain), () =>
      run(handle, OP.hmget, (b, s) => send(b, s, (c) => c.hmget(key(b, k), ...plain)), errFor("hmget"))
    )
  },
  hgetall: keyed(handle, OP.hgetall, "hgetall", (c, k) => c.hgetall(k)),
  hdel: (k: string, ...fields: ReadonlyArray<string>) =>
    A.checked(A.string("hdel", "key", k) ?? A.strings("hdel", "fields", fields), () =>
      run(handle, OP.hdel, (b, s) => send(b, s, (c) => c.hdel(key(b, k), ...fields)), errFor("hdel"))
    ),
  hincrby: (k: string, field: string, by: number) =>
    A.checked(
      A.string("hincrby", "key", k) ?? A.string("hincrby", "field", field) ?? A.integer("hincrby", "by", by),
      () => run(handle, OP.hincrby, (b, s) => send(b, s, (c) => c.hincrby(key(b, k), field, by)), errFor("hincrby"))
    ),
  hexists: (k: string, field: string) =>
    A.checked(A.string("hexists", "key", k) ?? A.string("hexists", "field", field), () =>
      run(handle, OP.hexists, (b, s) => send(b, s, (c) => c.hexists(key(b, k), field)).then(isOne), errFor("hexists"))
    ),
  hlen: keyed(handle, OP.hlen, "hlen", (c, k) => c.hlen(k))
})

// BLPOP/BRPOP on a dedicated connection, the attempt timeout lengthened by the command's own.
const bpop = (handle: Handle, side: "blpop" | "brpop") => (ks: ReadonlyArray<string>, timeout: Duration.Input) => {
  const invalid = A.strings(side, "keys", ks)
  const ms = invalid === undefined ? callMillis(side, "timeout", timeout) : invalid
  return A.checked(ms instanceof RedisError ? ms : undefined, () =>
    runDedicated(handle, OP.bpop, ms as number, (conn, b) =>
      onConn(conn, side, (c) => c[side](...keys(b, ks), (ms as number) / 1000)).pipe(
        Effect.map((r) => (r === null ? Option.none() : Option.some([strip(b, r[0]), r[1]] as const)))
      )
    )
  )
}

/** The list commands. */
export const lists = (handle: Handle) => ({
  lpush: (k: string, ...values: ReadonlyArray<string>) =>
    A.checked(A.string("lpush", "key", k) ?? A.strings("lpush", "values", values), () =>
      run(handle, OP.push, (b, s) => send(b, s, (c) => c.lpush(key(b, k), ...values)), errFor("lpush"))
    ),
  rpush: (k: string, ...values: ReadonlyArray<string>) =>
    A.checked(A.string("rpush", "key", k) ?? A.strings("rpush", "values", values), () =>
      run(handle, OP.push, (b, s) => send(b, s, (c) => c.rpush(key(b, k), ...values)), errFor("rpush"))
    ),
  lpop: keyed(handle, OP.pop, "lpop", (c, k) => c.lpop(k)),
  rpop: keyed(handle, OP.pop, "rpop", (c, k) => c.rpop(k)),
  lrange: (k: string, start: number, stop: number) =>
    A.checked(
      A.string("lrange", "key", k) ?? A.integer("lrange", "start", start) ?? A.integer("lrange", "stop", stop),
      () => run(handle, OP.lrange, (b, s) => send(b, s, (c) => c.lrange(key(b, k), start, stop)), errFor("lrange"))
    ),
  llen: keyed(handle, OP.llen, "llen", (c, k) => c.llen(k)),
  lrem: (k: string, count: number, value: string) =>
    A.checked(A.string("lrem", "key", k) ?? A.integer("lrem", "count", count) ?? A.string("lrem", "value", value), () =>
      run(handle, OP.lrem, (b, s) => send(b, s, (c) => c.lrem(key(b, k), count, value)), errFor("lrem"))
    ),
  ltrim: (k: string, start: number, stop: number) =>
    A.checked(
      A.string("ltrim", "key", k) ?? A.integer("ltrim", "start", start) ?? A.integer("ltrim", "stop", stop),
      () =>
        run(
          handle,
          OP.ltrim,
          (b, s) => send(b, s, (c) => c.ltrim(key(b, k), start, stop)).then(() => undefined),
          errFor("ltrim")
        )
    ),
  blpop: bpop(handle, "blpop"),
  brpop: bpop(handle, "brpop")
})

/** The set commands. */
export const sets = (handle: Handle) => ({
  sadd: (k: string, ...members: ReadonlyArray<string>) =>
    A.checked(A.string("sadd", "key", k) ?? A.strings("sadd", "members", members), () =>
      run(handle, OP.sadd, (b, s) => send(b, s, (c) => c.sadd(key(b, k), ...members)), errFor("sadd"))
    ),
  srem: (k: string, ...members: ReadonlyArray<string>) =>
    A.checked(A.string("srem", "key", k) ?? A.strings("srem", "members", members), () =>
      run(handle, OP.srem, (b, s) => send(b, s, (c) => c.srem(key(b, k), ...members)), errFor("srem"))
    ),
  smembers: keyed(handle, OP.smembers, "smembers", (c, k) => c.smembers(k)),
  sismember: (k: string, member: string) =>
    A.checked(A.string("sismember", "key", k) ?? A.string("sismember", "member", member), () =>
      run(
        handle,
        OP.sismember,
        (b, s) => send(b, s, (c) => c.sismember(key(b, k), member)).then(isOne),
        errFor("sismember")
      )
    ),
  scard: keyed(handle, OP.scard, "scard", (c, k) => c.scard(k))
})

const toPairs = (flat: ReadonlyArray<string>): Array<ScoredMember> => {
  const out: Array<ScoredMember> = []
  for (let i = 0; i + 1 < flat.length; i += 2) out.push({ member: flat[i]!, score: Number(flat[i + 1]) })
  return out
}

// The members of ZADD: each a `{ member, score }` with a string member and a number score, read once into a copy.
const scoredMembers = (members: ReadonlyArray<ScoredMember>): Array<ScoredMember> | RedisError => {
  const invalid = A.strings("zadd", "members", members.length === 0 ? members : [""])
  if (invalid !== undefined) return invalid
  const out: Array<ScoredMember> = []
  for (let i = 0; i < members.length; i++) {
    const m = A.record("zadd", `members[${i}]`, members[i] ?? null, ["member", "score"] as const)
    if (m instanceof RedisError) return m
    const bad = A.string("zadd", `members[${i}].member`, m.member) ?? A.score("zadd", `members[${i}].score`, m.score)
    if (bad !== undefined) return bad
    out.push({ member: m.member as string, score: m.score as number })
  }
  return out
}

// A score as Redis reads it: ±Infinity are `+inf` and `-inf`.
const scoreArg = (score: number): number | string =>
  score === Infinity ? "+inf" : score === -Infinity ? "-inf" : score

// ZRANGEBYSCORE's options, read once: `limit` with integer `offset` and `count`.
type RangeOptions = { readonly limit?: { readonly offset: number; readonly count: number } | undefined }
const rangeOptions = (options: unknown): RangeOptions | RedisError => {
  const o = A.record("zrangebyscore", "options", options, ["withScores", "limit"] as const)
  if (o instanceof RedisError || o.limit === undefined) return o as RangeOptions | RedisError
  const limit = A.record("zrangebyscore", "options.limit", o.limit, ["offset", "count"] as const)
  if (limit instanceof RedisError) return limit
  return (
    A.integer("zrangebyscore", "options.limit.offset", limit.offset) ??
    A.integer("zrangebyscore", "options.limit.count", limit.count) ?? {
      limit: { offset: limit.offset as number, count: limit.count as number }
    }
  )
}

/** The sorted-set commands. */
export const sortedSets = (handle: Handle) => ({
  zadd: (k: string, ...members: ReadonlyArray<ScoredMember>) => {
    const scored = A.string("zadd", "key", k) ?? scoredMembers(members)
    return A.checked(scored instanceof RedisError ? scored : undefined, () =>
      run(
        handle,
        OP.zadd,
        (b, s) =>
          send(b, s, (c) =>
            c.zadd(key(b, k), ...(scored as Array<ScoredMember>).flatMap((m) => [scoreArg(m.score), m.member]))
          ).then(Number),
        errFor("zadd")
      )
    )
  },
  zrange: (k: string, start: number, stop: number) =>
    A.checked(
      A.string("zrange", "key", k) ?? A.integer("zrange", "start", start) ?? A.integer("zrange", "stop", stop),
      () =>
        run(handle, OP.zrange, (b, s) => send(b, s, (c) => c.zrange(key(b, k), start, String(stop))), errFor("zrange"))
    ),
  zrangeWithScores: (k: string, start: number, stop: number) =>
    A.checked(
      A.string("zrange", "key", k) ?? A.integer("zrange", "start", start) ?? A.integer("zrange", "stop", stop),
      () =>
        run(
          handle,
          OP.zrange,
          (b, s) => send(b, s, (c) => c.zrange(key(b, k), start, String(stop), "WITHSCORES")).then(toPairs),
          errFor("zrange")
        )
    ),
  zrangebyscore: (
    k: string,
    min: number | string,
    max: number | string,
    options?: { readonly withScores?: boolean; readonly limit?: { readonly offset: number; readonly count: number } }
  ) => {
    const o = rangeOptions(options)
    return A.checked(
      A.string("zrangebyscore", "key", k) ??
        A.bound("zrangebyscore", "min", min) ??
        A.bound("zrangebyscore", "max", max) ??
        (o instanceof RedisError ? o : undefined),
      () =>
        run(
          handle,
          OP.zrangebyscore,
          (b, s) =>
            send(b, s, (c) => {
              const args: Array<string | number> = [
                key(b, k),
                typeof min === "number" ? scoreArg(min) : min,
                typeof max === "number" ? scoreArg(max) : max,
                "WITHSCORES"
              ]
              const limit = (o as RangeOptions).limit
              if (limit !== undefined) args.push("LIMIT", limit.offset, limit.count)
              // Lower-case: ioredis flattens RESP3 score pairs only for the lower-case command name.
              return c.call("zrangebyscore", ...args) as Promise<Array<string>>
            }).then(toPairs),
          errFor("zrangebyscore")
        )
    )
  },
  zrem: (k: string, ...members: ReadonlyArray<string>) =>
    A.checked(A.string("zrem", "key", k) ?? A.strings("zrem", "members", members), () =>
      run(handle, OP.zrem, (b, s) => send(b, s, (c) => c.zrem(key(b, k), ...members)), errFor("zrem"))
    ),
  zscore: (k: string, member: string) =>
    A.checked(A.string("zscore", "key", k) ?? A.string("zscore", "member", member), () =>
      run(
        handle,
        OP.zscore,
        (b, s) => send(b, s, (c) => c.zscore(key(b, k), member)).then((r) => (r === null ? null : Number(r))),
        errFor("zscore")
      )
    ),
  zincrby: (k: string, by: number, member: string) =>
    A.checked(
      A.string("zincrby", "key", k) ?? A.score("zincrby", "by", by) ?? A.string("zincrby", "member", member),
      () =>
        run(
          handle,
          OP.zincrby,
          (b, s) => send(b, s, (c) => c.zincrby(key(b, k), scoreArg(by), member)).then(Number),
          errFor("zincrby")
        )
    ),
  zcard: keyed(handle, OP.zcard, "zcard", (c, k) => c.zcard(k)),
  zrank: (k: string, member: string) =>
    A.checked(A.string("zrank", "key", k) ?? A.string("zrank", "member", member), () =>
      run(handle, OP.zrank, (b, s) => send(b, s, (c) => c.zrank(key(b, k), member)), errFor("zrank"))
    )
})

// One SCAN page within the project's keys: the next cursor and the keys without the prefix.
const scanPage = (handle: Handle, match: string, count: number, type: string | undefined) => (cursor: string) =>
  run(
    handle,
    OP.scan,
    (b, s) =>
      send(b, s, (c) =>
        type === undefined
          ? c.scan(cursor, "MATCH", prefixedPattern(b, match), "COUNT", count)
          : c.scan(cursor, "MATCH", prefixedPattern(b, match), "COUNT", count, "TYPE", type)
      ).then(([next, found]) => [next, found.map((name) => strip(b, name))] as const),
    errFor("scan")
  )

// SCAN's arguments, options read once: an optional string pattern, a positive integer `count`, a string `type`.
const scanArguments = (match: unknown, options: unknown): { count?: number; type?: string } | RedisError => {
  const o = A.record("scan", "options", options, ["count", "type"] as const)
  if (o instanceof RedisError) return o
  return (
    (match === undefined ? undefined : A.string("scan", "pattern", match)) ??
    (o.count === undefined ? undefined : A.integer("scan", "options.count", o.count)) ??
    (o.type === undefined ? undefined : A.string("scan", "options.type", o.type)) ??
    (o as { count?: number; type?: string })
  )
}

/** SCAN MATCH within the project's keys, as a stream of keys without the prefix. */
export const scan =
  (handle: Handle) => (match?: string, options?: { readonly count?: number; readonly type?: string }) => {
    const o = scanArguments(match, options)
    if (o instanceof RedisError) return Stream.fail(o)
    return Stream.paginate("0", (cursor: string) =>
      Effect.map(
        scanPage(handle, match ?? "*", Math.max(1, o.count ?? 100), o.type)(cursor),
        ([next, found]) => [found, next === "0" ? Option.none<string>() : Option.some(next)] as const
      )
    )
  }
