/**
 * What a Redis command is to tenantpool, in one table: the raw paths (`command`, and every command queued by `multi`
 * or `watch`) accept a command only when it is listed here as confined to a project's keys, with its key and channel
 * positions in Redis's own key-specification notation (`COMMAND INFO` of Redis 7; a test compares every entry with
 * the live server); the protections' `RedisCommandPolicy` builds its per-tier defaults from the dangerous and costly
 * entries. Deny by default: a command that is not listed, or listed as refused, is never sent.
 *
 * A refused command names why (`Reach`): it reaches keys outside the project's prefix, another logical database or
 * server, the server's configuration, other clients, or the state of the connection every project on a target
 * shares; or it blocks that connection. Scripts (EVAL, EVALSHA, FCALL, SCRIPT LOAD/EXISTS) are listed but marked:
 * a script can name any key, so the engine runs them only for projects that may (see the package README).
 *
 * Typed operations do not consult this table on every call: they prefix their own keys and send fixed commands.
 *
 * @since 0.1.0
 */
import type { ProtectionDetail } from "@tenantpool/core/Protections"
import { byCommand } from "./internal/byCommand.ts"
import {
  asciiUpper,
  isWord,
  type KeySpec,
  type Located,
  locate,
  type LocateFailure,
  parse
} from "./internal/keySpecs.ts"

/**
 * Why a command is refused on every call:
 *
 * - `keyspace`: it reads, changes or reports keys or channels outside the project's prefix (KEYS, FLUSHALL, PUBSUB);
 * - `database`: it reaches another logical database (SELECT, MOVE, SWAPDB, COPY … DB);
 * - `host`: it reaches another server (MIGRATE);
 * - `server`: it administers the server: configuration, persistence, replication, modules, the script and function
 *   caches every project shares, diagnostics that show other projects' commands (CONFIG, SAVE, FUNCTION, SLOWLOG);
 * - `clients`: it reads or changes client connections, other projects' included (CLIENT, MONITOR);
 * - `connection`: it changes the state of the connection every project on the target shares (AUTH, HELLO, RESET,
 *   MULTI, WATCH, SUBSCRIBE, READONLY, …): the typed `multi`, `watch` and `subscribe` do this safely;
 * - `blocking`: it blocks on the server, which would hold up every project's commands on the shared connection
 *   (the typed `blpop`/`brpop` run on a dedicated connection).
 *
 * @category models
 * @since 0.1.0
 */
export type Reach = "keyspace" | "database" | "host" | "server" | "clients" | "connection" | "blocking"

/**
 * Why a call is refused: its command's `Reach`, `unlisted` (not in the allowlist), or `pattern` (SORT's BY or GET
 * pattern, which names keys the project's prefix does not apply to).
 *
 * @category models
 * @since 0.1.0
 */
export type Refusal = Reach | "unlisted" | "pattern"

/**
 * A class of commands that cost more than their arguments suggest, which the per-tier defaults may block:
 * `sort` (O(N log N) on the server) and `set-algebra` (unions, intersections and differences: O(total size)).
 *
 * @category models
 * @since 0.1.0
 */
export type Cost = "sort" | "set-algebra"

/**
 * What tenantpool knows of one command (or subcommand).
 *
 * @category models
 * @since 0.1.0
 */
export interface CommandEntry {
  /** Why every call is refused; absent for an allowed command. For a container, the reason for unlisted ones. */
  readonly refused?: Refusal | undefined
  /** Key and channel positions in key-specification notation (see `internal/keySpecs.ts`); none when absent. */
  readonly keys?: string | undefined
  /** The server flags it read-only: it changes no data, so it is retried like a read. */
  readonly readOnly?: boolean | undefined
  /** It runs server-side code that can name any key: only for projects allowed to run scripts. */
  readonly script?: boolean | undefined
  /** An argument rule the key specifications do not express (see `check`). */
  readonly rule?: "sort" | "xread" | "copy" | undefined
  /** The allowed subcommands of a container command (`OBJECT ENCODING`), by upper-case name. */
  readonly subcommands?: Readonly<Record<string, CommandEntry>> | undefined
  /** Its cost class, for the per-tier defaults of `RedisCommandPolicy`. */
  readonly cost?: Cost | undefined
  /** One of the spec's dangerous commands, which the default policy blocks on every tier. */
  readonly dangerous?: boolean | undefined
}

