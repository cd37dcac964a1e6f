/**
 * Classification of driver errors (no server needed): which count toward the breakers, which were possibly sent, and
 * that nothing resembling credentials survives into a `MongoError`.
 */
import { assert, describe, it } from "@effect/vitest"
import {
  MongoBulkWriteError,
  MongoInvalidArgumentError,
  MongoNetworkError,
  MongoNetworkTimeoutError,
  MongoServerError,
  MongoServerSelectionError
} from "mongodb"
import { classify, fromUnknown, MongoError, scrub } from "../src/MongoError.ts"

const server = (code: number, errmsg = `server error ${code}`) => new MongoServerError({ code, errmsg, ok: 0 })
// Driver errors the package does not export: the engine matches them by name, as the driver names them.
const named = (name: string, message: string) => Object.assign(new Error(message), { name })

describe("MongoError", () => {
  const cases: ReadonlyArray<readonly [string, unknown, MongoError["kind"], boolean]> = [
    ["network error", new MongoNetworkError("connection 3 to 127.0.0.1:27017 closed"), "network", true],
    ["network timeout", new MongoNetworkTimeoutError("connection timed out"), "timeout", true],
    [
      "server selection",
      new MongoServerSelectionError("connect ECONNREFUSED 127.0.0.1:1", {} as never),
      "server_selection",
      true
    ],
    ["pool cleared", named("MongoPoolClearedError", "Connection pool for x was cleared"), "pool_cleared", true],
    ["wait queue timeout", named("MongoWaitQueueTimeoutError", "Timed out while checking out"), "pool_timeout", true],
    ["not writable primary", server(10107), "not_primary", true],
    ["not primary, no secondaryOk", server(13435), "not_primary", true],
    ["not primary or secondary", server(13436), "not_primary", true],
    ["primary stepped down", server(189), "not_primary", true],
    ["shutdown in progress", server(91), "shutdown", true],
    ["interrupted at shutdown", server(11600), "shutdown", true],
    ["interrupted by replication state change", server(11602), "shutdown", true],
    ["our maxTimeMS expired", server(50), "timeout", true],
    ["exceeded time limit", server(262), "timeout", true],
    ["node is recovering (by message)", server(99999, "node is recovering"), "not_primary", true],
    ["authentication failed", server(18), "auth", true],
    ["client closed", named("MongoTopologyClosedError", "Topology is closed"), "closed", true],
    ["duplicate key", server(11000, "E11000 duplicate key error collection: db.c index: a_1"), "duplicate_key", false],
    ["document validation", server(121), "validation", false],
    ["bad value", server(2), "bad_query", false],
    ["failed to parse", server(9), "bad_query", false],
    ["type mismatch", server(14), "bad_query", false],
    ["unknown pipeline stage", server(40324), "bad_query", false],
    ["bad $group", server(15974), "bad_query", false],
    ["bad $project", server(16410), "bad_query", false],
    ["not implemented (FerretDB)", server(238), "not_supported", false],
    ["index not found", server(27), "not_found", false],
    ["write conflict", server(112), "conflict", false],
    [
      "invalid argument",
      new MongoInvalidArgumentError('Argument "pipeline" must be an array'),
      "invalid_argument",
      false
    ],
    ["unknown server code", server(424242), "server", false],
    ["not an error at all", "boom", "other", false]
  ]
  for (const [what, cause, kind, infrastructure] of cases) {
    it(`${what} is ${kind} (${infrastructure ? "counts toward the breakers" : "the caller's"})`, () => {
      const error = fromUnknown("op", cause)
      assert.instanceOf(error, MongoError)
      assert.strictEqual(error.kind, kind)
      assert.strictEqual(error.isInfrastructure, infrastructure)
      assert.strictEqual(classify(error).infrastructure, infrastructure)
      assert.strictEqual(classify(error).errorType, kind)
    })
  }

  it("duplicate keys inside a bulk write are the caller's, with the first write error's code", () => {
    const bulk = new MongoBulkWriteError(
      { message: "E11000 duplicate key error", code: 11000, writeErrors: [{ code: 11000 }] } as never,
      { insertedCount: 3 } as never
    )
    const error = fromUnknown("insertMany", bulk)
    assert.strictEqual(error.kind, "duplicate_key")
    assert.strictEqual(error.code, 11000)
    assert.isFalse(error.isInfrastructure)
  })

  it("says which failures may have reached the server", () => {
    assert.isFalse(fromUnknown("op", new MongoServerSelectionError("x", {} as never)).sent)
    assert.isFalse(fromUnknown("op", named("MongoWaitQueueTimeoutError", "x")).sent)
    assert.isFalse(fromUnknown("op", named("MongoPoolClearedError", "x")).sent)
    assert.isFalse(fromUnknown("op", new MongoNetworkError("x", { beforeHandshake: true })).sent)
    assert.isTrue(fromUnknown("op", new MongoNetworkError("x")).sent)
    assert.isFalse(fromUnknown("op", server(10107)).sent, "not-primary is refused before executing")
    assert.isFalse(fromUnknown("op", server(91)).sent, "shutdown-in-progress is refused before executing")
    assert.isTrue(fromUnknown("op", server(11600)).sent, "an interrupted write may have applied in part")
    assert.isTrue(fromUnknown("op", server(50)).sent)
  })

  it("never keeps credentials: connection strings lose their user:password@, known secrets are removed", () => {
    const password = "CANARY-p@ss/#"
    const text =
      `failed to connect to mongodb://alice:${encodeURIComponent(password)}@db.example.com:27017/app ` +
      `and mongodb+srv://bob:hunter2@cluster0.example.net, raw ${password}`
    const error = fromUnknown("connect", new MongoNetworkError(text), [password])
    assert.notInclude(error.message, password)
    assert.notInclude(error.message, encodeURIComponent(password))
    assert.notInclude(error.message, "hunter2")
    assert.notInclude(error.message, "alice")
    assert.include(error.message, "db.example.com:27017", "host lists stay: they help and hold no secret")
    assert.include(error.message, "mongodb://<credentials>@")
    assert.notInclude(JSON.stringify(error), password)
    assert.strictEqual(scrub("see user:secret@host:1 now"), "see <credentials>@host:1 now")
    assert.strictEqual(scrub("plain text, nothing to hide"), "plain text, nothing to hide")
    const dup = 'E11000 duplicate key error collection: app.users index: email_1 dup key: { email: "jane@example.com" }'
    assert.strictEqual(scrub(dup), dup, "ordinary server messages pass unchanged")
  })

  it("messages name the operation, the kind and the server code", () => {
    const error = fromUnknown("insertOne", server(11000, "E11000 duplicate key error\n  collection: db.c"))
    assert.strictEqual(error.message, "MongoDB insertOne failed (duplicate_key 11000): E11000 duplicate key error")
  })
})
