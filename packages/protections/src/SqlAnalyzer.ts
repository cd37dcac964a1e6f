/**
 * The SQL query analyzer: PostgreSQL's own parser (libpg_query, compiled to WebAssembly, through the `libpg-query`
 * package) classifies each statement, and a per-tier policy rejects what the tier may not run.
 *
 * What it finds, per statement text:
 * - the statements (one is expected: the extended protocol the engine speaks takes one anyway), each with its kind
 *   (`read` / `write` / `ddl` / `transaction` / `utility`, syntactic: `SELECT f()` is a read) and command tag
 *   (`SELECT`, `COPY`, `SET ROLE`, `CREATE TABLE`, `EXPLAIN ANALYZE`, …);
 * - whole-table writes: UPDATE and DELETE without WHERE, TRUNCATE, and MERGE that updates or deletes every matched
 *   row, anywhere (WITH, PREPARE, function and DO bodies; `WHERE true` / `WHEN MATCHED AND true` states the intent
 *   explicitly, `DELETE … WHERE true` empties a table);
 * - what it does beyond its command tag, wherever in the tree (`internal/sqlHazards.ts`): role changes in any
 *   syntax, session settings, functions called, dynamic SQL, COPY to or from server files, other sessions' statements;
 * - the fingerprint (libpg_query's: the parse tree with constants and parameters stripped, hashed), the key of
 *   the cost estimator's cache and a safe way to name a statement in errors and logs;
 * - the text the cost estimator should EXPLAIN (the query of an `EXPLAIN ANALYZE`, which runs it).
 *
 * Parsing costs tens of microseconds, so analyses are cached by exact statement text (bounded; texts over 16 KiB
 * are not cached). The engine sends parameterized statements, whose text repeats, so the common case is one map
 * lookup plus a few set lookups for the policy.
 *
 * Default policies (rule → tiers that apply it; `admin` applies none of the forbidding rules):
 *
 * | Rule | FREE | STARTER | PRO | ENTERPRISE | admin |
 * | --- | --- | --- | --- | --- | --- |
 * | `parse-error` | ✓ | ✓ | ✓ | ✓ | ✓ |
 * | `multiple-statements` | ✓ | ✓ | ✓ | ✓ | |
 * | `missing-where`: UPDATE/DELETE without WHERE, an unconditioned MERGE, TRUNCATE | ✓ | ✓ | ✓ | ✓ | |
 * | `statement-kind`: DDL | ✓ | | | | |
 * | `statement-command`: ALTER SYSTEM, LOAD, CHECKPOINT, extensions, foreign servers, roles, databases, tablespaces, subscriptions, languages, event triggers | ✓ | ✓ | ✓ | ✓ | |
 * | `statement-command`: SET/RESET ROLE, SET/RESET SESSION AUTHORIZATION, PREPARE, EXECUTE, DEALLOCATE, DISCARD | ✓ | ✓ | ✓ | ✓ | |
 * | `statement-command`: a role change in any syntax (`set_config('role', …)`, in CTEs, subqueries, function and DO bodies) | ✓ | ✓ | ✓ | ✓ | |
 * | `statement-command`: a `dangerousFunctions` call or reference (dblink, server files, other backends, …) | ✓ | ✓ | ✓ | ✓ | |
 * | `statement-command`: session settings (`SET x` without LOCAL, `set_config(x, y, false)`) | ✓ | ✓ | ✓ | ✓ | |
 * | `statement-command`: dynamic SQL (PL/pgSQL `EXECUTE` of a string), COPY to/from server files or programs | ✓ | ✓ | ✓ | ✓ | |
 * | `statement-command`: renames, owners, GRANT/REVOKE, COMMENT and DROP of server objects (databases, roles, tablespaces, parameters, …) | ✓ | ✓ | ✓ | ✓ | |
 * | `statement-command`: temporary objects, cursors WITH HOLD, writes to `pg_settings`, SET SESSION CHARACTERISTICS, LISTEN/PREPARE in code | ✓ | ✓ | ✓ | ✓ | |
 * | `statement-command`: `set_config` named as an aggregate's/cast's function, `ts_rewrite` with a query, repeated EXPLAIN options, code nested more than 8 deep | ✓ | ✓ | ✓ | ✓ | |
 * | `statement-command`: other sessions' statements (`pg_stat_activity`, `pg_stat_get_activity()`) | ✓ | ✓ | ✓ | ✓ | |
 * | `statement-command`: LISTEN, UNLISTEN | ✓ | ✓ | ✓ | | |
 * | `statement-command`: VACUUM, CLUSTER, REINDEX | ✓ | ✓ | | | |
 * | `statement-command`: COPY, DO, LOCK, ANALYZE, REFRESH MATERIALIZED VIEW | ✓ | | | | |
 *
 * Why: server-wide commands and functions that reach outside the project's database (other databases, files,
 * programs, other backends) are the operator's; role changes, session settings, SQL-level prepared statements and
 * LISTEN attach state to a pooled session that other statements (and, on a shared target, other projects) reuse,
 * and a role change is refused in whichever syntax carries it, since the analyzer reads the whole tree and the
 * bodies of functions and DO blocks, and refuses the code it cannot read (dynamic `EXECUTE`); this is defense in
 * depth over the server's own role model (see `@tenantpool/pg`'s README), never a replacement for it; table rewrites and long locks on shared servers
 * are scheduled by the platform below PRO; FREE projects change their schema through migrations (the admin
 * policy), bulk-load through the import path, and run no anonymous code blocks the analyzer cannot see into.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { fingerprintSync, loadModule, parseSync, scanSync } from "libpg-query"
import type { ProjectHandle } from "@tenantpool/core/CurrentProject"
import { type TierName, tierNames } from "@tenantpool/core/Tier"
import * as Finding from "./Finding.ts"
import * as Lists from "./internal/sqlDenyLists.ts"
import { classify, explainedQueryStart, type StatementInfo, type StatementKind } from "./internal/sqlClassify.ts"

// Declared with the classifier that produces it; re-exported here, where users meet it.
export type { StatementKind } from "./internal/sqlClassify.ts"

/**
 * One statement of an analysis.
 *
 * @category models
 * @since 0.1.0
 */