const read = (keys: string, more?: Partial<CommandEntry>): CommandEntry => ({ keys, readOnly: true, ...more })
const write = (keys: string, more?: Partial<CommandEntry>): CommandEntry => ({ keys, readOnly: false, ...more })
const refuse = (refused: Refusal, more?: Partial<CommandEntry>): CommandEntry => ({ refused, ...more })
const script = (entry: CommandEntry): CommandEntry => ({ ...entry, script: true })
const setAlgebra = { cost: "set-algebra" } as const

/**
 * The table, by upper-case command name.
 *
 * @category constants
 * @since 0.1.0
 */
export const commands: Readonly<Record<string, CommandEntry>> = {
  // Strings and bitmaps.
  APPEND: write("1"),
  BITCOUNT: read("1"),
  BITFIELD: write("1"),
  BITFIELD_RO: read("1"),
  BITOP: write("2 3..-1"),
  BITPOS: read("1"),
  DECR: write("1"),
  DECRBY: write("1"),
  GET: read("1"),
  GETBIT: read("1"),
  GETDEL: write("1"),
  GETEX: write("1"),
  GETRANGE: read("1"),
  GETSET: write("1"),
  INCR: write("1"),
  INCRBY: write("1"),
  INCRBYFLOAT: write("1"),
  LCS: read("1..+1"),
  MGET: read("1..-1"),
  MSET: write("1..-1/2"),
  MSETNX: write("1..-1/2"),
  PSETEX: write("1"),
  SET: write("1"),
  SETBIT: write("1"),
  SETEX: write("1"),
  SETNX: write("1"),
  SETRANGE: write("1"),
  STRLEN: read("1"),
  SUBSTR: read("1"),
  // Keys.
  COPY: write("1 2", { rule: "copy" }),
  DEL: write("1..-1"),
  DUMP: read("1"),
  EXISTS: read("1..-1"),
  EXPIRE: write("1"),
  EXPIREAT: write("1"),
  EXPIRETIME: read("1"),
  OBJECT: {
    refused: "unlisted",
    subcommands: { ENCODING: read("2"), FREQ: read("2"), IDLETIME: read("2"), REFCOUNT: read("2") }
  },
  PERSIST: write("1"),
  PEXPIRE: write("1"),
  PEXPIREAT: write("1"),
  PEXPIRETIME: read("1"),
  PTTL: read("1"),
  RENAME: write("1 2"),
  RENAMENX: write("1 2"),
  SORT: write("1", { rule: "sort", cost: "sort" }),
  SORT_RO: read("1", { rule: "sort", cost: "sort" }),
  TOUCH: read("1..-1"),
  TTL: read("1"),
  TYPE: read("1"),
  UNLINK: write("1..-1"),
  // Hashes.
  HDEL: write("1"),
  HEXISTS: read("1"),
  HGET: read("1"),
  HGETALL: read("1"),
  HINCRBY: write("1"),
  HINCRBYFLOAT: write("1"),
  HKEYS: read("1"),
  HLEN: read("1"),
  HMGET: read("1"),
  HMSET: write("1"),
  HRANDFIELD: read("1"),
  HSCAN: read("1"),
  HSET: write("1"),
  HSETNX: write("1"),
  HSTRLEN: read("1"),
  HVALS: read("1"),
  // Lists.
  LINDEX: read("1"),
  LINSERT: write("1"),
  LLEN: read("1"),
  LMOVE: write("1 2"),
  LMPOP: write("1#0+1"),
  LPOP: write("1"),
  LPOS: read("1"),
  LPUSH: write("1"),
  LPUSHX: write("1"),
  LRANGE: read("1"),
  LREM: write("1"),
  LSET: write("1"),
  LTRIM: write("1"),
  RPOP: write("1"),
  RPOPLPUSH: write("1 2"),
  RPUSH: write("1"),
  RPUSHX: write("1"),
  // Sets.
  SADD: write("1"),
  SCARD: read("1"),
  SDIFF: read("1..-1", setAlgebra),
  SDIFFSTORE: write("1 2..-1", setAlgebra),
  SINTER: read("1..-1", setAlgebra),
  SINTERCARD: read("1#0+1"),
  SINTERSTORE: write("1 2..-1", setAlgebra),
  SISMEMBER: read("1"),
  SMEMBERS: read("1"),
  SMISMEMBER: read("1"),
  SMOVE: write("1 2"),
  SPOP: write("1"),
  SRANDMEMBER: read("1"),
  SREM: write("1"),
  SSCAN: read("1"),
  SUNION: read("1..-1", setAlgebra),
  SUNIONSTORE: write("1 2..-1", setAlgebra),
  // Sorted sets.
  ZADD: write("1"),
  ZCARD: read("1"),
  ZCOUNT: read("1"),
  ZDIFF: read("1#0+1", setAlgebra),
  ZDIFFSTORE: write("1 2#0+1", setAlgebra),
  ZINCRBY: write("1"),
  ZINTER: read("1#0+1", setAlgebra),
  ZINTERCARD: read("1#0+1"),
  ZINTERSTORE: write("1 2#0+1", setAlgebra),
  ZLEXCOUNT: read("1"),
  ZMPOP: write("1#0+1"),
  ZMSCORE: read("1"),
  ZPOPMAX: write("1"),
  ZPOPMIN: write("1"),
  ZRANDMEMBER: read("1"),
  ZRANGE: read("1"),
  ZRANGEBYLEX: read("1"),
  ZRANGEBYSCORE: read("1"),
  ZRANGESTORE: write("1 2"),
  ZRANK: read("1"),
  ZREM: write("1"),
  ZREMRANGEBYLEX: write("1"),
  ZREMRANGEBYRANK: write("1"),
  ZREMRANGEBYSCORE: write("1"),
  ZREVRANGE: read("1"),
  ZREVRANGEBYLEX: read("1"),
  ZREVRANGEBYSCORE: read("1"),
  ZREVRANK: read("1"),
  ZSCAN: read("1"),
  ZSCORE: read("1"),
  ZUNION: read("1#0+1", setAlgebra),
  ZUNIONSTORE: write("1 2#0+1", setAlgebra),
  // HyperLogLog and geo.
  PFADD: write("1"),
  PFCOUNT: read("1..-1"),
  PFMERGE: write("1 2..-1"),
  GEOADD: write("1"),
  GEODIST: read("1"),
  GEOHASH: read("1"),
  GEOPOS: read("1"),
  GEORADIUS: write("1 STORE@6 STOREDIST@6"),
  GEORADIUS_RO: read("1"),
  GEORADIUSBYMEMBER: write("1 STORE@5 STOREDIST@5"),
  GEORADIUSBYMEMBER_RO: read("1"),
  GEOSEARCH: read("1"),
  GEOSEARCHSTORE: write("1 2"),
  // Streams (XREAD and XREADGROUP without BLOCK; with it they block the shared connection).
  XACK: write("1"),
  XADD: write("1"),
  XAUTOCLAIM: write("1"),
  XCLAIM: write("1"),
  XDEL: write("1"),
  XGROUP: {
    refused: "unlisted",
    subcommands: {
      CREATE: write("2"),
      CREATECONSUMER: write("2"),
      DELCONSUMER: write("2"),
      DESTROY: write("2"),
      SETID: write("2")
    }
  },
  XINFO: { refused: "unlisted", subcommands: { CONSUMERS: read("2"), GROUPS: read("2"), STREAM: read("2") } },
  XLEN: read("1"),
  XPENDING: read("1"),
  XRANGE: read("1"),
  XREAD: read("STREAMS@1..-1|2", { rule: "xread" }),
  XREADGROUP: write("STREAMS@4..-1|2", { rule: "xread" }),
  XREVRANGE: read("1"),
  XSETID: write("1"),
  XTRIM: write("1"),
  // Pub/sub: the channel is prefixed like a key (PUBLISH's position is Redis's own channel table, db.c).
  PUBLISH: write("ch:1"),
  SPUBLISH: write("ch:1"),
  // Scripts: for projects that may run them (their keys are still prefixed).
  EVAL: script(write("2#0+1")),
  EVAL_RO: script(read("2#0+1")),
  EVALSHA: script(write("2#0+1")),
  EVALSHA_RO: script(read("2#0+1")),
  FCALL: script(write("2#0+1")),
  FCALL_RO: script(read("2#0+1")),
  SCRIPT: { refused: "server", subcommands: { LOAD: script(write("")), EXISTS: script(write("")) } },
  // No keys, no state.
  ECHO: read(""),
  PING: read(""),
  TIME: read(""),
  // Refused: keys outside the prefix.
  KEYS: refuse("keyspace", { dangerous: true }),
  FLUSHALL: refuse("keyspace", { dangerous: true }),
  FLUSHDB: refuse("keyspace", { dangerous: true }),
  DBSIZE: refuse("keyspace"),
  PUBSUB: refuse("keyspace"),
  RANDOMKEY: refuse("keyspace"),
  SCAN: refuse("keyspace"),
  // Refused: another database or server.
  MIGRATE: refuse("host"),
  MOVE: refuse("database"),
  SELECT: refuse("database"),
  SWAPDB: refuse("database"),
  // Refused: the server's administration. RESTORE loads a serialized value that the server checks only in part
  // unless sanitize-dump-payload is on: a crafted payload could take the server down for every project.
  ACL: refuse("server"),
  BGREWRITEAOF: refuse("server"),
  BGSAVE: refuse("server"),
  CLUSTER: refuse("server"),
  COMMAND: refuse("server"),
  CONFIG: refuse("server", { dangerous: true }),
  DEBUG: refuse("server", { dangerous: true }),
  FAILOVER: refuse("server"),
  FUNCTION: refuse("server"),
  INFO: refuse("server"),
  LASTSAVE: refuse("server"),
  LATENCY: refuse("server"),
  MEMORY: { refused: "server", subcommands: { USAGE: read("2") } },
  MODULE: refuse("server"),
  PFDEBUG: refuse("server"),
  PFSELFTEST: refuse("server"),
  PSYNC: refuse("server"),
  REPLCONF: refuse("server"),
  REPLICAOF: refuse("server"),
  RESTORE: refuse("server"),
  "RESTORE-ASKING": refuse("server"),
  ROLE: refuse("server"),
  SAVE: refuse("server"),
  SHUTDOWN: refuse("server", { dangerous: true }),
  SLAVEOF: refuse("server"),
  SLOWLOG: refuse("server"),
  SYNC: refuse("server"),
  // Refused: clients, and the state of the shared connection.
  CLIENT: refuse("clients"),
  MONITOR: refuse("clients"),
  ASKING: refuse("connection"),
  AUTH: refuse("connection"),
  DISCARD: refuse("connection"),
  EXEC: refuse("connection"),
  HELLO: refuse("connection"),
  MULTI: refuse("connection"),
  PSUBSCRIBE: refuse("connection"),
  PUNSUBSCRIBE: refuse("connection"),
  QUIT: refuse("connection"),
  READONLY: refuse("connection"),
  READWRITE: refuse("connection"),
  RESET: refuse("connection"),
  SSUBSCRIBE: refuse("connection"),
  SUBSCRIBE: refuse("connection"),
  SUNSUBSCRIBE: refuse("connection"),
  UNSUBSCRIBE: refuse("connection"),
  UNWATCH: refuse("connection"),
  WATCH: refuse("connection"),
  // Refused: blocking on the shared connection.
  BLMOVE: refuse("blocking"),
  BLMPOP: refuse("blocking"),
  BLPOP: refuse("blocking"),
  BRPOP: refuse("blocking"),
  BRPOPLPUSH: refuse("blocking"),
  BZMPOP: refuse("blocking"),
  BZPOPMAX: refuse("blocking"),
  BZPOPMIN: refuse("blocking"),
  WAIT: refuse("blocking")
}

