/**
 * The option allowlists (no server needed): in the types, an option outside an operation's allowlist does not
 * type-check, not even through a variable typed with the driver's own options (`npm run check` fails on an unused
 * `@ts-expect-error`); at run time, it is refused naming it, and the allowed ones are checked by kind and copied.
 */
import { assert, describe, it } from "@effect/vitest"
import type { FindOptions as DriverFindOptions, UpdateOptions as DriverUpdateOptions } from "mongodb"
import { checkOptions } from "../src/internal/options.ts"
import type { MongoCollection } from "../src/MongoCollection.ts"
import * as MongoOptions from "../src/MongoOptions.ts"
import * as Fx from "./fixtures/Mongo.ts"

// Type-level only: never called.
const typeChecks = (c: MongoCollection<{ a: number }>, driverFind: DriverFindOptions, update: DriverUpdateOptions) => {
  c.find({}, { limit: 1, sort: { a: 1 }, projection: { a: 1 }, comment: "ok", maxTimeMS: 100 })
  // @ts-expect-error dbName runs the command in another database
  c.find({}, { dbName: "victim" })
  // @ts-expect-error distinct: the same
  c.distinct("a", {}, { dbName: "victim" })
  // @ts-expect-error findOneAndUpdate: the same
  c.findOneAndUpdate({}, { $set: { a: 1 } }, { dbName: "victim" })
  // @ts-expect-error a session belongs to the engine's clients
  c.find({}, { session: undefined as never as NonNullable<DriverFindOptions["session"]> })
  // @ts-expect-error readPreference selects another server
  c.find({}, { readPreference: "secondary" })
  // @ts-expect-error noCursorTimeout outlives the engine's bounds
  c.find({}, { noCursorTimeout: true })
  // @ts-expect-error bypassDocumentValidation bypasses what the platform configured
  c.updateOne({}, { $set: { a: 1 } }, { bypassDocumentValidation: true })
  // @ts-expect-error the driver's own options type, passed through a variable, does not fit either
  c.find({}, driverFind)
  // @ts-expect-error the same for an update
  c.updateMany({}, { $set: { a: 1 } }, update)
  c.updateMany({}, { $set: { a: 1 } }, { upsert: true, idempotent: true })
}

const refusal = Fx.refusal

describe("MongoOptions", () => {
  it("refuses every option outside the operation's allowlist, naming it", () => {
    assert.isFunction(typeChecks)
    for (const key of ["dbName", "authdb", "session", "readPreference", "noCursorTimeout", "raw", "explain", "x"]) {
      const r = refusal(() => checkOptions("find", { [key]: 1 }))
      assert.strictEqual(r.argument, `options.${key}`)
      assert.strictEqual(r.kind, "forbidden")
    }
    assert.strictEqual(refusal(() => checkOptions("insertOne", { limit: 1 })).argument, "options.limit")
    assert.strictEqual(refusal(() => checkOptions("find", "limit=1")).argument, "options")
  })

  it("checks values by kind: maxTimeMS 0 (no server limit) and w 0 (unacknowledged) are refused", () => {
    assert.strictEqual(refusal(() => checkOptions("find", { maxTimeMS: 0 })).argument, "options.maxTimeMS")
    assert.strictEqual(refusal(() => checkOptions("find", { limit: "1" })).argument, "options.limit")
    assert.strictEqual(refusal(() => checkOptions("find", { skip: -1 })).argument, "options.skip")
    assert.strictEqual(
      refusal(() => checkOptions("insertOne", { writeConcern: { w: 0 } })).argument,
      "options.writeConcern.w"
    )
    assert.strictEqual(
      refusal(() => checkOptions("insertOne", { writeConcern: { w: 1, fsync: true } })).argument,
      "options.writeConcern.fsync"
    )
    assert.strictEqual(
      refusal(() => checkOptions("find", { readConcern: { level: 1 } })).argument,
      "options.readConcern.level"
    )
  })

  it("copies the allowed ones: documents in their sent form, undefined ones dropped, idempotent kept apart", () => {
    const projection = { a: 1 }
    const checked = checkOptions("updateOne", { upsert: true, idempotent: true, let: { x: 1 }, hint: undefined })
    assert.deepStrictEqual(checked.driver, { upsert: true, let: { x: 1 } })
    assert.isTrue(checked.idempotent)
    assert.deepStrictEqual(checked.documents, [{ x: 1 }])
    const find = checkOptions("find", { projection, maxTimeMS: 50 })
    assert.notStrictEqual(find.driver?.["projection"], projection, "a copy, not the caller's object")
    assert.strictEqual(find.maxTimeMS, 50)
    assert.strictEqual(checkOptions("find", undefined).driver, undefined)
  })

  it("lists the allowlists for every operation", () => {
    assert.includeMembers(Object.keys(MongoOptions.allowedOptions), ["find", "aggregate", "updateOne", "transaction"])
    for (const allowed of Object.values(MongoOptions.allowedOptions)) {
      for (const key of ["dbName", "authdb", "session", "readPreference", "bypassDocumentValidation"]) {
        assert.notProperty(allowed, key)
      }
    }
  })
})
