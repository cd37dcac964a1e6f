/**
 * Red-team cases beyond `SqlAnalyzerAttacks.test.ts`: syntaxes that carried a role change, a session setting, a
 * temporary object, a whole-table write, a look at other sessions or a change to a server object past the
 * analyzer. Every tenant tier refuses each (ENTERPRISE, the least strict, with the others); the admin policy does
 * not; the ordinary forms next to them still pass.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { analyzer, itRefusesEach, verdict } from "./fixtures/Verdicts.ts"

/** `n` DO blocks, one inside the other, around `inner`. */
const nestedDo = (n: number, inner: string): string => {
  let text = inner
  for (let i = 0; i < n; i++) text = `DO $d${i}$ BEGIN ${text}; END $d${i}$`
  return text
}

/** Attack class → statements that carry it, and the words the refusal's detail names. */
const attacks: Readonly<Record<string, ReadonlyArray<readonly [string, string]>>> = {
  "role change": [
    ["CREATE AGGREGATE evil(text, bool) (sfunc = set_config, stype = text, initcond = 'role')", "set_config"],
    ["CREATE AGGREGATE evil(text, bool) (sfunc = pg_catalog.set_config, stype = text)", "set_config"],
    [
      "SELECT ts_rewrite('a'::tsquery, 'SELECT ''a''::tsquery, set_config(''role'', ''v'', false)::tsquery')",
      "ts_rewrite"
    ],
    ["EXPLAIN (ANALYZE off, ANALYZE on) SELECT set_config('role', 'v', false)", "repeated option"],
    [nestedDo(17, "PERFORM set_config('role', 'v', false)"), "nested"]
  ],
  "whole-table write": [
    ["EXPLAIN (ANALYZE false, ANALYZE true) DELETE FROM items", "repeated option"],
    ["EXPLAIN (ANALYZE 0, COSTS off, ANALYZE 1) UPDATE items SET a = 1", "repeated option"],
    [nestedDo(17, "DELETE FROM items"), "nested"],
    ["TRUNCATE items", "TRUNCATE"],
    ["TRUNCATE TABLE a, b RESTART IDENTITY", "TRUNCATE"],
    ["DO $$ BEGIN TRUNCATE items; END $$", "TRUNCATE"],
    ["CREATE FUNCTION f() RETURNS void LANGUAGE sql AS 'TRUNCATE items'", "TRUNCATE"],
    [
      `CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $f$ BEGIN ${nestedDo(9, "DELETE FROM items")}; END $f$`,
      "nested"
    ]
  ],
  "session state": [
    ["UPDATE pg_settings SET setting = '1' WHERE name = 'statement_timeout'", "pg_settings"],
    [
      "WITH s AS (UPDATE pg_catalog.pg_settings SET setting = 'x' WHERE name = 'search_path' RETURNING 1) SELECT 1",
      "pg_settings"
    ],
    ["CREATE TEMP TABLE items (id int)", "temporary"],
    ["CREATE GLOBAL TEMPORARY TABLE items (id int)", "temporary"],
    ["CREATE TABLE pg_temp.items (id int)", "temporary"],
    ['CREATE TABLE "pg_temp".items (id int)', "temporary"],
    ["SELECT 1 AS id INTO TEMP items", "temporary"],
    ["CREATE TEMP VIEW items AS SELECT 1 AS id", "temporary"],
    ["CREATE TEMP SEQUENCE s", "temporary"],
    ["CREATE FUNCTION pg_temp.f() RETURNS int LANGUAGE sql AS 'SELECT 1'", "temporary"],
    ["CREATE TEMP TABLE items AS SELECT 1 AS id", "temporary"],
    ["DO $$ BEGIN CREATE TEMP TABLE items (id int); END $$", "temporary"],
    ["DECLARE c CURSOR WITH HOLD FOR SELECT 1", "WITH HOLD"],
    ["SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY", "SESSION CHARACTERISTICS"],
    ["DO $$ BEGIN LISTEN x; END $$", "LISTEN"]
  ],
  "other sessions": [
    ["SELECT query FROM pg_stat_activity", "pg_stat_activity"],
    ["SELECT query FROM pg_catalog.pg_stat_activity WHERE pid <> pg_backend_pid()", "pg_stat_activity"],
    ["SELECT * FROM pg_stat_get_activity(NULL)", "pg_stat_get_activity"],
    ["SELECT pg_stat_get_backend_activity(s) FROM pg_stat_get_backend_idset() s", "pg_stat_get_backend_activity"],
    ["CREATE CAST (oid AS bool) WITH FUNCTION pg_cancel_backend(int)", "pg_cancel_backend"],
    [
      "CREATE OPERATOR CLASS oc FOR TYPE int USING btree AS FUNCTION 1 pg_terminate_backend(int)",
      "pg_terminate_backend"
    ]
  ],
  "server objects": [
    ["ALTER ROLE victim RENAME TO pwned", "ALTER ROLE"],
    ["ALTER USER victim RENAME TO pwned", "ALTER ROLE"],
    ["ALTER DATABASE victim RENAME TO pwned", "ALTER DATABASE"],
    ["ALTER DATABASE victim OWNER TO attacker", "ALTER DATABASE"],
    ["ALTER TABLESPACE pg_default OWNER TO attacker", "ALTER TABLESPACE"],
    ["GRANT CONNECT ON DATABASE victim TO PUBLIC", "GRANT ON DATABASE"],
    ["REVOKE CONNECT ON DATABASE victim FROM victim", "REVOKE ON DATABASE"],
    ["GRANT CREATE ON TABLESPACE pg_default TO PUBLIC", "GRANT ON TABLESPACE"],
    ["GRANT SET ON PARAMETER statement_timeout TO PUBLIC", "GRANT ON PARAMETER"],
    ["COMMENT ON ROLE victim IS 'x'", "COMMENT ON ROLE"],
    ["COMMENT ON DATABASE victim IS 'x'", "COMMENT ON DATABASE"],
    ["DROP SERVER s", "DROP FOREIGN SERVER"]
  ]
}