/**
 * The entry of a command (any case), if it has one.
 *
 * @category getters
 * @since 0.1.0
 */
export const entry = (command: string): CommandEntry | undefined => {
  const upper = asciiUpper(command)
  return Object.hasOwn(commands, upper) ? commands[upper] : undefined
}

/**
 * The names of the entries that satisfy `predicate`, in the table's order.
 *
 * @category getters
 * @since 0.1.0
 */
export const names = (predicate: (entry: CommandEntry) => boolean): ReadonlyArray<string> =>
  Object.keys(commands).filter((name) => predicate(commands[name]!))

/**
 * What the raw paths make of one call.
 *
 * - `Allowed`: send `name` (lower case, the table's spelling) with `subcommand` (if any) in place of the first
 *   argument, and the project's prefix on the arguments at `positions` (keys and channels, 0-based).
 * - `Refused`: never sent, for `why`.
 * - `Invalid`: its keys cannot be located: the key count or positions do not fit the arguments, or a keyword the
 *   keys follow occurs more than once (never sent).
 *
 * @category models
 * @since 0.1.0
 */
export type Verdict =
  | {
      readonly _tag: "Allowed"
      readonly command: string
      readonly name: string
      readonly subcommand: string | undefined
      readonly positions: ReadonlyArray<number>
      readonly readOnly: boolean
      readonly script: boolean
    }
  | { readonly _tag: "Refused"; readonly command: string; readonly why: Refusal }
  | { readonly _tag: "Invalid"; readonly command: string; readonly why: LocateFailure }

