/**
 * The typed data commands of the Redis engine, by family (strings, hashes, lists, sets, sorted sets, SCAN): each
 * prefixes its keys, runs through the guard on the shared connection (`blpop`/`brpop` on a dedicated one), and
 * shapes the reply. Each family is a function of the guard's handle returning its part of the service.
 *
 * @since 0.1.0
 */
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import { RedisError } from "../RedisError.ts"
import { send } from "./connections.ts"
import { key, keys, strip } from "./keys.ts"
import { callMillis, errFor, type Handle, OP, onConn, run, runDedicated } from "./operations.ts"

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

const getError = errFor("get")
const setError = errFor("set")

/** GET, SET and the other string commands. */
export const strings = (handle: Handle) => ({
  // The hottest command: one closure per call on the fast path (the connection is ready).
  get: (k: string) =>
    handle.run(
      OP.get,
      (b, s) => (b.conn.status === "ready" ? b.conn.get(b.prefix + k) : send(b, s, (c) => c.get(b.prefix + k))),
      getError,
      undefined,
      OP.get.detail
    ),
  set: (k: string, value: string, o?: SetOptions) => {
    const px = o?.ttl === undefined ? undefined : callMillis("set", "ttl", o.ttl)
    if (px instanceof RedisError) return Effect.fail(px)
    return run(
      handle,
      o?.nx === true || o?.xx === true ? OP.setnx : OP.set,
      (b, s) =>
        send(b, s, (c) => {
          const args: Array<string | number> = []
          if (px !== undefined) args.push("PX", px)
          if (o?.nx === true) args.push("NX")
          if (o?.xx === true) args.push("XX")
          return args.length === 0
            ? c.set(b.prefix + k, value)
            : (c.call("SET", b.prefix + k, value, ...args) as Promise<string | null>)
        }).then((r) => r === "OK"),
      setError
    )
  },
  mget: (ks: ReadonlyArray<string>) =>
    run(handle, OP.mget, (b, s) => send(b, s, (c) => c.mget(...keys(b, ks))), errFor("mget")),
  mset: (entries: Readonly<Record<string, string>>) =>
    run(
      handle,
      OP.mset,
      (b, s) =>
        send(b, s, (c) => c.mset(Object.fromEntries(Object.entries(entries).map(([k, v]) => [key(b, k), v])))).then(
          () => undefined
        ),
      errFor("mset")
    ),
  del: (...ks: ReadonlyArray<string>) =>
    run(handle, OP.del, (b, s) => send(b, s, (c) => c.del(...keys(b, ks))), errFor("del")),
  exists: (...ks: ReadonlyArray<string>) =>
    run(handle, OP.exists, (b, s) => send(b, s, (c) => c.exists(...keys(b, ks))), errFor("exists")),
  expire: (k: string, ttl: Duration.Input) => {
    const ms = callMillis("expire", "ttl", ttl)
    if (ms instanceof RedisError) return Effect.fail(ms)
    return run(handle, OP.expire, (b, s) => send(b, s, (c) => c.pexpire(key(b, k), ms)).then(isOne), errFor("expire"))
  },
  ttl: (k: string) => run(handle, OP.ttl, (b, s) => send(b, s, (c) => c.ttl(key(b, k))), errFor("ttl")),
  incr: (k: string) => run(handle, OP.incr, (b, s) => send(b, s, (c) => c.incr(key(b, k))), errFor("incr")),
  incrby: (k: string, by: number) =>
    run(handle, OP.incr, (b, s) => send(b, s, (c) => c.incrby(key(b, k), by)), errFor("incrby")),
  decr: (k: string) => run(handle, OP.incr, (b, s) => send(b, s, (c) => c.decr(key(b, k))), errFor("decr"))
})

