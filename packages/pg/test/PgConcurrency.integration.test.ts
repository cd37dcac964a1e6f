/**
 * Tier limits mean what they say, counted on the server (pg_stat_activity): a project's concurrent slow statements
 * run side by side up to its tier's pool (not one after another on a shared connection), a FREE flood on the same
 * database leaves a PRO project's short statements alone, higher tiers are served first when the target's budget
 * is contended, and no project holds more server connections than its tier's `maxPool`.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as SqlClient from "effect/sql/SqlClient"
import * as Stream from "effect/Stream"
import { MemoryRegistry } from "@tenantpool/core/Registry"
import * as Tenancy from "@tenantpool/core/Tenancy"
import * as PgEngine from "../src/PgEngine.ts"
import * as PgError from "../src/PgError.ts"
import * as Fx from "./fixtures/Engine.ts"

/** Registers projects (id → tier) on one database; returns their ids in order. */
const register = (url: string, tiers: ReadonlyArray<"FREE" | "PRO">) =>
  Effect.gen(function* () {
    const registry = yield* MemoryRegistry
    const ids: Array<string> = []
    for (const tier of tiers) {
      const id = Fx.projectId(tier.toLowerCase())
      yield* registry.register({ id, tier, postgres: url })
      ids.push(id)
    }
    return ids
  })

/** Samples `count` every 10 ms while `effect` runs; returns its result and the highest count seen. */
const sampling = <A, E, R>(count: Effect.Effect<number>, effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function* () {
    let most = 0
    const sampler = yield* Effect.forkChild(
      Effect.forever(
        Effect.andThen(
          Effect.map(count, (n) => (most = Math.max(most, n))),
          Effect.sleep("10 millis")
        )
      )
    )
    const result = yield* effect
    yield* Fiber.interrupt(sampler)
    return [result, most] as const
  })

const percentile = (values: ReadonlyArray<number>, p: number): number => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length - 1) * p))]!
}

/** Latencies (ms) of `n` primary-key lookups from `fibers` fibers. */
const lookups = (sql: SqlClient.SqlClient, fibers: number, n: number) =>
  Effect.gen(function* () {
    const out: Array<number> = []
    yield* Effect.forEach(
      Array.from({ length: fibers }),
      () =>
        Effect.gen(function* () {
          for (let i = 0; i < n; i++) {
            const id = 1 + Math.floor(Math.random() * 1000)
            const started = performance.now()
            yield* sql`select id, v from kv where id = ${id}`
            out.push(performance.now() - started)
          }
        }),
      { concurrency: "unbounded", discard: true }
    )
    return out
  })

