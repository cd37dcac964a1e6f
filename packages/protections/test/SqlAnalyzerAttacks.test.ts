/**
 * The analyzer against an attacker with PostgreSQL's whole function catalog: role changes in every syntax, whole-
 * table writes through MERGE and nested statements, functions that reach outside the project's database, dynamic
 * SQL, session state, server files. Every tenant tier refuses each (ENTERPRISE, the least strict, is checked
 * with the others); the admin policy (migrations, operators) refuses none; the ordinary forms still pass.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { tierNames } from "@tenantpool/core/Tier"
import { itRefusesEach, verdict } from "./fixtures/Verdicts.ts"

/** Attack class → statements that carry it. */
const attacks: Readonly<Record<string, ReadonlyArray<string>>> = {
  "role change": [
    "SET ROLE victim",
    "SET LOCAL ROLE victim",
    "RESET ROLE",
    "SET SESSION AUTHORIZATION victim",
    "RESET SESSION AUTHORIZATION",
    "SELECT set_config('role', 'victim', false)",
    "SELECT pg_catalog.set_config('ROLE', 'victim', true)",
    "SELECT set_config('session_authorization', 'victim', false)",
    "SELECT set_config($1, 'victim', false)",
    "SELECT set_config('ro' || 'le', 'victim', false)",
    "WITH r AS (SELECT set_config('role', 'victim', false)) SELECT * FROM r",
    "SELECT * FROM (SELECT set_config('role', 'victim', false)) s",
    "SELECT 1 WHERE EXISTS (SELECT set_config('role', 'victim', false))",
    "INSERT INTO t SELECT set_config('role', 'victim', false)",
    "PREPARE p AS SELECT set_config('role', 'victim', false)",
    "DO $$ BEGIN PERFORM set_config('role', 'victim', false); END $$",
    "DO $$ BEGIN SET ROLE victim; END $$",
    "DO $body$ DECLARE x text; BEGIN x := set_config('role', 'victim', false); END $body$",
    "CREATE FUNCTION f() RETURNS text LANGUAGE sql AS $$ SELECT set_config('role', 'victim', false) $$",
    "CREATE FUNCTION f() RETURNS text LANGUAGE sql BEGIN ATOMIC SELECT set_config('role', 'victim', false); END",
    "CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS 'BEGIN SET ROLE victim; END'",
    "CREATE VIEW v AS SELECT set_config('role', 'victim', false)",
    "CREATE TABLE t2 (a text DEFAULT set_config('role', 'victim', false))"
  ],
  "whole-table write": [
    "MERGE INTO t USING s ON true WHEN MATCHED THEN DELETE",
    "MERGE INTO t USING s ON 1 = 1 WHEN MATCHED THEN UPDATE SET a = 1",
    "MERGE INTO t USING s ON t.id = t.id WHEN MATCHED THEN DELETE",
    "MERGE INTO t AS x USING (SELECT 1) s ON x.a IS NOT NULL WHEN MATCHED THEN DELETE",
    "PREPARE p AS DELETE FROM t",
    "DELETE FROM t",
    "WITH a AS (SELECT 1) UPDATE t SET x = 1",
    "CREATE FUNCTION f() RETURNS void LANGUAGE sql AS 'DELETE FROM t'",
    "DO $$ BEGIN UPDATE t SET a = 1; END $$"
  ],
  "a function outside the database": [
    "SELECT dblink_exec('dbname=victim', 'DELETE FROM t')",
    "SELECT * FROM dblink('dbname=victim user=postgres', 'select * from t') AS r(a int)",
    "SELECT pg_read_file('/etc/passwd')",
    "SELECT pg_catalog.pg_read_binary_file('postgresql.conf')",
    "SELECT pg_ls_dir('.')",
    "SELECT lo_import('/etc/passwd')",
    "SELECT lo_export(1, '/tmp/x')",
    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity",
    "SELECT pg_cancel_backend(123)",
    "SELECT pg_reload_conf()",
    "SELECT query_to_xml('SET ROLE victim', true, true, '')",
    "SELECT ts_stat('SELECT set_config(''role'', ''x'', false)')",
    "SELECT pg_advisory_lock(42)",
    "CREATE OPERATOR === (FUNCTION = pg_terminate_backend, RIGHTARG = int)",
    "CREATE TRIGGER t BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION pg_reload_conf()",
    "DO $$ BEGIN PERFORM pg_terminate_backend(1); END $$",
    "CREATE FUNCTION f() RETURNS bool LANGUAGE sql AS 'SELECT pg_terminate_backend(1)'"
  ],
  "dynamic SQL": [
    "DO $$ BEGIN EXECUTE 'SET ROLE ' || 'victim'; END $$",
    "DO $$ DECLARE r record; BEGIN FOR r IN EXECUTE 'select 1' LOOP END LOOP; END $$",
    "CREATE FUNCTION f(q text) RETURNS void LANGUAGE plpgsql AS $$ BEGIN EXECUTE q; END $$",
    "CREATE FUNCTION f() RETURNS int LANGUAGE plperl AS 'return 1'"
  ],
  "session state": [
    "SET search_path = victim, public",
    "SET statement_timeout = 1",
    "SELECT set_config('search_path', 'victim', false)",
    "SELECT set_config('statement_timeout', '1', $1)",
    "EXECUTE p",
    "DEALLOCATE ALL",
    "DISCARD ALL"
  ],
  "server-wide": [
    "ALTER SYSTEM SET max_connections = 1",
    "CREATE EXTENSION dblink",
    "CREATE SERVER s FOREIGN DATA WRAPPER postgres_fdw",
    "CREATE USER MAPPING FOR CURRENT_USER SERVER s",
    "CREATE ROLE r SUPERUSER",
    "ALTER ROLE victim PASSWORD 'x'",
    "ALTER ROLE CURRENT_USER SET search_path = victim",
    "GRANT victim TO CURRENT_USER",
    "ALTER DATABASE victim SET search_path = x",
    "CREATE DATABASE other",
    "CREATE TABLESPACE ts LOCATION '/tmp'",
    "COPY t TO '/tmp/out'",
    "COPY t FROM PROGRAM 'id'",
    "LOAD 'plugin'"
  ]
}

