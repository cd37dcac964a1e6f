/**
 * Cursor streams release their server-side cursor however they stop: taken short, interrupted mid-way, or failed by
 * an abandoned batch. Server-side truth: the cursor id the server handed out answers `CursorNotFound` to a getMore
 * from another client (FerretDB and MongoDB both allow that), and on MongoDB `serverStatus().metrics.cursor.open`
 * returns to where it was; the engine's own count (`poolStats.cursors`, from the driver's cursor events) agrees.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Stream from "effect/Stream"
import type { MongoClient } from "mongodb"
import * as Servers from "@tenantpool/testing/Servers"
import * as TestServers from "@tenantpool/testing/TestServers"
import * as Fx from "./fixtures/Mongo.ts"

// Open cursors as MongoDB counts them; undefined on servers that do not report it (FerretDB).
const openCursors = (observer: MongoClient) =>
  Effect.promise(async () => {
    const status = await observer.db("admin").command({ serverStatus: 1 })
    const total = (status["metrics"] as { cursor?: { open?: { total?: unknown } } } | undefined)?.cursor?.open?.total
    return total === undefined ? undefined : Number(total)
  })

const setup = (label: string, url: string, observer: MongoClient) => Fx.itemsProject(`cur_${label}`, url, observer)

describe("MongoEngine cursor streams", () => {
  it.live("a stream taken short kills its cursor on the server", () => {
    const rec = Fx.recording()
    return Effect.gen(function* () {
      const url = TestServers.url("mongodb")
      const observer = yield* Fx.raw(url)
      const { db, mongo, items, as } = yield* setup("take", url, observer)
      const before = yield* openCursors(observer)
      const first = yield* as(
        items.stream({}, { sort: { i: 1 }, batchSize: 10 }).pipe(Stream.take(15), Stream.runCollect)
      )
      assert.deepStrictEqual(
        first.map((d) => d.i),
        Array.from({ length: 15 }, (_, i) => i)
      )
      assert.strictEqual(rec.cursorIds.length, 1, "one cursor was opened")
      const id = rec.cursorIds[0]!
      assert.isTrue(
        rec.commands.some((c) => c.name === "killCursors" && String(c.command["cursors"]?.[0]) === id),
        "the engine sent killCursors for it"
      )
      assert.isFalse(yield* Fx.cursorAlive(observer, db.name, "items", id), "the server no longer has it")
      assert.strictEqual((yield* as(mongo.poolStats)).cursors, 0)
      const after = yield* openCursors(observer)
      if (before !== undefined) assert.strictEqual(after, before, "serverStatus open cursors back to where they were")
    }).pipe(Effect.provide(Fx.layer({ factory: rec.factory })))
  })

  it.live("interrupting the fiber that reads a stream kills its cursor", () => {
    const rec = Fx.recording()
    return Effect.gen(function* () {
      const url = TestServers.url("mongodb")
      const observer = yield* Fx.raw(url)
      const { db, mongo, items, as } = yield* setup("interrupt", url, observer)
      let seen = 0
      const reader = yield* as(
        items.stream({}, { batchSize: 5 }).pipe(
          Stream.tap(() =>
            Effect.sync(() => {
              seen++
            }).pipe(Effect.andThen(Effect.sleep("5 millis")))
          ),
          Stream.runDrain
        )
      ).pipe(Effect.forkChild)
      yield* Fx.eventually(
        "the reader is past its second batch",
        Effect.sync(() => seen > 12)
      )
      assert.strictEqual((yield* as(mongo.poolStats)).cursors, 1, "the stream holds one cursor")
      yield* Fiber.interrupt(reader)
      const id = rec.cursorIds[0]!
      assert.isFalse(yield* Fx.cursorAlive(observer, db.name, "items", id), "killed when the fiber was interrupted")
      assert.strictEqual((yield* as(mongo.poolStats)).cursors, 0)
      assert.isTrue(seen < 200, "the stream did not run to its end")
    }).pipe(Effect.provide(Fx.layer({ factory: rec.factory })))
  })

  it.live("interrupting a reader while its batch is on the way returns once the server has killed the cursor", () => {
    const rec = Fx.recording()
    return Effect.gen(function* () {
      const server = yield* Servers.acquirePrivate("mongodb")
      yield* Effect.addFinalizer(() => Effect.ignore(Servers.resume(server)))
      const observer = yield* Fx.raw(server.url)
      const { db, mongo, items, as } = yield* setup("midbatch", server.url, observer)
      let n = 0
      const reader = yield* as(
        items.stream({}, { batchSize: 5 }).pipe(
          // Past the first batch: the next pull is a getMore, sent to a server that does not answer yet.
          Stream.tap(() => (n++ === 5 ? Servers.pause(server).pipe(Effect.orDie) : Effect.void)),
          Stream.runDrain
        )
      ).pipe(Effect.forkChild)
      yield* Fx.eventually(
        "the second getMore is on its way",
        Effect.sync(() => rec.commands.filter((c) => c.name === "getMore").length === 2)
      )
      // The cursor can be killed once that batch is answered, when the server runs again.
      yield* Effect.forkChild(Effect.andThen(Effect.sleep("300 millis"), Servers.resume(server)))
      yield* Fiber.interrupt(reader)
      assert.strictEqual((yield* as(mongo.poolStats)).cursors, 0, "the driver has closed the cursor")
      assert.isFalse(yield* Fx.cursorAlive(observer, db.name, "items", rec.cursorIds[0]!), "the server killed it")
    }).pipe(Effect.provide(Fx.layer({ factory: rec.factory })))
  })

  it.live("a stream that runs to its end leaves no cursor and sends no killCursors", () => {
    const rec = Fx.recording()
    return Effect.gen(function* () {
      const url = TestServers.url("mongodb")
      const observer = yield* Fx.raw(url)
      const { mongo, items, as } = yield* setup("end", url, observer)
      const all = yield* as(Stream.runCollect(items.stream({}, { batchSize: 64 })))
      assert.strictEqual(all.length, 200)
      assert.strictEqual(rec.commands.filter((c) => c.name === "getMore").length, 3, "batches of 64: 1 find + 3")
      assert.isFalse(
        rec.commands.some((c) => c.name === "killCursors"),
        "an exhausted cursor is closed by the server"
      )
      assert.strictEqual((yield* as(mongo.poolStats)).cursors, 0)
    }).pipe(Effect.provide(Fx.layer({ factory: rec.factory })))
  })

  it.live(
    "a stream is bounded by the tier deadline: a getMore that hangs past it fails the stream, and its cursor is killed",
    () => {
      const rec = Fx.recording()
      return Effect.gen(function* () {
        const server = yield* Servers.acquirePrivate("mongodb")
        const observer = yield* Fx.raw(server.url)
        const { db, mongo, items, as } = yield* setup("abandon", server.url, observer)
        const started = yield* as(
          Effect.gen(function* () {
            let n = 0
            return yield* items.stream({}, { batchSize: 5 }).pipe(
              Stream.tap(() =>
                n++ === 5
                  ? // Past the first batch: the next pull is a getMore, sent to a server that will not answer.
                    Servers.pause(server).pipe(Effect.orDie)
                  : Effect.void
              ),
              Stream.runDrain,
              Effect.flip
            )
          })
        ).pipe(Effect.ensuring(Effect.ignore(Servers.resume(server))))
        assert.strictEqual((started as { _tag: string })._tag, "Timeout", "the stream ran into the tier deadline")
        assert.strictEqual((started as { budget?: string }).budget, "deadline")
        const id = rec.cursorIds[0]!
        yield* Fx.eventually(
          "the cursor is gone from the server",
          Effect.map(Fx.cursorAlive(observer, db.name, "items", id), (alive) => !alive),
          "15 seconds"
        )
        yield* Fx.eventually(
          "the engine counts no open cursor",
          Effect.map(as(mongo.poolStats), (s) => s.cursors === 0),
          "15 seconds"
        )
      }).pipe(
        Effect.provide(
          Fx.layer({
            factory: rec.factory,
            tenancy: { tiers: { PRO: { timeout: "1500 millis" } } }
          })
        )
      )
    }
  )
})
