/**
 * What a statement does wherever in its parse tree it does it: a deep walk over libpg_query's tree (CTEs,
 * subqueries, PREPARE, rules, default expressions, operator and trigger definitions) and into the code it carries
 * (the SQL and PL/pgSQL bodies of functions and DO blocks, parsed with libpg_query's PL/pgSQL parser), so that a
 * role change, a dangerous function or a whole-table write is found whichever syntax carries it.
 *
 * Found:
 * - role and authorization changes: `SET [LOCAL] ROLE`, `SET SESSION AUTHORIZATION`, their `RESET`s, and
 *   `set_config('role' | 'session_authorization', …)` — or `set_config` with a name the parser cannot see (a
 *   parameter, an expression), which may be either;
 * - session settings: `SET` without `LOCAL`, `set_config(…, false)` (or a non-constant `is_local`), writes to
 *   `pg_settings`, temporary objects (`TEMP`, or named in a `pg_temp` schema), cursors `WITH HOLD`, `SET SESSION
 *   CHARACTERISTICS`, and LISTEN/PREPARE/DEALLOCATE/DISCARD inside code: they stay on the pooled session after the
 *   statement (writes to `pg_settings` and `set_config` named as a function count as role changes too);
 * - functions called or referenced (in expressions, and as the function of an operator, trigger, cast, aggregate);
 * - dynamic SQL the analyzer cannot see into: PL/pgSQL `EXECUTE`, `FOR … IN EXECUTE`, `OPEN … FOR EXECUTE`, bodies
 *   in other languages, `ts_rewrite` with a query, EXPLAIN with a repeated option (PostgreSQL takes the last, the
 *   classifier the first), and code nested more than 8 deep (DO in DO, function bodies), which is not read;
 * - `COPY` to or from a server file or program;
 * - relations that show other sessions' statements (`pg_stat_activity`, `pg_stat_statements`);
 * - whole-table writes: UPDATE and DELETE without WHERE, TRUNCATE, and MERGE whose matched rows are updated or
 *   deleted with no condition of their own and an ON clause that does not relate the source to the target (a
 *   constant, or only the target's columns).
 *
 * Nodes in typed fields are not wrapped in their type (`CreateCastStmt.func` is an ObjectWithArgs body, `relation`
 * a RangeVar body): the walk recognises RangeVars and ObjectWithArgs by shape.
 *
 * @internal
 */
import { parsePlPgSQLSync, parseSync } from "libpg-query"

type Node = Record<string, any>

/** @internal */
export interface Hazards {
  /** How a role or authorization change is carried, or undefined. */
  roleChange: string | undefined
  /** A session setting that stays on the connection (`search_path`, `statement_timeout`, …), or undefined. */
  sessionSetting: string | undefined
  /** Functions called or referenced (lower case, without schema). */
  readonly functions: Set<string>
  /** Code the analyzer cannot see into, or undefined. */
  dynamicSql: string | undefined
  /** COPY to or from a server file or program. */
  serverFiles: boolean
  /** UPDATE or DELETE without WHERE, TRUNCATE, or an unconditioned MERGE, anywhere. */
  missingWhere: boolean
  /** A relation that shows other sessions' statements (`pg_stat_activity`, …), or undefined. */
  otherSessions: string | undefined
}

/** @internal */
export const noHazards = (): Hazards => ({
  roleChange: undefined,
  sessionSetting: undefined,
  functions: new Set(),
  dynamicSql: undefined,
  serverFiles: false,
  missingWhere: false,
  otherSessions: undefined
})

const roleSettings: ReadonlySet<string> = new Set(["role", "session_authorization"])

// DefElem names whose argument names a function (CREATE OPERATOR, AGGREGATE, TYPE, CAST's WITH FUNCTION, …).
const functionOptions: ReadonlySet<string> = new Set([
  "function",
  "procedure",
  "sfunc",
  "finalfunc",
  "combinefunc",
  "serialfunc",
  "deserialfunc",
  "msfunc",
  "minvfunc",
  "mfinalfunc",
  "input",
  "output",
  "receive",
  "send",
  "typmod_in",
  "typmod_out",
  "analyze",
  "subscript",
  "restrict",
  "join",
  "handler",
  "validator",
  "inline",
  "canonical",
  "subtype_diff"
])