export interface Statement {
  readonly kind: StatementKind
  /** The command tag (`SELECT`, `SET ROLE`, `CREATE TABLE`, `EXPLAIN ANALYZE`, …). */
  readonly command: string
  /**
   * An UPDATE or DELETE without WHERE, a TRUNCATE, or a MERGE that updates or deletes every matched row of an ON
   * clause that relates nothing, anywhere in the statement (WITH, PREPARE, rules, function and DO bodies).
   */
  readonly missingWhere: boolean
  /** How the statement changes the session's role or authorization, whatever the syntax (undefined: it does not). */
  readonly roleChange: string | undefined
  /** A setting it leaves on the session after it ends (`SET` without `LOCAL`, `set_config(…, false)`). */
  readonly sessionSetting: string | undefined
  /** Functions it calls or references, anywhere (lower case, without schema). */
  readonly functions: ReadonlyArray<string>
  /** Code the analyzer cannot see into (PL/pgSQL `EXECUTE` of a string, a body in another language). */
  readonly dynamicSql: string | undefined
  /** `COPY` to or from a file or program on the server. */
  readonly serverFiles: boolean
  /** What it reads of other sessions (`pg_stat_activity`'s query text, …), or undefined. */
  readonly otherSessions: string | undefined
}

/**
 * The analysis of a statement text.
 *
 * @category models
 * @since 0.1.0
 */
export interface Analysis {
  readonly statements: ReadonlyArray<Statement>
  /** The first statement's kind (`utility` for an empty text or one that does not parse). */
  readonly kind: StatementKind
  /** The first statement's command (`EMPTY` for an empty text, `UNPARSEABLE` for one that does not parse). */
  readonly command: string
  /** libpg_query's fingerprint (16 hex digits; empty when the text does not parse). */
  readonly fingerprint: string
  /** The parser's message when the text does not parse. */
  readonly error: string | undefined
  /** The text the cost estimator should EXPLAIN, or undefined when there is nothing to estimate. */
  readonly explainTarget: string | undefined
}

/**
 * What a tier may run.
 *
 * @category models
 * @since 0.1.0
 */
