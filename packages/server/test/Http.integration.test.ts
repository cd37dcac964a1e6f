/**
 * The example server end to end over HTTP: bad input, unknown projects, the key-value resource on Redis, an
 * overloaded FREE project (429 with Retry-After), and a stopped database (503, then recovery).
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import { PgClient } from "@effect/sql-pg"
import * as Isolation from "@tenantpool/testing/Isolation"
import * as Servers from "@tenantpool/testing/Servers"
import * as TestServers from "@tenantpool/testing/TestServers"
import { request, startApp } from "./fixtures/app.ts"

// A fresh database with the demo's `items` table.
const itemsDatabase = (label: string) =>
  Effect.gen(function* () {
    const url = yield* Isolation.freshPgDatabase(TestServers.url("postgres"), label)
    yield* Effect.gen(function* () {
      const sql = yield* PgClient.PgClient
      yield* sql`create table items (id bigserial primary key, name text not null, qty integer not null default 0, created_at timestamptz not null default now())`
    }).pipe(Effect.provide(PgClient.layer({ url: Redacted.make(url) })))
    return url
  })

describe("HTTP API", () => {
  it.live("answers bad input with a 4xx and a clear JSON error", () =>
    Effect.gen(function* () {
      const { base } = yield* startApp({ projects: [{ id: "http-a", tier: "PRO", redis: TestServers.url("redis") }] })
      const badId = yield* Effect.promise(() => request(`${base}/projects/BAD!ID/kv/x`))
      assert.strictEqual(badId.status, 400)
      assert.strictEqual(badId.body.error, "InvalidProjectId")
      assert.include(badId.body.message, "project id may contain only")
      const unknown = yield* Effect.promise(() => request(`${base}/projects/nobody/kv/x`))
      assert.strictEqual(unknown.status, 404)
      assert.strictEqual(unknown.body.error, "ProjectNotFound")
      const badBody = yield* Effect.promise(() =>
        request(`${base}/projects/http-a/kv/x`, { method: "PUT", body: JSON.stringify({ value: 42 }) })
      )
      assert.strictEqual(badBody.status, 400)
      assert.include(badBody.body.message, "value")
      const badKey = yield* Effect.promise(() => request(`${base}/projects/http-a/kv/bad%20key%3F`))
      assert.strictEqual(badKey.status, 400)
      assert.include(badKey.body.message, "key must be")
    }).pipe(Effect.scoped)
  )

  it.live("stores and reads a project's keys, isolated from another project's", () =>
    Effect.gen(function* () {
      const url = TestServers.url("redis")
      const { base } = yield* startApp({
        projects: [
          { id: "http-b", tier: "FREE", redis: url },
          { id: "http-c", tier: "ENTERPRISE", redis: url }
        ]
      })
      const put = yield* Effect.promise(() =>
        request(`${base}/projects/http-b/kv/greeting`, { method: "PUT", body: JSON.stringify({ value: "hello" }) })
      )
      assert.strictEqual(put.status, 200)
      const got = yield* Effect.promise(() => request(`${base}/projects/http-b/kv/greeting`))
      assert.deepStrictEqual(got.body, { key: "greeting", value: "hello" })
      const other = yield* Effect.promise(() => request(`${base}/projects/http-c/kv/greeting`))
      assert.strictEqual(other.status, 404)
      const incr = yield* Effect.promise(() => request(`${base}/projects/http-c/kv/n/incr`, { method: "POST" }))
      assert.deepStrictEqual(incr.body, { key: "n", value: 1 })
      const health = yield* Effect.promise(() => request(`${base}/projects/http-b/health`))
      assert.strictEqual(health.status, 200)
      assert.strictEqual(health.body.engines[0].healthy, true)
    }).pipe(Effect.scoped)
  )

  it.live("stores and reads rows in each project's own PostgreSQL database", () =>
    Effect.gen(function* () {
      const a = yield* itemsDatabase("items_a")
      const b = yield* itemsDatabase("items_b")
      const { base } = yield* startApp({
        projects: [
          { id: "items-a", tier: "PRO", postgres: a },
          { id: "items-b", tier: "FREE", postgres: b }
        ]
      })
      const created = yield* Effect.promise(() =>
        request(`${base}/projects/items-a/items`, { method: "POST", body: JSON.stringify({ name: "widget", qty: 3 }) })
      )
      assert.strictEqual(created.status, 201)
      assert.deepInclude(created.body, { name: "widget", qty: 3 })
      const read = yield* Effect.promise(() => request(`${base}/projects/items-a/items/${created.body.id}`))
      assert.deepInclude(read.body, { id: created.body.id, name: "widget" })
      const otherList = yield* Effect.promise(() => request(`${base}/projects/items-b/items`))
      assert.deepStrictEqual(otherList.body, { items: [] })
      const missing = yield* Effect.promise(() => request(`${base}/projects/items-b/items/${created.body.id}`))
      assert.strictEqual(missing.status, 404)
      const bad = yield* Effect.promise(() =>
        request(`${base}/projects/items-a/items`, { method: "POST", body: JSON.stringify({ name: "" }) })
      )
      assert.strictEqual(bad.status, 400)
      const noPg = yield* startApp({ projects: [{ id: "items-none", tier: "FREE", redis: TestServers.url("redis") }] })
      const notConfigured = yield* Effect.promise(() => request(`${noPg.base}/projects/items-none/items`))
      assert.strictEqual(notConfigured.status, 409)
      assert.strictEqual(notConfigured.body.error, "EngineNotConfigured")
    }).pipe(Effect.scoped)
  )

  it.live("stores documents in each project's own MongoDB database and aggregates them", () =>
    Effect.gen(function* () {
      const base0 = new URL(TestServers.url("mongodb"))
      const dbUrl = (name: string) => {
        const u = new URL(base0)
        u.pathname = `/${Isolation.freshMongoDbName(name)}`
        return u.toString()
      }
      const { base } = yield* startApp({
        projects: [
          { id: "docs-a", tier: "PRO", mongodb: dbUrl("docs_a") },
          { id: "docs-b", tier: "FREE", mongodb: dbUrl("docs_b") }
        ]
      })
      for (const [title, category, score] of [
        ["a", "news", 10],
        ["b", "news", 30],
        ["c", "sport", 50]
      ] as const) {
        const r = yield* Effect.promise(() =>
          request(`${base}/projects/docs-a/documents`, {
            method: "POST",
            body: JSON.stringify({ title, category, score })
          })
        )
        assert.strictEqual(r.status, 201)
      }
      const news = yield* Effect.promise(() => request(`${base}/projects/docs-a/documents?category=news`))
      assert.deepStrictEqual(
        news.body.documents.map((d: { title: string }) => d.title),
        ["b", "a"]
      )
      const stats = yield* Effect.promise(() => request(`${base}/projects/docs-a/documents/stats`))
      assert.deepStrictEqual(stats.body.categories, [
        { category: "news", count: 2, total: 40, average: 20 },
        { category: "sport", count: 1, total: 50, average: 50 }
      ])
      const other = yield* Effect.promise(() => request(`${base}/projects/docs-b/documents/stats`))
      assert.deepStrictEqual(other.body, { categories: [] })
      const bad = yield* Effect.promise(() =>
        request(`${base}/projects/docs-a/documents`, {
          method: "POST",
          body: JSON.stringify({ title: "x", category: "Bad!", score: 1 })
        })
      )
      assert.strictEqual(bad.status, 400)
    }).pipe(Effect.scoped)
  )

  it.live("sheds an overloaded FREE project with 429 and Retry-After", () =>
    Effect.gen(function* () {
      const server = yield* Servers.acquirePrivate("redis")
      const { base } = yield* startApp({
        projects: [{ id: "http-free", tier: "FREE", redis: server.url }],
        tiers: { FREE: { maxConcurrent: 2, maxQueue: 2 } },
        tenancy: { breakers: { redis: { attemptTimeout: "500 millis" } } }
      })
      yield* Effect.promise(() => request(`${base}/projects/http-free/kv/warm`))
      // A paused server holds the first requests; the rest find the project's slots and queue full.
      yield* Servers.pause(server)
      const responses = yield* Effect.promise(() =>
        Promise.all(Array.from({ length: 10 }, () => request(`${base}/projects/http-free/kv/x`)))
      ).pipe(Effect.ensuring(Servers.resume(server).pipe(Effect.ignore)))
      const shed = responses.filter((r) => r.status === 429)
      assert.isAtLeast(shed.length, 5, `statuses: ${responses.map((r) => r.status).join(",")}`)
      for (const r of shed) {
        assert.strictEqual(r.body.error, "Overloaded")
        // The header is the guard's hint rounded up to whole seconds; the body gives both, and the message agrees.
        const { retryAfterMillis, retryAfterSeconds } = r.body
        assert.isTrue(Number.isInteger(retryAfterMillis) && retryAfterMillis > 0, JSON.stringify(r.body))
        assert.strictEqual(retryAfterSeconds, Math.ceil(retryAfterMillis / 1000))
        assert.strictEqual(r.headers.get("retry-after"), String(retryAfterSeconds))
        assert.include(r.body.message, `retry after ${retryAfterMillis} ms`)
      }
    }).pipe(Effect.scoped)
  )

  it.live("answers 503 while the project's database is down, and recovers when it is back", () =>
    Effect.gen(function* () {
      const server = yield* Servers.acquirePrivate("redis")
      const { base } = yield* startApp({
        projects: [{ id: "http-down", tier: "PRO", redis: server.url }],
        tenancy: { breakers: { redis: { resetTimeout: "1 second", attemptTimeout: "300 millis" } } }
      })
      const ok = yield* Effect.promise(() =>
        request(`${base}/projects/http-down/kv/k`, { method: "PUT", body: JSON.stringify({ value: "v" }) })
      )
      assert.strictEqual(ok.status, 200)
      yield* Servers.stop(server)
      const during = yield* Effect.promise(async () => {
        const out: Array<{ status: number; error: string; retryAfter: string | null; body: any }> = []
        for (let i = 0; i < 15; i++) {
          const r = await request(`${base}/projects/http-down/kv/k`)
          out.push({ status: r.status, error: r.body.error, retryAfter: r.headers.get("retry-after"), body: r.body })
        }
        return out
      })
      assert.isTrue(
        during.every((r) => r.status === 503 || r.status === 504),
        JSON.stringify(during)
      )
      const open = during.filter((r) => r.error === "CircuitOpen")
      assert.isAtLeast(open.length, 1, "the breaker opened")
      for (const r of open) {
        assert.isAtLeast(Number(r.retryAfter), 1)
        assert.strictEqual(r.retryAfter, String(r.body.retryAfterSeconds))
        assert.strictEqual(r.body.retryAfterSeconds, Math.ceil(r.body.retryAfterMillis / 1000))
      }
      yield* Servers.start(server)
      const recovered = yield* Effect.promise(async () => {
        const deadline = Date.now() + 15_000
        while (Date.now() < deadline) {
          const r = await request(`${base}/projects/http-down/kv/k`)
          if (r.status === 200) return r
          await new Promise((resolve) => setTimeout(resolve, 200))
        }
        return undefined
      })
      assert.isDefined(recovered, "the project recovered within 15 s")
      assert.strictEqual(recovered!.body.value, "v")
    }).pipe(Effect.scoped)
  )
})