// Code nested deeper than this (DO in DO, function bodies that create functions) is refused, not read.
const maxCodeDepth = 8
// Relations that show other sessions' statements.
const otherSessionRelations: ReadonlySet<string> = new Set(["pg_stat_activity", "pg_stat_statements"])
const cursorWithHold = 0x0020
const temporary = "a temporary object that lives as long as the session"

const lastName = (names: unknown): string | undefined => {
  if (!Array.isArray(names) || names.length === 0) return undefined
  const last = names[names.length - 1] as Node
  const sval = last?.String?.sval
  return typeof sval === "string" ? sval.toLowerCase() : undefined
}

const constString = (node: Node | undefined): string | undefined => {
  const c = node?.A_Const
  if (c === undefined) {
    // `'role'::text`
    const cast = node?.TypeCast
    return cast === undefined ? undefined : constString(cast.arg)
  }
  const s = c.sval?.sval
  return typeof s === "string" ? s.toLowerCase() : undefined
}

const constTrue = (node: Node | undefined): boolean => {
  const c = node?.A_Const ?? node?.TypeCast?.arg?.A_Const
  if (c === undefined) return false
  if (c.boolval !== undefined) return c.boolval.boolval === true
  const s = c.sval?.sval
  return typeof s === "string" && ["true", "t", "on", "yes", "1"].includes(s.toLowerCase())
}

const setConfig = (call: Node, h: Hazards) => {
  const args = (call.args as Array<Node> | undefined) ?? []
  const name = constString(args[0])
  if (name === undefined) h.roleChange ??= "set_config with a setting name computed at run time"
  else if (roleSettings.has(name)) h.roleChange ??= `set_config('${name}', …)`
  else if (!constTrue(args[2])) h.sessionSetting ??= `set_config('${name}', …, false) for the session`
}

const hasColumnOf = (node: unknown, names: ReadonlySet<string>, qualifiedOnly: { other: boolean }): boolean => {
  if (node === null || typeof node !== "object") return false
  if (Array.isArray(node)) return node.some((n) => hasColumnOf(n, names, qualifiedOnly))
  const ref = (node as Node).ColumnRef
  if (ref !== undefined) {
    const fields = ref.fields as Array<Node>
    const first = fields.length > 1 ? fields[0]?.String?.sval : undefined
    if (first === undefined || !names.has(String(first).toLowerCase())) qualifiedOnly.other = true
    return true
  }
  let found = false
  for (const key in node as Node) if (hasColumnOf((node as Node)[key], names, qualifiedOnly)) found = true
  return found
}

/** A MERGE that updates or deletes matched rows with no condition of their own and an ON clause that relates nothing. */
const unconditionedMerge = (body: Node): boolean => {
  const clauses = ((body.mergeWhenClauses as Array<Node> | undefined) ?? []).map((c) => c.MergeWhenClause as Node)
  const blind = clauses.some(
    (c) =>
      c.matchKind === "MERGE_WHEN_MATCHED" &&
      (c.commandType === "CMD_UPDATE" || c.commandType === "CMD_DELETE") &&
      c.condition === undefined
  )
  if (!blind) return false
  const target = body.relation as Node
  const names = new Set<string>([String(target.relname).toLowerCase()])
  if (target.alias?.aliasname !== undefined) names.add(String(target.alias.aliasname).toLowerCase())
  const other = { other: false }
  const hasColumns = hasColumnOf(body.joinCondition, names, other)
  // No column at all (`ON true`, `ON 1 = 1`), or only the target's own: every matched row goes.
  return !hasColumns || !other.other
}

const bodyOf = (options: unknown): string | undefined => {
  for (const o of (options as Array<Node> | undefined) ?? []) {
    const def = o.DefElem as Node | undefined
    if (def?.defname !== "as") continue
    const arg = def.arg as Node
    if (typeof arg?.String?.sval === "string") return arg.String.sval
    const items = arg?.List?.items as Array<Node> | undefined
    if (items !== undefined && typeof items[0]?.String?.sval === "string") return items[0].String.sval
  }
  return undefined
}

const languageOf = (options: unknown): string | undefined => {
  for (const o of (options as Array<Node> | undefined) ?? []) {
    const def = o.DefElem as Node | undefined
    if (def?.defname === "language") return String(def.arg?.String?.sval ?? "").toLowerCase()
  }
  return undefined
}

