/**
 * The Redis command table: every command the engine refused before the table existed keeps its verdict, with its
 * argument rules (SORT patterns, XREAD BLOCK), and ordinary commands stay allowed.
 */
import { assert, describe, it } from "@effect/vitest"
import * as RedisCommandTable from "../src/RedisCommandTable.ts"

// The engine's deny lists as they were written before the table (RedisEngine.ts, `forbiddenCommands` and
// `blockingCommands`): the verdicts the table must keep.
const reachedPastKeys = [
  "KEYS",
  "SCAN",
  "FLUSHALL",
  "FLUSHDB",
  "CONFIG",
  "DEBUG",
  "SHUTDOWN",
  "SELECT",
  "SWAPDB",
  "MOVE",
  "MIGRATE",
  "RANDOMKEY",
  "MONITOR",
  "SYNC",
  "PSYNC",
  "REPLICAOF",
  "SLAVEOF",
  "CLIENT",
  "ACL",
  "SCRIPT",
  "FUNCTION",
  "FCALL",
  "FCALL_RO",
  "EVAL",
  "EVAL_RO",
  "EVALSHA",
  "EVALSHA_RO",
  "PUBSUB",
  "AUTH",
  "HELLO",
  "SUBSCRIBE",
  "PSUBSCRIBE",
  "SSUBSCRIBE",
  "MULTI",
  "EXEC",
  "WATCH",
  "MODULE",
  "SAVE",
  "BGSAVE",
  "BGREWRITEAOF",
  "CLUSTER",
  "FAILOVER",
  "LATENCY",
  "MEMORY",
  "OBJECT",
  "SLOWLOG",
  "INFO",
  "DBSIZE",
  "WAIT",
  "RESET",
  "QUIT"
]
const blocked = ["BLPOP", "BRPOP", "BRPOPLPUSH", "BLMOVE", "BLMPOP", "BZPOPMIN", "BZPOPMAX", "BZMPOP"]

describe("RedisCommandTable", () => {
  it("refuses every command that reached past a project's keys, in any case, whatever its arguments", () => {
    for (const name of reachedPastKeys) {
      assert.strictEqual(RedisCommandTable.refusal(name, []), "reaches-past-keys", name)
      assert.strictEqual(RedisCommandTable.refusal(name.toLowerCase(), ["x"]), "reaches-past-keys", name)
    }
    assert.deepStrictEqual(
      RedisCommandTable.names((e) => e.reach !== undefined),
      reachedPastKeys,
      "no command was added to or dropped from the always-refused set"
    )
  })

  it("refuses every blocking command, and XREAD/XREADGROUP only with BLOCK before STREAMS", () => {
    for (const name of blocked) assert.strictEqual(RedisCommandTable.refusal(name, ["k", 0]), "blocking", name)
    assert.deepStrictEqual(
      RedisCommandTable.names((e) => e.blocking === "always"),
      blocked
    )
    assert.strictEqual(RedisCommandTable.refusal("XREAD", ["COUNT", 1, "BLOCK", 0, "STREAMS", "s", "$"]), "blocking")
    assert.strictEqual(
      RedisCommandTable.refusal("xreadgroup", ["GROUP", "g", "c", "block", 10, "STREAMS", "s", ">"]),
      "blocking"
    )
    assert.isUndefined(RedisCommandTable.refusal("XREAD", ["COUNT", 1, "STREAMS", "s", "$"]))
    assert.isUndefined(RedisCommandTable.refusal("XREAD", ["STREAMS", "block", "0"]), "a stream named block")
  })

  it("refuses SORT and SORT_RO only when a BY or GET pattern would read keys outside the project", () => {
    for (const name of ["SORT", "sort_ro"]) {
      assert.isUndefined(RedisCommandTable.refusal(name, ["list"]))
      assert.isUndefined(RedisCommandTable.refusal(name, ["list", "BY", "nosort"]))
      assert.isUndefined(RedisCommandTable.refusal(name, ["list", "LIMIT", 0, 10, "ALPHA"]))
      assert.strictEqual(RedisCommandTable.refusal(name, ["list", "BY", "w_*"]), "reaches-past-keys")
      assert.strictEqual(RedisCommandTable.refusal(name, ["list", "get", "#"]), "reaches-past-keys")
      assert.strictEqual(RedisCommandTable.refusal(name, ["list", "BY", "nosort", "GET", "o_*"]), "reaches-past-keys")
    }
    assert.isUndefined(RedisCommandTable.refusal("SORT", ["GET"]), "the key itself may be named GET")
  })

  it("lets ordinary and costly commands through: the tiers' policy decides on those", () => {
    for (const name of ["GET", "SET", "HGETALL", "XADD", "XRANGE", "SUNION", "ZINTERSTORE", "SORT", "LPOS"]) {
      assert.isUndefined(RedisCommandTable.refusal(name, ["k"]), name)
    }
  })

  it("classes SORT and set algebra by cost, and marks the spec's six dangerous commands", () => {
    assert.deepStrictEqual(
      RedisCommandTable.names((e) => e.dangerous === true),
      ["KEYS", "FLUSHALL", "FLUSHDB", "CONFIG", "DEBUG", "SHUTDOWN"]
    )
    assert.deepStrictEqual(
      RedisCommandTable.names((e) => e.cost === "sort"),
      ["SORT", "SORT_RO"]
    )
    assert.deepStrictEqual(
      RedisCommandTable.names((e) => e.cost === "set-algebra"),
      [
        "SUNION",
        "SINTER",
        "SDIFF",
        "SUNIONSTORE",
        "SINTERSTORE",
        "SDIFFSTORE",
        "ZUNION",
        "ZINTER",
        "ZDIFF",
        "ZUNIONSTORE",
        "ZINTERSTORE",
        "ZDIFFSTORE"
      ]
    )
  })

  it("gives one shared, upper-case protection detail per command name", () => {
    const detail = RedisCommandTable.commandDetail("get")
    assert.deepStrictEqual(detail, { command: "GET" })
    assert.strictEqual(RedisCommandTable.commandDetail("GET"), detail)
  })
})