/** What a tenant does every day, which must keep passing on every tier that allows its kind. */
const ordinary = [
  "MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE",
  "MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN UPDATE SET a = s.a WHEN NOT MATCHED THEN INSERT VALUES (s.id)",
  "MERGE INTO t USING s ON true WHEN MATCHED AND t.id = s.id THEN DELETE",
  "SET LOCAL statement_timeout = '5s'",
  "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE",
  "SELECT set_config('app.tenant', $1, true)",
  "SELECT current_setting('search_path')",
  "SELECT pg_advisory_xact_lock(42)",
  "SELECT lo_create(0)",
  "EXPLAIN DELETE FROM t",
  "DELETE FROM t WHERE true"
]

const ddlOrdinary = [
  "CREATE FUNCTION f(a int) RETURNS int LANGUAGE sql AS 'SELECT a + 1'",
  "CREATE FUNCTION g() RETURNS void LANGUAGE plpgsql AS $$ DECLARE n int; BEGIN n := 1 + 1; INSERT INTO t VALUES (n); END $$",
  "CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION g()"
]

describe("SqlAnalyzer against an attacker", () => {
  itRefusesEach(attacks)

  it.effect("the ordinary forms pass", () =>
    Effect.gen(function* () {
      for (const sql of ordinary) {
        for (const tier of tierNames) assert.isUndefined(yield* verdict(tier, sql), `${tier}: ${sql}`)
      }
      for (const sql of ddlOrdinary) assert.isUndefined(yield* verdict("ENTERPRISE", sql), `ENTERPRISE: ${sql}`)
    })
  )

  it.effect("says what it found, without the statement's literals", () =>
    Effect.gen(function* () {
      const found = yield* verdict("PRO", "SELECT 1, set_config('role', 'secret-victim', false)")
      assert.include(found!.detail, "set_config('role', …)")
      assert.notInclude(found!.detail, "secret-victim")
      const fn = yield* verdict("PRO", "SELECT pg_terminate_backend(42)")
      assert.include(fn!.detail, "pg_terminate_backend")
    })
  )
})