// The parsed key specifications of every allowed entry, made once.
const specsOf = new Map<CommandEntry, ReadonlyArray<KeySpec>>()
const specs = (e: CommandEntry): ReadonlyArray<KeySpec> => {
  let s = specsOf.get(e)
  if (s === undefined) specsOf.set(e, (s = parse(e.keys ?? "")))
  return s
}
for (const e of Object.values(commands)) {
  specs(e)
  for (const sub of Object.values(e.subcommands ?? {})) specs(sub)
}

const isArgumentList = (args: unknown): boolean => {
  try {
    if (!Array.isArray(args)) return false
    for (let i = 0; i < args.length; i++) {
      const a: unknown = args[i]
      if (typeof a !== "string" && typeof a !== "number") return false
    }
    return true
  } catch {
    return false
  }
}

/**
 * The verdict on a call (command name in any case, then its arguments). The key specifications give the keys and
 * channels; three commands need more than their specifications say:
 *
 * - SORT/SORT_RO: read like the server's own parser: `STORE dest` is a key (the specification does not say where),
 *   and a BY pattern (other than `nosort`) or a GET pattern names keys outside the prefix: refused;
 * - XREAD/XREADGROUP: `BLOCK` before `STREAMS` blocks the shared connection: refused;
 * - COPY: the `DB` option copies into another logical database: refused.
 *
 * @category predicates
 * @since 0.1.0
 */
