/**
 * What a Redis command is to tenantpool, in one table: the engine's `command` escape hatch refuses what reaches past
 * a project's keys or blocks the shared connection, and the protections' `RedisCommandPolicy` builds its per-tier
 * defaults from the dangerous and costly entries. Both read this table, so a command's verdict is written once.
 *
 * A command without an entry is an ordinary keyed command: its key positions come from Redis's own command table
 * (`@ioredis/commands`). Entries are per command so that they can grow (key positions, an allow flag) when the
 * escape hatch turns into a deny-by-default allowlist (see docs/architecture.md).
 *
 * @since 0.1.0
 */
import type { ProtectionDetail } from "@tenantpool/core/Protections"
import { byCommand } from "./internal/byCommand.ts"

/**
 * Why a command reaches past a project's keys:
 *
 * - `keyspace`: reads, changes or reports keys outside the project's prefix (KEYS, FLUSHALL, MOVE, …);
 * - `connection`: changes the connection every project on the target shares (SELECT, AUTH, MULTI, …);
 * - `server`: administers the server or its replication, an operator's job (CONFIG, SHUTDOWN, ACL, …);
 * - `script`: runs server-side code that can name any key (EVAL, FCALL, …); `evalScript` prefixes a script's keys.
 *
 * @category models
 * @since 0.1.0
 */
export type Reach = "keyspace" | "connection" | "server" | "script"

/**
 * A class of commands that cost more than their arguments suggest, which the per-tier defaults may block:
 * `sort` (O(N log N) on the server) and `set-algebra` (unions, intersections and differences: O(total size)).
 *
 * @category models
 * @since 0.1.0
 */
export type Cost = "sort" | "set-algebra"

/**
 * What tenantpool knows of one command. Every field is optional: an entry names only what makes the command special.
 *
 * @category models
 * @since 0.1.0
 */
export interface CommandEntry {
  /** It reaches past the project's keys, always: `command` refuses it for every project. */
  readonly reach?: Reach | undefined
  /**
   * It reads keys named by its `BY` and `GET` patterns, which are not prefixed (`BY nosort` reads none): `command`
   * refuses it when it has such a pattern.
   */
  readonly patternKeys?: boolean | undefined
  /**
   * It blocks on the server (`always`, or only `with-block-option`: a `BLOCK` option before `STREAMS`): on the
   * connection every project on the target shares, it would hold up everyone's commands behind it, so `command`
   * refuses it (the typed `blpop`/`brpop` run on a dedicated connection).
   */
  readonly blocking?: "always" | "with-block-option" | undefined
  /** Its cost class, for the per-tier defaults of `RedisCommandPolicy`. */
  readonly cost?: Cost | undefined
  /** One of the spec's dangerous commands, which the default policy blocks on every tier. */
  readonly dangerous?: boolean | undefined
}

/**
 * The table, by upper-case command name.
 *
 * @category constants
 * @since 0.1.0
 */
