/**
 * Transactions through the guard: commit, rollback and savepoints; one reserved connection per transaction,
 * released on every exit (commit, rollback, interruption, timeout), checked against pg_stat_activity; one admission
 * slot per transaction whatever runs inside it.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as SqlClient from "effect/sql/SqlClient"
import { UnknownOutcome } from "@tenantpool/core/Errors"
import { MemoryRegistry } from "@tenantpool/core/Registry"
import * as Tenancy from "@tenantpool/core/Tenancy"
import * as PgEngine from "../src/PgEngine.ts"
import * as PgError from "../src/PgError.ts"
import * as Fx from "./fixtures/Engine.ts"

/** A fresh database with a table `t (id int primary key)`, registered for a new project; returns the project id. */
const setup = (label: string, tier: "FREE" | "PRO" = "PRO") =>
  Effect.gen(function* () {
    const url = yield* Fx.freshDatabase(label)
    const id = Fx.projectId(label)
    yield* (yield* MemoryRegistry).register({ id, tier, postgres: url })
    const sql = yield* SqlClient.SqlClient
    const tenancy = yield* Tenancy.Tenancy
    yield* sql`create table t (id int primary key)`.pipe(tenancy.withProject(id))
    const ids = sql<{ id: number }>`select id from t order by id`.pipe(
      Effect.map((rows) => rows.map((r) => r.id)),
      tenancy.withProject(id)
    )
    return { id, sql, tenancy, ids }
  })

/** The engine's and the server's view of a project's pool once everything has settled. */
const settled = (id: string) =>
  Effect.gen(function* () {
    const engine = yield* PgEngine.PgEngine
    const tenancy = yield* Tenancy.Tenancy
    const obs = yield* Fx.observer(Fx.serverUrl())
    const name = (yield* engine.poolStats.pipe(tenancy.withProject(id))).applicationName
    yield* Fx.eventually(
      "no reserved connection and no open transaction on the server",
      Effect.gen(function* () {
        const stats = yield* engine.poolStats.pipe(tenancy.withProject(id), Effect.orDie)
        const rows = yield* Fx.connections(obs, name)
        return (
          stats.reserved === 0 &&
          stats.pending === 0 &&
          rows.every((r) => r.state === "idle") &&
          !rows.some((r) => (r.state ?? "").includes("transaction"))
        )
      })
    )
  })

