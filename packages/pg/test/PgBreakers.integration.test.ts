/**
 * Breakers see only what says the server is unhealthy: a thousand of a project's bad statements (syntax errors,
 * unique violations) never open anything, while a stopped server opens the breakers, calls are then refused at
 * once, and a restart closes them again (through the active probe, without waiting for a caller).
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as SqlClient from "effect/sql/SqlClient"
import { CircuitOpen } from "@tenantpool/core/Errors"
import { MemoryRegistry } from "@tenantpool/core/Registry"
import * as Tenancy from "@tenantpool/core/Tenancy"
import * as Servers from "@tenantpool/testing/Servers"
import * as PgEngine from "../src/PgEngine.ts"
import * as PgError from "../src/PgError.ts"
import * as Fx from "./fixtures/Engine.ts"

describe("PgEngine breakers", () => {
  it.live("1,000 syntax errors and 1,000 unique violations never open a breaker", () =>
    Effect.gen(function* () {
      const url = yield* Fx.freshDatabase("breaker_bad_sql")
      const id = Fx.projectId("bad-sql")
      yield* (yield* MemoryRegistry).register({ id, tier: "PRO", postgres: url })
      const sql = yield* SqlClient.SqlClient
      const tenancy = yield* Tenancy.Tenancy
      const asProject = tenancy.withProject(id)
      yield* sql`create table u (id int primary key)`.pipe(asProject)
      yield* sql`insert into u values (1)`.pipe(asProject)

      const reasons = new Map<string, number>()
      const count = (e: { readonly reason: { readonly _tag: string } }) =>
        Effect.sync(() => reasons.set(e.reason._tag, (reasons.get(e.reason._tag) ?? 0) + 1))
      yield* Effect.forEach(
        Array.from({ length: 1000 }, (_, i) => i),
        (i) =>
          Effect.flip(i % 2 === 0 ? sql`selec ${i}` : sql.unsafe(`select * from missing_table_${i}`)).pipe(
            Effect.flatMap(count),
            asProject
          ),
        { concurrency: 20, discard: true }
      )
      yield* Effect.forEach(
        Array.from({ length: 1000 }),
        () => Effect.flip(sql`insert into u values (1)`).pipe(Effect.flatMap(count), asProject),
        { concurrency: 20, discard: true }
      )
      assert.deepStrictEqual(Object.fromEntries(reasons), { SqlSyntaxError: 1000, UniqueViolation: 1000 })
      assert.strictEqual(yield* tenancy.breakerState(id, "postgres"), "closed")
      const [meta] = (yield* tenancy.connections).filter((c) => c.projectId === id)
      assert.strictEqual(meta!.breaker, "closed")
      assert.strictEqual(meta!.targetBreaker, "closed")
      assert.strictEqual(meta!.errorCount, 2000)
      const transitions = (yield* tenancy.recentEvents).filter((e) => e._tag.startsWith("Circuit"))
      assert.deepStrictEqual(transitions, [], "no breaker moved")
      // And the project's good statements still run.
      const [row] = yield* sql<{ n: number }>`select count(*)::int as n from u`.pipe(asProject)
      assert.strictEqual(row!.n, 1)
    }).pipe(Effect.provide(Fx.layer()))
  )

  it.live("stopping PostgreSQL opens the breaker, calls are then refused at once, and a restart recovers", () =>
    Effect.gen(function* () {
      const server = yield* Servers.acquirePrivate("postgres")
      const id = Fx.projectId("outage")
      yield* (yield* MemoryRegistry).register({ id, tier: "PRO", postgres: server.url })
      const sql = yield* SqlClient.SqlClient
      const tenancy = yield* Tenancy.Tenancy
      const asProject = tenancy.withProject(id)
      const ping = sql<{ n: number }>`select 1 as n`.pipe(asProject)
      assert.deepStrictEqual(yield* ping, [{ n: 1 }])

      yield* Effect.promise(() => server.stop({ mode: "fast" }))
      const outcomes: Array<string> = []
      for (let i = 0; i < 40 && (yield* tenancy.breakerState(id, "postgres")) !== "open"; i++) {
        const error = Fx.asSqlError(yield* Effect.flip(ping))
        outcomes.push(PgError.guardError(error)?._tag ?? error.reason._tag)
      }
      assert.strictEqual(yield* tenancy.breakerState(id, "postgres"), "open", `outcomes: ${outcomes.join(",")}`)
      assert.include(outcomes, "ConnectionError")

      const [refused, millis] = yield* Fx.timed(PgError.unwrapGuardErrors(ping).pipe(Effect.flip))
      assert.instanceOf(refused, CircuitOpen)
      assert.isBelow(millis, 50, "refused without touching the network")
      const events = (yield* tenancy.recentEvents).map((e) => e._tag)
      assert.include(events, "CircuitOpen")

      yield* Effect.promise(() => server.start())
      yield* Fx.eventually(
        "the breaker closes after the restart",
        Effect.map(tenancy.breakerState(id, "postgres"), (state) => state === "closed"),
        "10 seconds"
      )
      assert.deepStrictEqual(yield* ping, [{ n: 1 }])
      const after = (yield* tenancy.recentEvents).map((e) => e._tag)
      assert.include(after, "CircuitClosed")
    }).pipe(
      Effect.provide(
        Fx.layer({ tenancy: { breakers: { postgres: { resetTimeout: "1 second", attemptTimeout: "500 millis" } } } })
      )
    )
  )

  it.live("after a restart the pool is refilled to its tier's minimum (10 for PRO), not left at its traffic's 1", () =>
    Effect.gen(function* () {
      const server = yield* Servers.acquirePrivate("postgres")
      const id = Fx.projectId("refill")
      yield* (yield* MemoryRegistry).register({ id, tier: "PRO", postgres: server.url })
      const sql = yield* SqlClient.SqlClient
      const tenancy = yield* Tenancy.Tenancy
      const engine = yield* PgEngine.PgEngine
      const asProject = tenancy.withProject(id)
      yield* sql`select 1`.pipe(asProject)
      const name = (yield* engine.poolStats.pipe(asProject)).applicationName
      const sessions = Effect.scoped(
        Effect.flatMap(Fx.observer(server.url), (obs) => Effect.map(Fx.connections(obs, name), (rows) => rows.length))
      ).pipe(Effect.orDie)
      yield* Fx.eventually(
        "the minimum is open",
        Effect.map(sessions, (n) => n >= 10)
      )

      yield* Effect.promise(() => server.stop({ mode: "fast" }))
      yield* Effect.promise(() => server.start())
      // One statement at a time, as a quiet project sends them.
      yield* Fx.eventually(
        "the minimum is open again",
        Effect.andThen(
          Effect.ignore(sql`select 1`.pipe(asProject)),
          Effect.map(sessions, (n) => n >= 10)
        ),
        "10 seconds"
      )
    }).pipe(Effect.provide(Fx.layer({ tenancy: { breakers: { postgres: { resetTimeout: "1 second" } } } })))
  )
})
