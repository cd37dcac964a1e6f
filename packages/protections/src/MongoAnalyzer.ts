/**
 * The MongoDB query analyzer: server-side JavaScript (`$where`, `$function`, `$accumulator`) anywhere in a filter,
 * pipeline or other document a call sends (read in the form the BSON serializer sends it: `toBSON()` results, `Map`
 * entries, class instances by their keys) is refused below ENTERPRISE, and a plan that scans a whole collection (no usable index) is flagged or
 * refused, by tier, once the collection is large enough for it to matter.
 *
 * The plan comes from `explain` ("queryPlanner" verbosity: nothing is executed), which the engine supplies (see
 * `explainWith`). Plans are read in every shape seen here:
 * - MongoDB: a `COLLSCAN` stage in `queryPlanner.winningPlan` (classic `inputStage(s)`, slot-based `queryPlan`,
 *   sharded `shards[]`, and aggregations' `stages[].$cursor`); rejected plans are ignored;
 * - FerretDB on SQLite: `queryPlanner.Plan` is SQLite's plan as text lines, where `SCAN <table>` without an index
 *   is a full scan (FerretDB 1.24 does not push most filters down, so nearly every query scans);
 * - FerretDB on PostgreSQL: `queryPlanner.Plan` is PostgreSQL's JSON plan, where a `Seq Scan` is a full scan.
 * A shape not recognised counts as no scan: the analyzer never refuses on a guess.
 *
 * Results are cached per (project, collection, filter shape: the filter with its values replaced by `?`) for a TTL
 * (default 5 minutes), and collection sizes per (project, collection) likewise.
 *
 * Default policies:
 *
 * | Tier | JavaScript | Collection scan | From (documents) |
 * | --- | --- | --- | --- |
 * | FREE | refused | refused | 100,000 |
 * | STARTER | refused | refused | 1,000,000 |
 * | PRO | refused | flagged | 100,000 |
 * | ENTERPRISE | allowed | flagged | 100,000 |
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import type { ProjectHandle } from "@tenantpool/core/CurrentProject"
import type { ProtectionDetail } from "@tenantpool/core/Protections"
import { type TierName, tierNames } from "@tenantpool/core/Tier"
import * as Finding from "./Finding.ts"
import * as ProtectionMetrics from "./ProtectionMetrics.ts"
import { ExpiringCache } from "./internal/expiringCache.ts"

/**
 * What a tier may run on MongoDB.
 *
 * @category models
 * @since 0.1.0
 */
export interface MongoPolicy {
  /** `$where`, `$function`, `$accumulator`. */
  readonly allowJavaScript: boolean
  /** A plan that scans a whole collection. */
  readonly collectionScan: "allow" | "flag" | "reject"
  /** Collections smaller than this may be scanned (0: any size; needs `count` to be known). */
  readonly collectionScanMinDocuments: number
}

/**
 * The default policies (see the module comment).
 *
 * @category constants
 * @since 0.1.0
 */
export const defaultPolicies: Readonly<Record<TierName, MongoPolicy>> = {
  FREE: { allowJavaScript: false, collectionScan: "reject", collectionScanMinDocuments: 100_000 },
  STARTER: { allowJavaScript: false, collectionScan: "reject", collectionScanMinDocuments: 1_000_000 },
  PRO: { allowJavaScript: false, collectionScan: "flag", collectionScanMinDocuments: 100_000 },
  ENTERPRISE: { allowJavaScript: true, collectionScan: "flag", collectionScanMinDocuments: 100_000 }
}

/**
 * A query to explain.
 *
 * @category models
 * @since 0.1.0
 */
export interface MongoQuery {
  readonly operation: string
  readonly collection: string
  readonly filter?: unknown
  readonly pipeline?: ReadonlyArray<unknown> | undefined
}

/**
 * What the MongoDB engine tells the analyzer about a call, beyond core's `ProtectionDetail`: `documents`, the other
 * documents the call sends (updates, projections, `let`, array filters, bulk-write filters and updates), checked
 * for server-side JavaScript but not explained.
 *
 * @category models
 * @since 0.1.0
 */
export interface MongoDetail extends ProtectionDetail {
  readonly documents?: ReadonlyArray<unknown> | undefined
}

/**
 * Explains a query ("queryPlanner" verbosity) on the project's database and returns the explain document.
 *
 * @category models
 * @since 0.1.0
 */
export type MongoExplain = (project: ProjectHandle, query: MongoQuery) => Effect.Effect<unknown, unknown>

/**
 * Counts (estimates) the documents of a collection of the project's database.
 *
 * @category models
 * @since 0.1.0
 */
