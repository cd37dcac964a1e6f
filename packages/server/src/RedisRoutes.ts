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
import { HttpRouter, HttpServerResponse } from "effect/http"
import * as Schema from "effect/Schema"
import { Tenancy } from "@tenantpool/core/Tenancy"
import { RedisEngine } from "@tenantpool/redis/RedisEngine"
import { count, handle, notFound } from "./ErrorResponses.ts"
import { recorded, StatusHistory } from "./StatusHistory.ts"
import { type BodySpec, maxValueLength, projectAndKey, readJson, readQuery } from "./Input.ts"

const maxTtl = 86_400 * 30
const PutBody = Schema.Struct({
  value: Schema.String.check(Schema.isMaxLength(maxValueLength)),
  ttlSeconds: Schema.optional(Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: maxTtl })))
})
const putBody: BodySpec = {
  shape: `{ "value": string of at most ${count(maxValueLength)} characters, "ttlSeconds"?: integer 1..${maxTtl} }`,
  payload: [{ field: "value", max: maxValueLength }]
}
const QueueBody = Schema.Struct({ value: Schema.String.check(Schema.isMaxLength(maxValueLength)) })
const queueBody: BodySpec = {
  shape: `{ "value": string of at most ${count(maxValueLength)} characters }`,
  payload: [{ field: "value", max: maxValueLength }]
}
const WaitQuery = Schema.Struct({
  wait: Schema.optional(Schema.NumberFromString.check(Schema.isBetween({ minimum: 0.1, maximum: 30 })))
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
    const history = yield* StatusHistory
    // As the project, timed for the status page; a blocking pop waits by design, so its time is not latency.
    const as =
      (projectId: string, options?: { readonly latency?: boolean }) =>
      <A, E, R>(self: Effect.Effect<A, E, R>) =>
        self.pipe(recorded(history, projectId, "redis", options), tenancy.withProject(projectId))
    yield* router.add(
      "GET",
      "/projects/:projectId/kv/:key",
      handle(
        Effect.gen(function* () {
          const { key, projectId } = yield* projectAndKey
          const value = yield* redis.get(key).pipe(as(projectId))
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
          const { key, projectId } = yield* projectAndKey
          const body = yield* readJson(PutBody, putBody)
          yield* redis
            .set(key, body.value, body.ttlSeconds === undefined ? undefined : { ttl: `${body.ttlSeconds} seconds` })
            .pipe(as(projectId))
          return HttpServerResponse.jsonUnsafe({ key, stored: true })
        })
      )
    )
    yield* router.add(
      "DELETE",
      "/projects/:projectId/kv/:key",
      handle(
        Effect.gen(function* () {
          const { key, projectId } = yield* projectAndKey
          const deleted = yield* redis.del(key).pipe(as(projectId))
          return HttpServerResponse.jsonUnsafe({ key, deleted })
        })
      )
    )
    yield* router.add(
      "POST",
      "/projects/:projectId/kv/:key/incr",
      handle(
        Effect.gen(function* () {
          const { key, projectId } = yield* projectAndKey
          const value = yield* redis.incr(key).pipe(as(projectId))
          return HttpServerResponse.jsonUnsafe({ key, value })
        })
      )
    )
    yield* router.add(
      "POST",
      "/projects/:projectId/queues/:key",
      handle(
        Effect.gen(function* () {
          const { key, projectId } = yield* projectAndKey
          const body = yield* readJson(QueueBody, queueBody)
          const length = yield* redis.rpush(key, body.value).pipe(as(projectId))
          return HttpServerResponse.jsonUnsafe({ key, length })
        })
      )
    )
    yield* router.add(
      "GET",
      "/projects/:projectId/queues/:key",
      handle(
        Effect.gen(function* () {
          const { key, projectId } = yield* projectAndKey
          const query = yield* readQuery(WaitQuery, "wait must be a number of seconds from 0.1 to 30")
          const popped = yield* redis.blpop([key], `${query.wait ?? 1} seconds`).pipe(as(projectId, { latency: false }))
          if (popped._tag === "None") return yield* Effect.fail(notFound(`nothing arrived on "${key}"`))
          return HttpServerResponse.jsonUnsafe({ key, value: popped.value[1] })
        })
      )
    )
  })
)
