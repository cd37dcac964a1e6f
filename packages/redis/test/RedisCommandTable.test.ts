/**
 * The Redis command table: deny by default; every command the engine refused before the allowlist keeps its
 * verdict (scripts are now allowed only for projects that may run them); keys and channels come from the key
 * specifications, including the ones found by keyword or key count; the argument rules of SORT, XREAD and COPY; and
 * what cannot be located for certain is not sent.
 */
import { assert, describe, it } from "@effect/vitest"
import * as RedisCommandTable from "../src/RedisCommandTable.ts"

// The engine's deny list as it was before the allowlist (less the scripts, below): the verdicts the table keeps.
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
  "FUNCTION",
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
const scripts = ["EVAL", "EVAL_RO", "EVALSHA", "EVALSHA_RO", "FCALL", "FCALL_RO"]
const blocking = ["BLPOP", "BRPOP", "BRPOPLPUSH", "BLMOVE", "BLMPOP", "BZPOPMIN", "BZPOPMAX", "BZMPOP"]

const verdict = RedisCommandTable.check
const positions = (name: string, args: ReadonlyArray<string | number>) => {
  const v = verdict(name, args)
  assert.strictEqual(v._tag, "Allowed", `${name} ${args.join(" ")}`)
  return v._tag === "Allowed" ? [...v.positions].sort((a, b) => a - b) : []
}
const refusal = (name: string, args: ReadonlyArray<string | number>) => {
  const v = verdict(name, args)
  return v._tag === "Refused" ? v.why : v._tag
}

