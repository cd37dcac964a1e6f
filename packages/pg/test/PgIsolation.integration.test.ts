/**
 * The adversary suite (issue #12, and the cases a later red-team pass found): two projects on the same server, an
 * attacker and a victim, in the README's role model and in the shared-user set-up (both on one database as the
 * superuser). The attacker tries every class —
 * role changes in any syntax, whole-table writes, functions that reach outside its database, dynamic SQL, session
 * state, server files, server-wide DDL — on every path the engine has (statement, `unsafe`, inside a transaction,
 * on a reserved connection, as a stream). The operator's raw connection decides: the victim's rows, the roles and
 * the settings are unchanged, and the victim's statements see the session they should.
 */
import * as crypto from "node:crypto"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as SqlClient from "effect/sql/SqlClient"
import { MemoryRegistry } from "@tenantpool/core/Registry"
import * as Tenancy from "@tenantpool/core/Tenancy"
import * as ApiProtections from "@tenantpool/protections/ApiProtections"
import * as SqlAnalyzer from "@tenantpool/protections/SqlAnalyzer"
import * as PgEngine from "../src/PgEngine.ts"
import * as PgError from "../src/PgError.ts"
import { attempt, paths } from "./fixtures/Attacks.ts"
import * as Fx from "./fixtures/Engine.ts"
import { roleModelTenant, snapshot } from "./fixtures/Tenants.ts"

const protections = ApiProtections.layer.pipe(Layer.provide(SqlAnalyzer.layer()))

/** `n` DO blocks, one inside the other, around `inner`. */
const nestedDo = (n: number, inner: string): string => {
  let text = inner
  for (let i = 0; i < n; i++) text = `do $d${i}$ begin ${text}; end $d${i}$`
  return text
}

/**
 * Attacks, by class; `%victim%` is the victim's role (or the superuser), `%other%` a role other than the
 * attacker's (the victim's, or in the shared-user set-up a bystander's), `%bystander%` a role of no project, and `%db%`
 * the victim's database.
 */
const attacks: Readonly<Record<string, ReadonlyArray<string>>> = {
  "role change": [
    "SET ROLE %victim%",
    "SET SESSION AUTHORIZATION %victim%",
    "select set_config('role', '%victim%', false)",
    "with r as (select set_config('role', '%victim%', false)) select * from r",
    "select 1 where exists (select set_config('session_authorization', '%victim%', false))",
    "do $$ begin perform set_config('role', '%victim%', false); end $$"
  ],
  "whole-table write": [
    "delete from items",
    "merge into items using (select 1) s on true when matched then delete",
    "with d as (update items set name = 'pwned' returning 1) select count(*) from d"
  ],
  "outside the database": [
    "select pg_terminate_backend(pid) from pg_stat_activity where datname = '%db%'",
    "select pg_cancel_backend(pid) from pg_stat_activity where datname = '%db%'",
    "select pg_read_file('postgresql.conf')",
    "select query_to_xml('delete from items returning 1', true, true, '')",
    "select dblink_exec('dbname=%db%', 'delete from items')",
    "copy items to '/tmp/tenantpool-pwned'"
  ],
  "dynamic SQL": ["do $$ begin execute 'delete from ' || 'items'; end $$"],
  "session state": [
    "set statement_timeout = 1",
    "select set_config('search_path', 'pg_temp', false)",
    "prepare p as delete from items where true"
  ],
  "server-wide": [
    "create role tp_evil superuser login",
    "alter role current_user superuser",
    "alter database %db% set search_path = pg_temp",
    "create extension if not exists dblink"
  ]
}