export interface SqlPolicy {
  /** Several statements in one text (default: rejected, except for admin). */
  readonly allowMultipleStatements: boolean
  /** Reject whole-table writes: UPDATE and DELETE without WHERE, unconditioned MERGE, TRUNCATE. */
  readonly requireWhere: boolean
  /** Statement kinds refused. */
  readonly forbiddenKinds: ReadonlyArray<StatementKind>
  /** Command tags refused (exact tags, upper case: `COPY`, `SET ROLE`, `CREATE EXTENSION`). */
  readonly forbiddenCommands: ReadonlyArray<string>
  /** Refuse role and authorization changes in any syntax (`SET ROLE`, `set_config('role', …)`, in any body). */
  readonly forbidRoleChanges?: boolean | undefined
  /** Refuse settings that outlive the statement on a pooled session (`SET x`, `set_config(x, y, false)`). */
  readonly forbidSessionSettings?: boolean | undefined
  /** Functions refused wherever they are called or referenced; a name ending in `*` is a prefix. */
  readonly forbiddenFunctions?: ReadonlyArray<string> | undefined
  /** Refuse code the analyzer cannot see into (dynamic `EXECUTE`, bodies in languages other than SQL/PL/pgSQL). */
  readonly forbidDynamicSql?: boolean | undefined
  /** Refuse `COPY` to or from server files and programs. */
  readonly forbidServerFiles?: boolean | undefined
  /** Refuse reading other sessions' statements (`pg_stat_activity`, `pg_stat_get_activity()`, …). */
  readonly forbidOtherSessions?: boolean | undefined
}

/**
 * Functions no tenant tier may call: they reach outside the project's database (other databases and servers,
 * the server's files and programs, other sessions' backends, the server's configuration and replication), run SQL
 * from a string the analyzer cannot see, or take locks that outlive the statement on a pooled session.
 *
 * @category constants
 * @since 0.1.0
 */
export const dangerousFunctions: ReadonlyArray<string> = Lists.dangerousFunctions

const tenantRules = {
  forbidRoleChanges: true,
  forbidSessionSettings: true,
  forbiddenFunctions: dangerousFunctions,
  forbidDynamicSql: true,
  forbidServerFiles: true,
  forbidOtherSessions: true
} as const
const rewrites = ["VACUUM", "CLUSTER", "REINDEX"]

/**
 * The default policy of each tier (see the module comment).
 *
 * @category constants
 * @since 0.1.0
 */
export const defaultPolicies: Readonly<Record<TierName, SqlPolicy>> = {
  FREE: {
    allowMultipleStatements: false,
    requireWhere: true,
    forbiddenKinds: ["ddl"],
    forbiddenCommands: [
      ...Lists.everyTenant,
      ...Lists.sessionBound,
      ...rewrites,
      "COPY",
      "DO",
      "LOCK",
      "ANALYZE",
      "REFRESH MATERIALIZED VIEW"
    ],
    ...tenantRules
  },
  STARTER: {
    allowMultipleStatements: false,
    requireWhere: true,
    forbiddenKinds: [],
    forbiddenCommands: [...Lists.everyTenant, ...Lists.sessionBound, ...rewrites],
    ...tenantRules
  },
  PRO: {
    allowMultipleStatements: false,
    requireWhere: true,
    forbiddenKinds: [],
    forbiddenCommands: [...Lists.everyTenant, ...Lists.sessionBound],
    ...tenantRules
  },
  ENTERPRISE: {
    allowMultipleStatements: false,
    requireWhere: true,
    forbiddenKinds: [],
    forbiddenCommands: Lists.everyTenant,
    ...tenantRules
  }
}

/**
 * The policy of migrations and platform operators: only text that does not parse is refused.
 *
 * @category constants
 * @since 0.1.0
 */
export const adminPolicy: SqlPolicy = {
  allowMultipleStatements: true,
  requireWhere: false,
  forbiddenKinds: [],
  forbiddenCommands: []
}

interface Compiled {
  readonly allowMultipleStatements: boolean
  readonly requireWhere: boolean
  readonly kinds: ReadonlySet<string>
  readonly commands: ReadonlySet<string>
  readonly roleChanges: boolean
  readonly sessionSettings: boolean
  readonly functions: ReadonlySet<string>
  readonly functionPrefixes: ReadonlyArray<string>
  readonly dynamicSql: boolean
  readonly serverFiles: boolean
  readonly otherSessions: boolean
}

const compile = (policy: SqlPolicy): Compiled => {
  const functions = (policy.forbiddenFunctions ?? []).map((f) => f.toLowerCase())
  return {
    allowMultipleStatements: policy.allowMultipleStatements,
    requireWhere: policy.requireWhere,
    kinds: new Set(policy.forbiddenKinds),
    commands: new Set(policy.forbiddenCommands.map((c) => c.toUpperCase())),
    roleChanges: policy.forbidRoleChanges === true,
    sessionSettings: policy.forbidSessionSettings === true,
    functions: new Set(functions.filter((f) => !f.endsWith("*"))),
    functionPrefixes: functions.filter((f) => f.endsWith("*")).map((f) => f.slice(0, -1)),
    dynamicSql: policy.forbidDynamicSql === true,
    serverFiles: policy.forbidServerFiles === true,
    otherSessions: policy.forbidOtherSessions === true
  }
}

