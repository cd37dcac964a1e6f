/**
 * Nothing escapes the deadline or the budget: streams, `sql.reserve` and transactions hold a lease (the project's
 * slot, the target's budget) bounded by the tier deadline, and when it passes their work stops on the server
 * (pg_stat_activity). Verdicts: a wait for the project's own connection is a `Timeout` naming it, counted by no
 * breaker; a statement text the protocol cannot carry (a NUL byte) is the caller's typed error and never reaches
 * the server, so it cannot open the breaker every project on the target shares.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as SqlClient from "effect/sql/SqlClient"
import * as Stream from "effect/Stream"
import { Timeout } from "@tenantpool/core/Errors"
import { MemoryRegistry } from "@tenantpool/core/Registry"
import * as Tenancy from "@tenantpool/core/Tenancy"
import * as PgEngine from "../src/PgEngine.ts"
import * as PgError from "../src/PgError.ts"
import * as Fx from "./fixtures/Engine.ts"

/** A FREE project on a fresh database; its application name and an observer on the server. */
const setup = (label: string) =>
  Effect.gen(function* () {
    const url = yield* Fx.freshDatabase(label)
    const id = Fx.projectId(label)
    yield* (yield* MemoryRegistry).register({ id, tier: "FREE", postgres: url })
    const sql = yield* SqlClient.SqlClient
    const tenancy = yield* Tenancy.Tenancy
    const asProject = tenancy.withProject(id)
    yield* sql`select 1`.pipe(asProject)
    const name = (yield* (yield* PgEngine.PgEngine).poolStats.pipe(asProject)).applicationName
    const obs = yield* Fx.observer(Fx.serverUrl())
    return { id, url, sql, tenancy, asProject, name, obs }
  })

const oneSecondDeadline = { tenancy: { tiers: { FREE: { timeout: "1 second" } } } } as const