// Found by a red-team pass: syntaxes that carried a role change, a session setting, a temporary table, a whole-table
// write or a look at other sessions past both the analyzer and the engine's session check.
const beyond: Readonly<Record<string, ReadonlyArray<string>>> = {
  "role change": [
    // pg_settings' update rule calls set_config(name, setting, false).
    "update pg_settings set setting = '%other%' where name = 'role'",
    // An aggregate whose state function is set_config: `select tp_evil('%other%', false)` changes the role.
    "create aggregate tp_evil(text, bool) (sfunc = set_config, stype = text, initcond = 'role')",
    // ts_rewrite runs its second argument as a query (SPI).
    "select ts_rewrite('a'::tsquery, 'select ''a''::tsquery, set_config(''role'', ''%other%'', false)::tsquery')",
    // EXPLAIN takes the last of repeated options: this one runs its query.
    "explain (analyze off, analyze on) select set_config('role', '%other%', false)",
    // Deeper than the analyzer reads.
    nestedDo(17, "perform set_config('role', '%other%', false)")
  ],
  "whole-table write": [
    // TRUNCATE empties the victim's table like DELETE without WHERE.
    "truncate items",
    "explain (analyze false, analyze true, costs off) delete from items",
    nestedDo(17, "delete from items")
  ],
  "session state": [
    "update pg_catalog.pg_settings set setting = '1' where name = 'statement_timeout'",
    // A temporary table shadows the victim's `items` on the session (pg_temp comes first in the search path).
    "create table pg_temp.items (id int primary key, name text not null)",
    "select 1 as id, 'shadow'::text as name into temp items",
    "/* hi */ create temp table items (id int primary key, name text not null)",
    "do $$ begin create temp table items (id int primary key, name text not null); end $$",
    "declare tp_held cursor with hold for select 1",
    "do $$ begin listen tp_channel; end $$"
  ],
  "other sessions": [
    "select query from pg_stat_activity where pid <> pg_backend_pid()",
    "select pg_stat_get_backend_activity(s) from pg_stat_get_backend_idset() s",
    "create cast (oid as bool) with function pg_cancel_backend(int)"
  ],
  "server-wide": [
    "alter role %bystander% rename to tp_renamed",
    "grant connect on database %db% to public",
    "alter database %db% owner to %bystander%",
    "comment on role %bystander% is 'pwned'"
  ]
}

/** What a victim statement sees of its session: role, settings, the `items` it reads, state others left. */
const victimView = (sql: SqlClient.SqlClient) =>
  sql<{
    user: string
    session_user: string
    statement_timeout: string
    read_only: string
    items: number
    temp: boolean
    cursors: number
    channels: number
  }>`select current_user as user, session_user, current_setting('statement_timeout') as statement_timeout,
      current_setting('default_transaction_read_only') as read_only, (select count(*)::int from items) as items,
      pg_my_temp_schema() <> 0 as temp, (select count(*)::int from pg_cursors) as cursors,
      (select count(*)::int from pg_listening_channels()) as channels`.pipe(Effect.map((rows) => rows[0]!))

/** Two projects, the attack suite on every path, and the operator's verdict. */
const suite = (setup: "role model" | "shared user") =>
  Effect.gen(function* () {
    const registry = yield* MemoryRegistry
    const tenancy = yield* Tenancy.Tenancy
    const sql = yield* SqlClient.SqlClient
    const victim = Fx.projectId("victim")
    const attacker = Fx.projectId("attacker")
    const admin = yield* Fx.observer(Fx.serverUrl())
    const bystander = `tp_bystander_${crypto.randomBytes(4).toString("hex")}`
    yield* Effect.acquireRelease(admin.unsafe(`create role ${bystander} nologin`), () =>
      Effect.ignore(admin.unsafe(`drop role if exists ${bystander}; drop role if exists tp_renamed`))
    )
    let victimUrl: string
    let adminUrl: string
    let victimRole: string
    if (setup === "role model") {
      const v = yield* roleModelTenant("victim")
      const a = yield* roleModelTenant("attacker")
      victimUrl = v.url
      victimRole = v.role
      adminUrl = Fx.serverUrl().replace(/\/[^/]*$/, `/${v.database}`)
      yield* registry.register({ id: victim, tier: "PRO", postgres: v.url })
      yield* registry.register({ id: attacker, tier: "ENTERPRISE", postgres: a.url })
    } else {
      victimUrl = adminUrl = yield* Fx.freshDatabase("shared")
      victimRole = "postgres"
      yield* registry.register({ id: victim, tier: "PRO", postgres: victimUrl })
      yield* registry.register({ id: attacker, tier: "ENTERPRISE", postgres: victimUrl })
    }
    const asVictim = tenancy.withProject(victim)
    const asAttacker = tenancy.withProject(attacker)
    yield* sql`create table items (id int primary key, name text not null)`.pipe(asVictim)
    yield* sql`insert into items select i, 'item ' || i from generate_series(1, 20) i`.pipe(asVictim)
    if (setup === "role model") yield* sql`create table items (id int primary key, name text not null)`.pipe(asAttacker)
    const victimDb = new URL(victimUrl).pathname.slice(1)
    const before = yield* snapshot(adminUrl)
    const viewBefore = yield* victimView(sql).pipe(asVictim)
    // The victim keeps working during the attack (statements on the pool, and a reserved session of its own whose
    // last statement carries a secret).
    const victimLoad = yield* Effect.forkChild(
      Effect.forever(Effect.andThen(sql`select count(*) from items`, Effect.sleep("5 millis"))).pipe(asVictim)
    )
    const secret = `tp-secret-${crypto.randomBytes(4).toString("hex")}`
    const other = setup === "role model" ? victimRole : bystander

    const ran: Array<string> = []
    yield* Effect.scoped(
      Effect.gen(function* () {
        const held = yield* sql.reserve
        yield* held.executeUnprepared(`select '${secret}' as s`, [], undefined)
        for (const [kind, texts] of [...Object.entries(attacks), ...Object.entries(beyond)]) {
          for (const template of texts) {
            const text = template
              .replaceAll("%victim%", victimRole)
              .replaceAll("%other%", other)
              .replaceAll("%bystander%", bystander)
              .replaceAll("%db%", victimDb)
            for (const path of paths) {
              const refusal = yield* attempt(sql, path, text).pipe(asAttacker)
              if (refusal !== "QueryRejected")
                ran.push(`${kind} via ${path}: ${text.slice(0, 90)} -> ${refusal ?? "ran"}`)
            }
          }
        }
      }).pipe(asVictim)
    )
    yield* Fiber.interrupt(victimLoad)
    assert.deepStrictEqual(ran, [], "every attack is refused by the protections before it reaches the server")

    const after = yield* snapshot(adminUrl)
    assert.deepStrictEqual(after.rows, before.rows, "the victim's rows are unchanged")
    assert.deepStrictEqual(after.roles, before.roles, "roles are unchanged")
    assert.deepStrictEqual(after.members, before.members, "role memberships are unchanged")
    assert.deepStrictEqual(after.settings, before.settings, "database and role settings are unchanged")
    assert.deepStrictEqual(after.acl, before.acl, "database privileges are unchanged")
    // Many statements, so that in the shared-user set-up some land on sessions the attacker used.
    const views = yield* Effect.forEach(Array.from({ length: 40 }), () => victimView(sql), {
      concurrency: 8
    }).pipe(asVictim)
    for (const view of views) assert.deepStrictEqual(view, viewBefore, "no session state leaked to the victim")
  })

