// The PostgreSQL rig: a private durable server; project A as role `chaos_a` (asked for its canary password, a
// non-superuser so connection limits apply) on database `chaos_a` through the proxy; project B as `postgres` on
// `chaos_b`, directly. Truth comes from sql-pg clients of the harness's own and from pg_stat_activity.
import { PgClient } from "@effect/sql-pg"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as Reactivity from "effect/reactivity/Reactivity"
import type * as Scope from "effect/Scope"
import * as SqlClient from "effect/sql/SqlClient"
import * as PgEngine from "@tenantpool/pg/PgEngine"
import * as Canary from "@tenantpool/testing/Canary"
import * as Faults from "@tenantpool/testing/Faults"
import * as Servers from "@tenantpool/testing/Servers"
import * as ServerState from "@tenantpool/testing/ServerState"
import * as Toxiproxy from "@tenantpool/testing/Toxiproxy"
import type { Party } from "../History.ts"
import { type Rig, seededKeys, valueOf, withCredentials, withPath } from "../Rig.ts"
import { openLibrary } from "./library.ts"

const USER_A = "chaos_a"
const DATABASES: Readonly<Record<Party, string>> = { a: "chaos_a", b: "chaos_b" }
const PROJECTS: Readonly<Record<Party, string>> = { a: "chaos-pg-a", b: "chaos-pg-b" }

/** A one-connection client of the harness's own (its application_name keeps it out of the library's counts). */
const adminClient = (url: string) =>
  PgClient.make({
    url: Redacted.make(url),
    maxConnections: 1,
    applicationName: "chaos-truth",
    connectTimeout: "5 seconds"
  }).pipe(Effect.provide(Reactivity.layer))

const prepare = (sql: SqlClient.SqlClient, owner: string | undefined) =>
  Effect.gen(function* () {
    yield* sql`create table items (id text primary key)`
    yield* sql`create table echo (k text primary key, v text not null)`
    const [first, ...rest] = seededKeys.map((k) => ({ k, v: valueOf(k) }))
    yield* sql`insert into echo ${sql.insert([first!, ...rest])}`
    if (owner !== undefined) yield* sql.unsafe(`grant all on items, echo to ${owner}`)
  })

/** Sets the rig up; everything is removed when the scope closes (the server with it). */
export const acquire: Effect.Effect<Rig, unknown, Scope.Scope | Toxiproxy.Toxiproxy> = Effect.gen(function* () {
  const server = yield* Servers.acquirePrivate("postgres", { durable: true })
  const secret = Canary.make().secret
  yield* Faults.pgLoginRole(server.url, USER_A, secret)
  yield* Faults.pgRequirePassword(server, USER_A)
  const admin = yield* adminClient(server.url)
  yield* admin.unsafe(`create database ${DATABASES.a} owner ${USER_A}`)
  yield* admin.unsafe(`create database ${DATABASES.b}`)
  const truthOf = {
    a: yield* adminClient(withPath(server.url, DATABASES.a)),
    b: yield* adminClient(withPath(server.url, DATABASES.b))
  }
  yield* prepare(truthOf.a, USER_A)
  yield* prepare(truthOf.b, undefined)
  const { proxy, url: proxied } = yield* Toxiproxy.proxyServer(server)
  const urls: Record<Party, string> = {
    a: withCredentials(withPath(proxied, DATABASES.a), USER_A, secret),
    b: withPath(server.url, DATABASES.b)
  }
  const connections = (who: Party | "all") =>
    Effect.map(
      ServerState.pgBackends(server.url, {
        database: who === "all" ? undefined : DATABASES[who],
        applicationNamePrefix: "tenantpool"
      }),
      (backends) => backends.length
    )
  const rig: Rig = {
    engine: "postgres",
    server,
    toxiproxy: yield* Toxiproxy.Toxiproxy,
    proxy,
    projects: PROJECTS,
    databaseA: DATABASES.a,
    userA: { name: USER_A, password: secret },
    secret,
    keys: seededKeys,
    truth: {
      finalIds: (party, runId) =>
        Effect.map(truthOf[party]<{ id: string }>`select id from items where starts_with(id, ${runId})`, (rows) =>
          rows.map((row) => row.id)
        ),
      connections
    },
    open: (profile, captureLogs) =>
      Effect.gen(function* () {
        const { as, context, tenancy } = yield* openLibrary(PgEngine.layer(), profile, captureLogs, {
          a: { id: PROJECTS.a, postgres: Redacted.make(urls.a) },
          b: { id: PROJECTS.b, postgres: Redacted.make(urls.b) }
        })
        const sql = Context.get(context, SqlClient.SqlClient)
        const insert = (id: string) => sql`insert into items (id) values (${id})`
        return {
          write: (party, id) => as(party)(insert(id)),
          tx: (party, [first, second]) => as(party)(sql.withTransaction(Effect.andThen(insert(first), insert(second)))),
          read: (party, key) =>
            as(party)(
              Effect.map(sql<{ v: string }>`select v from echo where k = ${key}`, (rows) => rows[0]?.v ?? null)
            ),
          events: tenancy.recentEvents
        }
      })
  }
  return rig
})
