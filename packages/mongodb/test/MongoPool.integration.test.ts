/**
 * Pool sizing (R1) from the server's side: under 200 concurrent operations a target's connections stay within the
 * pool limit of its tier (plus the client's monitoring connections), the limit is reached, and waiting checkouts are
 * visible in the CMAP-derived stats and in `db_connection_acquire_duration_seconds`. A larger tier on the same server
 * raises the limit (a new client; the old one closes once drained), and a server's client goes when its last project
 * is freed. Connection counts come from `serverStatus().connections` on MongoDB and from the kernel's TCP table on
 * FerretDB (whose serverStatus has no connection counts), on private servers so nobody else's connections count.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Metric from "effect/Metric"
import { PrometheusMetrics } from "effect/observability"
import { ObjectId } from "mongodb"
import { MemoryRegistry } from "@tenantpool/core/Registry"
import * as Tenancy from "@tenantpool/core/Tenancy"
import * as Servers from "@tenantpool/testing/Servers"
import { MongoEngine } from "../src/MongoEngine.ts"
import * as Fx from "./fixtures/Mongo.ts"

// Connections a client keeps besides its pool: the monitor, and the RTT pinger on servers that stream `hello`.
const MONITORING = 2

const sample = <A>(read: Effect.Effect<A>, into: Array<A>) =>
  Effect.forkChild(
    Effect.forever(
      Effect.flatMap(read, (a) => Effect.sync(() => into.push(a))).pipe(Effect.andThen(Effect.sleep("5 millis")))
    )
  )

const metricValue = (text: string, name: string, labels: Record<string, string>): number => {
  const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`)
  let total = 0
  for (const line of text.split("\n")) {
    if (!line.startsWith(`${name}{`)) continue
    if (wanted.every((w) => line.includes(w))) total += Number(line.slice(line.lastIndexOf(" ") + 1))
  }
  return total
}

describe("MongoEngine pool", () => {
  it.live("200 concurrent operations stay within the tier's pool limit on the server, and reach it", () =>
    Effect.gen(function* () {
      const server = yield* Servers.acquirePrivate("mongodb")
      const observer = yield* Fx.raw(server.url)
      const registry = yield* MemoryRegistry
      const tenancy = yield* Tenancy.Tenancy
      const mongo = yield* MongoEngine
      const id = Fx.projectId("pool")
      yield* registry.register({ id, tier: "PRO", mongodb: Fx.withDatabase(server.url, "pool") })
      const ids = Array.from({ length: 100 }, () => new ObjectId())
      yield* Fx.call(() =>
        observer
          .db("pool")
          .collection("items")
          .insertMany(ids.map((_id, n) => ({ _id, n })))
      )
      const connections = yield* Fx.connectionCounter(observer, server.port)
      const baseline = yield* connections

      const serverSide: Array<number> = []
      const poolSide: Array<{ size: number; pending: number }> = []
      const samplers = [
        yield* sample(connections, serverSide),
        yield* sample(mongo.poolStats.pipe(Effect.orDie, tenancy.withProject(id), Effect.orDie), poolSide)
      ]
      const items = mongo.collection<{ n: number }>("items")
      const found = yield* Effect.forEach(
        Array.from({ length: 2_000 }, (_, i) => ids[i % ids.length]!),
        (_id) => items.findOne({ _id }),
        { concurrency: 200 }
      ).pipe(tenancy.withProject(id))
      yield* Effect.forEach(samplers, Fiber.interrupt)
      assert.isTrue(found.every((d) => d !== null))

      const peak = Math.max(...serverSide) - baseline
      const poolPeak = Math.max(...poolSide.map((s) => s.size))
      assert.isAtMost(peak, 8 + MONITORING, `server-side connections peaked at ${peak} above the baseline`)
      assert.isAtLeast(peak, 8, "the load reached the limit, so the bound above is a real one")
      assert.strictEqual(poolPeak, 8, "the CMAP-derived pool size reached the limit and never passed it")
      assert.isTrue(
        poolSide.some((s) => s.pending > 0),
        "checkouts waited for a connection"
      )
      const stats = yield* mongo.poolStats.pipe(tenancy.withProject(id))
      assert.strictEqual(stats.maxPoolSize, 8)
      assert.strictEqual(stats.checkedOut, 0)
      assert.strictEqual(stats.pending, 0)
      assert.strictEqual(stats.available, stats.size)

      const text = yield* PrometheusMetrics.format()
      const acquired = metricValue(text, "db_connection_acquire_duration_seconds_count", {
        database_type: "mongodb",
        tier: "PRO"
      })
      assert.isAtLeast(acquired, 2_000, "every checkout's wait was recorded under the project's tier")
      assert.strictEqual(
        metricValue(text, "db_pool_size", { database_type: "mongodb", tier: "PRO", status: "total" }),
        stats.size
      )
    }).pipe(
      Effect.provide(Fx.layer({ tenancy: { tiers: { PRO: { minPool: 0, maxPool: 8 } } } })),
      Effect.provideService(Metric.MetricRegistry, new Map())
    )
  )

  it.live("a larger tier on the server raises the limit with a new client; the old one closes once drained", () => {
    const rec = Fx.recording()
    return Effect.gen(function* () {
      const server = yield* Servers.acquirePrivate("mongodb")
      const observer = yield* Fx.raw(server.url)
      const registry = yield* MemoryRegistry
      const tenancy = yield* Tenancy.Tenancy
      const mongo = yield* MongoEngine
      const small = Fx.projectId("small")
      const large = Fx.projectId("large")
      yield* registry.register({ id: small, tier: "FREE", mongodb: Fx.withDatabase(server.url, "small") })
      yield* registry.register({ id: large, tier: "PRO", mongodb: Fx.withDatabase(server.url, "large") })
      const items = mongo.collection<{ n: number }>("items")
      const connections = yield* Fx.connectionCounter(observer, server.port)
      const baseline = yield* connections
      const load = (id: string, concurrency: number) =>
        Effect.forEach(
          Array.from({ length: 1_000 }, (_, i) => i % 50),
          (n) => items.findOne({ n }),
          {
            concurrency
          }
        ).pipe(tenancy.withProject(id))

      // The FREE project alone: the target's client is sized for FREE.
      yield* items.insertMany(Array.from({ length: 50 }, (_, n) => ({ n }))).pipe(tenancy.withProject(small))
      assert.strictEqual((yield* mongo.poolStats.pipe(tenancy.withProject(small))).maxPoolSize, 3)
      yield* load(small, 20)
      yield* items.insertMany(Array.from({ length: 50 }, (_, n) => ({ n }))).pipe(tenancy.withProject(large))

      // Bound after the PRO project: one client sized for PRO serves both; the FREE-sized one is gone.
      const stats = yield* mongo.poolStats.pipe(tenancy.withProject(large))
      assert.strictEqual(stats.maxPoolSize, 6)
      assert.strictEqual(stats.projects, 2)
      yield* Fx.eventually(
        "the replaced client has closed",
        Effect.map(mongo.poolStats.pipe(tenancy.withProject(large)), (s) => s.clients === 1)
      )
      assert.strictEqual(rec.clients.length, 2, "a second client replaced the first")

      const serverSide: Array<number> = []
      const sampler = yield* sample(connections, serverSide)
      yield* Effect.all([load(large, 100), load(small, 20)], { concurrency: "unbounded" })
      yield* Fiber.interrupt(sampler)
      const peak = Math.max(...serverSide) - baseline
      assert.isAtMost(peak, 6 + MONITORING, `peak ${peak}`)
      assert.isAtLeast(peak, 4, "the new client was used at its larger size")
      assert.isTrue(
        rec.commands.filter((c) => c.client === 1 && c.name === "find").length >= 2_000,
        "all later work ran on the new client"
      )
    }).pipe(
      Effect.provide(
        Fx.layer({
          factory: rec.factory,
          tenancy: { tiers: { FREE: { minPool: 0, maxPool: 3 }, PRO: { minPool: 0, maxPool: 6 } } }
        })
      )
    )
  })

  it.live(
    "a server's client closes with its last project: the server's connection count returns to its baseline",
    () => {
      const rec = Fx.recording()
      return Effect.gen(function* () {
        const server = yield* Servers.acquirePrivate("mongodb")
        const observer = yield* Fx.raw(server.url)
        const registry = yield* MemoryRegistry
        const tenancy = yield* Tenancy.Tenancy
        const mongo = yield* MongoEngine
        const connections = yield* Fx.connectionCounter(observer, server.port)
        const baseline = yield* connections
        const ids = [Fx.projectId("idle-a"), Fx.projectId("idle-b")]
        for (const id of ids) yield* registry.register({ id, tier: "PRO", mongodb: Fx.withDatabase(server.url, id) })
        const items = mongo.collection("items")
        for (const id of ids) {
          yield* Effect.forEach(
            Array.from({ length: 50 }, (_, n) => n),
            (n) => items.insertOne({ n }),
            {
              concurrency: 10
            }
          ).pipe(tenancy.withProject(id))
        }
        assert.isAbove((yield* connections) - baseline, 1)

        const closed = yield* tenancy.closeIdleConnections({ idleFor: 0 })
        assert.strictEqual(closed, 2, "both projects' bindings were freed")
        yield* Fx.eventually(
          "the server sees none of the engine's connections",
          Effect.map(connections, (n) => n === baseline)
        )

        // The next use makes a new client.
        yield* items.insertOne({ n: -1 }).pipe(tenancy.withProject(ids[0]!))
        assert.strictEqual(rec.clients.length, 2)
        assert.strictEqual((yield* mongo.poolStats.pipe(tenancy.withProject(ids[0]!))).clients, 1)
      }).pipe(Effect.provide(Fx.layer({ factory: rec.factory })))
    }
  )
})
