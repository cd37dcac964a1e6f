/**
 * The MongoDB analyzer's readers: server-side JavaScript anywhere in a filter or pipeline, collection scans in the
 * explain shapes of MongoDB (classic, slot-based, aggregation, sharded) and FerretDB (SQLite and PostgreSQL
 * backends), and filter shapes.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { Binary, Code, DBRef, ObjectId } from "mongodb"
import * as MongoAnalyzer from "../src/MongoAnalyzer.ts"
import { project } from "./fixtures/Projects.ts"

// A class instance is sent as a document of its own keys: its `$where` reaches the server.
class Smuggler {
  readonly $where = "sleep(1000) || true"
}

describe("MongoAnalyzer", () => {
  it("finds $where, $function and $accumulator at any depth, and nothing in plain queries", () => {
    assert.strictEqual(MongoAnalyzer.javaScriptOperator({ $where: "this.a > 1" }), "$where")
    assert.strictEqual(
      MongoAnalyzer.javaScriptOperator({
        $and: [{ a: 1 }, { $expr: { $function: { body: "", args: [], lang: "js" } } }]
      }),
      "$function"
    )
    assert.strictEqual(
      MongoAnalyzer.javaScriptOperator([{ $match: { a: 1 } }, { $group: { _id: null, x: { $accumulator: {} } } }]),
      "$accumulator"
    )
    assert.isUndefined(MongoAnalyzer.javaScriptOperator({ a: { $gt: 1 }, tags: { $in: ["x", "y"] }, where: "$where" }))
    assert.isUndefined(MongoAnalyzer.javaScriptOperator([{ $match: { a: 1 } }, { $sort: { a: 1 } }]))
    assert.isUndefined(MongoAnalyzer.javaScriptOperator({ _id: new ObjectId(), at: new Date(), b: new Binary() }))
    assert.isUndefined(MongoAnalyzer.javaScriptOperator({ code: new Code("function () {}") }), "a Code value is data")
    assert.isUndefined(MongoAnalyzer.javaScriptOperator(undefined))
  })

  it("reads values as the BSON serializer sends them: toBSON, Map, class instances, DBRef fields", () => {
    const js = MongoAnalyzer.javaScriptOperator
    assert.strictEqual(js({ a: new Smuggler() }), "$where", "a class instance is a document")
    assert.strictEqual(js([{ $match: { toBSON: () => ({ $where: "1" }) } }]), "$where", "what toBSON returns is sent")
    assert.strictEqual(js({ $and: [new Map([["$where", "1"]])] }), "$where", "a Map is sent by its entries")
    assert.strictEqual(js({ a: new DBRef("c", new ObjectId(), undefined, { $where: "1" }) }), "$where")
    assert.strictEqual(js({ documents: [{ $set: { x: { $function: {} } } }] }), "$function")
    const cyclic: Record<string, unknown> = { a: 1 }
    cyclic["self"] = cyclic
    assert.isUndefined(js(cyclic))
    assert.strictEqual(MongoAnalyzer.shapeOf(cyclic).length > 0, true, "a cyclic value has a (bounded) shape")
    assert.notStrictEqual(
      MongoAnalyzer.shapeOf({ a: new Smuggler() }),
      MongoAnalyzer.shapeOf({ a: new ObjectId() }),
      "a class instance's shape is its keys, so it cannot share a cached verdict with a plain value"
    )
    const throwing = {
      toBSON: () => {
        throw new Error("no")
      }
    }
    assert.isUndefined(js({ a: throwing }), "what cannot be serialized is not sent either")
  })

  it("reads collection scans from MongoDB's explain shapes, ignoring rejected plans", () => {
    const classic = (stage: string) => ({
      queryPlanner: {
        winningPlan: { stage: "FETCH", inputStage: { stage, keyPattern: { a: 1 } } },
        rejectedPlans: [{ stage: "COLLSCAN" }]
      }
    })
    assert.isFalse(MongoAnalyzer.isCollectionScan(classic("IXSCAN")))
    assert.isTrue(MongoAnalyzer.isCollectionScan({ queryPlanner: { winningPlan: { stage: "COLLSCAN" } } }))
    assert.isTrue(
      MongoAnalyzer.isCollectionScan({
        queryPlanner: { winningPlan: { stage: "SORT", inputStage: { stage: "COLLSCAN", direction: "forward" } } }
      })
    )
    assert.isTrue(
      MongoAnalyzer.isCollectionScan({
        explainVersion: "2",
        queryPlanner: { winningPlan: { queryPlan: { stage: "GROUP", inputStage: { stage: "COLLSCAN" } } } }
      }),
      "slot-based engine"
    )
    assert.isTrue(
      MongoAnalyzer.isCollectionScan({
        stages: [{ $cursor: { queryPlanner: { winningPlan: { stage: "COLLSCAN" } } } }, { $group: { _id: "$k" } }]
      }),
      "aggregation"
    )
    assert.isFalse(
      MongoAnalyzer.isCollectionScan({
        queryPlanner: {
          winningPlan: {
            stage: "SHARD_MERGE",
            shards: [{ winningPlan: { stage: "FETCH", inputStage: { stage: "IXSCAN" } } }]
          }
        }
      })
    )
  })

  it("reads collection scans from FerretDB's SQLite and PostgreSQL plans, and refuses to guess otherwise", () => {
    const sqlite = (line: string) => ({ queryPlanner: { Plan: [line] }, filterPushdown: false })
    assert.isTrue(MongoAnalyzer.isCollectionScan(sqlite("id=2 parent=0 notused=0 detail=SCAN docs_28eb34d2")))
    assert.isFalse(
      MongoAnalyzer.isCollectionScan(sqlite("id=3 parent=0 notused=0 detail=SEARCH docs_1 USING INDEX docs_1_i (i=?)"))
    )
    assert.isFalse(MongoAnalyzer.isCollectionScan(sqlite("detail=SCAN docs_1 USING COVERING INDEX docs_1_i")))
    const pg = (nodeType: string) => ({
      queryPlanner: { Plan: { "Node Type": "Limit", Plans: [{ "Node Type": nodeType, "Relation Name": "docs" }] } }
    })
    assert.isTrue(MongoAnalyzer.isCollectionScan(pg("Seq Scan")))
    assert.isFalse(MongoAnalyzer.isCollectionScan(pg("Index Scan")))
    assert.isUndefined(MongoAnalyzer.isCollectionScan({ ok: 1 }))
    assert.isUndefined(MongoAnalyzer.isCollectionScan("COLLSCAN"))
  })

  it("gives filters with the same structure and different values one shape", () => {
    assert.strictEqual(
      MongoAnalyzer.shapeOf({ a: 1, b: { $in: ["x", "y"] } }),
      MongoAnalyzer.shapeOf({ a: 99, b: { $in: ["z", "w"] } })
    )
    assert.notStrictEqual(MongoAnalyzer.shapeOf({ a: 1 }), MongoAnalyzer.shapeOf({ b: 1 }))
    assert.notStrictEqual(MongoAnalyzer.shapeOf({ a: 1 }), MongoAnalyzer.shapeOf({ a: { $gt: 1 } }))
  })

  it.effect("refuses JavaScript below ENTERPRISE and lets ENTERPRISE run it, without an explain", () =>
    Effect.gen(function* () {
      const analyzer = yield* MongoAnalyzer.make()
      const detail = { collection: "docs", filter: { $where: "this.a > 1" } }
      const free = analyzer.inspect(project("p", "FREE"), "find", detail)
      assert.isTrue(free !== undefined && !Effect.isEffect(free) && free.rule === "mongo-javascript")
      assert.isUndefined(analyzer.inspect(project("p", "ENTERPRISE"), "find", detail))
      assert.isUndefined(analyzer.inspect(project("p", "FREE"), "find", { collection: "docs", filter: { a: 1 } }))
    })
  )
})
