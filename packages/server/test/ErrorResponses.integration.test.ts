/**
 * The example server answers like a good HTTP API: a wrong method is a 405 with `Allow` on every route, an unknown
 * path a 404 with a body, every oversized input (project ids of any length, keys, values, bodies, headers) a 400,
 * 413 or 431 that names the limit, and every error body has the one documented shape.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as TestServers from "@tenantpool/testing/TestServers"
import { request, startApp } from "./fixtures/app.ts"

type Response = Awaited<ReturnType<typeof request>>

const shapeKeys = new Set(["error", "message", "retryAfterMillis", "retryAfterSeconds", "limit", "allow"])

// The one error shape: JSON, `error` and `message` strings, nothing but the documented optional fields.
const assertErrorShape = (r: Response, status: number, error?: string) => {
  assert.strictEqual(r.status, status, JSON.stringify(r.body))
  assert.include(r.headers.get("content-type") ?? "", "application/json")
  assert.isObject(r.body, `a JSON body, got ${JSON.stringify(r.body)}`)
  assert.isString(r.body.error)
  assert.isString(r.body.message)
  assert.isAbove(r.body.message.length, 0)
  for (const key of Object.keys(r.body)) assert.isTrue(shapeKeys.has(key), `unexpected field ${key}`)
  if (error !== undefined) assert.strictEqual(r.body.error, error)
}

// Every route's path, with the methods it takes (HEAD wherever GET is).
const routes: ReadonlyArray<readonly [path: string, allow: ReadonlyArray<string>]> = [
  ["/projects/err-a/kv/k", ["GET", "HEAD", "PUT", "DELETE"]],
  ["/projects/err-a/kv/k/incr", ["POST"]],
  ["/projects/err-a/queues/k", ["GET", "HEAD", "POST"]],
  ["/projects/err-a/items", ["GET", "HEAD", "POST"]],
  ["/projects/err-a/items/1", ["GET", "HEAD"]],
  ["/projects/err-a/documents", ["GET", "HEAD", "POST"]],
  ["/projects/err-a/documents/stats", ["GET", "HEAD"]],
  ["/projects/err-a/health", ["GET", "HEAD"]],
  ["/health", ["GET", "HEAD"]],
  ["/metrics", ["GET", "HEAD"]],
  ["/status", ["GET", "HEAD"]],
  ["/status.json", ["GET", "HEAD"]]
]

const app = startApp({ projects: [{ id: "err-a", tier: "PRO", redis: TestServers.url("redis") }] })

describe("error responses", () => {
  it.live("answers a wrong method on every route with 405 and Allow, and OPTIONS with 204 and Allow", () =>
    Effect.gen(function* () {
      const { base } = yield* app
      for (const [path, allow] of routes) {
        for (const method of ["GET", "POST", "PUT", "PATCH", "DELETE"].filter((m) => !allow.includes(m))) {
          const r = yield* Effect.promise(() => request(`${base}${path}`, { method }))
          assertErrorShape(r, 405, "MethodNotAllowed")
          assert.strictEqual(r.headers.get("allow"), allow.join(", "), `${method} ${path}`)
          assert.deepStrictEqual(r.body.allow, allow)
          assert.include(r.body.message, `${method} is not allowed`)
        }
        const options = yield* Effect.promise(() => request(`${base}${path}`, { method: "OPTIONS" }))
        assert.strictEqual(options.status, 204, `OPTIONS ${path}`)
        assert.strictEqual(options.headers.get("allow"), [...allow, "OPTIONS"].join(", "))
      }
    }).pipe(Effect.scoped)
  )

  it.live("answers an unknown path with a 404 JSON body", () =>
    Effect.gen(function* () {
      const { base } = yield* app
      for (const path of ["/nope", "/projects/err-a/nope", "/projects/err-a/kv/k/decr", "/projects"]) {
        const r = yield* Effect.promise(() => request(`${base}${path}`))
        assertErrorShape(r, 404, "RouteNotFound")
        assert.include(r.body.message, path)
      }
    }).pipe(Effect.scoped)
  )

  it.live("refuses a project id of any length over 63 characters with a 400 that names the limit", () =>
    Effect.gen(function* () {
      const { base } = yield* app
      for (const length of [64, 100, 101, 150, 1000, 10_000]) {
        const id = "p".repeat(length)
        for (const path of [`/projects/${id}/kv/k`, `/projects/${id}/items`, `/projects/${id}/health`]) {
          const r = yield* Effect.promise(() => request(`${base}${path}`))
          assertErrorShape(r, 400, "InvalidProjectId")
          assert.strictEqual(r.body.limit, 63, `${length} characters`)
          assert.include(r.body.message, "at most 63 characters")
          assert.include(r.body.message, `got ${length}`)
          // The id is not echoed back: a long or hostile one could flood a log or a page.
          assert.notInclude(r.body.message, id)
        }
      }
      // Over Node's own limit on the request line and headers: still an answer with a JSON body.
      const huge = yield* Effect.promise(() => request(`${base}/projects/${"p".repeat(20_000)}/kv/k`))
      assertErrorShape(huge, 431, "HeadersTooLarge")
      assert.strictEqual(huge.body.limit, 16_384)
      assert.include(huge.body.message, "16,384 bytes")
    }).pipe(Effect.scoped)
  )

  it.live("refuses a key, a value, a body or a field over its limit, naming the limit", () =>
    Effect.gen(function* () {
      const { base } = yield* app
      const kv = `${base}/projects/err-a/kv`
      for (const length of [201, 5000]) {
        const r = yield* Effect.promise(() => request(`${kv}/${"k".repeat(length)}`))
        assertErrorShape(r, 400, "BadRequest")
        assert.strictEqual(r.body.limit, 200)
        assert.include(r.body.message, "key must be at most 200 characters")
      }
      const put = (path: string, body: string) =>
        Effect.promise(() => request(`${base}/projects/err-a/${path}`, { method: "PUT", body }))
      const post = (path: string, body: string) =>
        Effect.promise(() => request(`${base}/projects/err-a/${path}`, { method: "POST", body }))
      const value = yield* put("kv/k", JSON.stringify({ value: "v".repeat(65_537) }))
      assertErrorShape(value, 413, "ContentTooLarge")
      assert.strictEqual(value.body.limit, 65_536)
      assert.include(value.body.message, "value is 65,537 characters; the limit is 65,536")
      const queued = yield* post("queues/q", JSON.stringify({ value: "v".repeat(100_000) }))
      assertErrorShape(queued, 413, "ContentTooLarge")
      assert.strictEqual(queued.body.limit, 65_536)
      // The largest value fits, however it is escaped.
      const largest = yield* put("kv/k", JSON.stringify({ value: "\u0001".repeat(65_536) }))
      assert.strictEqual(largest.status, 200, JSON.stringify(largest.body))
      for (const body of [JSON.stringify({ value: "v".repeat(600_000) }), "x".repeat(2_000_000)]) {
        const r = yield* put("kv/k", body)
        assertErrorShape(r, 413, "ContentTooLarge")
        assert.strictEqual(r.body.limit, 524_288)
        assert.include(r.body.message, "request body is larger than the limit of 524,288 bytes")
      }
      const name = yield* post("items", JSON.stringify({ name: "n".repeat(201) }))
      assertErrorShape(name, 400, "BadRequest")
      assert.include(name.body.message, "name: must be at most 200 characters")
      const title = yield* post("documents", JSON.stringify({ title: "t".repeat(201), category: "x", score: 1 }))
      assertErrorShape(title, 400, "BadRequest")
      assert.include(title.body.message, "title: must be at most 200 characters")
      const category = yield* Effect.promise(() =>
        request(`${base}/projects/err-a/documents?category=${"c".repeat(41)}`)
      )
      assertErrorShape(category, 400, "BadRequest")
      assert.include(category.body.message, "1-40 characters")
      const wait = yield* Effect.promise(() => request(`${base}/projects/err-a/queues/q?wait=1000`))
      assertErrorShape(wait, 400, "BadRequest")
      assert.include(wait.body.message, "0.1 to 30")
      const item = yield* Effect.promise(() => request(`${base}/projects/err-a/items/${"9".repeat(19)}`))
      assertErrorShape(item, 400, "BadRequest")
      assert.strictEqual(item.body.limit, 18)
    }).pipe(Effect.scoped)
  )

  it.live("says what is wrong with a body that is not JSON or not the expected shape", () =>
    Effect.gen(function* () {
      const { base } = yield* app
      const put = (body: string) =>
        Effect.promise(() => request(`${base}/projects/err-a/kv/k`, { method: "PUT", body }))
      const notJson = yield* put("{ value: ")
      assertErrorShape(notJson, 400, "BadRequest")
      assert.include(notJson.body.message, "not valid JSON")
      assert.include(notJson.body.message, "65,536 characters")
      const wrong = yield* put(JSON.stringify({ value: 42, ttlSeconds: 0 }))
      assertErrorShape(wrong, 400, "BadRequest")
      assert.include(wrong.body.message, "value: expected string")
      assert.include(wrong.body.message, "ttlSeconds: expected a value between 1 and 2592000")
      const empty = yield* put("")
      assertErrorShape(empty, 400, "BadRequest")
    }).pipe(Effect.scoped)
  )
})
