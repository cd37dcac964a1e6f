/**
 * Verdicts from the call's progress (issue #13): the engine tells the guard when a call waits for its own resources
 * — server selection, a pooled connection — and when the driver hands it to a connection. A call abandoned while it
 * waited was never sent: the caller hears a definite `Timeout` naming what it waited for (a write is not an
 * unknown outcome), and no breaker counts it. Against a real driver and server: an unreachable target (server
 * selection never completes) and a hung one (the pool's only connection is held); `MongoTimeout` covers a call that
 * was sent and hung. These pin the driver behaviour `internal/signal.ts` reads progress from.
 */
import * as net from "node:net"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Schedule from "effect/Schedule"
import { MemoryRegistry } from "@tenantpool/core/Registry"
import * as Tenancy from "@tenantpool/core/Tenancy"
import * as Servers from "@tenantpool/testing/Servers"
import { MongoEngine } from "../src/MongoEngine.ts"
import * as Fx from "./fixtures/Mongo.ts"

// A loopback port nothing listens on.
const closedPort = Effect.promise(
  () =>
    new Promise<number>((resolve) => {
      const server = net.createServer()
      server.listen(0, "127.0.0.1", () => {
        const port = (server.address() as net.AddressInfo).port
        server.close(() => resolve(port))
      })
    })
)

const tagOf = (e: unknown) => (e as { _tag?: string })._tag
const waitingOf = (e: unknown) => (e as { waitingFor?: string }).waitingFor

describe("MongoEngine verdicts", () => {
  it.live(
    "a call that never got a server is a definite Timeout naming server selection, counted by no breaker",
    () =>
      Effect.gen(function* () {
        const port = yield* closedPort
        const registry = yield* MemoryRegistry
        const tenancy = yield* Tenancy.Tenancy
        const mongo = yield* MongoEngine
        const id = Fx.projectId("nosrv")
        yield* registry.register({ id, tier: "PRO", mongodb: `mongodb://127.0.0.1:${port}/nosrv` })
        const items = mongo.collection<{ n: number }>("items")
        const write = yield* Effect.flip(items.insertOne({ n: 1 }).pipe(tenancy.withProject(id)))
        assert.strictEqual(tagOf(write), "Timeout", "a write that was never sent is not an unknown outcome")
        assert.strictEqual(waitingOf(write), "mongodb server selection")
        for (let i = 0; i < 12; i++) {
          const read = yield* Effect.flip(items.findOne({ n: 1 }).pipe(tenancy.withProject(id)))
          assert.strictEqual(tagOf(read), "Timeout")
          assert.strictEqual(waitingOf(read), "mongodb server selection")
        }
        assert.strictEqual(yield* tenancy.breakerState(id, "mongodb"), "closed", "waiting for a server says nothing")
        const [meta] = yield* tenancy.connections
        assert.strictEqual(meta?.targetBreaker, "closed")
      }).pipe(
        Effect.provide(
          Fx.layer({
            tenancy: { breakers: { mongodb: { attemptTimeout: "300 millis" } }, retry: Schedule.recurs(0) }
          })
        )
      ),
    30_000
  )

  it.live("a call waiting for the pool's only connection is a definite Timeout naming the checkout", () =>
    Effect.gen(function* () {
      const server = yield* Servers.acquirePrivate("mongodb")
      yield* Effect.addFinalizer(() => Effect.ignore(Servers.resume(server)))
      const observer = yield* Fx.raw(server.url)
      const registry = yield* MemoryRegistry
      const tenancy = yield* Tenancy.Tenancy
      const mongo = yield* MongoEngine
      const id = Fx.projectId("checkout")
      yield* registry.register({ id, tier: "PRO", mongodb: Fx.withDatabase(server.url, "checkout") })
      const items = mongo.collection<{ n: number }>("items")
      const as = <A, E, R>(effect: Effect.Effect<A, E, R>) => effect.pipe(tenancy.withProject(id))
      yield* items.insertOne({ n: 1 }).pipe(as)
      yield* Servers.pause(server)
      // The read takes the only connection and hangs on the paused server; the others wait for it.
      const hung = yield* Effect.forkChild(Effect.flip(items.findOne({ n: 1 }).pipe(as)))
      yield* Effect.sleep("50 millis")
      const waiting = yield* Effect.forEach(
        [
          items.insertOne({ n: 2 }) as Effect.Effect<unknown, unknown>,
          items.updateOne({ n: 1 }, { $set: { n: 3 } }),
          items.countDocuments({})
        ],
        (call) => Effect.flip(as(call)),
        { concurrency: "unbounded" }
      )
      const sent = yield* Fiber.join(hung)
      assert.strictEqual(tagOf(sent), "Timeout")
      assert.isUndefined(waitingOf(sent), "the read that holds the connection was sent")
      for (const e of waiting) {
        assert.strictEqual(tagOf(e), "Timeout", String(e))
        assert.strictEqual(waitingOf(e), "mongodb connection checkout")
      }
      yield* Servers.resume(server)
      yield* Fx.eventually(
        "the server answers again",
        Effect.map(Effect.exit(items.findOne({ n: 1 }).pipe(as)), (e) => e._tag === "Success"),
        "10 seconds"
      )
      const docs = yield* Fx.call(() => observer.db("checkout").collection("items").find({}).toArray())
      assert.deepStrictEqual(
        docs.map((d) => d["n"]),
        [1],
        "the writes abandoned while waiting were never sent, so never applied"
      )
    }).pipe(
      Effect.provide(
        Fx.layer({
          tenancy: {
            breakers: { mongodb: { attemptTimeout: "500 millis", volumeThreshold: 1_000 } },
            retry: Schedule.recurs(0),
            tiers: { PRO: { minPool: 0, maxPool: 1 } }
          }
        })
      )
    )
  )
})