export type MongoCount = (project: ProjectHandle, collection: string) => Effect.Effect<number, unknown>

/**
 * The part of the driver's `Db` that `explainWith` and `countWith` use (the `mongodb` package's `Db` fits).
 *
 * @category models
 * @since 0.1.0
 */
export interface ExplainableDb {
  collection(name: string): {
    find(filter: any): { explain(verbosity?: any): Promise<unknown> }
    aggregate(pipeline: Array<any>): { explain(verbosity?: any): Promise<unknown> }
    estimatedDocumentCount(): Promise<number>
  }
}

/**
 * A `MongoExplain` over the driver: `find(filter).explain` or `aggregate(pipeline).explain`.
 *
 * @category constructors
 * @since 0.1.0
 */
export const explainWith =
  (dbFor: (project: ProjectHandle) => ExplainableDb): MongoExplain =>
  (project, query) =>
    Effect.tryPromise(() => {
      const collection = dbFor(project).collection(query.collection)
      return query.pipeline !== undefined
        ? collection.aggregate([...query.pipeline]).explain("queryPlanner")
        : collection.find(query.filter ?? {}).explain("queryPlanner")
    })

/**
 * A `MongoCount` over the driver (`estimatedDocumentCount`: collection metadata, no scan).
 *
 * @category constructors
 * @since 0.1.0
 */
export const countWith =
  (dbFor: (project: ProjectHandle) => ExplainableDb): MongoCount =>
  (project, collection) =>
    Effect.tryPromise(() => dbFor(project).collection(collection).estimatedDocumentCount())

const javaScriptOperators: ReadonlySet<string> = new Set(["$where", "$function", "$accumulator"])

/**
 * What a value is as the BSON serializer sends it: an array (its indices), a document (its fields: a `toBSON()`
 * result, a `Map`'s entries, a `DBRef`'s `$ref`/`$id`/`$db` and fields, any other object's own keys, class
 * instances included), or a leaf (primitives, dates, regular expressions, binary data, BSON scalar values).
 * The MongoDB engine hands the protections copies in that form already; reading other callers' values the same way
 * keeps an object from looking harmless here and being sent as something else.
 */
type Node =
  | { readonly kind: "leaf" }
  | { readonly kind: "array"; readonly items: ReadonlyArray<unknown> }
  | { readonly kind: "document"; readonly entries: ReadonlyArray<readonly [string, unknown]> }

const leaf: Node = { kind: "leaf" }

// A value whose getters or `toBSON` throw cannot be serialized either: the call fails on its own.
const nodeOf = (value: unknown): Node => {
  try {
    return readNode(value)
  } catch {
    return leaf
  }
}

const readNode = (value: unknown): Node => {
  if (value === null || typeof value !== "object") return leaf
  let v = value as Record<string, unknown>
  if (typeof v["toBSON"] === "function") {
    const out = (v["toBSON"] as () => unknown).call(v)
    if (out === null || typeof out !== "object") return leaf
    v = out as Record<string, unknown>
  }
  if (Array.isArray(v)) return { kind: "array", items: v }
  if (v instanceof Map) return { kind: "document", entries: [...v.entries()].map(([k, x]) => [String(k), x] as const) }
  const tag = v["_bsontype"]
  if (tag === "DBRef") {
    const fields = (v["fields"] ?? {}) as Record<string, unknown>
    return { kind: "document", entries: [["$db", v["db"]], ...Object.entries(fields)] }
  }
  if (typeof tag === "string") return leaf
  if (v instanceof Date || v instanceof RegExp || ArrayBuffer.isView(v) || v instanceof ArrayBuffer) return leaf
  return { kind: "document", entries: Object.entries(v) }
}

/**
 * The first server-side JavaScript operator in a filter, pipeline or expression (searched to any depth, in the form
 * the BSON serializer sends: see `nodeOf`), if any.
 *
 * @category evaluation
 * @since 0.1.0
 */
export const javaScriptOperator = (value: unknown): string | undefined => {
  try {
    return javaScriptOperatorUnsafe(value)
  } catch {
    // A value that throws while it is read (a proxy, a getter): treated as JavaScript (fail closed).
    return "(unreadable)"
  }
}

const javaScriptOperatorUnsafe = (value: unknown): string | undefined => {
  const stack: Array<unknown> = [value]
  const seen = new Set<object>()
  while (stack.length > 0) {
    const v = stack.pop()
    if (v === null || typeof v !== "object" || seen.has(v)) continue
    seen.add(v)
    const node = nodeOf(v)
    if (node.kind === "array") {
      for (const item of node.items) stack.push(item)
    } else if (node.kind === "document") {
      for (const [key, item] of node.entries) {
        if (javaScriptOperators.has(key)) return key
        stack.push(item)
      }
    }
  }
  return undefined
}

