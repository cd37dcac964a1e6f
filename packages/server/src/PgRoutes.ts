/**
 * A table on PostgreSQL for the calling project (its own database; the statements run through the guarded
 * `SqlClient`):
 *
 * - `POST /projects/:projectId/items` with `{ "name": "…", "qty"?: n }` → the stored row
 * - `GET  /projects/:projectId/items/:itemId` → the row (404 when absent)
 * - `GET  /projects/:projectId/items` → the 50 newest rows
 *
 * `ensureSchema` creates the table in a project's database (the demo and the tests call it).
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import * as Schema from "effect/Schema"
import { SqlClient } from "effect/sql"
import { Tenancy } from "@tenantpool/core/Tenancy"
import * as PgError from "@tenantpool/pg/PgError"
import { badRequest, handle, notFound } from "./ErrorResponses.ts"
import { recorded, StatusHistory } from "./StatusHistory.ts"
import { type BodySpec, projectId, readJson } from "./Input.ts"

const NewItem = Schema.Struct({
  name: Schema.String.check(
    Schema.isMinLength(1, { message: "must not be empty" }),
    Schema.isMaxLength(200, { message: "must be at most 200 characters" })
  ),
  qty: Schema.optional(Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 1_000_000 })))
})
const newItem: BodySpec = { shape: '{ "name": 1-200 characters, "qty"?: integer 0..1000000 }' }

interface Item {
  readonly id: bigint | string
  readonly name: string
  readonly qty: number
  readonly created_at: Date
}

/**
 * Creates the `items` table in the current project's database.
 *
 * @category constructors
 * @since 0.1.0
 */
export const ensureSchema = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql`create table if not exists items (
    id bigserial primary key,
    name text not null,
    qty integer not null default 0,
    created_at timestamptz not null default now()
  )`
})

// bigserial ids come back as bigint, which JSON cannot carry: they are sent as strings.
const toJson = (item: Item) => ({ ...item, id: String(item.id) })

const itemId = Effect.gen(function* () {
  const id = yield* projectId
  const item = (yield* HttpRouter.params)["itemId"] ?? ""
  return /^\d{1,18}$/.test(item)
    ? { project: id, id: item }
    : yield* Effect.fail(badRequest("item id must be a positive integer of at most 18 digits", 18))
})

/**
 * The table routes.
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = HttpRouter.use(
  Effect.fnUntraced(function* (router) {
    const sql = yield* SqlClient.SqlClient
    const tenancy = yield* Tenancy
    const history = yield* StatusHistory
    // As the project, timed for the status page (after unwrapping, so the guard's refusals count as refusals).
    const as =
      (project: string) =>
      <A, E, R>(self: Effect.Effect<A, E, R>) =>
        self.pipe(PgError.unwrapGuardErrors, recorded(history, project, "postgres"), tenancy.withProject(project))
    yield* router.add(
      "POST",
      "/projects/:projectId/items",
      handle(
        Effect.gen(function* () {
          const project = yield* projectId
          const body = yield* readJson(NewItem, newItem)
          const rows =
            yield* sql<Item>`insert into items ${sql.insert({ name: body.name, qty: body.qty ?? 0 })} returning *`.pipe(
              as(project)
            )
          return HttpServerResponse.jsonUnsafe(toJson(rows[0]!), { status: 201 })
        })
      )
    )
    yield* router.add(
      "GET",
      "/projects/:projectId/items/:itemId",
      handle(
        Effect.gen(function* () {
          const { id, project } = yield* itemId
          const rows = yield* sql<Item>`select * from items where id = ${id}`.pipe(as(project))
          if (rows.length === 0) return yield* Effect.fail(notFound(`no item ${id}`))
          return HttpServerResponse.jsonUnsafe(toJson(rows[0]!))
        })
      )
    )
    yield* router.add(
      "GET",
      "/projects/:projectId/items",
      handle(
        Effect.gen(function* () {
          const project = yield* projectId
          const rows = yield* sql<Item>`select * from items order by id desc limit 50`.pipe(as(project))
          return HttpServerResponse.jsonUnsafe({ items: rows.map(toJson) })
        })
      )
    )
  })
)
