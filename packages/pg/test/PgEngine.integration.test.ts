/**
 * The guarded `SqlClient` against the shared PostgreSQL server: statements of every kind for the current project,
 * routing by project (each sees only its own database), pool sharing and closing, pool sizing from tiers, and
 * server-side connection counts (pg_stat_activity) against the engine's own statistics.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as SqlClient from "effect/sql/SqlClient"
import * as Stream from "effect/Stream"
import { NoCurrentProject } from "@tenantpool/core/Errors"
import { MemoryRegistry } from "@tenantpool/core/Registry"
import * as Tenancy from "@tenantpool/core/Tenancy"
import { Tiers } from "@tenantpool/core/Tier"
import * as PgEngine from "../src/PgEngine.ts"
import * as PgError from "../src/PgError.ts"
import * as Fx from "./fixtures/Engine.ts"

describe("PgEngine", () => {
  it.live(
    "runs tagged templates, insert/in/update helpers, values, unprepared and streams for the current project",
    () =>
      Effect.gen(function* () {
        const url = yield* Fx.freshDatabase("queries")
        const id = Fx.projectId("queries")
        yield* (yield* MemoryRegistry).register({ id, tier: "PRO", postgres: url })
        const sql = yield* SqlClient.SqlClient
        const tenancy = yield* Tenancy.Tenancy
        yield* Effect.gen(function* () {
          yield* sql`create table items (id int primary key, name text not null)`
          yield* sql`insert into items ${sql.insert([
            { id: 1, name: "a" },
            { id: 2, name: "b" },
            { id: 3, name: "c" }
          ])}`
          const rows = yield* sql<{ id: number; name: string }>`
          select id, name from items where id in ${sql.in([1, 3])} order by id`
          assert.deepStrictEqual(rows, [
            { id: 1, name: "a" },
            { id: 3, name: "c" }
          ])
          assert.deepStrictEqual(yield* sql`select name from items where id = ${2}`.values, [["b"]])
          assert.deepStrictEqual(yield* sql`select count(*)::int as n from items`.unprepared, [{ n: 3 }])
          yield* sql`update items set ${sql.update({ name: "z" })} where id = ${1}`
          const streamed = yield* Stream.runCollect(
            sql<{ id: number; name: string }>`select id, name from items order by id`.stream
          )
          assert.deepStrictEqual(
            Array.from(streamed).map((r) => `${r.id}${r.name}`),
            ["1z", "2b", "3c"]
          )
          const [db] = yield* sql<{ db: string }>`select current_database() as db`
          assert.strictEqual(db!.db, new URL(url).pathname.slice(1))
        }).pipe(tenancy.withProject(id))

        const [meta] = (yield* tenancy.connections).filter((c) => c.projectId === id)
        assert.isDefined(meta)
        assert.isAtLeast(meta!.queryCount, 8, "every statement went through the guard")
        assert.strictEqual(meta!.errorCount, 0)
      }).pipe(Effect.provide(Fx.layer()))
  )

  it.live("a statement outside any project fails with NoCurrentProject inside a SqlError, or typed on request", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const error = yield* Effect.flip(sql`select 1`)
      assert.strictEqual(error._tag, "SqlError")
      assert.instanceOf(PgError.guardError(error), NoCurrentProject)
      assert.include(error.message, "outside a project")
      const typed = yield* Effect.flip(PgError.unwrapGuardErrors(sql`select 1`))
      assert.strictEqual(typed._tag, "NoCurrentProject")
    }).pipe(Effect.provide(Fx.layer()))
  )

  it.live("two projects on different databases see only their own tables", () =>
    Effect.gen(function* () {
      const urlA = yield* Fx.freshDatabase("iso_a")
      const urlB = yield* Fx.freshDatabase("iso_b")
      const a = Fx.projectId("iso-a")
      const b = Fx.projectId("iso-b")
      const registry = yield* MemoryRegistry
      yield* registry.register({ id: a, tier: "FREE", postgres: urlA })
      yield* registry.register({ id: b, tier: "FREE", postgres: urlB })
      const sql = yield* SqlClient.SqlClient
      const tenancy = yield* Tenancy.Tenancy
      yield* sql`create table only_a (x int)`.pipe(tenancy.withProject(a))
      yield* sql`create table only_b (x int)`.pipe(tenancy.withProject(b))
      const look = sql<{ db: string; a: string | null; b: string | null }>`
        select current_database() as db, to_regclass('only_a')::text as a, to_regclass('only_b')::text as b`
      // Interleaved on concurrent fibers: the current project decides, statement by statement.
      const [fromA, fromB] = yield* Effect.all([look.pipe(tenancy.withProject(a)), look.pipe(tenancy.withProject(b))], {
        concurrency: 2
      })
      assert.deepStrictEqual(fromA[0], { db: new URL(urlA).pathname.slice(1), a: "only_a", b: null })
      assert.deepStrictEqual(fromB[0], { db: new URL(urlB).pathname.slice(1), a: null, b: "only_b" })
      assert.strictEqual((yield* (yield* PgEngine.PgEngine).targets).length, 2, "one pool per database")
    }).pipe(Effect.provide(Fx.layer()))
  )

  it.live("projects on the same target share one pool, closed with its connections when the last project goes", () =>
    Effect.gen(function* () {
      const url = yield* Fx.freshDatabase("shared")
      const obs = yield* Fx.observer(Fx.serverUrl())
      const ids = [Fx.projectId("sh-a"), Fx.projectId("sh-b"), Fx.projectId("sh-c")]
      const registry = yield* MemoryRegistry
      for (const id of ids) yield* registry.register({ id, tier: "FREE", postgres: url })
      const sql = yield* SqlClient.SqlClient
      const tenancy = yield* Tenancy.Tenancy
      const engine = yield* PgEngine.PgEngine
      for (const id of ids) yield* sql`select 1`.pipe(tenancy.withProject(id))
      const targets = yield* engine.targets
      assert.strictEqual(targets.length, 1)
      assert.strictEqual(targets[0]!.projects, 3)
      const name = targets[0]!.stats.applicationName
      assert.match(name, /^tp-[0-9a-f]{6}:[0-9a-f]{10}$/, "application_name carries a tag, never the URL")
      yield* Fx.eventually(
        "the FREE minimum of 2 connections is open",
        Effect.map(Fx.connections(obs, name), (rows) => rows.length === 2)
      )

      const closed = yield* tenancy.closeIdleConnections({ idleFor: 0 })
      assert.strictEqual(closed, 3)
      assert.strictEqual((yield* engine.targets).length, 0)
      yield* Fx.eventually(
        "the server sees no connection of the closed pool",
        Effect.map(Fx.connections(obs, name), (rows) => rows.length === 0)
      )
      // A statement after the close opens a fresh pool.
      yield* sql`select 1`.pipe(tenancy.withProject(ids[0]!))
      assert.strictEqual((yield* engine.targets).length, 1)
    }).pipe(Effect.provide(Fx.layer()))
  )

  for (const multiplex of [true, false]) {
    it.live(
      `server connections stay within the pool max under 100 concurrent statements (${multiplex ? "multiplexed" : "exclusive"})`,
      () =>
        Effect.gen(function* () {
          const url = yield* Fx.freshDatabase("conc")
          const obs = yield* Fx.observer(Fx.serverUrl())
          const id = Fx.projectId("conc")
          yield* (yield* MemoryRegistry).register({ id, tier: "FREE", postgres: url })
          const sql = yield* SqlClient.SqlClient
          const tenancy = yield* Tenancy.Tenancy
          const engine = yield* PgEngine.PgEngine
          yield* sql`select 1`.pipe(tenancy.withProject(id))
          const stats = yield* engine.poolStats.pipe(tenancy.withProject(id))
          assert.strictEqual(stats.max, 5, "FREE max pool")
          assert.strictEqual(stats.multiplex, multiplex)

          let peak = 0
          const sampler = yield* Effect.forkChild(
            Effect.forever(
              Effect.gen(function* () {
                const n = (yield* Fx.connections(obs, stats.applicationName)).length
                if (n > peak) peak = n
                yield* Effect.sleep("5 millis")
              })
            )
          )
          const started = Date.now()
          const results = yield* Effect.forEach(
            Array.from({ length: 100 }, (_, i) => i),
            (i) => sql<{ i: number }>`select ${i}::int as i, pg_sleep(0.01)`.pipe(Effect.map((rows) => rows[0]!.i)),
            { concurrency: "unbounded" }
          ).pipe(tenancy.withProject(id))
          yield* Fiber.interrupt(sampler)
          assert.deepStrictEqual(
            results,
            Array.from({ length: 100 }, (_, i) => i),
            "every statement got its own answer"
          )
          assert.isAtMost(peak, 5, `peak server connections ${peak}`)
          assert.isAtLeast(peak, 1)
          assert.isBelow(Date.now() - started, 9_000)
          // The engine's own count of sockets matches the server's.
          yield* Fx.eventually(
            "pool statistics agree with pg_stat_activity",
            Effect.gen(function* () {
              const server = (yield* Fx.connections(obs, stats.applicationName)).length
              const own = yield* engine.poolStats.pipe(tenancy.withProject(id), Effect.orDie)
              return own.size === server && own.inFlight === 0 && own.pending === 0 && own.reserved === 0
            })
          )
        }).pipe(
          Effect.provide(
            Fx.layer({
              engine: { multiplex },
              tenancy: { tiers: { FREE: { maxConcurrent: 100, maxQueue: 100 } } }
            })
          )
        )
    )
  }

  it.live("a pool follows its projects' tiers: tier limits and a project's tier change resize it", () =>
    Effect.gen(function* () {
      const url = yield* Fx.freshDatabase("sizing")
      const id = Fx.projectId("sizing")
      const registry = yield* MemoryRegistry
      yield* registry.register({ id, tier: "FREE", postgres: url })
      const sql = yield* SqlClient.SqlClient
      const tenancy = yield* Tenancy.Tenancy
      const engine = yield* PgEngine.PgEngine
      const stats = engine.poolStats.pipe(tenancy.withProject(id))
      yield* sql`select 1`.pipe(tenancy.withProject(id))
      const before = yield* stats
      assert.deepStrictEqual([before.min, before.max], [2, 5])

      yield* (yield* Tiers).update("FREE", { maxPool: 7 })
      yield* sql`select 1`.pipe(tenancy.withProject(id))
      const grown = yield* stats
      assert.deepStrictEqual([grown.min, grown.max], [2, 7])
      assert.isAbove(grown.generation, before.generation, "a new pool of the new size")

      // The registry moves the project to PRO (min 10, max 50): capped by the engine's maxConnections (12).
      yield* registry.register({ id, tier: "PRO", postgres: url })
      yield* Fx.eventually(
        "the pool follows the project's new tier",
        Effect.map(
          Effect.andThen(sql`select 1`, stats).pipe(tenancy.withProject(id), Effect.orDie),
          (s) => s.min === 10 && s.max === 12
        )
      )
      const [meta] = yield* tenancy.connections
      assert.strictEqual(meta!.tier, "PRO")
    }).pipe(Effect.provide(Fx.layer({ engine: { maxConnections: 12, resizeInterval: "100 millis" } })))
  )

  it.live("frees an idle project's pool after its tier's idle timeout: server connections go to zero", () =>
    Effect.gen(function* () {
      const url = yield* Fx.freshDatabase("idle")
      const obs = yield* Fx.observer(Fx.serverUrl())
      const id = Fx.projectId("idle")
      yield* (yield* MemoryRegistry).register({ id, tier: "FREE", postgres: url })
      const sql = yield* SqlClient.SqlClient
      const tenancy = yield* Tenancy.Tenancy
      const engine = yield* PgEngine.PgEngine
      yield* sql`select 1`.pipe(tenancy.withProject(id))
      const name = (yield* engine.poolStats.pipe(tenancy.withProject(id))).applicationName
      yield* Fx.eventually(
        "its connections are open",
        Effect.map(Fx.connections(obs, name), (rows) => rows.length > 0)
      )
      yield* Fx.eventually(
        "the idle project's pool is closed",
        Effect.map(engine.targets, (targets) => targets.length === 0),
        "5 seconds"
      )
      yield* Fx.eventually(
        "the server sees none of its connections",
        Effect.map(Fx.connections(obs, name), (rows) => rows.length === 0)
      )
      const events = (yield* tenancy.recentEvents).map((e) => e._tag)
      assert.includeMembers(events, ["PoolCreated", "PoolClosed", "ProjectEvicted"])
    }).pipe(
      Effect.provide(
        Fx.layer({ tenancy: { sweepInterval: "200 millis", tiers: { FREE: { idleTimeout: "1 second" } } } })
      )
    )
  )

  it.live("a project's layer provides the SqlClient for that project", () =>
    Effect.gen(function* () {
      const url = yield* Fx.freshDatabase("layer")
      const id = Fx.projectId("layer")
      yield* (yield* MemoryRegistry).register({ id, tier: "FREE", postgres: url })
      const rows = yield* Effect.flatMap(
        SqlClient.SqlClient,
        (sql) => sql<{ db: string }>`select current_database() as db`
      ).pipe(Effect.provide(PgEngine.layerProject(id)))
      assert.deepStrictEqual(rows, [{ db: new URL(url).pathname.slice(1) }])
    }).pipe(Effect.provide(Fx.layer()))
  )
})