const findDeep = (root: unknown, test: (node: Record<string, unknown>) => boolean): boolean => {
  const stack: Array<unknown> = [root]
  while (stack.length > 0) {
    const v = stack.pop()
    if (v === null || typeof v !== "object") continue
    if (Array.isArray(v)) {
      for (const item of v) stack.push(item)
      continue
    }
    const node = v as Record<string, unknown>
    if (test(node)) return true
    for (const key in node) if (key !== "rejectedPlans") stack.push(node[key])
  }
  return false
}

/**
 * Whether an explain document shows a whole-collection scan: `true`, `false`, or `undefined` when the shape is not
 * recognised (see the module comment for the shapes read).
 *
 * @category evaluation
 * @since 0.1.0
 */
export const isCollectionScan = (explain: unknown): boolean | undefined => {
  try {
    return isCollectionScanUnsafe(explain)
  } catch {
    // A value that throws while it is read (a proxy, a getter): unknown.
    return undefined
  }
}

const isCollectionScanUnsafe = (explain: unknown): boolean | undefined => {
  if (explain === null || typeof explain !== "object") return undefined
  const doc = explain as Record<string, any>
  const roots: Array<unknown> = []
  const planner = doc.queryPlanner as Record<string, unknown> | undefined
  if (planner?.winningPlan !== undefined) roots.push(planner.winningPlan)
  for (const stage of Array.isArray(doc.stages) ? doc.stages : []) {
    const winning = stage?.$cursor?.queryPlanner?.winningPlan
    if (winning !== undefined) roots.push(winning)
  }
  for (const shard of Array.isArray(doc.shards) ? doc.shards : []) {
    if (shard?.winningPlan !== undefined) roots.push(shard.winningPlan)
  }
  if (roots.length > 0) return findDeep(roots, (node) => node.stage === "COLLSCAN")
  const plan = planner?.Plan
  if (Array.isArray(plan) && plan.every((line) => typeof line === "string")) {
    // SQLite: "SCAN t" is a full scan, "SCAN t USING [COVERING] INDEX i" and "SEARCH t USING ..." are not.
    return plan.some((line: string) => /\bSCAN\b/.test(line) && !/\bUSING\b.*\bINDEX\b/.test(line))
  }
  if (plan !== null && typeof plan === "object") {
    return findDeep(plan, (node) => node["Node Type"] === "Seq Scan")
  }
  return undefined
}

/**
 * The filter's (or pipeline's) shape: its structure with every value replaced by `?`, the cache key of a plan.
 *
 * @category evaluation
 * @since 0.1.0
 */
export const shapeOf = (value: unknown): string => {
  try {
    return shape(value, 0)
  } catch {
    return "?"
  }
}

// Deeper than any document a server accepts: a cyclic value's shape stops there.
const maxShapeDepth = 200

const shape = (value: unknown, depth: number): string => {
  const node = nodeOf(value)
  if (node.kind === "leaf" || depth > maxShapeDepth) return "?"
  if (node.kind === "array") return `[${node.items.map((v) => shape(v, depth + 1)).join(",")}]`
  return `{${node.entries.map(([key, v]) => `${JSON.stringify(key)}:${shape(v, depth + 1)}`).join(",")}}`
}

/**
 * Options of the analyzer.
 *
 * @category models
 * @since 0.1.0
 */
export interface Options {
  /** Explains queries (without it, collection scans are not looked for). */
  readonly explain?: MongoExplain | undefined
  /** Counts documents (without it, every collection counts as large). */
  readonly count?: MongoCount | undefined
  readonly policies?: Partial<Record<TierName, Partial<MongoPolicy>>> | undefined
  readonly policyFor?: ((project: ProjectHandle) => MongoPolicy | undefined) | undefined
  /** How long a plan verdict and a collection size are reused (default 5 minutes). */
  readonly ttl?: Duration.Input | undefined
  /** Verdicts kept (default 10,000). */
  readonly maxEntries?: number | undefined
}

/**
 * Counters of the analyzer.
 *
 * @category models
 * @since 0.1.0
 */
export interface Stats {
  readonly hits: number
  readonly explains: number
  readonly explainErrors: number
  readonly explainMillisTotal: number
}

/**
 * The analyzer.
 *
 * @category services
 * @since 0.1.0
 */
export class MongoAnalyzer extends Context.Service<
  MongoAnalyzer,
  {
    readonly policy: (project: ProjectHandle) => MongoPolicy
    readonly inspect: (project: ProjectHandle, operation: string, detail: ProtectionDetail) => Finding.Inspection
    readonly stats: () => Stats
  }
