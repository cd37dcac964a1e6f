/**
 * Classification of parsed PostgreSQL statements (the JSON parse trees of libpg_query, PostgreSQL's own parser):
 * kind, command tag, UPDATE/DELETE without WHERE (also inside WITH), and the text the cost estimator should EXPLAIN.
 *
 * Kinds are syntactic: `SELECT f()` is a read even if `f` writes. That is why DO blocks and CALL (code the
 * analyzer cannot see into) are their own commands a policy can forbid.
 *
 * @internal
 */
import { type Hazards, noHazards, walk } from "./sqlHazards.ts"

/**
 * What kind of statement it is (syntactically). Public as `SqlAnalyzer.StatementKind`.
 *
 * @category models
 * @since 0.1.0
 */
export type StatementKind = "read" | "write" | "ddl" | "transaction" | "utility"

/** @internal */
export interface StatementInfo {
  readonly kind: StatementKind
  readonly command: string
  /** An UPDATE, DELETE or MERGE that touches every row, anywhere in the statement (see `sqlHazards.ts`). */
  readonly missingWhere: boolean
  /** What the statement does anywhere in its tree and the code it carries. */
  readonly hazards: Hazards
  /** Whether `EXPLAIN` accepts the statement (and it is worth estimating). */
  readonly explainable: boolean
  /** EXPLAIN ANALYZE runs its query: the query is what gets estimated. */
  readonly explainAnalyze: boolean
}

type Node = Record<string, any>

/** The node type and body of a parse-tree node (`{ SelectStmt: {...} }`). */
export const unwrap = (node: Node | undefined): readonly [string, Node] | undefined => {
  if (node === undefined || node === null) return undefined
  for (const key in node) return [key, node[key] as Node]
  return undefined
}

const modifying: ReadonlySet<string> = new Set(["InsertStmt", "UpdateStmt", "DeleteStmt", "MergeStmt"])

const cteQueries = (body: Node): Array<readonly [string, Node]> => {
  const ctes = (body.withClause as Node | undefined)?.ctes as Array<Node> | undefined
  if (ctes === undefined) return []
  const out: Array<readonly [string, Node]> = []
  for (const cte of ctes) {
    const query = unwrap(unwrap(cte)?.[1].ctequery as Node | undefined)
    if (query !== undefined) out.push(query)
  }
  return out
}

const writesInWith = (body: Node): boolean => {
  for (const [t, b] of cteQueries(body)) if (modifying.has(t) || writesInWith(b)) return true
  return false
}

const transactionCommands: Readonly<Record<string, string>> = {
  TRANS_STMT_BEGIN: "BEGIN",
  TRANS_STMT_START: "START TRANSACTION",
  TRANS_STMT_COMMIT: "COMMIT",
  TRANS_STMT_ROLLBACK: "ROLLBACK",
  TRANS_STMT_SAVEPOINT: "SAVEPOINT",
  TRANS_STMT_RELEASE: "RELEASE",
  TRANS_STMT_ROLLBACK_TO: "ROLLBACK TO SAVEPOINT",
  TRANS_STMT_PREPARE: "PREPARE TRANSACTION",
  TRANS_STMT_COMMIT_PREPARED: "COMMIT PREPARED",
  TRANS_STMT_ROLLBACK_PREPARED: "ROLLBACK PREPARED"
}

const fixedCommands: Readonly<Record<string, readonly [StatementKind, string]>> = {
  InsertStmt: ["write", "INSERT"],
  UpdateStmt: ["write", "UPDATE"],
  DeleteStmt: ["write", "DELETE"],
  MergeStmt: ["write", "MERGE"],
  TruncateStmt: ["write", "TRUNCATE"],
  VariableShowStmt: ["utility", "SHOW"],
  ListenStmt: ["utility", "LISTEN"],
  UnlistenStmt: ["utility", "UNLISTEN"],
  NotifyStmt: ["utility", "NOTIFY"],
  DoStmt: ["utility", "DO"],
  CallStmt: ["utility", "CALL"],
  ClusterStmt: ["utility", "CLUSTER"],
  ReindexStmt: ["utility", "REINDEX"],
  LockStmt: ["utility", "LOCK"],
  LoadStmt: ["utility", "LOAD"],
  CheckPointStmt: ["utility", "CHECKPOINT"],
  DiscardStmt: ["utility", "DISCARD"],
  PrepareStmt: ["utility", "PREPARE"],
  ExecuteStmt: ["utility", "EXECUTE"],
  DeallocateStmt: ["utility", "DEALLOCATE"],
  DeclareCursorStmt: ["utility", "DECLARE CURSOR"],
  ClosePortalStmt: ["utility", "CLOSE"],
  AlterSystemStmt: ["utility", "ALTER SYSTEM"],
  RefreshMatViewStmt: ["utility", "REFRESH MATERIALIZED VIEW"],
  ConstraintsSetStmt: ["transaction", "SET CONSTRAINTS"],
  CreateStmt: ["ddl", "CREATE TABLE"],
  IndexStmt: ["ddl", "CREATE INDEX"],
  ViewStmt: ["ddl", "CREATE VIEW"],
  RuleStmt: ["ddl", "CREATE RULE"],
  CreateTrigStmt: ["ddl", "CREATE TRIGGER"],
  CreatedbStmt: ["ddl", "CREATE DATABASE"],
  DropdbStmt: ["ddl", "DROP DATABASE"],
  CommentStmt: ["ddl", "COMMENT"],
  SecLabelStmt: ["ddl", "SECURITY LABEL"],
  CompositeTypeStmt: ["ddl", "CREATE TYPE"],
  RenameStmt: ["ddl", "ALTER RENAME"],
  ReassignOwnedStmt: ["ddl", "REASSIGN OWNED"],
  ImportForeignSchemaStmt: ["ddl", "IMPORT FOREIGN SCHEMA"]
}