/** Walks SQL text (a function body, a PL/pgSQL expression); text that does not parse is dynamic. */
const walkText = (sql: string, h: Hazards, depth: number): void => {
  let parsed: { stmts: Array<{ stmt?: Node }> }
  try {
    parsed = parseSync(sql) as unknown as typeof parsed
  } catch {
    // A PL/pgSQL expression (`x + 1`) or assignment (`x := f()`) is not a statement: read its value as one.
    const value = sql.replace(/^\s*[\w."[\]]+\s*:?=(?!=)\s*/, "")
    try {
      parsed = parseSync(`SELECT ${value}`) as unknown as typeof parsed
    } catch {
      h.dynamicSql ??= "a body the parser cannot read"
      return
    }
  }
  for (const s of parsed.stmts) walk(s.stmt, h, depth + 1)
}

const dynamicPlpgsql: ReadonlySet<string> = new Set(["PLpgSQL_stmt_dynexecute", "PLpgSQL_stmt_dynfors"])

/** Walks a PL/pgSQL parse tree: every embedded query is SQL; EXECUTE of a string is dynamic. */
const walkPlpgsql = (node: unknown, h: Hazards, depth: number): void => {
  if (node === null || typeof node !== "object") return
  if (Array.isArray(node)) {
    for (const n of node) walkPlpgsql(n, h, depth)
    return
  }
  for (const key in node as Node) {
    const value = (node as Node)[key]
    if (dynamicPlpgsql.has(key) || (key === "PLpgSQL_stmt_open" && value?.dynquery !== undefined)) {
      h.dynamicSql ??= "PL/pgSQL EXECUTE of a string"
    }
    if (key === "PLpgSQL_expr" && typeof value?.query === "string") walkText(value.query, h, depth)
    else walkPlpgsql(value, h, depth)
  }
}

const walkCode = (language: string | undefined, body: string, h: Hazards, depth: number, asDo: boolean): void => {
  if (depth >= maxCodeDepth) {
    h.dynamicSql ??= `code nested more than ${maxCodeDepth} deep`
    return
  }
  if (language === "sql") return walkText(body, h, depth)
  if (language === undefined || language === "plpgsql") {
    let tag = "$tp$"
    while (body.includes(tag)) tag = `$tp${tag.length}$`
    const wrapped = asDo
      ? `CREATE FUNCTION tp_do() RETURNS void LANGUAGE plpgsql AS ${tag}${body}${tag}`
      : `CREATE FUNCTION tp_fn() RETURNS void LANGUAGE plpgsql AS ${tag}${body}${tag}`
    try {
      walkPlpgsql(parsePlPgSQLSync(wrapped), h, depth)
    } catch {
      h.dynamicSql ??= "a PL/pgSQL body the parser cannot read"
    }
    return
  }
  h.dynamicSql ??= `a body in ${language}`
}

/**
 * Walks one parse-tree node and everything under it, adding what it finds to `h`.
 *
 * @internal
 */
export const walk = (node: unknown, h: Hazards, depth = 0): void => {
  if (node === null || typeof node !== "object") return
  if (Array.isArray(node)) {
    // A name qualified by a temporary schema (`pg_temp.items`, `pg_temp_3.f`) outside a column reference.
    const schema = node.length > 1 ? (node[0] as Node | null)?.String?.sval : undefined
    if (typeof schema === "string" && schema.toLowerCase().startsWith("pg_temp")) h.sessionSetting ??= temporary
    for (const n of node) walk(n, h, depth)
    return
  }
  for (const key in node as Node) {
    const body = (node as Node)[key]
    // A column reference (`pg_temp.id` is an alias's column) names no object.
    if (key === "ColumnRef") continue
    if (body !== null && typeof body === "object" && !Array.isArray(body)) visit(shapeOf(key, body), body, h, depth)
    walk(body, h, depth)
  }
}

/** The node type of a body, recognising the bare RangeVars and ObjectWithArgs of typed fields by their shape. */
const shapeOf = (key: string, body: Node): string =>
  typeof body.relname === "string" ? "RangeVar" : Array.isArray(body.objname) ? "ObjectWithArgs" : key

/** A function named, called or not: `set_config` and `ts_rewrite` named as a function are what they can do. */
const named = (name: string | undefined, h: Hazards): void => {
  if (name === undefined) return
  h.functions.add(name)
  if (name === "set_config") h.roleChange ??= "set_config named as an aggregate's, cast's or operator's function"
  if (name === "ts_rewrite") h.dynamicSql ??= "ts_rewrite named as a function"
}

/** A write to `pg_settings` is `set_config(name, setting, false)`, for any setting, role included. */
const writes = (body: Node, h: Hazards): void => {
  if (String(body.relation?.relname).toLowerCase() !== "pg_settings") return
  h.sessionSetting ??= "writing pg_settings (set_config for the session)"
  h.roleChange ??= "writing pg_settings"
}

const visit = (type: string, body: Node, h: Hazards, depth: number): void => {
  switch (type) {
    case "UpdateStmt":
    case "DeleteStmt":
      if (body.whereClause === undefined) h.missingWhere = true
      return writes(body, h)
    case "MergeStmt":
      if (unconditionedMerge(body)) h.missingWhere = true
      return writes(body, h)
    case "InsertStmt":
      return writes(body, h)
    case "TruncateStmt":
      h.missingWhere = true
      return
    case "RangeVar": {
      const relname = String(body.relname).toLowerCase()
      const schema = String(body.schemaname ?? "").toLowerCase()
      if (body.relpersistence === "t" || schema.startsWith("pg_temp")) h.sessionSetting ??= temporary
      if (otherSessionRelations.has(relname)) h.otherSessions ??= relname
      return
    }
    case "ExplainStmt": {
      const names = ((body.options as Array<Node> | undefined) ?? []).map((o) => String(o.DefElem?.defname))
      if (new Set(names).size !== names.length) h.dynamicSql ??= "EXPLAIN with a repeated option"
      return
    }
    case "DeclareCursorStmt":
      if ((Number(body.options) & cursorWithHold) !== 0) h.sessionSetting ??= "a cursor WITH HOLD"
      return
    case "ListenStmt":
    case "PrepareStmt":
    case "DeallocateStmt":
    case "DiscardStmt":
      if (depth > 0) h.sessionSetting ??= `${type.replace(/Stmt$/, "").toUpperCase()} inside code`
      return
    case "VariableSetStmt": {
      const name = String(body.name ?? "").toLowerCase()
      if (body.name === "SESSION CHARACTERISTICS") h.sessionSetting ??= "SET SESSION CHARACTERISTICS"
      else if (roleSettings.has(name)) h.roleChange ??= `${body.kind === "VAR_RESET" ? "RESET" : "SET"} ${name}`
      else if (body.is_local !== true && (body.kind === "VAR_SET_VALUE" || body.kind === "VAR_SET_CURRENT")) {
        h.sessionSetting ??= `SET ${name} for the session`
      }
      return
    }
    case "FuncCall": {
      const name = lastName(body.funcname)
      if (name === undefined) return
      h.functions.add(name)
      if (name === "set_config") setConfig(body, h)
      // ts_rewrite(query, select text) runs its second argument as a query.
      if (name === "ts_rewrite" && ((body.args as Array<unknown> | undefined) ?? []).length !== 3) {
        h.dynamicSql ??= "ts_rewrite with a query"
      }
      return
    }
    case "CreateTrigStmt":
    case "CreateEventTrigStmt":
      return named(lastName(body.funcname), h)
    case "ObjectWithArgs":
      return named(lastName(body.objname), h)
    case "DefElem":
      if (functionOptions.has(String(body.defname))) {
        named(lastName(body.arg?.TypeName?.names ?? body.arg?.List?.items), h)
      }
      return
    case "CopyStmt":
      if (body.filename !== undefined || body.is_program === true) h.serverFiles = true
      return
    case "DoStmt": {
      const code = bodyOf(body.args)
      if (code !== undefined) walkCode(languageOf(body.args), code, h, depth, true)
      return
    }
    case "CreateFunctionStmt": {
      // A BEGIN ATOMIC body is already in the tree (`sql_body`); a string body is parsed here.
      const code = bodyOf(body.options)
      if (code !== undefined) walkCode(languageOf(body.options), code, h, depth, false)
      return
    }
  }
}