describe("PgEngine concurrency", () => {
  it.live(
    "20 concurrent pg_sleep(0.5) of a FREE project all succeed, 5 at once on the server (its maxPool), in ~2 s",
    () =>
      Effect.gen(function* () {
        const url = yield* Fx.freshDatabase("slow")
        const [id] = yield* register(url, ["FREE"])
        const sql = yield* SqlClient.SqlClient
        const tenancy = yield* Tenancy.Tenancy
        const engine = yield* PgEngine.PgEngine
        yield* sql`select 1`.pipe(tenancy.withProject(id!))
        const name = (yield* engine.poolStats.pipe(tenancy.withProject(id!))).applicationName
        const obs = yield* Fx.observer(Fx.serverUrl())
        for (const wave of ["first (durations unknown)", "second (known to be slow)"]) {
          const [[results, millis], most] = yield* sampling(
            Fx.sleeping(obs, name),
            Fx.timed(
              Effect.forEach(Array.from({ length: 20 }), () => Effect.result(sql`select pg_sleep(0.5)`), {
                concurrency: "unbounded"
              }).pipe(tenancy.withProject(id!))
            )
          )
          const failed = results.filter((r) => r._tag === "Failure")
          assert.strictEqual(failed.length, 0, `${wave}: ${failed.map((f) => String(f.failure)).join(", ")}`)
          assert.isAtLeast(most, 5, `${wave}: running at once on the server`)
          assert.isAtMost(most, 5, `${wave}: never more than the tier's maxPool`)
          assert.isBelow(millis, 3_000, wave)
        }
      }).pipe(Effect.provide(Fx.layer())),
    30_000
  )

  it.live(
    "a FREE flood of pg_sleep(0.2) from 200 fibers on the same database keeps a PRO project's p99 within 3x",
    () =>
      Effect.gen(function* () {
        const url = yield* Fx.freshDatabase("noisy")
        const [free, pro] = yield* register(url, ["FREE", "PRO"])
        const sql = yield* SqlClient.SqlClient
        const tenancy = yield* Tenancy.Tenancy
        const asPro = tenancy.withProject(pro!)
        yield* sql`create table kv (id int primary key, v text not null)`.pipe(asPro)
        yield* sql`insert into kv select i, md5(i::text) from generate_series(1, 1000) i`.pipe(asPro)
        yield* lookups(sql, 4, 50).pipe(asPro)
        // Up to three measurements: on 2 cores shared with other test files, one p99 of a few hundred sub-millisecond
        // lookups can be a neighbour's GC pause; the claim holds when one full measurement meets it.
        const ratios: Array<number> = []
        for (let round = 0; round < 3; round++) {
          const unloaded = yield* lookups(sql, 4, 400).pipe(asPro)
          let stop = false
          let flooded = 0
          const flood = yield* Effect.forkChild(
            Effect.forEach(
              Array.from({ length: 200 }),
              () =>
                Effect.whileLoop({
                  while: () => !stop,
                  body: () =>
                    PgError.unwrapGuardErrors(sql`select pg_sleep(0.2)`).pipe(
                      Effect.map(() => {
                        flooded++
                      }),
                      // A refused caller comes back when told to (at least 20 ms later), as a client would.
                      Effect.catch((e: unknown) =>
                        Effect.sleep(
                          `${Math.max(20, Number((e as { retryAfterMillis?: number }).retryAfterMillis ?? 0))} millis`
                        )
                      )
                    ),
                  step: () => {}
                }),
              { concurrency: "unbounded", discard: true }
            ).pipe(tenancy.withProject(free!))
          )
          yield* Effect.sleep("500 millis")
          const loaded = yield* lookups(sql, 4, 400).pipe(asPro)
          stop = true
          yield* Fiber.join(flood)
          const before = percentile(unloaded, 0.99)
          const after = percentile(loaded, 0.99)
          console.log(
            `noisy neighbour: PRO p50 ${percentile(unloaded, 0.5).toFixed(2)} -> ${percentile(loaded, 0.5).toFixed(2)} ms, ` +
              `p99 ${before.toFixed(2)} -> ${after.toFixed(2)} ms (${(after / before).toFixed(2)}x); FREE ran ${flooded} sleeps`
          )
          assert.isAbove(flooded, 20, "the flood ran")
          ratios.push(after / before)
          if (after <= 3 * before) break
        }
        assert.isAtMost(Math.min(...ratios), 3, `PRO p99 under the flood / unloaded, per round: ${ratios.join(", ")}`)
      }).pipe(Effect.provide(Fx.layer())),
    60_000
  )

  it.live("when the target's budget is contended, a PRO project is served ahead of a FREE project's queue", () =>
    Effect.gen(function* () {
      const url = yield* Fx.freshDatabase("budget")
      const [free, pro] = yield* register(url, ["FREE", "PRO"])
      const sql = yield* SqlClient.SqlClient
      const tenancy = yield* Tenancy.Tenancy
      yield* sql`select 1`.pipe(tenancy.withProject(pro!))
      yield* sql`select 1`.pipe(tenancy.withProject(free!))
      const finished: Array<string> = []
      const freeFiber = yield* Effect.forkChild(
        Effect.forEach(
          Array.from({ length: 16 }),
          () => Effect.map(sql`select pg_sleep(0.2)`, () => finished.push("free")),
          { concurrency: "unbounded", discard: true }
        ).pipe(tenancy.withProject(free!))
      )
      yield* Effect.sleep("50 millis")
      const [, proMillis] = yield* Fx.timed(
        Effect.forEach(
          Array.from({ length: 8 }),
          () => Effect.map(sql`select pg_sleep(0.01)`, () => finished.push("pro")),
          { concurrency: "unbounded", discard: true }
        ).pipe(tenancy.withProject(pro!))
      )
      yield* Fiber.join(freeFiber)
      const lastPro = finished.lastIndexOf("pro")
      const freeAfter = finished.slice(lastPro).filter((f) => f === "free").length
      // Four slots: the 16 FREE sleeps take four rounds of 200 ms; PRO's statements take the freed slots first.
      assert.isBelow(proMillis, 650, "PRO waited for at most a round or two of FREE's running statements")
      assert.isAtLeast(freeAfter, 8, "at least half of FREE's queue finished after all of PRO's statements")
    }).pipe(Effect.provide(Fx.layer({ engine: { targetCapacity: 4 } })))
  )

  it.live(
    "a FREE project never holds more than its maxPool (5) server connections, whatever it runs, on a 50-connection pool",
    () =>
      Effect.gen(function* () {
        const url = yield* Fx.freshDatabase("cap")
        const [free, pro] = yield* register(url, ["FREE", "PRO"])
        const sql = yield* SqlClient.SqlClient
        const tenancy = yield* Tenancy.Tenancy
        const engine = yield* PgEngine.PgEngine
        yield* sql`select 1`.pipe(tenancy.withProject(pro!))
        yield* sql`select 1`.pipe(tenancy.withProject(free!))
        const stats = yield* engine.poolStats.pipe(tenancy.withProject(free!))
        assert.strictEqual(stats.max, 50, "the shared pool is sized for PRO")
        const obs = yield* Fx.observer(Fx.serverUrl())
        // Only FREE works: every busy session of the target is FREE's.
        const busy = Effect.map(
          Fx.connections(obs, stats.applicationName),
          (rows) => rows.filter((r) => r.state !== "idle").length
        )
        const work = Effect.all(
          [
            Effect.forEach(Array.from({ length: 6 }), () => sql`select pg_sleep(0.3)`, { concurrency: "unbounded" }),
            Effect.forEach(
              Array.from({ length: 3 }),
              () => sql.withTransaction(Effect.andThen(sql`select 1`, Effect.sleep("300 millis"))),
              { concurrency: "unbounded" }
            ),
            Effect.forEach(
              Array.from({ length: 3 }),
              () => Stream.runDrain(sql`select x, pg_sleep(0.1) from generate_series(1, 3) x`.stream),
              { concurrency: "unbounded" }
            ),
            Effect.forEach(
              Array.from({ length: 3 }),
              () =>
                Effect.scoped(
                  Effect.flatMap(sql.reserve, (conn) =>
                    Effect.andThen(conn.execute("select 1", [], undefined), Effect.sleep("300 millis"))
                  )
                ),
              { concurrency: "unbounded" }
            )
          ],
          { concurrency: "unbounded" }
        ).pipe(tenancy.withProject(free!))
        const [, most] = yield* sampling(busy, work)
        assert.isAtLeast(most, 4, "the work ran side by side")
        assert.isAtMost(most, 5, "never more than FREE's maxPool")
      }).pipe(Effect.provide(Fx.layer())),
    30_000
  )

  it.live("an ENTERPRISE project (maxPool 100) takes no more than its share of the server's connections", () =>
    Effect.gen(function* () {
      const url = yield* Fx.freshDatabase("share")
      const id = Fx.projectId("ent")
      yield* (yield* MemoryRegistry).register({ id, tier: "ENTERPRISE", postgres: url })
      const sql = yield* SqlClient.SqlClient
      const tenancy = yield* Tenancy.Tenancy
      const engine = yield* PgEngine.PgEngine
      const asProject = tenancy.withProject(id)
      const obs = yield* Fx.observer(Fx.serverUrl())
      const [limits] = yield* obs<{ n: number }>`select (current_setting('max_connections')::int
        - current_setting('superuser_reserved_connections')::int) as n`
      const cap = Math.floor(limits!.n * 0.1)
      yield* sql`select 1`.pipe(asProject)
      yield* Fx.eventually(
        "the pool is capped at the server's share",
        Effect.map(engine.poolStats.pipe(asProject, Effect.orDie), (s) => s.max === cap)
      )
      const name = (yield* engine.poolStats.pipe(asProject)).applicationName
      const [, most] = yield* sampling(
        Fx.sleeping(obs, name),
        Effect.forEach(Array.from({ length: 40 }), () => sql`select pg_sleep(0.3)`, {
          concurrency: "unbounded",
          discard: true
        }).pipe(asProject)
      )
      assert.isAtMost(most, cap, `at most ${cap} of the server's ${limits!.n} connections`)
      assert.isAtLeast(most, cap - 1)
    }).pipe(Effect.provide(Fx.layer({ engine: { serverShare: 0.1 } })))
  )
})