/** The hash commands. */
export const hashes = (handle: Handle) => ({
  hset: (k: string, fieldOrValues: string | Readonly<Record<string, string>>, value?: string) =>
    run(
      handle,
      OP.hset,
      (b, s) =>
        send(b, s, (c) =>
          typeof fieldOrValues === "string"
            ? c.hset(key(b, k), fieldOrValues, value ?? "")
            : c.hset(key(b, k), fieldOrValues)
        ),
      errFor("hset")
    ),
  hget: (k: string, field: string) =>
    run(handle, OP.hget, (b, s) => send(b, s, (c) => c.hget(key(b, k), field)), errFor("hget")),
  hmget: (k: string, fields: ReadonlyArray<string>) =>
    run(handle, OP.hmget, (b, s) => send(b, s, (c) => c.hmget(key(b, k), ...fields)), errFor("hmget")),
  hgetall: (k: string) => run(handle, OP.hgetall, (b, s) => send(b, s, (c) => c.hgetall(key(b, k))), errFor("hgetall")),
  hdel: (k: string, ...fields: ReadonlyArray<string>) =>
    run(handle, OP.hdel, (b, s) => send(b, s, (c) => c.hdel(key(b, k), ...fields)), errFor("hdel")),
  hincrby: (k: string, field: string, by: number) =>
    run(handle, OP.hincrby, (b, s) => send(b, s, (c) => c.hincrby(key(b, k), field, by)), errFor("hincrby")),
  hexists: (k: string, field: string) =>
    run(handle, OP.hexists, (b, s) => send(b, s, (c) => c.hexists(key(b, k), field)).then(isOne), errFor("hexists")),
  hlen: (k: string) => run(handle, OP.hlen, (b, s) => send(b, s, (c) => c.hlen(key(b, k))), errFor("hlen"))
})

// BLPOP/BRPOP on a dedicated connection, the attempt timeout lengthened by the command's own.
const bpop = (handle: Handle, side: "blpop" | "brpop") => (ks: ReadonlyArray<string>, timeout: Duration.Input) => {
  const ms = callMillis(side, "timeout", timeout)
  if (ms instanceof RedisError) return Effect.fail(ms)
  return runDedicated(handle, OP.bpop, ms, (conn, b) =>
    onConn(conn, side, (c) => c[side](...keys(b, ks), ms / 1000)).pipe(
      Effect.map((r) => (r === null ? Option.none() : Option.some([strip(b, r[0]), r[1]] as const)))
    )
  )
}

/** The list commands. */
export const lists = (handle: Handle) => ({
  lpush: (k: string, ...values: ReadonlyArray<string>) =>
    run(handle, OP.push, (b, s) => send(b, s, (c) => c.lpush(key(b, k), ...values)), errFor("lpush")),
  rpush: (k: string, ...values: ReadonlyArray<string>) =>
    run(handle, OP.push, (b, s) => send(b, s, (c) => c.rpush(key(b, k), ...values)), errFor("rpush")),
  lpop: (k: string) => run(handle, OP.pop, (b, s) => send(b, s, (c) => c.lpop(key(b, k))), errFor("lpop")),
  rpop: (k: string) => run(handle, OP.pop, (b, s) => send(b, s, (c) => c.rpop(key(b, k))), errFor("rpop")),
  lrange: (k: string, start: number, stop: number) =>
    run(handle, OP.lrange, (b, s) => send(b, s, (c) => c.lrange(key(b, k), start, stop)), errFor("lrange")),
  llen: (k: string) => run(handle, OP.llen, (b, s) => send(b, s, (c) => c.llen(key(b, k))), errFor("llen")),
  lrem: (k: string, count: number, value: string) =>
    run(handle, OP.lrem, (b, s) => send(b, s, (c) => c.lrem(key(b, k), count, value)), errFor("lrem")),
  ltrim: (k: string, start: number, stop: number) =>
    run(
      handle,
      OP.ltrim,
      (b, s) => send(b, s, (c) => c.ltrim(key(b, k), start, stop)).then(() => undefined),
      errFor("ltrim")
    ),
  blpop: bpop(handle, "blpop"),
  brpop: bpop(handle, "brpop")
})

/** The set commands. */
export const sets = (handle: Handle) => ({
  sadd: (k: string, ...members: ReadonlyArray<string>) =>
    run(handle, OP.sadd, (b, s) => send(b, s, (c) => c.sadd(key(b, k), ...members)), errFor("sadd")),
  srem: (k: string, ...members: ReadonlyArray<string>) =>
    run(handle, OP.srem, (b, s) => send(b, s, (c) => c.srem(key(b, k), ...members)), errFor("srem")),
  smembers: (k: string) =>
    run(handle, OP.smembers, (b, s) => send(b, s, (c) => c.smembers(key(b, k))), errFor("smembers")),
  sismember: (k: string, member: string) =>
    run(
      handle,
      OP.sismember,
      (b, s) => send(b, s, (c) => c.sismember(key(b, k), member)).then(isOne),
      errFor("sismember")
    ),
  scard: (k: string) => run(handle, OP.scard, (b, s) => send(b, s, (c) => c.scard(key(b, k))), errFor("scard"))
})