const forbiddenFunction = (policy: Compiled, s: Statement): string | undefined => {
  if (policy.functions.size === 0 && policy.functionPrefixes.length === 0) return undefined
  for (const f of s.functions) {
    if (policy.functions.has(f)) return f
    for (const prefix of policy.functionPrefixes) if (f.startsWith(prefix)) return f
  }
  return undefined
}

// What a statement does beyond its command tag (see `internal/sqlHazards.ts`), as a reason to refuse it.
const hazardOf = (policy: Compiled, s: Statement): string | undefined => {
  if (policy.roleChanges && s.roleChange !== undefined) return `changing the session's role (${s.roleChange})`
  const fn = forbiddenFunction(policy, s)
  if (fn !== undefined) return `the function ${fn}()`
  if (policy.serverFiles && s.serverFiles) return "COPY to or from a file or program on the server"
  if (policy.dynamicSql && s.dynamicSql !== undefined) return `code the analyzer cannot see into (${s.dynamicSql})`
  if (policy.otherSessions && s.otherSessions !== undefined) return `reading other sessions (${s.otherSessions})`
  if (policy.sessionSettings && s.sessionSetting !== undefined) {
    return `a setting that outlives the statement on a shared connection (${s.sessionSetting}; use SET LOCAL or set_config(…, true) in a transaction)`
  }
  return undefined
}

const evaluateCompiled = (policy: Compiled, analysis: Analysis): Finding.Finding | undefined => {
  const fp = analysis.fingerprint === "" ? undefined : analysis.fingerprint
  if (analysis.error !== undefined)
    return Finding.reject("parse-error", `the statement does not parse: ${analysis.error}`)
  const statements = analysis.statements
  if (statements.length > 1 && !policy.allowMultipleStatements) {
    return Finding.reject("multiple-statements", `${statements.length} statements where one is expected`, fp)
  }
  for (const s of statements) {
    if (policy.kinds.has(s.kind)) {
      return Finding.reject("statement-kind", `${s.kind} statements (${s.command}) are not allowed on this tier`, fp)
    }
    if (policy.commands.has(s.command)) {
      return Finding.reject("statement-command", `${s.command} is not allowed on this tier`, fp)
    }
    const hazard = hazardOf(policy, s)
    if (hazard !== undefined) return Finding.reject("statement-command", `${hazard} is not allowed on this tier`, fp)
    if (s.missingWhere && policy.requireWhere) {
      return Finding.reject(
        "missing-where",
        `${s.command} would touch every row (UPDATE or DELETE without WHERE, or TRUNCATE; add WHERE true if that is intended)`,
        fp
      )
    }
  }
  return undefined
}

/**
 * Applies a policy to an analysis: the first rule that rejects, or undefined.
 *
 * @category evaluation
 * @since 0.1.0
 */
export const evaluate = (policy: SqlPolicy, analysis: Analysis): Finding.Finding | undefined =>
  evaluateCompiled(compile(policy), analysis)

const empty: Analysis = {
  statements: [],
  kind: "utility",
  command: "EMPTY",
  fingerprint: "",
  error: undefined,
  explainTarget: undefined
}

const messageOf = (e: unknown): string => (e instanceof Error ? e.message : String(e))

/**
 * Analyzes a statement text without caching. Needs the parser loaded (`load`, or any `SqlAnalyzer` layer).
 *
 * @category evaluation
 * @since 0.1.0
 */
export const analyzeUncached = (sql: string): Analysis => {
  // Not text (a caller's `as any`): nothing to parse, refused like a text that does not parse.
  if (typeof sql !== "string") return { ...empty, kind: "utility", command: "UNPARSEABLE", error: "not text" }
  if (sql.trim() === "") return empty
  let parsed: { stmts: Array<{ stmt?: Record<string, any> }> }
  try {
    parsed = parseSync(sql) as unknown as typeof parsed
  } catch (e) {
    return { ...empty, kind: "utility", command: "UNPARSEABLE", error: messageOf(e) }
  }
  if (parsed.stmts.length === 0) return empty
  const infos: Array<StatementInfo> = parsed.stmts.map((raw) => classify(raw.stmt ?? {}))
  const first = infos[0]!
  let explainTarget: string | undefined
  if (infos.length === 1 && first.explainable) {
    if (!first.explainAnalyze) explainTarget = sql
    else {
      const start = explainedQueryStart(scanSync(sql).tokens)
      if (start >= 0) explainTarget = sql.slice(start)
    }
  }
  let fingerprint = ""
  try {
    fingerprint = fingerprintSync(sql)
  } catch {
    fingerprint = ""
  }
  return {
    statements: infos.map((i) => ({
      kind: i.kind,
      command: i.command,
      missingWhere: i.missingWhere,
      roleChange: i.hazards.roleChange,
      sessionSetting: i.hazards.sessionSetting,
      functions: [...i.hazards.functions],
      dynamicSql: i.hazards.dynamicSql,
      serverFiles: i.hazards.serverFiles,
      otherSessions: i.hazards.otherSessions
    })),
    kind: first.kind,
    command: first.command,
    fingerprint,
    error: undefined,
    explainTarget
  }
}