>()("@tenantpool/protections/MongoAnalyzer") {}

/**
 * Builds the analyzer.
 *
 * @category constructors
 * @since 0.1.0
 */
export const make = (options?: Options | undefined): Effect.Effect<MongoAnalyzer["Service"]> =>
  Effect.gen(function* () {
    const clock = yield* Clock.Clock
    const context = yield* Effect.context<never>()
    const policies = {} as Record<TierName, MongoPolicy>
    for (const tier of tierNames) policies[tier] = { ...defaultPolicies[tier], ...options?.policies?.[tier] }
    const policyOf = (project: ProjectHandle) => options?.policyFor?.(project) ?? policies[project.tierName]
    const ttl = Duration.toMillis(Duration.fromInputUnsafe(options?.ttl ?? "5 minutes"))
    const maxEntries = options?.maxEntries ?? 10_000
    const scans = new ExpiringCache<string, boolean>(maxEntries)
    const sizes = new ExpiringCache<string, number>(maxEntries)
    const explainTimer = Metric.withAttributes(ProtectionMetrics.explainDuration, { database_type: "mongodb" })
    let hits = 0
    let explains = 0
    let explainErrors = 0
    let explainMillisTotal = 0

    const size = (project: ProjectHandle, collection: string): Effect.Effect<number> => {
      const count = options?.count
      if (count === undefined) return Effect.succeed(Number.POSITIVE_INFINITY)
      const key = `${project.id}\u0000${collection}`
      const known = sizes.get(key, clock.currentTimeMillisUnsafe())
      if (known !== undefined) return Effect.succeed(known)
      return count(project, collection).pipe(
        Effect.tap((n) => Effect.sync(() => sizes.set(key, n, clock.currentTimeMillisUnsafe() + ttl))),
        Effect.orElseSucceed(() => Number.POSITIVE_INFINITY)
      )
    }

    const scanned = (project: ProjectHandle, query: MongoQuery, explain: MongoExplain): Effect.Effect<boolean> =>
      Effect.suspend(() => {
        const started = performance.now()
        return explain(project, query).pipe(
          Effect.map((doc) => isCollectionScan(doc) === true),
          Effect.tap(() =>
            Effect.sync(() => {
              const millis = performance.now() - started
              explains++
              explainMillisTotal += millis
              explainTimer.updateUnsafe(millis / 1000, context)
            })
          ),
          Effect.orElseSucceed(() => {
            explainErrors++
            return false
          })
        )
      })

    const verdict = (policy: MongoPolicy, operation: string, collection: string) =>
      (policy.collectionScan === "reject" ? Finding.reject : Finding.flag)(
        "mongo-collscan",
        `${operation} on ${collection} scans the whole collection (no usable index)`
      )

    return MongoAnalyzer.of({
      policy: policyOf,
      inspect: (project, operation, detail) => {
        const policy = policyOf(project)
        if (!policy.allowJavaScript) {
          const js =
            javaScriptOperator(detail.filter) ??
            javaScriptOperator(detail.pipeline) ??
            javaScriptOperator((detail as MongoDetail).documents)
          if (js !== undefined) {
            return Finding.reject(
              "mongo-javascript",
              `${js} runs JavaScript on the server; it is not allowed on this tier`
            )
          }
        }
        const explain = options?.explain
        const collection = detail.collection
        if (policy.collectionScan === "allow" || explain === undefined || collection === undefined) return undefined
        if (detail.filter === undefined && detail.pipeline === undefined) return undefined
        const key = `${project.id}\u0000${collection}\u0000${detail.pipeline !== undefined ? shapeOf(detail.pipeline) : shapeOf(detail.filter)}`
        const known = scans.get(key, clock.currentTimeMillisUnsafe())
        if (known !== undefined) {
          hits++
          return known ? verdict(policy, operation, collection) : undefined
        }
        const query: MongoQuery = { operation, collection, filter: detail.filter, pipeline: detail.pipeline }
        return Effect.gen(function* () {
          const isScan = yield* scanned(project, query, explain)
          const large = !isScan ? false : (yield* size(project, collection)) >= policy.collectionScanMinDocuments
          scans.set(key, large, clock.currentTimeMillisUnsafe() + ttl)
          return large ? verdict(policy, operation, collection) : undefined
        })
      },
      stats: () => ({ hits, explains, explainErrors, explainMillisTotal })
    })
  })

/**
 * The analyzer as a layer.
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = (options?: Options | undefined): Layer.Layer<MongoAnalyzer> =>
  Layer.effect(MongoAnalyzer, make(options))
