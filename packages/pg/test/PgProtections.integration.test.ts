/**
 * The API protections through the real PostgreSQL engine: every statement of the guarded `SqlClient` passes its
 * text and parameters to the installed protections, so the tier's SQL policy and cost budget apply to
 * `sql\`…\`` as written in a handler.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { SqlClient } from "effect/sql"
import { MemoryRegistry } from "@tenantpool/core/Registry"
import * as Tenancy from "@tenantpool/core/Tenancy"
import * as ApiProtections from "@tenantpool/protections/ApiProtections"
import * as PgCostEstimator from "@tenantpool/protections/PgCostEstimator"
import * as SqlAnalyzer from "@tenantpool/protections/SqlAnalyzer"
import * as Isolation from "@tenantpool/testing/Isolation"
import * as TestServers from "@tenantpool/testing/TestServers"
import * as PgEngine from "../src/PgEngine.ts"
import * as PgError from "../src/PgError.ts"

const crossJoin = "SELECT count(*) AS n FROM generate_series(1, 2000) a CROSS JOIN generate_series(1, 2000) b"

const rejection = <A, E, R>(self: Effect.Effect<A, E, R>) =>
  Effect.map(Effect.flip(PgError.unwrapGuardErrors(self)), (e) => e as { _tag: string; rule?: string })

describe("PgEngine with protections", () => {
  it.live(
    "applies the tier's SQL policy and cost budget to the guarded SqlClient's statements",
    () =>
      Effect.gen(function* () {
        const registry = yield* MemoryRegistry
        const tenancy = yield* Tenancy.Tenancy
        const sql = yield* SqlClient.SqlClient
        const free = yield* Isolation.freshPgDatabase(TestServers.url("postgres"), "prot_free")
        const ent = yield* Isolation.freshPgDatabase(TestServers.url("postgres"), "prot_ent")
        yield* registry.register({ id: "prot-free", tier: "FREE", postgres: free })
        yield* registry.register({ id: "prot-ent", tier: "ENTERPRISE", postgres: ent })
        const protections = ApiProtections.layer.pipe(
          Layer.provideMerge(
            PgCostEstimator.layer({ explain: PgCostEstimator.explainWith(sql) }).pipe(
              Layer.provideMerge(SqlAnalyzer.layer())
            )
          )
        )
        yield* Effect.gen(function* () {
          const asFree = tenancy.withProject("prot-free")
          const asEnt = tenancy.withProject("prot-ent")
          const ddl = yield* rejection(sql`create table t (x int)`.pipe(asFree))
          assert.strictEqual(ddl._tag, "QueryRejected")
          assert.strictEqual(ddl.rule, "statement-kind")
          yield* sql`create table t (x int)`.pipe(asEnt)
          yield* sql`insert into t values (1), (2)`.pipe(asEnt)
          const noWhere = yield* rejection(sql`update t set x = 3`.pipe(asEnt))
          assert.strictEqual(noWhere.rule, "missing-where")
          assert.deepStrictEqual(yield* sql<{ x: number }>`select x from t where x = ${2}`.pipe(asEnt), [{ x: 2 }])
          assert.deepStrictEqual(yield* sql<{ one: number }>`select 1 as one`.pipe(asFree), [{ one: 1 }])
          const expensive = yield* rejection(sql.unsafe(crossJoin).pipe(asFree))
          assert.strictEqual(expensive.rule, "cost-budget")
          const rows = yield* sql.unsafe<{ n: string }>(crossJoin).pipe(asEnt)
          assert.strictEqual(String(rows[0]!.n), "4000000")
        }).pipe(Effect.provide(protections))
      }).pipe(
        Effect.scoped,
        Effect.provide(PgEngine.layer().pipe(Layer.provideMerge(Tenancy.layerMemory({ healthCheckInterval: 0 }))))
      ),
    60_000
  )
})
