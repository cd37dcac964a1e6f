/**
 * Classification of driver errors (no server needed): which count toward the breakers, which were possibly sent, and
 * that nothing resembling credentials survives into a `MongoError`.
 */
import { createRequire } from "node:module"
import { assert, describe, it } from "@effect/vitest"
import {
  BSON,
  MongoBulkWriteError,
  MongoInvalidArgumentError,
  MongoNetworkError,
  MongoNetworkTimeoutError,
  MongoServerError,
  MongoServerSelectionError,
  MongoTopologyClosedError
} from "mongodb"
import { classify, fromUnknown, MongoError, scrub } from "../src/MongoError.ts"

const server = (code: number, errmsg = `server error ${code}`) => new MongoServerError({ code, errmsg, ok: 0 })
// Driver errors the package does not export (its pool's): made from the driver's own classes.
const poolErrors = createRequire(import.meta.url)("mongodb/lib/cmap/errors.js") as {
  PoolClearedError: new (pool: unknown, message?: string) => Error
  WaitQueueTimeoutError: new (message: string, address: string) => Error
}
const fakePool = { address: "127.0.0.1:1", serverError: undefined }
const poolCleared = () => new poolErrors.PoolClearedError(fakePool)
const waitQueueTimeout = () => new poolErrors.WaitQueueTimeoutError("Timed out while checking out", "127.0.0.1:1")
// An object shaped like a driver error but not one: never classified as the driver's.
const lookalike = (name: string, message: string) => Object.assign(new Error(message), { name, code: 6 })

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
    ["pool cleared", poolCleared(), "pool_cleared", true],
    ["wait queue timeout", waitQueueTimeout(), "pool_timeout", true],
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
    ["client closed", new MongoTopologyClosedError("Topology is closed"), "closed", true],
    ["a look-alike of a network error", lookalike("MongoNetworkError", "connection closed"), "other", false],
    ["a BSON error (bad input)", new BSON.BSONError("cannot serialize"), "invalid_argument", false],
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
    assert.isFalse(fromUnknown("op", waitQueueTimeout()).sent)
    assert.isFalse(fromUnknown("op", poolCleared()).sent)
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

  it("a query that ran into its own maxTimeMS counts toward its project's breaker only, not the shared target's", () => {
    const own = classify(fromUnknown("find", server(50)))
    assert.isTrue(own.infrastructure)
    assert.isFalse(own.shared, "one slow query says nothing about the server")
    const down = classify(fromUnknown("find", new MongoNetworkError("connection reset")))
    assert.isTrue(down.infrastructure)
    assert.isTrue(down.shared)
    assert.isFalse(classify(fromUnknown("find", server(11000))).shared)
  })

  it("messages name the operation, the kind and the server code", () => {
    const error = fromUnknown("insertOne", server(11000, "E11000 duplicate key error\n  collection: db.c"))
    assert.strictEqual(error.message, "MongoDB insertOne failed (duplicate_key 11000): E11000 duplicate key error")
  })
})