/**
 * Loads the parser's WebAssembly module (once per process; later calls return at once).
 *
 * @category constructors
 * @since 0.1.0
 */
export const load: Effect.Effect<void> = Effect.promise(() => loadModule())

/**
 * Options of the analyzer.
 *
 * @category models
 * @since 0.1.0
 */
export interface Options {
  /** Per-tier policy overrides (merged over `defaultPolicies`). */
  readonly policies?: Partial<Record<TierName, Partial<SqlPolicy>>> | undefined
  /** A policy for particular projects (e.g. `adminPolicy` for the platform's own), else the tier's. */
  readonly policyFor?: ((project: ProjectHandle) => SqlPolicy | undefined) | undefined
  /** Analyses kept (default 10,000). */
  readonly cacheSize?: number | undefined
  /** Longest statement text cached, in characters (default 16,384). */
  readonly maxCachedLength?: number | undefined
}

/**
 * Counters of the analyzer's cache.
 *
 * @category models
 * @since 0.1.0
 */
export interface Stats {
  readonly entries: number
  readonly hits: number
  readonly misses: number
}

/**
 * The analyzer.
 *
 * @category services
 * @since 0.1.0
 */
export class SqlAnalyzer extends Context.Service<
  SqlAnalyzer,
  {
    /** The analysis of a statement text (cached). */
    readonly analyze: (sql: string) => Analysis
    /** The policy that applies to a project. */
    readonly policy: (project: ProjectHandle) => SqlPolicy
    /** The rule the project's policy rejects the analysis by, if any. */
    readonly inspect: (project: ProjectHandle, analysis: Analysis) => Finding.Finding | undefined
    readonly stats: () => Stats
  }
>()("@tenantpool/protections/SqlAnalyzer") {}

/**
 * Builds the analyzer (loads the parser).
 *
 * @category constructors
 * @since 0.1.0
 */
export const make = (options?: Options | undefined): Effect.Effect<SqlAnalyzer["Service"]> =>
  Effect.gen(function* () {
    yield* load
    const policies = {} as Record<TierName, SqlPolicy>
    const compiled = {} as Record<TierName, Compiled>
    for (const tier of tierNames) {
      policies[tier] = { ...defaultPolicies[tier], ...options?.policies?.[tier] }
      compiled[tier] = compile(policies[tier])
    }
    const policyFor = options?.policyFor
    const custom = new WeakMap<SqlPolicy, Compiled>()
    const compiledFor = (project: ProjectHandle): Compiled => {
      const own = policyFor?.(project)
      if (own === undefined) return compiled[project.tierName]
      let c = custom.get(own)
      if (c === undefined) custom.set(own, (c = compile(own)))
      return c
    }
    const maxEntries = Math.max(1, options?.cacheSize ?? 10_000)
    const maxLength = options?.maxCachedLength ?? 16_384
    const cache = new Map<string, Analysis>()
    let hits = 0
    let misses = 0
    const analyze = (sql: string): Analysis => {
      const cached = cache.get(sql)
      if (cached !== undefined) {
        hits++
        return cached
      }
      misses++
      const analysis = analyzeUncached(sql)
      if (sql.length <= maxLength) {
        if (cache.size >= maxEntries) cache.delete(cache.keys().next().value!)
        cache.set(sql, analysis)
      }
      return analysis
    }
    return SqlAnalyzer.of({
      analyze,
      policy: (project) => policyFor?.(project) ?? policies[project.tierName],
      inspect: (project, analysis) => evaluateCompiled(compiledFor(project), analysis),
      stats: () => ({ entries: cache.size, hits, misses })
    })
  })

/**
 * The analyzer as a layer.
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = (options?: Options | undefined): Layer.Layer<SqlAnalyzer> =>
  Layer.effect(SqlAnalyzer, make(options))
