/**
 * Documents in their sent form (no server needed): the engine's copy of a filter, update or pipeline is what the
 * BSON serializer would send for the caller's object — `toBSON`, `Map`, class instances, `DBRef` fields, array
 * subclasses — made only of fresh plain values, whose serialization is the same bytes; and the argument checks
 * refuse bad input with a `Refusal` naming it, never a throw of anything else.
 */
import { assert, describe, it } from "@effect/vitest"
import { BSON, Binary, Code, DBRef, Decimal128, Double, Int32, Long, ObjectId, Timestamp } from "mongodb"
import { array, document, sendable } from "../src/internal/documents.ts"
import { checkPipeline } from "../src/internal/pipeline.ts"
import { bulkOf, filterOf, pipelineOf, replacementOf, updateOf } from "../src/internal/requests.ts"
import * as Fx from "./fixtures/Mongo.ts"

const refusal = Fx.refusal

// What the driver's serializer sends for a value (as a document's field `v`).
const bytes = (value: unknown) => Buffer.from(BSON.serialize({ v: value }))

describe("documents in their sent form", () => {
  it("copies plain data without BSON, field by field, and the copy serializes to the same bytes", () => {
    const id = new ObjectId()
    const at = new Date(0)
    const filter = { _id: id, at, tags: ["a", { b: [1, 2.5, null, true] }], n: 1n, none: undefined }
    const copy = document(filter, "filter")
    assert.notStrictEqual(copy, filter)
    assert.notStrictEqual(copy["_id"], id, "an ObjectId is re-made from its bytes")
    assert.notStrictEqual(copy["at"], at)
    assert.isTrue(bytes(copy).equals(bytes(filter)))
  })

  it("sends what toBSON returns, a Map's entries, a class instance's keys, a DBRef's fields", () => {
    const viaToBSON = document({ toBSON: () => ({ $where: "1" }) }, "filter")
    assert.deepStrictEqual(Object.keys(viaToBSON), ["$where"])
    assert.deepStrictEqual(Object.keys(document(new Map([["$where", "1"]]), "filter")), ["$where"])
    assert.deepStrictEqual(
      Object.keys(
        document(
          new (class {
            $where = "1"
          })(),
          "filter"
        )
      ),
      ["$where"]
    )
    const ref = sendable(new DBRef("c", new ObjectId(), "other", { $where: "1" }), "filter") as Record<string, unknown>
    assert.deepStrictEqual(
      Object.keys(ref),
      ["$ref", "$id", "$db", "$where"],
      "a DBRef is checked as the document it is sent as"
    )
    const sub = Object.assign(new (class extends Array {})(), { 0: { $out: "x" }, length: 1, extra: { $out: "y" } })
    assert.deepStrictEqual(array(sub, "pipeline"), [{ $out: "x" }], "an array is sent by its indices only")
  })

  it("keeps BSON types (the same bytes) and makes fresh values of them", () => {
    const values = [
      new Long(5),
      new Int32(7),
      new Double(1),
      Decimal128.fromString("1.5"),
      new Timestamp({ t: 1, i: 2 }),
      new Binary(Buffer.from("x")),
      new Code("function () {}", { a: 1 }),
      /a+/i
    ]
    for (const v of values) {
      const copy = sendable(v, "value")
      assert.notStrictEqual(copy, v)
      assert.isTrue(bytes(copy).equals(bytes(v)), String(v))
    }
  })

  it("reads a getter or a proxy once: the copy holds what was read", () => {
    let reads = 0
    const copy = document(
      {
        get n() {
          return ++reads
        }
      },
      "filter"
    )
    assert.deepStrictEqual(copy, { n: 1 })
    assert.deepStrictEqual(copy, { n: 1 }, "reading the copy again does not read the original")
    assert.strictEqual(reads, 1)
    const json = document(JSON.parse('{"__proto__": {"$where": "1"}}'), "filter")
    assert.deepStrictEqual(Object.keys(json), ["__proto__"], "a __proto__ key stays a key")
    assert.strictEqual(Object.getPrototypeOf(json), Object.prototype)
  })

  it("refuses what cannot be sent, naming the argument", () => {
    assert.strictEqual(refusal(() => filterOf("str")).argument, "filter")
    assert.strictEqual(refusal(() => filterOf(null)).argument, "filter")
    assert.strictEqual(refusal(() => filterOf([])).argument, "filter")
    assert.deepStrictEqual(filterOf(undefined), {})
    assert.strictEqual(refusal(() => filterOf({ f: () => 1 })).argument, "filter")
    const cyclic: Record<string, unknown> = {}
    cyclic["self"] = cyclic
    assert.strictEqual(refusal(() => filterOf(cyclic)).argument, "filter")
    const throwing = new Proxy(
      {},
      {
        ownKeys: () => {
          throw new Error("trap")
        }
      }
    )
    assert.strictEqual(refusal(() => filterOf(throwing)).argument, "filter")
    assert.strictEqual(refusal(() => pipelineOf("[]")).argument, "pipeline")
    assert.strictEqual(refusal(() => pipelineOf([1])).argument, "pipeline[0]")
    assert.strictEqual(refusal(() => updateOf({ a: 1 })).argument, "update", "an update needs operators")
    assert.strictEqual(refusal(() => updateOf([{ $out: "x" }])).argument, "update[0].$out")
    assert.strictEqual(refusal(() => replacementOf({ $set: { a: 1 } })).argument, "replacement.$set")
    assert.strictEqual(
      refusal(() => bulkOf([{ updateOne: { filter: {} } }])).argument,
      "operations[0].updateOne.update"
    )
    assert.strictEqual(refusal(() => bulkOf([{ dropDatabase: {} }])).argument, "operations[0]")
  })

  it("checks pipelines against the stage allowlist and names the databases they reach", () => {
    assert.deepStrictEqual(
      checkPipeline(
        [{ $match: {} }, { $lookup: { from: "b", as: "x", pipeline: [{ $out: { db: "d", coll: "c" } }] } }],
        "pipeline"
      ),
      { writes: true, databases: new Map([["d", "pipeline[1].$lookup.pipeline[0].$out.db"]]) }
    )
    assert.strictEqual(
      refusal(() => checkPipeline([{ $currentOp: {} }], "pipeline")).argument,
      "pipeline[0].$currentOp"
    )
    assert.strictEqual(
      refusal(() => checkPipeline([{ $out: { db: "d", coll: "system.js" } }], "p")).argument,
      "p[0].$out.coll"
    )
  })
})
