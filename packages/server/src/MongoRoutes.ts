/**
 * A documents resource with an aggregation on MongoDB, for the calling project (its own database on the shared
 * server):
 *
 * - `POST /projects/:projectId/documents` with `{ "title": "…", "category": "…", "score": n }` → `{ id }`
 * - `GET  /projects/:projectId/documents?category=…` → up to 50 documents, best score first
 * - `GET  /projects/:projectId/documents/stats` → per category: count, total and average score (`$group`)
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import * as Schema from "effect/Schema"
import { Tenancy } from "@tenantpool/core/Tenancy"
import { MongoEngine } from "@tenantpool/mongodb/MongoEngine"
import { handle } from "./ErrorResponses.ts"
import { recorded, StatusHistory } from "./StatusHistory.ts"
import { type BodySpec, projectId, readJson, readQuery } from "./Input.ts"

const NewDocument = Schema.Struct({
  title: Schema.String.check(
    Schema.isMinLength(1, { message: "must not be empty" }),
    Schema.isMaxLength(200, { message: "must be at most 200 characters" })
  ),
  category: Schema.String.check(
    Schema.isPattern(/^[a-z0-9-]{1,40}$/, { message: "must be 1-40 characters of a-z 0-9 -" })
  ),
  score: Schema.Number.check(Schema.isBetween({ minimum: 0, maximum: 100 }))
})
const newDocument: BodySpec = {
  shape: '{ "title": 1-200 characters, "category": 1-40 characters of a-z 0-9 -, "score": 0..100 }'
}
const ListQuery = Schema.Struct({
  category: Schema.optional(Schema.String.check(Schema.isPattern(/^[a-z0-9-]{1,40}$/)))
})

interface Doc {
  readonly title: string
  readonly category: string
  readonly score: number
}

/**
 * The documents routes.
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = HttpRouter.use(
  Effect.fnUntraced(function* (router) {
    const mongo = yield* MongoEngine
    const tenancy = yield* Tenancy
    const history = yield* StatusHistory
    // As the project, timed for the status page.
    const as =
      (project: string) =>
      <A, E, R>(self: Effect.Effect<A, E, R>) =>
        self.pipe(recorded(history, project, "mongodb"), tenancy.withProject(project))
    const docs = mongo.collection<Doc>("documents")
    yield* router.add(
      "POST",
      "/projects/:projectId/documents",
      handle(
        Effect.gen(function* () {
          const project = yield* projectId
          const body = yield* readJson(NewDocument, newDocument)
          const result = yield* docs.insertOne({ ...body }).pipe(as(project))
          return HttpServerResponse.jsonUnsafe({ id: String(result.insertedId) }, { status: 201 })
        })
      )
    )
    yield* router.add(
      "GET",
      "/projects/:projectId/documents",
      handle(
        Effect.gen(function* () {
          const project = yield* projectId
          const query = yield* readQuery(ListQuery, "category must be 1-40 characters of a-z 0-9 -")
          const found = yield* docs
            .find(query.category === undefined ? {} : { category: query.category }, { sort: { score: -1 }, limit: 50 })
            .pipe(as(project))
          return HttpServerResponse.jsonUnsafe({
            documents: found.map((d) => ({
              id: String((d as { _id?: unknown })._id),
              title: d.title,
              category: d.category,
              score: d.score
            }))
          })
        })
      )
    )
    yield* router.add(
      "GET",
      "/projects/:projectId/documents/stats",
      handle(
        Effect.gen(function* () {
          const project = yield* projectId
          // `$sum`s rather than `$avg`, one accumulator per `$group`: FerretDB v1 implements neither `$avg` nor a
          // second accumulator in one `$group` (it returns 0 for it); MongoDB answers both pipelines the same way.
          const [counts, totals] = yield* Effect.all(
            [
              docs.aggregate<{ _id: string; count: number }>([{ $group: { _id: "$category", count: { $sum: 1 } } }]),
              docs.aggregate<{ _id: string; total: number }>([
                { $group: { _id: "$category", total: { $sum: "$score" } } }
              ])
            ],
            { concurrency: 2 }
          ).pipe(as(project))
          const totalOf = new Map(totals.map((t) => [t._id, t.total]))
          const groups = counts
            .map((c) => ({ _id: c._id, count: c.count, total: totalOf.get(c._id) ?? 0 }))
            .sort((x, y) => (x._id < y._id ? -1 : x._id > y._id ? 1 : 0))
          return HttpServerResponse.jsonUnsafe({
            categories: groups.map((g) => ({
              category: g._id,
              count: g.count,
              total: g.total,
              average: g.count === 0 ? 0 : g.total / g.count
            }))
          })
        })
      )
    )
  })
)