export const check = (command: string, args: ReadonlyArray<string | number>): Verdict => {
  const upper = asciiUpper(command)
  const top = Object.hasOwn(commands, upper) ? commands[upper] : undefined
  if (top === undefined) return { _tag: "Refused", command: upper, why: "unlisted" }
  // Arguments that are not strings or numbers (or cannot be read) locate no keys for certain.
  if (!isArgumentList(args)) return { _tag: "Invalid", command: upper, why: "arguments" }
  let e = top
  let subcommand: string | undefined
  if (top.subcommands !== undefined) {
    const sub = args.length > 0 ? asciiUpper(String(args[0])) : ""
    const found = Object.hasOwn(top.subcommands, sub) ? top.subcommands[sub] : undefined
    if (found === undefined)
      return { _tag: "Refused", command: `${upper} ${sub}`.trim(), why: top.refused ?? "unlisted" }
    e = found
    subcommand = sub.toLowerCase()
  }
  if (e.refused !== undefined) return { _tag: "Refused", command: upper, why: e.refused }
  const located: Located = { keys: [], channels: [] }
  const failure = locate(specs(e), args, located)
  if (failure !== undefined) return { _tag: "Invalid", command: upper, why: failure }
  if (e.rule !== undefined) {
    const why = ruleRefusal(e.rule, args, located)
    if (why !== undefined) return { _tag: "Refused", command: upper, why }
  }
  return {
    _tag: "Allowed",
    command: upper,
    name: upper.toLowerCase(),
    subcommand,
    positions: located.channels.length === 0 ? located.keys : [...located.keys, ...located.channels],
    readOnly: e.readOnly === true,
    script: e.script === true
  }
}

