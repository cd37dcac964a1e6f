/**
 * In a fleet (`Coordination.ConnectionShares` provided), a target's pool holds at most this process's share,
 * counted on the server: generations included while a smaller share drains in, and nothing at all (work waits)
 * while the share is 0. The engine reports what it may still hold (`track`), which a coordinator reads before it
 * gives a shrunk share's difference to another process.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as SqlClient from "effect/sql/SqlClient"
import * as Coordination from "@tenantpool/core/Coordination"
import { MemoryRegistry } from "@tenantpool/core/Registry"
import * as Tenancy from "@tenantpool/core/Tenancy"
import * as PgEngine from "../src/PgEngine.ts"
import * as Fx from "./fixtures/Engine.ts"

// A coordinator stand-in: one share for every PostgreSQL target, set by the test, and the engine's tracked bound.
const makeFleet = (initial: number) => {
  let share = initial
  const listeners = new Set<() => void>()
  const bounds = new Set<() => number>()
  return {
    shares: {
      get: (engine: string) => (engine === "postgres" ? share : undefined),
      subscribe: (listener: () => void) => {
        listeners.add(listener)
        return () => void listeners.delete(listener)
      },
      track: (_engine: string, _targetId: string, bound: () => number) => {
        bounds.add(bound)
        return () => void bounds.delete(bound)
      }
    },
    set: (n: number) => {
      share = n
      for (const listener of listeners) listener()
    },
    bound: () => [...bounds].reduce((sum, bound) => sum + bound(), 0)
  }
}

const fleet = makeFleet(4)

describe("PgEngine in a fleet", () => {
  it.live(
    "holds at most its share of a target, shrinks as what it holds drains, and waits while it has none",
    () =>
      Effect.gen(function* () {
        const url = yield* Fx.freshDatabase("fleet")
        const registry = yield* MemoryRegistry
        const id = Fx.projectId("fleet")
        yield* registry.register({ id, tier: "ENTERPRISE", postgres: url })
        const sql = yield* SqlClient.SqlClient
        const tenancy = yield* Tenancy.Tenancy
        const engine = yield* PgEngine.PgEngine
        const asProject = tenancy.withProject(id)
        yield* sql`select 1`.pipe(asProject)
        const name = (yield* engine.poolStats.pipe(asProject)).applicationName
        const obs = yield* Fx.observer(Fx.serverUrl())
        let most = 0
        let now = 0
        const sampler = yield* Effect.forkChild(
          Effect.forever(
            Effect.andThen(
              Effect.map(Fx.countLike(obs, name), (n) => {
                now = n
                most = Math.max(most, n)
              }),
              Effect.sleep("5 millis")
            )
          )
        )
        const sleeps = (n: number, seconds: number) =>
          Effect.forEach(Array.from({ length: n }), () => sql`select pg_sleep(${seconds})`, {
            concurrency: "unbounded",
            discard: true
          }).pipe(asProject)

        // Share 4: twelve slow statements run four at a time.
        yield* sleeps(12, 0.2)
        assert.strictEqual(most, 4, "at most the share, and all of it used")
        assert.strictEqual(fleet.bound(), 4)

        // Share 2 while four are running: nothing new opens until the old generation drained under it.
        const busy = yield* Effect.forkChild(sleeps(12, 0.3))
        yield* Fx.eventually(
          "four running",
          Effect.sync(() => now === 4)
        )
        most = 0
        fleet.set(2)
        assert.strictEqual(fleet.bound(), 4, "what the draining generation may still hold")
        yield* Fiber.join(busy)
        assert.isAtMost(most, 4, "never more than the old share while the new one drains in")
        yield* Fx.eventually(
          "the engine under its new share",
          Effect.sync(() => fleet.bound() === 2)
        )
        most = 0
        yield* sleeps(6, 0.1)
        assert.strictEqual(most, 2)

        // Share 0: a statement waits, and runs once the share comes back.
        fleet.set(0)
        yield* Fx.eventually(
          "the pool under a share of 0",
          Effect.sync(() => fleet.bound() === 0)
        )
        yield* Fx.eventually(
          "no connection left",
          Effect.map(Fx.countLike(obs, name), (n) => n === 0)
        )
        const waiting = yield* Effect.forkChild(sql`select 1 as one`.pipe(asProject))
        yield* Effect.sleep("300 millis")
        assert.isUndefined(waiting.pollUnsafe(), "no share, no connection: the statement waits")
        fleet.set(1)
        assert.deepStrictEqual(yield* Fiber.join(waiting), [{ one: 1 }])
        yield* Fiber.interrupt(sampler)
      }).pipe(
        Effect.provide(Fx.layer().pipe(Layer.provide(Layer.succeed(Coordination.ConnectionShares, fleet.shares))))
      ),
    60_000
  )
})