describe("PgEngine leases", () => {
  it.live("a stream is bounded by the tier deadline: Timeout at 1 s, and its statement stops on the server", () =>
    Effect.gen(function* () {
      const { sql, asProject, name, obs } = yield* setup("lease_stream")
      const [error, millis] = yield* Fx.timed(
        PgError.unwrapGuardErrors(
          Stream.runDrain(sql`select x, pg_sleep(0.2) from generate_series(1, 100) x`.stream)
        ).pipe(asProject, Effect.flip)
      )
      assert.instanceOf(error, Timeout)
      assert.strictEqual((error as Timeout).budget, "deadline")
      assert.isAtLeast(millis, 900)
      assert.isBelow(millis, 2_000, "a 20 s stream ended at the 1 s deadline")
      yield* Fx.eventually(
        "the stream's statement stopped on the server",
        Effect.map(Fx.sleeping(obs, name), (n) => n === 0),
        "1 second"
      )
    }).pipe(Effect.provide(Fx.layer(oneSecondDeadline)))
  )

  it.live(
    "sql.reserve is bounded by the tier deadline: its session ends on the server while the holder still holds it",
    () =>
      Effect.gen(function* () {
        const { sql, asProject, name, obs } = yield* setup("lease_reserve")
        const engine = yield* PgEngine.PgEngine
        yield* Effect.scoped(
          Effect.gen(function* () {
            const conn = yield* sql.reserve
            const [row] = yield* conn.execute("select pg_backend_pid() as pid", [], undefined)
            const pid = row.pid as number
            const alive = Effect.map(Fx.connections(obs, name), (rows) => rows.some((r) => r.pid === pid))
            assert.isTrue(yield* alive)
            yield* Effect.sleep("1500 millis")
            assert.isFalse(yield* alive, "the reserved session is gone from the server")
            const late = yield* PgError.unwrapGuardErrors(conn.execute("select 1", [], undefined)).pipe(Effect.flip)
            assert.instanceOf(late, Timeout, "a statement on an expired reservation hears the deadline's verdict")
            // The project's slot came back at the deadline: its statements run while the holder keeps its scope.
            assert.deepStrictEqual(yield* sql`select 2 as two`, [{ two: 2 }])
            assert.strictEqual((yield* engine.poolStats).pending, 0)
          })
        ).pipe(asProject)
      }).pipe(Effect.provide(Fx.layer(oneSecondDeadline)))
  )

  it.live("a transaction, a stream and a reservation each take one of the project's admission slots", () =>
    Effect.gen(function* () {
      const { sql, asProject } = yield* setup("lease_slots")
      const refused = (self: Effect.Effect<unknown, unknown>) =>
        PgError.unwrapGuardErrors(self).pipe(
          Effect.flip,
          Effect.map((e) => (e as { _tag?: string })._tag)
        )
      const holders: ReadonlyArray<readonly [string, Effect.Effect<unknown, unknown>]> = [
        ["transaction", sql.withTransaction(Effect.andThen(sql`select 1`, Effect.sleep("400 millis")))],
        ["stream", Stream.runDrain(sql`select x, pg_sleep(0.2) from generate_series(1, 2) x`.stream)],
        ["reserve", Effect.scoped(Effect.andThen(sql.reserve, Effect.sleep("400 millis")))]
      ]
      for (const [what, hold] of holders) {
        const holder = yield* Effect.forkChild(hold.pipe(asProject))
        yield* Effect.sleep("150 millis")
        assert.strictEqual(
          yield* refused(sql`select 1`.pipe(asProject)),
          "Overloaded",
          `while a ${what} holds the slot`
        )
        yield* Fiber.join(holder)
        assert.deepStrictEqual(yield* sql`select 1 as one`.pipe(asProject), [{ one: 1 }], `after the ${what}`)
      }
    }).pipe(Effect.provide(Fx.layer({ tenancy: { tiers: { FREE: { maxConcurrent: 1, maxQueue: 0 } } } })))
  )

  it.live("a statement that waited for the project's connection until its timeout is a Timeout naming it", () =>
    Effect.gen(function* () {
      const { sql, asProject } = yield* setup("lease_wait")
      const results = yield* Effect.forEach(
        Array.from({ length: 8 }),
        () => PgError.unwrapGuardErrors(sql`select pg_sleep(2)`).pipe(Effect.flip),
        { concurrency: "unbounded" }
      ).pipe(asProject)
      const waited = results.filter((e) => e instanceof Timeout && e.waitingFor === "a connection")
      assert.strictEqual(waited.length, 3, "8 statements, 5 connections (FREE maxPool): 3 never got one")
      const [meta] = yield* (yield* Tenancy.Tenancy).connections
      assert.strictEqual(meta!.breaker, "closed", "waiting for the engine's own resource is counted by no breaker")
    }).pipe(Effect.provide(Fx.layer({ tenancy: { breakers: { postgres: { attemptTimeout: "500 millis" } } } })))
  )

  it.live(
    "a NUL byte in one project's statement is that caller's typed error: never sent, no breaker opens for anyone",
    () =>
      Effect.gen(function* () {
        const { sql, tenancy, asProject, url } = yield* setup("nul")
        const other = Fx.projectId("nul-other")
        yield* (yield* MemoryRegistry).register({ id: other, tier: "FREE", postgres: url })
        for (let i = 0; i < 30; i++) {
          const error = Fx.asSqlError(yield* sql.unsafe("select 1 \u0000 + 1").pipe(asProject, Effect.flip))
          assert.strictEqual(error.reason._tag, "SqlSyntaxError")
          assert.include(error.message, "NUL")
          assert.isFalse(PgError.classify(error).infrastructure)
        }
        const inParams = Fx.asSqlError(yield* sql`select ${"a\u0000b"}::text as t`.pipe(asProject, Effect.flip))
        assert.isFalse(PgError.isInfrastructure(inParams), "a NUL in a parameter is the server's data error")
        assert.deepStrictEqual(yield* sql`select 1 as one`.pipe(asProject), [{ one: 1 }])
        assert.deepStrictEqual(yield* sql`select 1 as one`.pipe(tenancy.withProject(other)), [{ one: 1 }])
        const states = (yield* tenancy.connections).flatMap((c) => [c.breaker, c.targetBreaker])
        assert.isTrue(
          states.every((s) => s === "closed"),
          `breakers: ${states.join(", ")}`
        )
      }).pipe(Effect.provide(Fx.layer()))
  )
})
