// The statement splitter on tricky inputs: quotes, dollar quotes, comments, BEGIN ATOMIC, and our own migrations.
import { readdirSync, readFileSync } from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { assert, describe, it } from "@effect/vitest"
import * as Result from "effect/Result"
import { splitScript, splitSql, type SqlScript, type SqlStatement } from "../src/internal/sqlSplit.ts"

const migrationsDirectory = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../migrations")

const split = (source: string): ReadonlyArray<SqlStatement> => {
  const result = splitSql(source)
  if (Result.isFailure(result)) throw new Error(`line ${result.failure.line}: ${result.failure.reason}`)
  return result.success
}
const script = (source: string): SqlScript => {
  const result = splitScript(source)
  if (Result.isFailure(result)) throw new Error(`line ${result.failure.line}: ${result.failure.reason}`)
  return result.success
}
const texts = (source: string): ReadonlyArray<string> => split(source).map((s) => s.text)
const failure = (source: string) => {
  const result = splitSql(source)
  if (Result.isSuccess(result)) throw new Error(`expected a failure, got ${JSON.stringify(result.success)}`)
  return result.failure
}

describe("splitSql", () => {
  it("cuts at top-level semicolons and reports each statement's first line", () => {
    const statements = split("SELECT 1;\n\nSELECT\n  2;\nSELECT 3")
    assert.deepStrictEqual(statements, [
      { text: "SELECT 1", line: 1 },
      { text: "SELECT\n  2", line: 3 },
      { text: "SELECT 3", line: 5 }
    ])
  })

  it("drops empty statements and comment-only tails, and starts a statement at its first token", () => {
    const statements = split("-- header\n;;\n/* doc */ -- more\nCREATE TABLE t (a int); -- trailing\n/* end */\n")
    assert.deepStrictEqual(statements, [{ text: "CREATE TABLE t (a int)", line: 4 }])
  })

  it("keeps semicolons inside string literals, with doubled quotes", () => {
    assert.deepStrictEqual(texts("SELECT 'a;b', 'it''s; fine';SELECT ';'"), [
      "SELECT 'a;b', 'it''s; fine'",
      "SELECT ';'"
    ])
  })

  it("honours backslash escapes only in E'' strings", () => {
    assert.deepStrictEqual(texts("SELECT E'a\\';b';SELECT 'c\\';SELECT 2"), [
      "SELECT E'a\\';b'",
      "SELECT 'c\\'",
      "SELECT 2"
    ])
    assert.deepStrictEqual(texts("SELECT e'\\\\';SELECT 3"), ["SELECT e'\\\\'", "SELECT 3"])
  })

  it("treats B'', X'', N'' and U&'' as ordinary literals", () => {
    assert.deepStrictEqual(texts("SELECT X'1;F', B'0;1', N'x;y', U&'d\\0061;t';SELECT 1"), [
      "SELECT X'1;F', B'0;1', N'x;y', U&'d\\0061;t'",
      "SELECT 1"
    ])
  })

  it("keeps semicolons inside quoted identifiers", () => {
    assert.deepStrictEqual(texts('CREATE TABLE "a;""b" (x int);SELECT 1'), ['CREATE TABLE "a;""b" (x int)', "SELECT 1"])
  })

  it("keeps dollar-quoted bodies whole, whatever they contain", () => {
    const body =
      "CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $fn$\nBEGIN\n  -- ; 'x\n  RETURN 1; /* ; */\nEND\n$fn$"
    assert.deepStrictEqual(texts(`${body};\nSELECT 2;`), [body, "SELECT 2"])
    const nested = "DO $outer$ BEGIN EXECUTE $$SELECT ';'$$; PERFORM $q$ $$ ; $q$; END $outer$"
    assert.deepStrictEqual(texts(`${nested};SELECT 3`), [nested, "SELECT 3"])
  })

  it("does not take $1 or identifiers with $ for dollar quotes", () => {
    assert.deepStrictEqual(texts("PREPARE p AS SELECT $1;SELECT a$b$c FROM t;SELECT 1"), [
      "PREPARE p AS SELECT $1",
      "SELECT a$b$c FROM t",
      "SELECT 1"
    ])
  })

  it("ignores quotes and semicolons in comments, including nested block comments", () => {
    assert.deepStrictEqual(texts("SELECT 1 -- it's; not code\n;/* a /* nested; ' */ still; $$ */SELECT 2;"), [
      "SELECT 1 -- it's; not code",
      "SELECT 2"
    ])
  })

  it("does not split inside parentheses, as psql does (CREATE RULE ... DO (a; b))", () => {
    const rule = "CREATE RULE r AS ON INSERT TO t DO ALSO (INSERT INTO a VALUES (1); INSERT INTO b VALUES (2))"
    assert.deepStrictEqual(texts(`${rule};SELECT 1`), [rule, "SELECT 1"])
  })

  it("keeps SQL-standard BEGIN ATOMIC bodies whole, with CASE ... END inside", () => {
    const fn =
      "CREATE OR REPLACE FUNCTION f(x int) RETURNS int LANGUAGE sql BEGIN ATOMIC\n" +
      "  SELECT CASE WHEN x > 0 THEN 1 ELSE 0 END;\n  SELECT 2;\nEND"
    assert.deepStrictEqual(texts(`${fn};\nSELECT 3;`), [fn, "SELECT 3"])
    // Outside a function definition, BEGIN and END are ordinary statements.
    assert.deepStrictEqual(texts("BEGIN;SELECT 1;END;"), ["BEGIN", "SELECT 1", "END"])
  })

  it("does not read words inside numbers (1e5, 0x1F)", () => {
    assert.deepStrictEqual(texts("SELECT 1e5, 0x1F, 1.5e-3;SELECT 1"), ["SELECT 1e5, 0x1F, 1.5e-3", "SELECT 1"])
  })

  it("reports unterminated strings, identifiers, dollar quotes and comments with their line", () => {
    assert.deepStrictEqual(failure("SELECT 1;\nSELECT 'abc;"), { line: 2, reason: "unterminated string literal" })
    assert.deepStrictEqual(failure('SELECT "abc'), { line: 1, reason: "unterminated quoted identifier" })
    assert.deepStrictEqual(failure("\n\nDO $body$ BEGIN END $bod$;"), {
      line: 3,
      reason: "unterminated dollar-quoted string $body$"
    })
    assert.deepStrictEqual(failure("SELECT 1; /* a /* b */\n"), { line: 1, reason: "unterminated /* comment" })
    assert.deepStrictEqual(failure("SELECT E'\\';"), { line: 1, reason: "unterminated string literal" })
  })

  it("refuses psql meta-commands, which only psql understands", () => {
    const result = failure("SELECT 1;\n\\set ON_ERROR_STOP on\nSELECT 2;")
    assert.strictEqual(result.line, 2)
    assert.include(result.reason, "psql meta-command")
  })

  it("splits the repository's migrations into statements that each start with a known command", () => {
    const files = readdirSync(migrationsDirectory).filter((f) => f.endsWith(".sql"))
    assert.isAtLeast(files.length, 3)
    for (const file of files) {
      const { metaCommands, statements } = script(readFileSync(path.join(migrationsDirectory, file), "utf8"))
      // psql stops at the first error; the spec runs the files with a bare `psql -f`.
      assert.deepStrictEqual(metaCommands[0], { text: "\\set ON_ERROR_STOP on", line: 1 }, file)
      assert.isAtLeast(statements.length, 5, file)
      for (const statement of statements) {
        assert.match(
          statement.text,
          /^(CREATE|ALTER|DO|REVOKE|GRANT|COMMENT|SET ROLE|RESET ROLE)\b/,
          `${file}:${statement.line} starts with ${statement.text.slice(0, 40)}`
        )
      }
      // Every DO block and function body ends with its own closing dollar quote.
      for (const statement of statements.filter((s) => /^(DO|CREATE OR REPLACE FUNCTION)\b/.test(s.text))) {
        const open = /\$[a-z_]*\$/.exec(statement.text)
        assert.isNotNull(open, `${file}:${statement.line}`)
        assert.strictEqual(statement.text.split(open![0]).length, 3, `${file}:${statement.line} has one body`)
      }
    }
  })
})

describe("splitScript", () => {
  it("returns the psql meta-commands on lines of their own between statements, with their lines", () => {
    const result = script("\\set ON_ERROR_STOP on\nSELECT 1;\n  \\ir 001_a.sql\nSELECT '\\x';\n\\ir psql/record.sql")
    assert.deepStrictEqual(result.metaCommands, [
      { text: "\\set ON_ERROR_STOP on", line: 1 },
      { text: "\\ir 001_a.sql", line: 3 },
      { text: "\\ir psql/record.sql", line: 5 }
    ])
    assert.deepStrictEqual(
      result.statements.map((s) => [s.text, s.line]),
      [
        ["SELECT 1", 2],
        ["SELECT '\\x'", 4]
      ]
    )
  })

  it("refuses a meta-command inside a statement", () => {
    const result = splitScript("SELECT 1\n\\gset\n;")
    assert.isTrue(Result.isFailure(result))
    if (Result.isFailure(result)) {
      assert.strictEqual(result.failure.line, 2)
      assert.include(result.failure.reason, "inside a statement")
    }
  })
})