describe("tenant isolation (adversary suite)", () => {
  it.live(
    "role model: every attack on every path is refused; the victim's rows, roles and settings are unchanged",
    () => suite("role model").pipe(Effect.provide(protections), Effect.provide(Fx.layer())),
    240_000
  )

  it.live(
    "shared-user set-up (both projects on one database as the superuser): the same",
    () => suite("shared user").pipe(Effect.provide(protections), Effect.provide(Fx.layer())),
    240_000
  )

  it.live(
    "role model without the protections: the server itself refuses what reaches outside the project",
    () =>
      Effect.gen(function* () {
        const registry = yield* MemoryRegistry
        const tenancy = yield* Tenancy.Tenancy
        const sql = yield* SqlClient.SqlClient
        const v = yield* roleModelTenant("bare_victim")
        const a = yield* roleModelTenant("bare_attacker")
        const victim = Fx.projectId("victim")
        const attacker = Fx.projectId("attacker")
        yield* registry.register({ id: victim, tier: "PRO", postgres: v.url })
        yield* registry.register({ id: attacker, tier: "ENTERPRISE", postgres: a.url })
        yield* sql`create table items (id int primary key, name text not null)`.pipe(tenancy.withProject(victim))
        const adminUrl = Fx.serverUrl().replace(/\/[^/]*$/, `/${v.database}`)
        const before = yield* snapshot(adminUrl)
        const asAttacker = tenancy.withProject(attacker)
        const refused = (text: string) =>
          Effect.map(Effect.result(sql.unsafe(text).pipe(asAttacker)), (r) => r._tag === "Failure")
        assert.isTrue(yield* refused(`SET ROLE ${v.role}`), "not a member of the victim's role")
        assert.isTrue(yield* refused(`select set_config('role', '${v.role}', false)`))
        assert.isTrue(yield* refused("SET SESSION AUTHORIZATION postgres"), "not a superuser")
        assert.isTrue(yield* refused("select pg_read_file('postgresql.conf')"))
        assert.isTrue(yield* refused("create role tp_evil superuser"))
        assert.isTrue(yield* refused(`alter database ${v.database} set search_path = pg_temp`))
        const killed = yield* sql<{ n: number }>`select count(*)::int as n from pg_stat_activity
          where datname = ${v.database} and pg_terminate_backend(pid)`.pipe(asAttacker, Effect.result)
        assert.isTrue(killed._tag === "Failure", "may not signal another role's backends")
        // Connecting to the victim's database with the attacker's own credentials: CONNECT is not granted.
        const intruder = Fx.projectId("intruder")
        const intruderUrl = new URL(a.url)
        intruderUrl.pathname = `/${v.database}`
        yield* registry.register({ id: intruder, tier: "ENTERPRISE", postgres: intruderUrl.toString() })
        const denied = yield* sql`select 1`.pipe(tenancy.withProject(intruder), Effect.flip)
        assert.strictEqual(PgError.sqlState(Fx.asSqlError(denied)), "42501", "permission denied for the database")
        const after = yield* snapshot(adminUrl)
        assert.deepStrictEqual(after, before)
      }).pipe(Effect.provide(Fx.layer())),
    60_000
  )

  it.live("a project connecting as a superuser is named once per target, with what is wrong", () =>
    Effect.gen(function* () {
      const registry = yield* MemoryRegistry
      const tenancy = yield* Tenancy.Tenancy
      const sql = yield* SqlClient.SqlClient
      const engine = yield* PgEngine.PgEngine
      const url = yield* Fx.freshDatabase("superuser")
      const tenant = yield* roleModelTenant("clean")
      const su = Fx.projectId("su")
      const clean = Fx.projectId("clean")
      yield* registry.register({ id: su, tier: "PRO", postgres: url })
      yield* registry.register({ id: clean, tier: "PRO", postgres: tenant.url })
      yield* sql`select 1`.pipe(tenancy.withProject(su))
      yield* sql`select 1`.pipe(tenancy.withProject(clean))
      const warningsOf = (database: string) =>
        Effect.map(engine.targets, (all) => all.find((t) => t.label.endsWith(`/${database}`))?.roleWarnings ?? [])
      const suDb = new URL(url).pathname.slice(1)
      yield* Fx.eventually(
        "the superuser target was checked",
        Effect.map(warningsOf(suDb), (w) => w.length > 0)
      )
      const warnings = yield* warningsOf(suDb)
      assert.include(warnings.join("; "), "superuser")
      assert.include(warnings.join("; "), "CONNECT on the database is granted to PUBLIC")
      assert.deepStrictEqual(yield* warningsOf(tenant.database), [], "the role model's role is fine")
    }).pipe(Effect.provide(Fx.layer()))
  )
})