const objectName = (objtype: unknown): string =>
  typeof objtype === "string" ? objtype.replace(/^OBJECT_/, "").replace(/_/g, " ") : "OBJECT"

// Server objects: their renames, owners, privileges, comments and drops are the operator's.
const serverObjects: ReadonlySet<string> = new Set([
  "OBJECT_DATABASE",
  "OBJECT_ROLE",
  "OBJECT_TABLESPACE",
  "OBJECT_PARAMETER_ACL",
  "OBJECT_FOREIGN_SERVER",
  "OBJECT_FDW",
  "OBJECT_LANGUAGE",
  "OBJECT_SUBSCRIPTION",
  "OBJECT_EVENT_TRIGGER"
])

/** A command for statements on the server's objects (`ALTER DATABASE … RENAME`, `GRANT … ON DATABASE`, …). */
const serverObjectCommand = (type: string, body: Node): string | undefined => {
  const objtype = {
    RenameStmt: body.renameType,
    AlterOwnerStmt: body.objectType,
    GrantStmt: body.objtype,
    CommentStmt: body.objtype,
    DropStmt: body.removeType
  }[type]
  if (typeof objtype !== "string" || !serverObjects.has(objtype)) return undefined
  const object = objectName(objtype)
  switch (type) {
    case "GrantStmt":
      return `${body.is_grant === true ? "GRANT" : "REVOKE"} ON ${object}`
    case "CommentStmt":
      return `COMMENT ON ${object}`
    case "DropStmt":
      return `DROP ${object}`
  }
  return `ALTER ${object}`
}

// "AlterTableStmt" -> "ALTER TABLE", "CreateFunctionStmt" -> "CREATE FUNCTION".
const tagOf = (type: string): string =>
  type
    .replace(/Stmt$/, "")
    .replace(/([a-z])([A-Z])/g, "$1 $2")
    .toUpperCase()

const falseWords: ReadonlySet<string> = new Set(["false", "off", "0", "no"])

const isFalse = (arg: Node | undefined): boolean => {
  const v = unwrap(arg)
  if (v === undefined) return false
  const [t, b] = v
  if (t === "String") return falseWords.has(String(b.sval).toLowerCase())
  if (t === "Boolean") return b.boolval !== true
  if (t === "Integer") return !b.ival
  return false
}

const explainsAnalyze = (body: Node): boolean => {
  for (const option of (body.options as Array<Node> | undefined) ?? []) {
    const def = unwrap(option)?.[1]
    if (def !== undefined && (def.defname === "analyze" || def.defname === "analyse")) return !isFalse(def.arg)
  }
  return false
}

const setCommand = (body: Node): readonly [StatementKind, string] => {
  const reset = body.kind === "VAR_RESET" || body.kind === "VAR_RESET_ALL"
  switch (body.name) {
    case "role":
      return ["utility", reset ? "RESET ROLE" : "SET ROLE"]
    case "session_authorization":
      return ["utility", reset ? "RESET SESSION AUTHORIZATION" : "SET SESSION AUTHORIZATION"]
    case "TRANSACTION":
    case "SESSION CHARACTERISTICS":
    case "TRANSACTION SNAPSHOT":
      return ["transaction", "SET TRANSACTION"]
  }
  if (body.kind === "VAR_RESET_ALL") return ["utility", "RESET ALL"]
  return ["utility", reset ? "RESET" : "SET"]
}

/**
 * Classifies one statement (a `RawStmt.stmt` node).
 *
 * @internal
 */
