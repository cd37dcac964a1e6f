/**
 * A key-value resource on Redis for the calling project:
 *
 * - `GET    /projects/:projectId/kv/:key` → `{ key, value }` (404 when absent)
 * - `PUT    /projects/:projectId/kv/:key` with `{ "value": "…", "ttlSeconds"?: n }` → `{ key, stored: true }`
 * - `DELETE /projects/:projectId/kv/:key` → `{ key, deleted }`
 * - `POST   /projects/:projectId/kv/:key/incr` → `{ key, value }`
 * - `POST   /projects/:projectId/queues/:key` with `{ "value": "…" }` → `{ key, length }` (RPUSH)
 * - `GET    /projects/:projectId/queues/:key?wait=seconds` → `{ key, value }` (BLPOP on a dedicated connection;
 *   404 when nothing arrives in time)
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import { HttpRouter, HttpServerRequest, HttpServerResponse } from "effect/http"
import * as Schema from "effect/Schema"
import { Tenancy } from "@tenantpool/core/Tenancy"
import { RedisEngine } from "@tenantpool/redis/RedisEngine"
import { badRequest, handle, notFound } from "./ErrorResponses.ts"

const PutBody = Schema.Struct({
  value: Schema.String.check(Schema.isMaxLength(65_536)),
  ttlSeconds: Schema.optional(Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 86_400 * 30 })))
})
const QueueBody = Schema.Struct({ value: Schema.String.check(Schema.isMaxLength(65_536)) })
const WaitQuery = Schema.Struct({
  wait: Schema.optional(Schema.NumberFromString.check(Schema.isBetween({ minimum: 0.1, maximum: 30 })))
})
const keyPattern = /^[A-Za-z0-9:_.-]{1,200}$/

const keyParam = Effect.flatMap(HttpRouter.params, (p) => {
  const key = p["key"] ?? ""
  return keyPattern.test(key)
    ? Effect.succeed({ projectId: p["projectId"] ?? "", key })
    : Effect.fail(badRequest("key must be 1-200 characters of A-Z a-z 0-9 : _ . -"))
})

/**
 * The key-value routes.
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = HttpRouter.use(
  Effect.fnUntraced(function* (router) {
    const redis = yield* RedisEngine
    const tenancy = yield* Tenancy
    yield* router.add(
      "GET",
      "/projects/:projectId/kv/:key",
      handle(
        Effect.gen(function* () {
          const { key, projectId } = yield* keyParam
          const value = yield* redis.get(key).pipe(tenancy.withProject(projectId))
          if (value === null) return yield* Effect.fail(notFound(`no value for key "${key}"`))
          return HttpServerResponse.jsonUnsafe({ key, value })
        })
      )
    )
    yield* router.add(
      "PUT",
      "/projects/:projectId/kv/:key",
      handle(
        Effect.gen(function* () {
          const { key, projectId } = yield* keyParam
          const body = yield* HttpServerRequest.schemaBodyJson(PutBody).pipe(
            Effect.mapError(() => badRequest('body must be JSON: { "value": string, "ttlSeconds"?: 1..2592000 }'))
          )
          yield* redis
            .set(key, body.value, body.ttlSeconds === undefined ? undefined : { ttl: `${body.ttlSeconds} seconds` })
            .pipe(tenancy.withProject(projectId))
          return HttpServerResponse.jsonUnsafe({ key, stored: true })
        })
      )
    )
    yield* router.add(
      "DELETE",
      "/projects/:projectId/kv/:key",
      handle(
        Effect.gen(function* () {
          const { key, projectId } = yield* keyParam
          const deleted = yield* redis.del(key).pipe(tenancy.withProject(projectId))
          return HttpServerResponse.jsonUnsafe({ key, deleted })
        })
      )
    )
    yield* router.add(
      "POST",
      "/projects/:projectId/kv/:key/incr",
      handle(
        Effect.gen(function* () {
          const { key, projectId } = yield* keyParam
          const value = yield* redis.incr(key).pipe(tenancy.withProject(projectId))
          return HttpServerResponse.jsonUnsafe({ key, value })
        })
      )
    )
    yield* router.add(
      "POST",
      "/projects/:projectId/queues/:key",
      handle(
        Effect.gen(function* () {
          const { key, projectId } = yield* keyParam
          const body = yield* HttpServerRequest.schemaBodyJson(QueueBody).pipe(
            Effect.mapError(() => badRequest('body must be JSON: { "value": string }'))
          )
          const length = yield* redis.rpush(key, body.value).pipe(tenancy.withProject(projectId))
          return HttpServerResponse.jsonUnsafe({ key, length })
        })
      )
    )
    yield* router.add(
      "GET",
      "/projects/:projectId/queues/:key",
      handle(
        Effect.gen(function* () {
          const { key, projectId } = yield* keyParam
          const query = yield* HttpServerRequest.schemaSearchParams(WaitQuery).pipe(
            Effect.mapError(() => badRequest("wait must be a number of seconds from 0.1 to 30"))
          )
          const popped = yield* redis.blpop([key], `${query.wait ?? 1} seconds`).pipe(tenancy.withProject(projectId))
          if (popped._tag === "None") return yield* Effect.fail(notFound(`nothing arrived on "${key}"`))
          return HttpServerResponse.jsonUnsafe({ key, value: popped.value[1] })
        })
      )
    )
  })
)
