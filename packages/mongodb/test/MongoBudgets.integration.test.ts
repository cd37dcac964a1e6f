/**
 * Nothing escapes the deadline or the budget (issue #13). A stream holds one lease for as long as it is open: the
 * project's concurrency slot and the target's budget are taken while it is read (not only during each batch), the
 * tier deadline bounds the whole stream, and a stream cut there leaves no cursor on the server. A `find` read to
 * an array and abandoned while a getMore is on its way closes its cursor once that batch is in (the driver's own
 * close on abort can lose the kill). Server-side truth: a getMore from another client answers `CursorNotFound`.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import { MongoClient } from "mongodb"
import * as Servers from "@tenantpool/testing/Servers"
import * as TestServers from "@tenantpool/testing/TestServers"
import type * as MongoEngineModule from "../src/MongoEngine.ts"
import * as Fx from "./fixtures/Mongo.ts"

const setup = (label: string, url: string, observer: MongoClient) => Fx.itemsProject(`bud_${label}`, url, observer)

describe("MongoEngine budgets", () => {
  it.live("an open stream holds the project's slot and the target's budget until it ends", () =>
    Effect.gen(function* () {
      const url = TestServers.url("mongodb")
      const observer = yield* Fx.raw(url)
      const a = yield* setup("slot_a", url, observer)
      const b = yield* setup("slot_b", url, observer)
      const firstBatch = yield* Deferred.make<void>()
      const release = yield* Deferred.make<void>()
      const reader = yield* Effect.forkChild(
        a.as(
          a.items.stream({}, { batchSize: 5 }).pipe(
            Stream.tap(() => Effect.andThen(Deferred.succeed(firstBatch, undefined), Deferred.await(release))),
            Stream.take(3),
            Stream.runCollect
          )
        )
      )
      yield* Deferred.await(firstBatch)
      // Between batches: the stream holds the project's only slot (no queue: refused at once) ...
      const refused = yield* Effect.flip(a.as(a.items.findOne({ i: 1 })))
      assert.strictEqual((refused as { _tag?: string })._tag, "Overloaded")
      assert.strictEqual((refused as { scope?: string }).scope, "project")
      // ... and the target's only budget slot: another project on the server waits for it.
      const other = yield* Effect.forkChild(b.as(b.items.findOne({ i: 1 })))
      yield* Effect.sleep("300 millis")
      assert.isUndefined(other.pollUnsafe(), "the other project waits for the target's budget")
      yield* Deferred.succeed(release, undefined)
      assert.strictEqual((yield* Fiber.join(reader)).length, 3)
      assert.strictEqual((yield* Fiber.join(other))?.i, 1, "admitted once the stream ended")
      assert.strictEqual((yield* a.as(a.items.findOne({ i: 2 })))?.i, 2, "the slot is free again")
    }).pipe(
      Effect.provide(
        Fx.layer({
          engine: { targetCapacity: 1 },
          tenancy: { tiers: { PRO: { maxConcurrent: 1, maxQueue: 0 } } }
        })
      )
    )
  )

  it.live("a stream read past the tier deadline fails with Timeout and its cursor is killed on the server", () => {
    const rec = Fx.recording()
    return Effect.gen(function* () {
      const url = TestServers.url("mongodb")
      const observer = yield* Fx.raw(url)
      const { db, items, as } = yield* setup("slow", url, observer)
      const [error, millis] = yield* Fx.timed(
        Effect.flip(
          as(
            items.stream({}, { batchSize: 5 }).pipe(
              Stream.tap(() => Effect.sleep("50 millis")),
              Stream.runDrain
            )
          )
        )
      )
      assert.strictEqual((error as { _tag?: string })._tag, "Timeout", String(error))
      assert.strictEqual((error as { budget?: string }).budget, "deadline")
      assert.isBelow(millis, 3_000, "cut at the 1 s deadline, not after 200 documents x 50 ms")
      const sent = rec.commands.find((c) => c.name === "find")
      assert.strictEqual(sent?.command["maxTimeMS"], 1_000, "the cursor's server time is bounded by the deadline too")
      yield* Fx.eventually(
        "the cursor is gone from the server",
        Effect.map(Fx.cursorAlive(observer, db.name, "items", rec.cursorIds[0]!), (alive) => !alive),
        "5 seconds"
      )
    }).pipe(Effect.provide(Fx.layer({ factory: rec.factory, tenancy: { tiers: { PRO: { timeout: "1 second" } } } })))
  })

  it.live("a find abandoned while a getMore is on its way leaves no cursor on the server", () =>
    Effect.gen(function* () {
      const server = yield* Servers.acquirePrivate("mongodb")
      yield* Effect.addFinalizer(() => Effect.ignore(Servers.resume(server)))
      const cursorIds: Array<string> = []
      let getMores = 0
      // The server stops answering when the second getMore is sent.
      const factory: MongoEngineModule.ClientFactory = (url, options) => {
        const client = new MongoClient(url, { ...options, monitorCommands: true })
        client.on("commandStarted", (e) => {
          if (e.commandName === "getMore" && ++getMores === 2) void server.pause()
        })
        client.on("commandSucceeded", (e) => {
          const id = (e.reply as { cursor?: { id?: unknown } } | undefined)?.cursor?.id
          if (id !== undefined && String(id) !== "0" && !cursorIds.includes(String(id))) cursorIds.push(String(id))
        })
        return client
      }
      yield* Effect.gen(function* () {
        const observer = yield* Fx.raw(server.url)
        const { db, items, as } = yield* setup("abandon", server.url, observer)
        const error = yield* Effect.flip(as(items.find({}, { batchSize: 5 })))
        assert.strictEqual((error as { _tag?: string })._tag, "Timeout", String(error))
        assert.strictEqual(getMores, 2)
        yield* Servers.resume(server)
        yield* Fx.eventually(
          "the cursor is gone from the server",
          Effect.map(Fx.cursorAlive(observer, db.name, "items", cursorIds[0]!), (alive) => !alive),
          "5 seconds"
        )
      }).pipe(
        Effect.provide(
          Fx.layer({
            factory,
            tenancy: {
              breakers: { mongodb: { attemptTimeout: "1 second", volumeThreshold: 1_000 } },
              retry: Schedule.recurs(0)
            }
          })
        )
      )
    })
  )
})