export const classify = (node: Node): StatementInfo => {
  const unwrapped = unwrap(node)
  const hazards = noHazards()
  if (unwrapped === undefined) {
    return {
      kind: "utility",
      command: "UNKNOWN",
      missingWhere: false,
      hazards,
      explainable: false,
      explainAnalyze: false
    }
  }
  const [type, body] = unwrapped
  walk(node, hazards)
  const info = (kind: StatementKind, command: string, explainable = false): StatementInfo => ({
    kind,
    command,
    missingWhere: hazards.missingWhere,
    hazards,
    explainable,
    explainAnalyze: false
  })
  const onServer = serverObjectCommand(type, body)
  if (onServer !== undefined) return info("ddl", onServer)
  switch (type) {
    case "SelectStmt":
      if (body.intoClause !== undefined) return info("ddl", "SELECT INTO", true)
      return info(writesInWith(body) ? "write" : "read", "SELECT", true)
    case "InsertStmt":
    case "UpdateStmt":
    case "DeleteStmt":
    case "MergeStmt":
      return info("write", fixedCommands[type]![1], true)
    case "CopyStmt":
      return info(body.is_from === true ? "write" : "read", "COPY")
    case "TransactionStmt":
      return info("transaction", transactionCommands[String(body.kind)] ?? "TRANSACTION")
    case "VariableSetStmt": {
      const [kind, command] = setCommand(body)
      return info(kind, command)
    }
    case "VacuumStmt":
      return info("utility", body.is_vacuumcmd === true ? "VACUUM" : "ANALYZE")
    case "FetchStmt":
      return info("utility", body.ismove === true ? "MOVE" : "FETCH")
    case "ExplainStmt": {
      const inner = classify(body.query as Node)
      // A plain EXPLAIN runs nothing: what its query would do does not count, only its own options.
      if (!explainsAnalyze(body)) {
        const own = noHazards()
        walk({ ExplainStmt: { options: body.options } }, own)
        return { ...info("utility", "EXPLAIN"), missingWhere: false, hazards: own }
      }
      return {
        kind: inner.kind,
        command: "EXPLAIN ANALYZE",
        missingWhere: inner.missingWhere,
        hazards,
        explainable: inner.explainable,
        explainAnalyze: true
      }
    }
    case "CreateTableAsStmt":
      return info("ddl", body.objtype === "OBJECT_MATVIEW" ? "CREATE MATERIALIZED VIEW" : "CREATE TABLE AS", true)
    case "CreateFunctionStmt":
      return info("ddl", body.is_procedure === true ? "CREATE PROCEDURE" : "CREATE FUNCTION")
    case "DropStmt":
      return info("ddl", `DROP ${objectName(body.removeType)}`)
    case "DefineStmt":
      return info("ddl", `CREATE ${objectName(body.kind)}`)
    case "GrantStmt":
      return info("ddl", body.is_grant === true ? "GRANT" : "REVOKE")
    case "GrantRoleStmt":
      return info("ddl", body.is_grant === true ? "GRANT ROLE" : "REVOKE ROLE")
  }
  const fixed = fixedCommands[type]
  if (fixed !== undefined) return info(fixed[0], fixed[1])
  if (/^(Create|Alter|Drop|Define)/.test(type)) return info("ddl", tagOf(type))
  return info("utility", tagOf(type))
}

/** A scanner token (libpg_query's `scan`). */
export interface Token {
  readonly start: number
  readonly text: string
  readonly tokenName: string
}

/**
 * Where the query of an `EXPLAIN` statement starts, from its tokens: after the EXPLAIN keyword, a parenthesized
 * option list or the bare ANALYZE/VERBOSE keywords, and comments. `-1` when the shape is not recognised.
 *
 * @internal
 */
export const explainedQueryStart = (tokens: ReadonlyArray<Token>): number => {
  let i = 0
  const skipComments = () => {
    while (i < tokens.length && tokens[i]!.tokenName.endsWith("_COMMENT")) i++
  }
  skipComments()
  if (tokens[i]?.text.toUpperCase() !== "EXPLAIN") return -1
  i++
  skipComments()
  if (tokens[i]?.text === "(") {
    let depth = 0
    for (; i < tokens.length; i++) {
      const text = tokens[i]!.text
      if (text === "(") depth++
      else if (text === ")" && --depth === 0) {
        i++
        break
      }
    }
  } else {
    while (i < tokens.length) {
      const word = tokens[i]!.text.toUpperCase()
      if (word === "ANALYZE" || word === "ANALYSE" || word === "VERBOSE") i++
      else if (tokens[i]!.tokenName.endsWith("_COMMENT")) i++
      else break
    }
  }
  skipComments()
  return i < tokens.length ? tokens[i]!.start : -1
}