describe("session state on shared connections (issue #14), without the protections", () => {
  it.live(
    "one project's SET statement_timeout = 1 (or temp table, in any comment or white space) is refused on a shared target and never reaches the other's",
    () =>
      Effect.gen(function* () {
        const registry = yield* MemoryRegistry
        const tenancy = yield* Tenancy.Tenancy
        const sql = yield* SqlClient.SqlClient
        const url = yield* Fx.freshDatabase("session")
        const a = Fx.projectId("a")
        const b = Fx.projectId("b")
        yield* registry.register({ id: a, tier: "PRO", postgres: url })
        yield* registry.register({ id: b, tier: "PRO", postgres: url })
        const asA = tenancy.withProject(a)
        const asB = tenancy.withProject(b)
        yield* sql`create table items (id int primary key)`.pipe(asB)
        yield* sql`insert into items select generate_series(1, 5)`.pipe(asB)
        for (const text of [
          "set statement_timeout = 1",
          "SET search_path = pg_temp",
          "prepare p as select 1",
          // Comments and white space as PostgreSQL reads them, and a temporary table that would shadow `items`.
          "/* a /* nested */ comment */ set statement_timeout = 1",
          "-- a comment that a carriage return ends\rset statement_timeout = 1",
          "\fset statement_timeout = 1",
          "create /* a /* nested */ comment */ temp table items (id int)",
          "create table pg_temp.items (id int)"
        ]) {
          const refused = Fx.asSqlError(yield* sql.unsafe(text).pipe(asA, Effect.flip))
          assert.strictEqual(refused.reason._tag, "AuthorizationError", text)
          assert.include(refused.message, "other projects share")
          const inTx = yield* sql.withTransaction(sql.unsafe(text)).pipe(asA, Effect.flip)
          assert.include(Fx.asSqlError(inTx).message, "other projects share", `${text} in a transaction`)
        }
        // What stays inside a transaction passes.
        yield* sql.withTransaction(Effect.andThen(sql`set local statement_timeout = 1000`, sql`select 1`)).pipe(asA)
        const results = yield* Effect.forEach(
          Array.from({ length: 40 }),
          () => Effect.result(sql`select pg_sleep(0.01)`),
          {
            concurrency: 10
          }
        ).pipe(asB)
        assert.strictEqual(results.filter((r) => r._tag === "Failure").length, 0)
        const views = yield* Effect.forEach(
          Array.from({ length: 20 }),
          () =>
            sql<{
              statement_timeout: string
              items: number
            }>`select current_setting('statement_timeout') as statement_timeout, (select count(*)::int from items) as items`,
          { concurrency: 5 }
        ).pipe(asB)
        for (const view of views) assert.deepStrictEqual(view[0], { statement_timeout: "0", items: 5 })
      }).pipe(Effect.provide(Fx.layer()))
  )
})
