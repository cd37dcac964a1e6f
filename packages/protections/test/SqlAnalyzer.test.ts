/**
 * The SQL analyzer on PostgreSQL's own parser: classification, each rule with accepting and rejecting statements,
 * fingerprints, the cache, and the statements the migrations and a typical app run.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Result from "effect/Result"
import { type TierName, tierNames } from "@tenantpool/core/Tier"
import { splitScript } from "../../pg/src/internal/sqlSplit.ts"
import * as SqlAnalyzer from "../src/SqlAnalyzer.ts"
import { project } from "./fixtures/Projects.ts"

const analyzer = SqlAnalyzer.make()

const ruleFor = (tier: TierName, sql: string) =>
  Effect.map(analyzer, (a) => a.inspect(project(`p-${tier.toLowerCase()}`, tier), a.analyze(sql))?.rule)

const migrationsDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../migrations")

const migrationStatements = (): Array<{ readonly file: string; readonly line: number; readonly text: string }> =>
  fs
    .readdirSync(migrationsDir)
    .filter((f) => f.endsWith(".sql"))
    .sort()
    .flatMap((file) => {
      const split = splitScript(fs.readFileSync(path.join(migrationsDir, file), "utf8"))
      if (Result.isFailure(split)) throw new Error(`${file}: ${split.failure.reason}`)
      return split.success.statements.map((s) => ({ file, line: s.line, text: s.text }))
    })

/** What a typical app sends: the engine compiles sql`` templates to parameterized text like these. */
const appStatements = [
  "SELECT id, email FROM users WHERE id = $1",
  "SELECT * FROM orders WHERE customer_id = $1 ORDER BY created_at DESC LIMIT 20",
  "SELECT count(*) FROM orders WHERE status = $1 AND created_at > now() - interval '1 day'",
  "INSERT INTO users (email, name) VALUES ($1, $2) RETURNING id",
  "INSERT INTO users (email, name) VALUES ($1, $2), ($3, $4)",
  "UPDATE users SET name = $1, updated_at = now() WHERE id = $2",
  "DELETE FROM sessions WHERE expires_at < now()",
  "INSERT INTO counters (key, n) VALUES ($1, 1) ON CONFLICT (key) DO UPDATE SET n = counters.n + 1",
  "WITH recent AS (SELECT * FROM orders WHERE created_at > $1) SELECT customer_id, count(*) FROM recent GROUP BY 1",
  "WITH moved AS (DELETE FROM queue WHERE id = $1 RETURNING *) INSERT INTO done SELECT * FROM moved",
  "SELECT u.id, o.total FROM users u JOIN orders o ON o.user_id = u.id WHERE u.id = ANY($1)",
  "SELECT * FROM jobs WHERE state = 'queued' ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED",
  "BEGIN",
  "COMMIT",
  "SAVEPOINT s1",
  "ROLLBACK TO SAVEPOINT s1",
  "SET LOCAL statement_timeout = '5s'",
  "SHOW search_path",
  "EXPLAIN SELECT * FROM users WHERE id = 1"
]