describe("PgEngine transactions", () => {
  it.live("commit, rollback on failure, and nested transactions as savepoints", () =>
    Effect.gen(function* () {
      const { id, sql, tenancy, ids } = yield* setup("tx_basic")
      yield* sql
        .withTransaction(Effect.all([sql`insert into t values (1)`, sql`insert into t values (2)`]))
        .pipe(tenancy.withProject(id))
      assert.deepStrictEqual(yield* ids, [1, 2])

      const failed = yield* sql
        .withTransaction(Effect.andThen(sql`insert into t values (3)`, Effect.fail("no" as const)))
        .pipe(tenancy.withProject(id), Effect.flip)
      assert.strictEqual(failed, "no", "the body's own error comes back unchanged")
      assert.deepStrictEqual(yield* ids, [1, 2], "rolled back")

      yield* sql
        .withTransaction(
          Effect.gen(function* () {
            yield* sql`insert into t values (4)`
            const inner = yield* sql
              .withTransaction(Effect.andThen(sql`insert into t values (5)`, Effect.fail("inner" as const)))
              .pipe(Effect.flip)
            assert.strictEqual(inner, "inner")
            yield* sql`insert into t values (6)`
          })
        )
        .pipe(tenancy.withProject(id))
      assert.deepStrictEqual(yield* ids, [1, 2, 4, 6], "the savepoint rolled back alone")

      const unique = Fx.asSqlError(
        yield* sql.withTransaction(sql`insert into t values (1)`).pipe(tenancy.withProject(id), Effect.flip)
      )
      assert.strictEqual(unique.reason._tag, "UniqueViolation")
      yield* settled(id)
    }).pipe(Effect.provide(Fx.layer()))
  )

  it.live("a transaction is one admission slot: maxConcurrent 1 with no queue runs many statements inside one", () =>
    Effect.gen(function* () {
      const { id, sql, tenancy, ids } = yield* setup("tx_slot", "FREE")
      yield* sql
        .withTransaction(
          Effect.forEach([10, 11, 12, 13, 14], (n) => sql`insert into t values (${n})`, { concurrency: "unbounded" })
        )
        .pipe(tenancy.withProject(id))
      assert.deepStrictEqual(yield* ids, [10, 11, 12, 13, 14])
      const [meta] = (yield* tenancy.connections).filter((c) => c.projectId === id)
      assert.strictEqual(meta!.errorCount, 0, "no statement was refused for want of a slot")
    }).pipe(Effect.provide(Fx.layer({ tenancy: { tiers: { FREE: { maxConcurrent: 1, maxQueue: 0 } } } })))
  )

  it.live("an interrupted transaction rolls back and releases its connection", () =>
    Effect.gen(function* () {
      const { id, sql, tenancy, ids } = yield* setup("tx_interrupt")
      // Interrupted between statements (holding the connection, idle in transaction) …
      const holding = yield* Effect.forkChild(
        sql.withTransaction(Effect.andThen(sql`insert into t values (1)`, Effect.never)).pipe(tenancy.withProject(id))
      )
      yield* Effect.sleep("200 millis")
      yield* Fiber.interrupt(holding)
      // … and during a statement running on the server.
      const running = yield* Effect.forkChild(
        sql
          .withTransaction(Effect.andThen(sql`insert into t values (2)`, sql`select pg_sleep(10)`))
          .pipe(tenancy.withProject(id))
      )
      yield* Effect.sleep("200 millis")
      const [, millis] = yield* Fx.timed(Fiber.interrupt(running))
      assert.isBelow(millis, 1_000)
      assert.deepStrictEqual(yield* ids, [], "both rolled back")
      yield* settled(id)
      const obs = yield* Fx.observer(Fx.serverUrl())
      const name = (yield* (yield* PgEngine.PgEngine).poolStats.pipe(tenancy.withProject(id))).applicationName
      assert.strictEqual(yield* Fx.sleeping(obs, name), 0, "the canceled pg_sleep is gone")
    }).pipe(Effect.provide(Fx.layer()))
  )

  it.live(
    "a transaction past its tier deadline fails as an unknown outcome, is rolled back and stops on the server",
    () =>
      Effect.gen(function* () {
        const { id, sql, tenancy, ids } = yield* setup("tx_timeout")
        const [error, millis] = yield* Fx.timed(
          sql
            .withTransaction(Effect.andThen(sql`insert into t values (1)`, sql`select pg_sleep(10)`))
            .pipe(tenancy.withProject(id), Effect.flip)
        )
        assert.isBelow(millis, 1_500)
        assert.instanceOf(Fx.asSqlError(error).reason.cause, UnknownOutcome)
        const typed = yield* PgError.unwrapGuardErrors(
          sql.withTransaction(sql`select pg_sleep(10)`).pipe(tenancy.withProject(id))
        ).pipe(Effect.flip)
        assert.strictEqual(typed._tag, "UnknownOutcome", "a write that may have happened is never reported as failed")
        const obs = yield* Fx.observer(Fx.serverUrl())
        const name = (yield* (yield* PgEngine.PgEngine).poolStats.pipe(tenancy.withProject(id))).applicationName
        yield* Fx.eventually(
          "the statement stopped on the server",
          Effect.map(Fx.sleeping(obs, name), (n) => n === 0),
          "1 second"
        )
        assert.deepStrictEqual(yield* ids, [])
        yield* settled(id)
      }).pipe(Effect.provide(Fx.layer({ tenancy: { tiers: { PRO: { timeout: "500 millis" } } } })))
  )

  it.live("a statement of another project is refused on a transaction's connection", () =>
    Effect.gen(function* () {
      const { id, sql, tenancy, ids } = yield* setup("tx_cross")
      const other = Fx.projectId("tx-other")
      yield* (yield* MemoryRegistry).register({ id: other, tier: "FREE", postgres: Fx.serverUrl() })
      const error = yield* sql
        .withTransaction(Effect.andThen(sql`insert into t values (1)`, sql`select 1`.pipe(tenancy.withProject(other))))
        .pipe(tenancy.withProject(id), Effect.flip)
      assert.strictEqual(error._tag, "SqlError")
      assert.include(error.message, "reserved by project")
      assert.deepStrictEqual(yield* ids, [], "and the transaction rolled back")
    }).pipe(Effect.provide(Fx.layer()))
  )

  it.live("sql.reserve holds one exclusive connection until its scope closes", () =>
    Effect.gen(function* () {
      const { id, sql, tenancy } = yield* setup("tx_reserve")
      const engine = yield* PgEngine.PgEngine
      yield* Effect.scoped(
        Effect.gen(function* () {
          const conn = yield* sql.reserve
          const pid = () =>
            Effect.map(conn.execute("select pg_backend_pid() as pid", [], undefined), (rows) => rows[0].pid as number)
          const first = yield* pid()
          yield* Effect.forEach([1, 2, 3], () => sql`select pg_sleep(0.01)`, { concurrency: "unbounded" })
          assert.strictEqual(yield* pid(), first, "the same session throughout, whatever else runs")
          assert.strictEqual((yield* engine.poolStats).reserved, 1)
        })
      ).pipe(tenancy.withProject(id))
      assert.strictEqual((yield* engine.poolStats.pipe(tenancy.withProject(id))).reserved, 0)
    }).pipe(Effect.provide(Fx.layer()))
  )
})
