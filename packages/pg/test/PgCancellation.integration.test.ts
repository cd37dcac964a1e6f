/**
 * Abandoned statements stop on the server. A statement whose attempt times out, or whose caller is interrupted, is
 * canceled on the server (checked in pg_stat_activity), on exclusive connections (sql-pg's own drain and cancel)
 * and on multiplexed ones (the engine's cancel of the abandoned pipeline entry); statements queued behind it on
 * the same multiplexed connection are not held up, and none of them is canceled in its place.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as SqlClient from "effect/sql/SqlClient"
import { Timeout } from "@tenantpool/core/Errors"
import { MemoryRegistry } from "@tenantpool/core/Registry"
import * as Tenancy from "@tenantpool/core/Tenancy"
import * as PgEngine from "../src/PgEngine.ts"
import * as PgError from "../src/PgError.ts"
import * as Fx from "./fixtures/Engine.ts"

const modes = [
  { multiplex: true, name: "multiplexed" },
  { multiplex: false, name: "exclusive" }
] as const

/** A project on the shared server, the client, and a way to count its sessions running pg_sleep. */
const setup = (label: string) =>
  Effect.gen(function* () {
    const id = Fx.projectId(label)
    yield* (yield* MemoryRegistry).register({ id, tier: "PRO", postgres: Fx.serverUrl() })
    const sql = yield* SqlClient.SqlClient
    const tenancy = yield* Tenancy.Tenancy
    const engine = yield* PgEngine.PgEngine
    yield* sql`select 1`.pipe(tenancy.withProject(id))
    const name = (yield* engine.poolStats.pipe(tenancy.withProject(id))).applicationName
    const obs = yield* Fx.observer(Fx.serverUrl())
    return { id, sql, tenancy, engine, obs, sleeping: Fx.sleeping(obs, name), asProject: tenancy.withProject(id) }
  })

describe("PgEngine cancellation", () => {
  for (const mode of modes) {
    it.live(`a statement abandoned on its 500 ms attempt timeout stops on the server within 1 s (${mode.name})`, () =>
      Effect.gen(function* () {
        const { sql, sleeping, asProject, engine } = yield* setup("cancel-timeout")
        let seen = 0
        const sampler = yield* Effect.forkChild(
          Effect.forever(
            Effect.andThen(
              Effect.map(sleeping, (n) => (seen = Math.max(seen, n))),
              Effect.sleep("20 millis")
            )
          )
        )
        const [error, millis] = yield* Fx.timed(sql`select pg_sleep(10)`.pipe(asProject, Effect.flip))
        const failedAt = Date.now()
        yield* Fiber.interrupt(sampler)
        assert.strictEqual(seen, 1, "the statement was running on the server")
        assert.isAtLeast(millis, 450)
        assert.isBelow(millis, 1_000)
        const refusal = PgError.guardError(Fx.asSqlError(error))
        assert.strictEqual(refusal?._tag, "UnknownOutcome", "a non-idempotent statement that timed out may have run")
        yield* Fx.eventually(
          "pg_sleep stopped on the server",
          Effect.map(sleeping, (n) => n === 0),
          "1 second"
        )
        assert.isBelow(Date.now() - failedAt, 1_000)
        // The pool's one connection is usable at once, and nothing is left counted as running or waiting.
        const [[row], next] = yield* Fx.timed(sql<{ n: number }>`select 1 as n`.pipe(asProject))
        assert.strictEqual(row!.n, 1)
        assert.isBelow(next, 300)
        const stats = yield* engine.poolStats.pipe(asProject)
        assert.deepStrictEqual([stats.size, stats.inFlight, stats.pending, stats.reserved], [1, 0, 0, 0])
      }).pipe(
        Effect.provide(
          Fx.layer({
            engine: { multiplex: mode.multiplex, idempotentReads: false },
            tenancy: {
              breakers: { postgres: { attemptTimeout: "500 millis" } },
              tiers: { PRO: { minPool: 1, maxPool: 1 } }
            }
          })
        )
      )
    )

    it.live(`interrupting the caller cancels its statement on the server (${mode.name})`, () =>
      Effect.gen(function* () {
        const { sql, sleeping, asProject } = yield* setup("cancel-interrupt")
        const fiber = yield* Effect.forkChild(sql`select pg_sleep(10)`.pipe(asProject))
        yield* Fx.eventually(
          "pg_sleep is running",
          Effect.map(sleeping, (n) => n === 1)
        )
        const interruptedAt = Date.now()
        yield* Fiber.interrupt(fiber)
        yield* Fx.eventually(
          "pg_sleep stopped on the server",
          Effect.map(sleeping, (n) => n === 0),
          "1 second"
        )
        assert.isBelow(Date.now() - interruptedAt, 1_000)
      }).pipe(Effect.provide(Fx.layer({ engine: { multiplex: mode.multiplex } })))
    )
  }

  it.live(
    "statements queued behind an abandoned one on a multiplexed connection go on, and none is canceled instead",
    () =>
      Effect.gen(function* () {
        const { sql, sleeping, asProject, engine } = yield* setup("cancel-pipeline")
        const slow = yield* Effect.forkChild(sql`select pg_sleep(10)`.pipe(asProject))
        yield* Fx.eventually(
          "pg_sleep is running",
          Effect.map(sleeping, (n) => n === 1)
        )
        // One connection: everything below is pipelined behind pg_sleep on it.
        const quick = yield* Effect.forkChild(
          Effect.forEach(
            Array.from({ length: 50 }, (_, i) => i),
            (i) => sql<{ i: number }>`select ${i}::int as i`.pipe(Effect.map((rows) => rows[0]!.i)),
            { concurrency: "unbounded" }
          ).pipe(asProject)
        )
        yield* Effect.sleep("100 millis")
        yield* Fiber.interrupt(slow)
        const [results, millis] = yield* Fx.timed(Fiber.join(quick))
        assert.deepStrictEqual(
          results,
          Array.from({ length: 50 }, (_, i) => i)
        )
        assert.isBelow(millis, 1_500, "not held up for the 10 s of the abandoned statement")
        assert.strictEqual(yield* sleeping, 0)
        const stats = yield* engine.poolStats.pipe(asProject)
        assert.strictEqual(stats.size, 1, "still one connection")
      }).pipe(
        Effect.provide(
          Fx.layer({ engine: { multiplex: true }, tenancy: { tiers: { PRO: { minPool: 1, maxPool: 1 } } } })
        )
      )
  )

  it.live("a read that runs to its attempt timeout fails with Timeout, is cancelled, and is not retried", () =>
    Effect.gen(function* () {
      const { id, sql, tenancy, sleeping, asProject } = yield* setup("cancel-retry")
      const error = yield* PgError.unwrapGuardErrors(sql`select pg_sleep(10)`.pipe(asProject)).pipe(Effect.flip)
      assert.instanceOf(error, Timeout)
      assert.strictEqual((error as Timeout).budget, "attempt")
      const [meta] = (yield* tenancy.connections).filter((c) => c.projectId === id)
      assert.strictEqual(meta!.errorCount, 1, "a statement that ran to its timeout has shown it is slow: no retry")
      yield* Fx.eventually(
        "no attempt left running",
        Effect.map(sleeping, (n) => n === 0),
        "1 second"
      )
    }).pipe(Effect.provide(Fx.layer({ tenancy: { breakers: { postgres: { attemptTimeout: "300 millis" } } } })))
  )
})