describe("SqlAnalyzer", () => {
  it.effect("classifies statements by kind and command tag", () =>
    Effect.gen(function* () {
      const a = yield* analyzer
      const cases: ReadonlyArray<readonly [string, SqlAnalyzer.StatementKind, string]> = [
        ["SELECT 1", "read", "SELECT"],
        ["VALUES (1), (2)", "read", "SELECT"],
        ["COPY t TO STDOUT", "read", "COPY"],
        ["INSERT INTO t VALUES (1)", "write", "INSERT"],
        ["UPDATE t SET a = 1 WHERE id = 2", "write", "UPDATE"],
        ["DELETE FROM t WHERE id = 2", "write", "DELETE"],
        ["MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE", "write", "MERGE"],
        ["WITH d AS (DELETE FROM t WHERE a = 1 RETURNING *) SELECT * FROM d", "write", "SELECT"],
        ["COPY t FROM STDIN", "write", "COPY"],
        ["TRUNCATE t", "write", "TRUNCATE"],
        ["CREATE TABLE t (a int)", "ddl", "CREATE TABLE"],
        ["CREATE INDEX ON t (a)", "ddl", "CREATE INDEX"],
        ["ALTER TABLE t ADD COLUMN b int", "ddl", "ALTER TABLE"],
        ["DROP TABLE t", "ddl", "DROP TABLE"],
        ["SELECT * INTO t2 FROM t", "ddl", "SELECT INTO"],
        ["GRANT SELECT ON t TO r", "ddl", "GRANT"],
        ["REVOKE ALL ON t FROM PUBLIC", "ddl", "REVOKE"],
        ["CREATE OR REPLACE FUNCTION f() RETURNS int LANGUAGE sql AS 'select 1'", "ddl", "CREATE FUNCTION"],
        ["CREATE EXTENSION IF NOT EXISTS pgcrypto", "ddl", "CREATE EXTENSION"],
        ["BEGIN", "transaction", "BEGIN"],
        ["COMMIT", "transaction", "COMMIT"],
        ["SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", "transaction", "SET TRANSACTION"],
        ["SET ROLE admin", "utility", "SET ROLE"],
        ["SET LOCAL ROLE admin", "utility", "SET ROLE"],
        ["RESET ROLE", "utility", "RESET ROLE"],
        ["SET SESSION AUTHORIZATION admin", "utility", "SET SESSION AUTHORIZATION"],
        ["SET search_path = app", "utility", "SET"],
        ["LISTEN jobs", "utility", "LISTEN"],
        ["NOTIFY jobs", "utility", "NOTIFY"],
        ["DO $$ BEGIN PERFORM 1; END $$", "utility", "DO"],
        ["VACUUM t", "utility", "VACUUM"],
        ["ANALYZE t", "utility", "ANALYZE"],
        ["LOCK TABLE t IN ACCESS EXCLUSIVE MODE", "utility", "LOCK"],
        ["ALTER SYSTEM SET work_mem = '1GB'", "utility", "ALTER SYSTEM"],
        ["EXPLAIN SELECT 1", "utility", "EXPLAIN"],
        ["EXPLAIN ANALYZE DELETE FROM t WHERE a = 1", "write", "EXPLAIN ANALYZE"],
        ["EXPLAIN (ANALYZE false) SELECT 1", "utility", "EXPLAIN"]
      ]
      for (const [sql, kind, command] of cases) {
        const analysis = a.analyze(sql)
        assert.strictEqual(analysis.kind, kind, sql)
        assert.strictEqual(analysis.command, command, sql)
      }
    })
  )

  it.effect("rejects several statements where one is expected, but not one statement with a trailing semicolon", () =>
    Effect.gen(function* () {
      assert.strictEqual(yield* ruleFor("ENTERPRISE", "SELECT 1; DROP TABLE users"), "multiple-statements")
      assert.isUndefined(yield* ruleFor("FREE", "SELECT 1;"))
      const a = yield* analyzer
      assert.isUndefined(
        SqlAnalyzer.evaluate(SqlAnalyzer.adminPolicy, a.analyze("SELECT 1; SELECT 2")),
        "the admin policy allows scripts"
      )
    })
  )

  it.effect("rejects UPDATE and DELETE without WHERE (also inside WITH) and TRUNCATE, and accepts them with one", () =>
    Effect.gen(function* () {
      assert.strictEqual(yield* ruleFor("PRO", "UPDATE users SET active = false"), "missing-where")
      assert.strictEqual(yield* ruleFor("PRO", "DELETE FROM users"), "missing-where")
      assert.strictEqual(
        yield* ruleFor("PRO", "WITH gone AS (DELETE FROM users RETURNING id) SELECT count(*) FROM gone"),
        "missing-where"
      )
      assert.strictEqual(yield* ruleFor("PRO", "DELETE FROM a USING b"), "missing-where", "USING is not a filter")
      assert.strictEqual(yield* ruleFor("PRO", "EXPLAIN ANALYZE DELETE FROM users"), "missing-where")
      assert.isUndefined(yield* ruleFor("PRO", "UPDATE users SET active = false WHERE id = $1"))
      assert.isUndefined(yield* ruleFor("PRO", "DELETE FROM users WHERE true"), "WHERE true states the intent")
      assert.isUndefined(yield* ruleFor("PRO", "UPDATE t SET a = 1 WHERE CURRENT OF c"))
      assert.isUndefined(yield* ruleFor("PRO", "EXPLAIN DELETE FROM users"), "plain EXPLAIN runs nothing")
      for (const tier of tierNames) {
        assert.strictEqual(
          yield* ruleFor(tier, "TRUNCATE users"),
          "missing-where",
          `${tier}: TRUNCATE empties the table`
        )
      }
      const a = yield* analyzer
      assert.isTrue(a.analyze("TRUNCATE users").statements[0]!.missingWhere)
      assert.isUndefined(SqlAnalyzer.evaluate(SqlAnalyzer.adminPolicy, a.analyze("TRUNCATE users")), "admin may")
    })
  )

  it.effect("rejects DDL for FREE and accepts it from STARTER up", () =>
    Effect.gen(function* () {
      for (const sql of [
        "CREATE TABLE t (a int)",
        "ALTER TABLE t ADD b int",
        "DROP INDEX i",
        "SELECT * INTO t2 FROM t"
      ]) {
        assert.strictEqual(yield* ruleFor("FREE", sql), "statement-kind", sql)
        assert.isUndefined(yield* ruleFor("STARTER", sql), sql)
      }
    })
  )

  it.effect("rejects the commands a tier forbids and accepts them where it does not", () =>
    Effect.gen(function* () {
      const cases: ReadonlyArray<readonly [string, TierName, TierName | undefined]> = [
        // statement, a tier that rejects it, a tier that accepts it (undefined: only admin does)
        ["COPY t FROM STDIN", "FREE", "STARTER"],
        ["DO $$ BEGIN PERFORM 1; END $$", "FREE", "STARTER"],
        ["LOCK TABLE t IN SHARE MODE", "FREE", "STARTER"],
        ["VACUUM t", "STARTER", "PRO"],
        ["CLUSTER t USING i", "STARTER", "PRO"],
        ["SET ROLE admin", "ENTERPRISE", undefined],
        ["SET SESSION AUTHORIZATION admin", "ENTERPRISE", undefined],
        ["LISTEN jobs", "PRO", "ENTERPRISE"],
        ["ALTER SYSTEM SET work_mem = '1GB'", "ENTERPRISE", undefined],
        ["LOAD 'plugin'", "ENTERPRISE", undefined]
      ]
      const a = yield* analyzer
      for (const [sql, rejecting, accepting] of cases) {
        assert.strictEqual(yield* ruleFor(rejecting, sql), "statement-command", `${sql} on ${rejecting}`)
        if (accepting !== undefined) assert.isUndefined(yield* ruleFor(accepting, sql), `${sql} on ${accepting}`)
        assert.isUndefined(SqlAnalyzer.evaluate(SqlAnalyzer.adminPolicy, a.analyze(sql)), `${sql} for admin`)
      }
    })
  )

  it.effect("rejects text that does not parse, naming the parser's message", () =>
    Effect.gen(function* () {
      const a = yield* analyzer
      const finding = a.inspect(project("p", "ENTERPRISE"), a.analyze("SELEC 1"))
      assert.strictEqual(finding?.rule, "parse-error")
      assert.include(finding?.detail ?? "", 'syntax error at or near "SELEC"')
      assert.isUndefined(a.inspect(project("p", "FREE"), a.analyze("  -- nothing to run\n")), "an empty text is fine")
    })
  )

  it.effect("applies per-tier overrides and a per-project policy", () =>
    Effect.gen(function* () {
      const a = yield* SqlAnalyzer.make({
        policies: { PRO: { forbiddenCommands: ["TRUNCATE"], forbidRoleChanges: false } },
        policyFor: (p) => (p.id === "platform" ? SqlAnalyzer.adminPolicy : undefined)
      })
      assert.strictEqual(a.inspect(project("p", "PRO"), a.analyze("TRUNCATE t"))?.rule, "statement-command")
      assert.isUndefined(a.inspect(project("p", "PRO"), a.analyze("SET ROLE x")), "the override replaced the list")
      assert.isUndefined(a.inspect(project("platform", "FREE"), a.analyze("CREATE TABLE t (a int)")))
      assert.strictEqual(
        a.inspect(project("other", "FREE"), a.analyze("CREATE TABLE t (a int)"))?.rule,
        "statement-kind"
      )
    })
  )

  it.effect("fingerprints statements with their constants stripped", () =>
    Effect.gen(function* () {
      const a = yield* analyzer
      const one = a.analyze("SELECT * FROM users WHERE id = 1 AND name = 'ann'").fingerprint
      const two = a.analyze("select *  from users where id = 42 and name = 'bob'").fingerprint
      const param = a.analyze("SELECT * FROM users WHERE id = $1 AND name = $2").fingerprint
      const other = a.analyze("SELECT * FROM users WHERE email = 'ann'").fingerprint
      assert.match(one, /^[0-9a-f]{16}$/)
      assert.strictEqual(one, two)
      assert.strictEqual(one, param)
      assert.notStrictEqual(one, other)
    })
  )

  it.effect("names the query of EXPLAIN ANALYZE as the text to estimate", () =>
    Effect.gen(function* () {
      const a = yield* analyzer
      assert.strictEqual(a.analyze("SELECT 1").explainTarget, "SELECT 1")
      assert.strictEqual(
        a.analyze("EXPLAIN /* why */ (ANALYZE, BUFFERS) SELECT * FROM t").explainTarget,
        "SELECT * FROM t"
      )
      assert.strictEqual(
        a.analyze("explain analyze verbose DELETE FROM t WHERE a = 1").explainTarget,
        "DELETE FROM t WHERE a = 1"
      )
      assert.isUndefined(a.analyze("EXPLAIN SELECT 1").explainTarget, "plain EXPLAIN runs nothing")
      assert.isUndefined(a.analyze("CREATE TABLE t (a int)").explainTarget)
      assert.isUndefined(a.analyze("SELECT 1; SELECT 2").explainTarget)
    })
  )

  it.effect("caches analyses by text, up to its size", () =>
    Effect.gen(function* () {
      const a = yield* SqlAnalyzer.make({ cacheSize: 2 })
      const first = a.analyze("SELECT 1")
      assert.strictEqual(a.analyze("SELECT 1"), first, "the same object from the cache")
      a.analyze("SELECT 2")
      a.analyze("SELECT 3")
      assert.deepStrictEqual(a.stats(), { entries: 2, hits: 1, misses: 3 })
      assert.notStrictEqual(a.analyze("SELECT 1"), first, "evicted, analyzed again")
    })
  )

  it.effect(
    "never rejects a statement the migrations run under the admin policy (tenant tiers refuse their roles)",
    () =>
      Effect.gen(function* () {
        const a = yield* analyzer
        const statements = migrationStatements()
        assert.isAbove(statements.length, 50, "the migrations were found and split")
        for (const s of statements) {
          const analysis = a.analyze(s.text)
          const where = `${s.file}:${s.line}`
          assert.isUndefined(analysis.error, `${where} parses`)
          assert.isUndefined(SqlAnalyzer.evaluate(SqlAnalyzer.adminPolicy, analysis), `${where} (admin)`)
        }
      })
  )

  it.effect("never rejects a typical app's statements, even for FREE", () =>
    Effect.gen(function* () {
      for (const sql of appStatements) assert.isUndefined(yield* ruleFor("FREE", sql), sql)
    })
  )
})
