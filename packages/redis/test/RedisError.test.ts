/**
 * How driver errors are classified, by their class and how far the call got (never by their shape): a server reply
 * is the server's answer, ioredis's connection-level errors and socket errors are infrastructure, and anything else
 * (a `TypeError` from an argument the driver cannot encode) is the caller's or the client's, which no breaker counts;
 * an error one call provokes (a busy script, a slow call) never counts toward the breaker every project shares.
 */
import { assert, describe, it } from "@effect/vitest"
import { ReplyError } from "ioredis"
import { classify, fromUnknown, RedisError } from "../src/RedisError.ts"

const redisErrors = Object.getPrototypeOf(ReplyError) as new (message: string) => Error

const socketError = (code: string, syscall: string) =>
  Object.assign(new Error(`${syscall} ${code} 127.0.0.1:6379`), { code, syscall, errno: -1 })

describe("RedisError classification", () => {
  it("a server reply is the server's answer: the caller's kinds never count, the server's condition does", () => {
    const wrongtype = fromUnknown("get")(new ReplyError("WRONGTYPE Operation against a key holding the wrong kind"))
    assert.strictEqual(wrongtype.kind, "wrongtype")
    assert.isFalse(classify(wrongtype).infrastructure)
    const loading = fromUnknown("get")(new ReplyError("LOADING Redis is loading the dataset in memory"))
    assert.deepStrictEqual(classify(loading), {
      infrastructure: true,
      shared: undefined,
      errorType: "loading",
      sent: false
    })
  })

  it("a TypeError, RangeError or any other class is the client's failure, never infrastructure", () => {
    for (const cause of [
      new TypeError("Cannot read properties of undefined (reading 'map')"),
      new RangeError("Invalid array length"),
      Object.assign(new TypeError('The "string" argument must be of type string. Received 123'), {
        code: "ERR_INVALID_ARG_TYPE"
      }),
      "a string",
      undefined
    ]) {
      const error = fromUnknown("mget")(cause)
      assert.strictEqual(error.kind, "client", String(cause))
      assert.isFalse(classify(error).infrastructure, String(cause))
      assert.notInclude(error.message, "123", "the driver's message (it may quote the argument) is not echoed")
    }
  })

  it("socket errors and ioredis's connection errors are infrastructure, sent unless the socket never connected", () => {
    const refused = fromUnknown("get")(socketError("ECONNREFUSED", "connect"))
    assert.deepStrictEqual([refused.kind, refused.sent], ["connection", false])
    const reset = fromUnknown("set")(socketError("ECONNRESET", "read"))
    assert.deepStrictEqual([reset.kind, reset.sent], ["connection", true])
    const closed = fromUnknown("set")(new Error("Connection is closed."))
    assert.deepStrictEqual([closed.kind, closed.sent], ["connection", true])
    const offline = fromUnknown("set")(new Error("Stream isn't writeable and enableOfflineQueue options is false"))
    assert.deepStrictEqual([offline.kind, offline.sent], ["connection", false])
    const aborted = fromUnknown("set")(new redisErrors("Command aborted due to connection close"))
    assert.deepStrictEqual([aborted.kind, aborted.sent], ["connection", true])
    for (const e of [refused, reset, closed, offline, aborted]) assert.isTrue(classify(e).infrastructure)
  })

  it("a busy script and a slow call count toward the project's breaker only, not the one every project shares", () => {
    const busy = fromUnknown("get")(new ReplyError("BUSY Redis is busy running a script."))
    assert.deepStrictEqual(classify(busy), { infrastructure: true, shared: false, errorType: "busy", sent: false })
    const timeout = new RedisError({ kind: "timeout", command: "get", detail: "timed out", sent: true })
    assert.isFalse(classify(timeout).shared)
    const down = new RedisError({ kind: "connection", command: "get", detail: "ECONNRESET", sent: true })
    assert.notStrictEqual(classify(down).shared, false)
  })

  it("the caller's argument errors and refusals never count", () => {
    for (const kind of ["argument", "forbidden", "client"] as const) {
      assert.isFalse(classify(new RedisError({ kind, command: "x", detail: "d", sent: false })).infrastructure, kind)
    }
  })
})