// The argument rules of `check`; `into` gains SORT's STORE key.
const ruleRefusal = (
  rule: "sort" | "xread" | "copy",
  args: ReadonlyArray<string | number>,
  into: Located
): Refusal | undefined => {
  switch (rule) {
    case "sort":
      return sortRefusal(args, into)
    case "xread":
      // Options come before STREAMS; after it, "block" would be a stream name.
      for (const a of args) {
        const word = String(a)
        if (isWord(word, "STREAMS")) return undefined
        if (isWord(word, "BLOCK")) return "blocking"
      }
      return undefined
    case "copy":
      // COPY source destination [DB db] [REPLACE]: options start after the two keys.
      for (let i = 2; i < args.length; i++) if (isWord(String(args[i]), "DB")) return "database"
      return undefined
  }
}

// SORT key [BY pattern] [LIMIT offset count] [GET pattern …] [ASC|DESC] [ALPHA] [STORE destination], read the way
// the server's sortCommand reads it: it stops at the first word it does not know (a syntax error, nothing done).
const sortRefusal = (args: ReadonlyArray<string | number>, into: Located): Refusal | undefined => {
  for (let i = 1; i < args.length; i++) {
    const word = String(args[i])
    const left = args.length - i - 1
    if (isWord(word, "ASC") || isWord(word, "DESC") || isWord(word, "ALPHA")) continue
    if (isWord(word, "LIMIT") && left >= 2) i += 2
    else if (isWord(word, "STORE") && left >= 1) into.keys.push(++i)
    else if (isWord(word, "BY") && left >= 1) {
      if (!isWord(String(args[++i]), "NOSORT")) return "pattern"
    } else if (isWord(word, "GET") && left >= 1) return "pattern"
    else return undefined
  }
  return undefined
}

const reasons: Readonly<Record<Refusal, string>> = {
  keyspace: "it reaches keys or channels outside the project's prefix",
  database: "it reaches another logical database",
  host: "it reaches another server",
  server: "it administers the server (configuration, persistence, replication, shared script caches, diagnostics)",
  clients: "it reads or changes client connections, other projects' included",
  connection:
    "it changes the state of the connection the target's projects share; use the typed multi, watch, subscribe",
  blocking: "it would block the connection the target's projects share; use blpop/brpop",
  unlisted: "it is not in the allowlist of commands confined to a project's keys",
  pattern: "a BY or GET pattern names keys outside the project's prefix"
}

/**
 * Why a refusal refuses, in words (for the error's detail).
 *
 * @category getters
 * @since 0.1.0
 */
export const explain = (why: Refusal): string => reasons[why]

const detailOf = byCommand((upper): ProtectionDetail => ({ command: upper }))

/**
 * The protection detail of a command, one shared object per command name: the engine passes it to the guard on
 * every call without allocating, and the protections read its upper-case `command`.
 *
 * @category constructors
 * @since 0.1.0
 */
export const commandDetail = (command: string): ProtectionDetail => detailOf(asciiUpper(command))