export const commands: Readonly<Record<string, CommandEntry>> = {
  KEYS: { reach: "keyspace", dangerous: true },
  SCAN: { reach: "keyspace" },
  FLUSHALL: { reach: "keyspace", dangerous: true },
  FLUSHDB: { reach: "keyspace", dangerous: true },
  CONFIG: { reach: "server", dangerous: true },
  DEBUG: { reach: "server", dangerous: true },
  SHUTDOWN: { reach: "server", dangerous: true },
  SELECT: { reach: "connection" },
  SWAPDB: { reach: "keyspace" },
  MOVE: { reach: "keyspace" },
  MIGRATE: { reach: "keyspace" },
  RANDOMKEY: { reach: "keyspace" },
  MONITOR: { reach: "server" },
  SYNC: { reach: "server" },
  PSYNC: { reach: "server" },
  REPLICAOF: { reach: "server" },
  SLAVEOF: { reach: "server" },
  CLIENT: { reach: "connection" },
  ACL: { reach: "server" },
  SCRIPT: { reach: "script" },
  FUNCTION: { reach: "script" },
  FCALL: { reach: "script" },
  FCALL_RO: { reach: "script" },
  EVAL: { reach: "script" },
  EVAL_RO: { reach: "script" },
  EVALSHA: { reach: "script" },
  EVALSHA_RO: { reach: "script" },
  PUBSUB: { reach: "keyspace" },
  AUTH: { reach: "connection" },
  HELLO: { reach: "connection" },
  SUBSCRIBE: { reach: "connection" },
  PSUBSCRIBE: { reach: "connection" },
  SSUBSCRIBE: { reach: "connection" },
  MULTI: { reach: "connection" },
  EXEC: { reach: "connection" },
  WATCH: { reach: "connection" },
  MODULE: { reach: "server" },
  SAVE: { reach: "server" },
  BGSAVE: { reach: "server" },
  BGREWRITEAOF: { reach: "server" },
  CLUSTER: { reach: "server" },
  FAILOVER: { reach: "server" },
  LATENCY: { reach: "server" },
  MEMORY: { reach: "server" },
  OBJECT: { reach: "server" },
  SLOWLOG: { reach: "server" },
  INFO: { reach: "server" },
  DBSIZE: { reach: "keyspace" },
  WAIT: { reach: "server" },
  RESET: { reach: "connection" },
  QUIT: { reach: "connection" },
  BLPOP: { blocking: "always" },
  BRPOP: { blocking: "always" },
  BRPOPLPUSH: { blocking: "always" },
  BLMOVE: { blocking: "always" },
  BLMPOP: { blocking: "always" },
  BZPOPMIN: { blocking: "always" },
  BZPOPMAX: { blocking: "always" },
  BZMPOP: { blocking: "always" },
  XREAD: { blocking: "with-block-option" },
  XREADGROUP: { blocking: "with-block-option" },
  SORT: { patternKeys: true, cost: "sort" },
  SORT_RO: { patternKeys: true, cost: "sort" },
  SUNION: { cost: "set-algebra" },
  SINTER: { cost: "set-algebra" },
  SDIFF: { cost: "set-algebra" },
  SUNIONSTORE: { cost: "set-algebra" },
  SINTERSTORE: { cost: "set-algebra" },
  SDIFFSTORE: { cost: "set-algebra" },
  ZUNION: { cost: "set-algebra" },
  ZINTER: { cost: "set-algebra" },
  ZDIFF: { cost: "set-algebra" },
  ZUNIONSTORE: { cost: "set-algebra" },
  ZINTERSTORE: { cost: "set-algebra" },
  ZDIFFSTORE: { cost: "set-algebra" }
}

/**
 * The entry of a command (any case), if it has one.
 *
 * @category getters
 * @since 0.1.0
 */
export const entry = (command: string): CommandEntry | undefined => {
  const upper = command.toUpperCase()
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
 * Why `command` refuses a call: it reaches past the project's keys, or it would block the shared connection.
 *
 * @category models
 * @since 0.1.0
 */
export type Refusal = "reaches-past-keys" | "blocking"

/**
 * Why the `command` escape hatch refuses this call (name in any case, then its arguments), if it does.
 *
 * @category predicates
 * @since 0.1.0
 */
export const refusal = (command: string, args: ReadonlyArray<string | number>): Refusal | undefined => {
  const e = entry(command)
  if (e === undefined) return undefined
  if (e.reach !== undefined || (e.patternKeys === true && hasKeyPattern(args))) return "reaches-past-keys"
  if (e.blocking === "always" || (e.blocking === "with-block-option" && hasBlockOption(args))) return "blocking"
  return undefined
}

// SORT key [BY pattern] [GET pattern …]: the first argument is the (prefixed) key, so the search starts after it.
const hasKeyPattern = (args: ReadonlyArray<string | number>): boolean => {
  for (let i = 1; i < args.length; i++) {
    const word = String(args[i]).toUpperCase()
    if (word === "GET") return true
    if (word === "BY" && String(args[i + 1]).toUpperCase() !== "NOSORT") return true
  }
  return false
}

// Options come before STREAMS; after it, "block" would be a stream name.
const hasBlockOption = (args: ReadonlyArray<string | number>): boolean => {
  for (const a of args) {
    const word = String(a).toUpperCase()
    if (word === "STREAMS") return false
    if (word === "BLOCK") return true
  }
  return false
}

const detailOf = byCommand((upper): ProtectionDetail => ({ command: upper }))

/**
 * The protection detail of a command, one shared object per command name: the engine passes it to the guard on
 * every call without allocating, and the protections read its upper-case `command`.
 *
 * @category constructors
 * @since 0.1.0
 */
export const commandDetail = (command: string): ProtectionDetail => detailOf(command.toUpperCase())
