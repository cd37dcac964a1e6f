/**
 * What a statement is, for the guard: the operation its first keyword names. Reads (`select`, `values`, `table`,
 * `show`) are idempotent and retried on infrastructure errors; everything else is not, and a failure after sending
 * becomes `UnknownOutcome`. Decided for every statement, so the common `select` is recognised without allocating.
 *
 * @since 0.1.0
 */
import type * as EngineContract from "@tenantpool/core/Engine"

/** The operations of the engine, one static description each (the guard labels metrics and spans with them). */
export interface Ops<B> {
  readonly select: EngineContract.Operation<B>
  readonly insert: EngineContract.Operation<B>
  readonly update: EngineContract.Operation<B>
  readonly delete: EngineContract.Operation<B>
  readonly merge: EngineContract.Operation<B>
  readonly with: EngineContract.Operation<B>
  readonly copy: EngineContract.Operation<B>
  readonly call: EngineContract.Operation<B>
  readonly ddl: EngineContract.Operation<B>
  readonly other: EngineContract.Operation<B>
  readonly transaction: EngineContract.Operation<B>
  readonly stream: EngineContract.Operation<B>
  readonly reserve: EngineContract.Operation<B>
  readonly ping: EngineContract.Operation<B>
}

/** The operations, with reads idempotent or not (`idempotentReads`). */
export const makeOps = <B>(idempotentReads: boolean): Ops<B> => {
  const op = (name: string, idempotent: boolean): EngineContract.Operation<B> => ({ name, idempotent })
  return {
    select: op("select", idempotentReads),
    insert: op("insert", false),
    update: op("update", false),
    delete: op("delete", false),
    merge: op("merge", false),
    with: op("with", false),
    copy: op("copy", false),
    call: op("call", false),
    ddl: op("ddl", false),
    other: op("other", false),
    transaction: op("transaction", false),
    stream: op("stream", true),
    reserve: op("reserve", true),
    ping: op("ping", true)
  }
}

// Comments as PostgreSQL reads them: `--` ends at a newline or a carriage return, and block comments nest
// (`/* a /* b */ c */` is one comment). Each returns the index after the comment that starts at `i`.
const endOfLineComment = (sql: string, i: number): number => {
  const n = sql.length
  while (i < n && sql.charCodeAt(i) !== 10 && sql.charCodeAt(i) !== 13) i++
  return i
}

const endOfBlockComment = (sql: string, i: number): number => {
  const n = sql.length
  let depth = 0
  do {
    if (sql.startsWith("/*", i)) {
      depth++
      i += 2
    } else if (sql.startsWith("*/", i)) {
      depth--
      i += 2
    } else i++
  } while (depth > 0 && i < n)
  return i
}

/** The first keyword of a statement, lower-cased (after white space, comments and opening parentheses). */
export const keywordAt = (sql: string): string => {
  const n = sql.length
  let i = 0
  while (i < n) {
    const c = sql.charCodeAt(i)
    // PostgreSQL's white space: space, tab, newline, carriage return, form feed, vertical tab.
    if (c === 32 || c === 9 || c === 10 || c === 13 || c === 12 || c === 11 || c === 40) i++
    else if (c === 45 && sql.charCodeAt(i + 1) === 45) i = endOfLineComment(sql, i)
    else if (c === 47 && sql.charCodeAt(i + 1) === 42) i = endOfBlockComment(sql, i)
    else break
  }
  let j = i
  while (j < n && j - i < 10) {
    const c = sql.charCodeAt(j) | 32
    if (c < 97 || c > 122) break
    j++
  }
  return sql.slice(i, j).toLowerCase()
}

/** `select` written in any case, at `i`, followed by a non-letter: the common case, decided without allocating. */
const isSelectAt = (sql: string, i: number): boolean =>
  (sql.charCodeAt(i) | 32) === 115 &&
  (sql.charCodeAt(i + 1) | 32) === 101 &&
  (sql.charCodeAt(i + 2) | 32) === 108 &&
  (sql.charCodeAt(i + 3) | 32) === 101 &&
  (sql.charCodeAt(i + 4) | 32) === 99 &&
  (sql.charCodeAt(i + 5) | 32) === 116 &&
  !((sql.charCodeAt(i + 6) | 32) >= 97 && (sql.charCodeAt(i + 6) | 32) <= 122)

const ddl: ReadonlySet<string> = new Set([
  "create",
  "alter",
  "drop",
  "truncate",
  "comment",
  "grant",
  "revoke",
  "refresh",
  "reindex",
  "cluster",
  "vacuum",
  "analyze"
])

/** The operation a statement is. */
export const opFor = <B>(ops: Ops<B>, sql: string): EngineContract.Operation<B> => {
  if (isSelectAt(sql, 0)) return ops.select
  const keyword = keywordAt(sql)
  switch (keyword) {
    case "select":
    case "values":
    case "table":
    case "show":
      return ops.select
    case "insert":
    case "update":
    case "delete":
    case "merge":
    case "with":
    case "copy":
    case "call":
      return ops[keyword]
  }
  return ddl.has(keyword) ? ops.ddl : ops.other
}

const sessionKeywords: ReadonlySet<string> = new Set(["set", "prepare", "deallocate", "discard", "listen", "load"])
const transactionScoped = /^[\s(]*set\s+(local|transaction|constraints)\b/i
// CREATE [GLOBAL | LOCAL] TEMP[ORARY] | CREATE [OR REPLACE] TEMP VIEW | CREATE [UNLOGGED]… is not temporary.
const temporary = /^[\s(]*create\s+(or\s+replace\s+)?((global|local)\s+)?(temp|temporary)\s/i
// `pg_temp.x`, `pg_temp_3.x` (not `my_pg_temp_log`, a name of its own).
const inTempSchema = /\bpg_temp/i
/** Comments (nested `/* … *\/` as PostgreSQL reads them, and `--` lines) as white space. */
const withoutComments = (sql: string): string => {
  let out = ""
  let i = 0
  while (i < sql.length) {
    const next = sql.startsWith("/*", i)
      ? endOfBlockComment(sql, i)
      : sql.startsWith("--", i)
        ? endOfLineComment(sql, i)
        : -1
    if (next < 0) out += sql[i++]
    else {
      out += " "
      i = next
    }
  }
  return out
}

/**
 * Whether a statement leaves state on its session by its first keyword (`SET` without `LOCAL`, `PREPARE`,
 * `DEALLOCATE`, `DISCARD`, `LISTEN`, `LOAD`, and `CREATE TEMP …`, whose objects live as long as the session): on a
 * connection shared with other projects it would reach their statements. Only statements `opFor` classes as DDL or
 * does not know are looked at, so reads and writes pay nothing. Functions that do the same (`set_config(…, false)`)
 * and `SELECT … INTO TEMP` need the protections' analyzer.
 */
export const leavesSessionState = (sql: string): boolean => {
  const keyword = keywordAt(sql)
  // Comments may sit anywhere between CREATE and TEMP; a table in the `pg_temp` schema is temporary too.
  if (keyword === "create") return temporary.test(withoutComments(sql)) || inTempSchema.test(sql)
  return sessionKeywords.has(keyword) && !(keyword === "set" && transactionScoped.test(sql))
}