/** What a tenant does every day next to them, which must keep passing on ENTERPRISE. */
const ordinary = [
  "SELECT ts_rewrite('a & b'::tsquery, 'a'::tsquery, 'c'::tsquery)",
  "EXPLAIN (ANALYZE, COSTS off) SELECT 1",
  "EXPLAIN (ANALYZE off) DELETE FROM items",
  "UPDATE settings SET setting = '1' WHERE name = 'x'",
  "CREATE TABLE items2 (id int)",
  "CREATE UNLOGGED TABLE cache (id int)",
  "SELECT 1 AS id INTO items3",
  "DECLARE c CURSOR FOR SELECT 1",
  "SELECT count(*) FROM pg_stat_user_tables",
  "ALTER TABLE items RENAME TO items4",
  "GRANT SELECT ON items TO PUBLIC",
  "COMMENT ON TABLE items IS 'x'",
  nestedDo(3, "PERFORM 1"),
  nestedDo(8, "PERFORM 1"),
  "DELETE FROM items WHERE true",
  // Names that look like dangerous functions or temporary objects, in positions that name no function.
  "DROP TABLE dblink_x",
  "select * from my_pg_sleep_log",
  "create table temp_items (id int)",
  "CREATE INDEX dblink_idx ON items (id)",
  "select pg_temp.id from items pg_temp",
  "CREATE FUNCTION f(a int) RETURNS int LANGUAGE sql AS 'SELECT a + 1'"
]

describe("SqlAnalyzer against a red team", () => {
  itRefusesEach(attacks)

  it.effect("code is read 8 deep; a 9th level is refused, not skipped", () =>
    Effect.gen(function* () {
      const found = yield* verdict("ENTERPRISE", nestedDo(9, "PERFORM 1"))
      assert.strictEqual(found?.action, "reject")
      assert.include(found!.detail, "nested more than 8 deep")
      const a = yield* analyzer
      assert.isFalse(a.analyze(nestedDo(8, "DELETE FROM items WHERE id = 1")).statements[0]!.missingWhere)
      assert.isTrue(a.analyze(nestedDo(8, "DELETE FROM items")).statements[0]!.missingWhere)
    })
  )

  it.effect("the ordinary forms next to them pass", () =>
    Effect.gen(function* () {
      for (const sql of ordinary) assert.isUndefined(yield* verdict("ENTERPRISE", sql), `ENTERPRISE: ${sql}`)
    })
  )
})
