/**
 * Recovery after an outage (R19, issue #14), with the breakers' defaults: a private server is stopped under load
 * until the breakers open, then started again. Open breakers ping the server every 2 seconds (core's
 * probe interval) and the driver re-checks a server at once when a ping needs it, so the first read succeeds within
 * a few seconds of the server answering; a pool with a minimum (`minPoolSize`) refills to it after the reconnect on
 * its own, without traffic. Figures are logged.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Schedule from "effect/Schedule"
import { MemoryRegistry } from "@tenantpool/core/Registry"
import * as Tenancy from "@tenantpool/core/Tenancy"
import * as Servers from "@tenantpool/testing/Servers"
import { MongoEngine } from "../src/MongoEngine.ts"
import * as Fx from "./fixtures/Mongo.ts"

describe("MongoEngine recovery", () => {
  it.live(
    "the first read succeeds within seconds of the server's return, and the pool refills to its minimum",
    () =>
      Effect.gen(function* () {
        const server = yield* Servers.acquirePrivate("mongodb")
        const registry = yield* MemoryRegistry
        const tenancy = yield* Tenancy.Tenancy
        const mongo = yield* MongoEngine
        const id = Fx.projectId("recover")
        yield* registry.register({ id, tier: "PRO", mongodb: Fx.withDatabase(server.url, "recover") })
        const items = mongo.collection<{ n: number }>("items")
        const as = <A, E, R>(effect: Effect.Effect<A, E, R>) => effect.pipe(tenancy.withProject(id))
        yield* as(items.insertOne({ n: 1 }))
        const stats = as(mongo.poolStats)
        yield* Fx.eventually(
          "the pool fills to its minimum",
          Effect.map(stats, (s) => s.size >= 2),
          "10 seconds"
        )

        let stop = false
        const worker = Effect.gen(function* () {
          while (!stop) {
            const exit = yield* Effect.exit(as(items.findOne({ n: 1 })))
            if (exit._tag === "Failure") yield* Effect.sleep("50 millis")
          }
        })
        const load = yield* Effect.forEach(Array.from({ length: 10 }), () => Effect.forkChild(worker))
        yield* Servers.stop(server)
        yield* Fx.eventually(
          "the project's breaker opens",
          Effect.map(tenancy.breakerState(id, "mongodb"), (s) => s === "open"),
          "30 seconds"
        )
        stop = true
        yield* Effect.forEach(load, Fiber.interrupt)
        yield* Fx.eventually(
          "the pool has lost its connections",
          Effect.map(stats, (s) => s.size < 2),
          "10 seconds"
        )

        yield* Servers.start(server)
        const [, recoverMs] = yield* Fx.timed(
          Fx.eventually(
            "a read succeeds again",
            Effect.map(Effect.exit(as(items.findOne({ n: 1 }))), (e) => e._tag === "Success"),
            "20 seconds"
          )
        )
        const [, refillMs] = yield* Fx.timed(
          Fx.eventually(
            "the pool refills to its minimum without traffic",
            Effect.map(stats, (s) => s.size >= 2),
            "20 seconds"
          )
        )
        const counted = Fx.kernelConnections(server.port)
        console.log(
          `[recovery] first success ${Math.round(recoverMs)} ms after the server answered; ` +
            `pool back at its minimum ${Math.round(refillMs)} ms later; ${counted} connections to the server`
        )
        // Measured 3.9 s: the target's breaker closes at its first ping after the return (≤ 2 s), the project's at
        // its own next probe, 2 s later.
        assert.isBelow(recoverMs, 5_000, "within a few seconds (probes every 2 s)")
        assert.isBelow(refillMs, 5_000)
        assert.isAtLeast(counted, 2, "the server's side: the refilled connections (plus the driver's monitor)")
        assert.strictEqual(yield* tenancy.breakerState(id, "mongodb"), "closed")
      }).pipe(
        Effect.provide(
          Fx.layer({
            // Defaults but two: a pool minimum, and no server found within 1 s (rather than 5) while the guard does
            // not retry, so that the breaker opens within seconds of the stop (with the defaults, each read retries
            // 5 s server selections up to its 30 s deadline and counts once: the breaker opens after ~30 s).
            engine: { minPoolSize: 2, serverSelectionTimeout: "1 second" },
            tenancy: { retry: Schedule.recurs(0) }
          })
        )
      ),
    90_000
  )
})