const toPairs = (flat: ReadonlyArray<string>): Array<ScoredMember> => {
  const out: Array<ScoredMember> = []
  for (let i = 0; i + 1 < flat.length; i += 2) out.push({ member: flat[i]!, score: Number(flat[i + 1]) })
  return out
}

/** The sorted-set commands. */
export const sortedSets = (handle: Handle) => ({
  zadd: (k: string, ...members: ReadonlyArray<ScoredMember>) =>
    run(
      handle,
      OP.zadd,
      (b, s) => send(b, s, (c) => c.zadd(key(b, k), ...members.flatMap((m) => [m.score, m.member]))).then(Number),
      errFor("zadd")
    ),
  zrange: (k: string, start: number, stop: number) =>
    run(handle, OP.zrange, (b, s) => send(b, s, (c) => c.zrange(key(b, k), start, String(stop))), errFor("zrange")),
  zrangeWithScores: (k: string, start: number, stop: number) =>
    run(
      handle,
      OP.zrange,
      (b, s) => send(b, s, (c) => c.zrange(key(b, k), start, String(stop), "WITHSCORES")).then(toPairs),
      errFor("zrange")
    ),
  zrangebyscore: (
    k: string,
    min: number | string,
    max: number | string,
    o?: { readonly withScores?: boolean; readonly limit?: { readonly offset: number; readonly count: number } }
  ) =>
    run(
      handle,
      OP.zrangebyscore,
      (b, s) =>
        send(b, s, (c) => {
          const args: Array<string | number> = [key(b, k), min, max, "WITHSCORES"]
          if (o?.limit !== undefined) args.push("LIMIT", o.limit.offset, o.limit.count)
          // Lower-case: ioredis flattens RESP3 score pairs only for the lower-case command name.
          return c.call("zrangebyscore", ...args) as Promise<Array<string>>
        }).then(toPairs),
      errFor("zrangebyscore")
    ),
  zrem: (k: string, ...members: ReadonlyArray<string>) =>
    run(handle, OP.zrem, (b, s) => send(b, s, (c) => c.zrem(key(b, k), ...members)), errFor("zrem")),
  zscore: (k: string, member: string) =>
    run(
      handle,
      OP.zscore,
      (b, s) => send(b, s, (c) => c.zscore(key(b, k), member)).then((r) => (r === null ? null : Number(r))),
      errFor("zscore")
    ),
  zincrby: (k: string, by: number, member: string) =>
    run(
      handle,
      OP.zincrby,
      (b, s) => send(b, s, (c) => c.zincrby(key(b, k), by, member)).then(Number),
      errFor("zincrby")
    ),
  zcard: (k: string) => run(handle, OP.zcard, (b, s) => send(b, s, (c) => c.zcard(key(b, k))), errFor("zcard")),
  zrank: (k: string, member: string) =>
    run(handle, OP.zrank, (b, s) => send(b, s, (c) => c.zrank(key(b, k), member)), errFor("zrank"))
})

// One SCAN page within the project's keys: the next cursor and the keys without the prefix.
const scanPage = (handle: Handle, pattern: string, count: number, type: string | undefined) => (cursor: string) =>
  run(
    handle,
    OP.scan,
    (b, s) =>
      send(b, s, (c) =>
        type === undefined
          ? c.scan(cursor, "MATCH", key(b, pattern), "COUNT", count)
          : c.scan(cursor, "MATCH", key(b, pattern), "COUNT", count, "TYPE", type)
      ).then(([next, found]) => [next, found.map((name) => strip(b, name))] as const),
    errFor("scan")
  )

/** SCAN MATCH within the project's keys, as a stream of keys without the prefix. */
export const scan = (handle: Handle) => (pattern?: string, o?: { readonly count?: number; readonly type?: string }) =>
  Stream.paginate("0", (cursor: string) =>
    Effect.map(
      scanPage(handle, pattern ?? "*", o?.count ?? 100, o?.type)(cursor),
      ([next, found]) => [found, next === "0" ? Option.none<string>() : Option.some(next)] as const
    )
  )