describe("RedisCommandTable", () => {
  it("refuses every command that reached past a project's keys, in any case, whatever its arguments", () => {
    for (const name of reachedPastKeys) {
      for (const args of [[], ["x"], ["GET", "k"], ["USAGE", "k", "k"]]) {
        const v = verdict(name, args)
        // OBJECT ENCODING/… and MEMORY USAGE read the project's own (prefixed) key and are now allowed.
        if ((name === "MEMORY" && args[0] === "USAGE") || (name === "OBJECT" && args[0] === "GET")) continue
        assert.strictEqual(v._tag, "Refused", `${name} ${args.join(" ")}`)
        assert.strictEqual(verdict(name.toLowerCase(), args)._tag, "Refused", name)
      }
    }
  })

  it("allows scripts as scripts only (the engine runs them only for projects that may), with their keys", () => {
    for (const name of scripts) {
      const v = verdict(name, ["return 1", 2, "k1", "k2", "arg"])
      assert.strictEqual(v._tag, "Allowed", name)
      if (v._tag === "Allowed") {
        assert.isTrue(v.script, name)
        assert.deepStrictEqual(v.positions, [2, 3], name)
      }
    }
    const load = verdict("SCRIPT", ["load", "return 1"])
    assert.isTrue(load._tag === "Allowed" && load.script && load.subcommand === "load")
    for (const sub of ["FLUSH", "KILL", "DEBUG"]) assert.strictEqual(refusal("SCRIPT", [sub]), "server", sub)
    assert.strictEqual(refusal("FUNCTION", ["LOAD", "#!lua name=x\n"]), "server")
  })

  it("denies by default: unknown commands and unknown subcommands are refused as unlisted", () => {
    for (const name of ["NOSUCHCMD", "JSON.GET", "LOLWUT", "", "GET ", "ſet"]) {
      assert.strictEqual(refusal(name, ["k"]), "unlisted", JSON.stringify(name))
    }
    assert.strictEqual(refusal("OBJECT", ["HELP"]), "unlisted")
    assert.strictEqual(refusal("XINFO", []), "unlisted")
    assert.strictEqual(refusal("MEMORY", ["STATS"]), "server")
  })

  it("refuses every blocking command, and XREAD/XREADGROUP only with BLOCK before STREAMS", () => {
    for (const name of blocking) assert.strictEqual(refusal(name, ["k", 0]), "blocking", name)
    assert.strictEqual(refusal("XREAD", ["COUNT", 1, "BLOCK", 0, "STREAMS", "s", "$"]), "blocking")
    assert.strictEqual(refusal("xreadgroup", ["GROUP", "g", "c", "block", 10, "STREAMS", "s", ">"]), "blocking")
    assert.deepStrictEqual(positions("XREAD", ["COUNT", 1, "STREAMS", "s", "$"]), [3])
    assert.deepStrictEqual(positions("XREAD", ["STREAMS", "block", "0"]), [1], "a stream named block")
    assert.deepStrictEqual(positions("XREADGROUP", ["GROUP", "g", "c", "STREAMS", "a", "b", ">", ">"]), [4, 5])
  })

  it("locates keys by index, range, step, key count and keyword, as Redis's key specifications do", () => {
    assert.deepStrictEqual(positions("GET", ["k"]), [0])
    assert.deepStrictEqual(positions("MSET", ["a", 1, "b", 2, "c", 3]), [0, 2, 4])
    assert.deepStrictEqual(positions("DEL", ["a", "b", "c"]), [0, 1, 2])
    assert.deepStrictEqual(positions("LCS", ["a", "b", "LEN"]), [0, 1])
    assert.deepStrictEqual(positions("BITOP", ["AND", "dest", "a", "b"]), [1, 2, 3])
    assert.deepStrictEqual(positions("ZUNIONSTORE", ["dst", 2, "a", "b", "WEIGHTS", 1, 2]), [0, 2, 3])
    assert.deepStrictEqual(positions("LMPOP", [2, "a", "b", "LEFT"]), [1, 2])
    assert.deepStrictEqual(positions("GEORADIUS", ["g", 0, 0, 1, "km", "STORE", "dst"]), [0, 6])
    assert.deepStrictEqual(positions("GEORADIUS", ["g", 0, 0, 1, "km", "STOREDIST", "d", "STORE", "e"]), [0, 6, 8])
    assert.deepStrictEqual(positions("OBJECT", ["encoding", "k"]), [1])
    assert.deepStrictEqual(positions("XGROUP", ["CREATE", "s", "g", "$"]), [1])
    assert.deepStrictEqual(positions("PUBLISH", ["victim:events", "m"]), [0], "channels are prefixed like keys")
    assert.deepStrictEqual(positions("SPUBLISH", ["events", "m"]), [0])
    assert.deepStrictEqual(positions("EVAL", ["return 1", 0]), [], "a script without keys")
    const object = verdict("OBJECT", ["eNcOdInG", "k"])
    assert.isTrue(object._tag === "Allowed" && object.subcommand === "encoding", "the table's spelling is sent")
  })

  it("refuses what cannot be located for certain: counts that do not fit, repeated keywords", () => {
    assert.strictEqual(refusal("ZUNIONSTORE", ["dst", 5, "a"]), "Invalid")
    assert.strictEqual(refusal("ZUNIONSTORE", ["dst", "two", "a", "b"]), "Invalid")
    assert.strictEqual(refusal("EVAL", ["return 1", -1]), "Invalid")
    assert.strictEqual(refusal("EVAL", ["return 1", "01", "k"]), "Invalid", "Redis reads counts strictly")
    assert.strictEqual(refusal("GET", []), "Invalid")
    assert.strictEqual(refusal("MGET", []), "Invalid")
    // The server's parser takes the last STORE, the key specification the first: a second one could hide a key.
    const twoStores = verdict("GEORADIUS", ["g", 0, 0, 1, "km", "STORE", "mine", "STORE", "victim:x"])
    assert.deepStrictEqual(twoStores, { _tag: "Invalid", command: "GEORADIUS", why: "ambiguous" })
    const twoStreams = verdict("XREADGROUP", ["NOACK", "GROUP", "g", "STREAMS", "STREAMS", "k", "0"])
    assert.strictEqual(twoStreams._tag === "Invalid" && twoStreams.why, "ambiguous")
    // Redis compares keywords ignoring ASCII case only: "ſtore" is not STORE to Redis, and not to the table.
    assert.deepStrictEqual(positions("GEORADIUS", ["g", 0, 0, 1, "km", "ſtore", "x"]), [0])
  })

  it("reads SORT like the server: STORE's key is prefixed, BY and GET patterns are refused", () => {
    for (const name of ["SORT", "sort_ro"]) {
      assert.deepStrictEqual(positions(name, ["list"]), [0])
      assert.deepStrictEqual(positions(name, ["list", "BY", "nosort"]), [0])
      assert.deepStrictEqual(positions(name, ["list", "LIMIT", 0, 10, "ALPHA", "DESC"]), [0])
      assert.strictEqual(refusal(name, ["list", "BY", "w_*"]), "pattern")
      assert.strictEqual(refusal(name, ["list", "get", "#"]), "pattern")
      assert.strictEqual(refusal(name, ["list", "BY", "nosort", "GET", "o_*"]), "pattern")
    }
    assert.deepStrictEqual(positions("SORT", ["list", "STORE", "dst"]), [0, 2])
    assert.deepStrictEqual(positions("SORT", ["list", "STORE", "a", "STORE", "b"]), [0, 2, 4], "every STORE key")
    assert.deepStrictEqual(positions("SORT", ["list", "LIMIT", "STORE", "x", "STORE", "y"]), [0, 5])
    assert.deepStrictEqual(positions("SORT", ["GET"]), [0], "the key itself may be named GET")
  })

  it("refuses COPY into another database, and nothing else about COPY", () => {
    assert.deepStrictEqual(positions("COPY", ["a", "b", "REPLACE"]), [0, 1])
    assert.deepStrictEqual(positions("COPY", ["db", "DB"]), [0, 1], "keys named db")
    assert.strictEqual(refusal("COPY", ["a", "b", "DB", 1]), "database")
    assert.strictEqual(refusal("copy", ["a", "b", "REPLACE", "db", 0]), "database")
  })

  it("marks read-only commands (retried like reads) and lets costly ones through for the tier policy", () => {
    for (const [name, args] of [
      ["GET", ["k"]],
      ["HGETALL", ["k"]],
      ["XRANGE", ["k", "-", "+"]],
      ["SUNION", ["a", "b"]],
      ["SORT_RO", ["k"]],
      ["ZINTER", [2, "a", "b"]]
    ] as const) {
      const v = verdict(name, args)
      assert.isTrue(v._tag === "Allowed" && v.readOnly, name)
    }
    for (const name of ["SET", "INCR", "SUNIONSTORE", "SORT"]) {
      const v = verdict(name, ["k", "v"])
      assert.isTrue(v._tag === "Allowed" && !v.readOnly, name)
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
    assert.deepStrictEqual([...RedisCommandTable.names((e) => e.cost === "set-algebra")].sort(), [
      "SDIFF",
      "SDIFFSTORE",
      "SINTER",
      "SINTERSTORE",
      "SUNION",
      "SUNIONSTORE",
      "ZDIFF",
      "ZDIFFSTORE",
      "ZINTER",
      "ZINTERSTORE",
      "ZUNION",
      "ZUNIONSTORE"
    ])
  })

  it("gives one shared, upper-case protection detail per command name", () => {
    const detail = RedisCommandTable.commandDetail("get")
    assert.deepStrictEqual(detail, { command: "GET" })
    assert.strictEqual(RedisCommandTable.commandDetail("GET"), detail)
  })
})
