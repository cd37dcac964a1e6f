/**
 * Attempt timeouts become server-side limits and client-side cancellation (R4). Reads and aggregations carry
 * `maxTimeMS` equal to the attempt's time (the engine's attempt timeout, or the tier's deadline when shorter);
 * writes carry none. When the guard abandons an attempt on a hung (SIGSTOPped) server, the driver call is aborted:
 * its connection is dropped rather than returned with a reply pending, a call still waiting for a connection is
 * never sent (a write abandoned there never applies, even after the server comes back, and is reported as a definite
 * `Timeout` naming the connection checkout, not as an unknown outcome), and the next call succeeds.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Schedule from "effect/Schedule"
import { MemoryRegistry } from "@tenantpool/core/Registry"
import * as Tenancy from "@tenantpool/core/Tenancy"
import * as Servers from "@tenantpool/testing/Servers"
import * as TestServers from "@tenantpool/testing/TestServers"
import { MongoEngine } from "../src/MongoEngine.ts"
import * as Fx from "./fixtures/Mongo.ts"

describe("MongoEngine timeouts", () => {
  it.live("reads carry maxTimeMS = the attempt timeout (or a shorter tier deadline); writes carry none", () => {
    const rec = Fx.recording()
    return Effect.gen(function* () {
      const url = TestServers.url("mongodb")
      const observer = yield* Fx.raw(url)
      const db = yield* Fx.database(observer, url, "tmo_limits")
      const registry = yield* MemoryRegistry
      const tenancy = yield* Tenancy.Tenancy
      const mongo = yield* MongoEngine
      const pro = Fx.projectId("limits-pro")
      const free = Fx.projectId("limits-free")
      yield* registry.register({ id: pro, tier: "PRO", mongodb: db.url })
      yield* registry.register({ id: free, tier: "FREE", mongodb: db.url })
      const items = mongo.collection<{ n: number }>("items")

      yield* Effect.gen(function* () {
        yield* items.insertOne({ n: 1 })
        yield* items.updateOne({ n: 1 }, { $set: { n: 2 } })
        yield* items.findOne({ n: 2 })
        yield* items.find({ n: 2 })
        yield* items.countDocuments({ n: 2 })
        yield* items.distinct("n")
        yield* items.aggregate([{ $match: { n: 2 } }])
        yield* items.findOneAndUpdate({ n: 2 }, { $set: { n: 3 } })
        yield* items.findOne({ n: 3 }, { maxTimeMS: 300 })
        yield* items.deleteMany({ n: 3 })
      }).pipe(tenancy.withProject(pro))
      yield* items.findOne({ n: 0 }).pipe(tenancy.withProject(free))

      const sent = rec.commands.filter((c) => c.command["$db"] === db.name)
      const limitOf = (name: string) => sent.filter((c) => c.name === name).map((c) => c.command["maxTimeMS"])
      assert.deepStrictEqual(limitOf("insert"), [undefined])
      assert.deepStrictEqual(limitOf("update"), [undefined])
      assert.deepStrictEqual(limitOf("delete"), [undefined])
      assert.deepStrictEqual(
        limitOf("find"),
        [1_500, 1_500, 300, 800],
        "PRO: the attempt; user: lower; FREE: its deadline"
      )
      assert.deepStrictEqual(limitOf("findAndModify"), [1_500])
      // countDocuments and aggregate are both `aggregate` commands.
      assert.deepStrictEqual(limitOf("aggregate"), [1_500, 1_500])
      const distinct = limitOf("distinct")
      assert.strictEqual(distinct[0], 1_500)
      // FerretDB v1 rejects maxTimeMS on distinct (FailedToParse, before executing): sent again without it.
      assert.deepStrictEqual(distinct.slice(1), distinct.length === 1 ? [] : [undefined])
    }).pipe(
      Effect.provide(
        Fx.layer({
          factory: rec.factory,
          tenancy: {
            breakers: { mongodb: { attemptTimeout: "1500 millis" } },
            tiers: { FREE: { timeout: "800 millis" } }
          }
        })
      )
    )
  })

  it.live("an abandoned call on a hung server drops its connection, never sends a waiting write, and recovers", () => {
    const rec = Fx.recording()
    return Effect.gen(function* () {
      const server = yield* Servers.acquirePrivate("mongodb")
      const observer = yield* Fx.raw(server.url)
      const registry = yield* MemoryRegistry
      const tenancy = yield* Tenancy.Tenancy
      const mongo = yield* MongoEngine
      const id = Fx.projectId("hung")
      yield* registry.register({ id, tier: "PRO", mongodb: Fx.withDatabase(server.url, "hung") })
      const items = mongo.collection<{ n: number; marker?: string }>("items")
      yield* items.insertOne({ n: 1 }).pipe(tenancy.withProject(id))
      const stats = mongo.poolStats.pipe(tenancy.withProject(id))
      assert.strictEqual((yield* stats).size, 1, "one pooled connection (the limit)")

      yield* Servers.pause(server)
      const result = yield* Effect.gen(function* () {
        // The read takes the only connection and hangs; the write waits for a connection behind it.
        const read = yield* Effect.forkChild(Fx.timed(Effect.flip(items.findOne({ n: 1 }))))
        yield* Effect.sleep("50 millis")
        const [writeError, writeMs] = yield* Fx.timed(Effect.flip(items.insertOne({ n: 2, marker: "abandoned" })))
        const [readError, readMs] = yield* Fiber.join(read)
        // An interrupted caller is abandoned the same way.
        const interrupted = yield* Effect.forkChild(items.findOne({ n: 1 }))
        yield* Effect.sleep("100 millis")
        yield* Fiber.interrupt(interrupted)
        return { readError, readMs, writeError, writeMs }
      }).pipe(tenancy.withProject(id), Effect.ensuring(Effect.ignore(Servers.resume(server))))

      assert.strictEqual((result.readError as { _tag: string })._tag, "Timeout")
      assert.isUndefined((result.readError as { waitingFor?: string }).waitingFor, "the read was sent, then hung")
      assert.isBelow(result.readMs, 1_200, "the read was abandoned at its attempt timeout")
      assert.strictEqual(
        (result.writeError as { _tag: string })._tag,
        "Timeout",
        "a write abandoned while it waited for a connection is a definite failure: it was never sent"
      )
      assert.strictEqual((result.writeError as { waitingFor?: string }).waitingFor, "mongodb connection checkout")
      assert.isBelow(result.writeMs, 1_200)
      yield* Fx.eventually(
        "no connection stays checked out by an abandoned call",
        Effect.map(stats, (s) => s.checkedOut === 0 && s.pending === 0),
        "10 seconds"
      )
      // The server is back: the next read succeeds, and the abandoned write was never sent, so it never applies.
      yield* Fx.eventually(
        "reads succeed again",
        Effect.map(Effect.exit(items.findOne({ n: 1 }).pipe(tenancy.withProject(id))), (e) => e._tag === "Success"),
        "10 seconds"
      )
      yield* Effect.sleep("300 millis")
      assert.strictEqual(
        yield* Fx.call(() => observer.db("hung").collection("items").countDocuments({ marker: "abandoned" })),
        0
      )
      assert.isFalse(
        rec.commands.some((c) => c.name === "insert" && JSON.stringify(c.command).includes("abandoned")),
        "the write was never sent"
      )
    }).pipe(
      Effect.provide(
        Fx.layer({
          factory: rec.factory,
          tenancy: {
            breakers: { mongodb: { attemptTimeout: "500 millis", volumeThreshold: 1_000 } },
            retry: Schedule.recurs(0),
            tiers: { PRO: { minPool: 0, maxPool: 1 } }
          }
        })
      )
    )
  })
})
