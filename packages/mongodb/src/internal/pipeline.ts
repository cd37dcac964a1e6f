/**
 * Aggregation pipelines seen from the guard, in the form they are sent (copies made by `documents.ts`): which
 * stages a project may run, whether a pipeline writes (then it is not idempotent), and which other databases it
 * names (refused unless it is the project's own).
 *
 * Stages are an allowlist: those that work on the collection the command runs on, or on collections of the same
 * database (`from`, `coll`, `into` as names). Everything else is refused, in particular the stages that see the
 * whole server: `$currentOp` (every client's operations and their filters), `$listSessions` and
 * `$listLocalSessions`, `$queryStats` and `$listSampledQueries` (other projects' query shapes),
 * `$changeStream` (with `allChangesForCluster`, every database's writes), `$listClusterCatalog`,
 * `$shardedDataDistribution`, `$planCacheStats`, `$querySettings`, and any future or internal stage.
 * Stages with a namespace may name another database only as the project's own: `$out` and `$merge` (`{ db, coll }`),
 * `$lookup`, `$graphLookup` and `$unionWith` (`from` / `coll` as `{ db, coll }`), searched at any depth (sub-pipelines
 * of `$lookup`, `$unionWith`, `$facet` and `$merge`'s `whenMatched`). Those stages take only their documented fields
 * (any other is refused, as is a `whenMatched` that is neither a mode nor a pipeline). Collection names must be valid
 * and not `system.*`.
 *
 * @internal
 */
import type { Document } from "mongodb"
import { invalid, isDocument, Refusal } from "./documents.ts"

/**
 * The stages a project's pipelines may use (the README lists them with the reason for each refusal).
 *
 * @internal
 */
export const allowedStages: ReadonlySet<string> = new Set([
  "$addFields",
  "$bucket",
  "$bucketAuto",
  "$collStats",
  "$count",
  "$densify",
  "$documents",
  "$facet",
  "$fill",
  "$geoNear",
  "$graphLookup",
  "$group",
  "$indexStats",
  "$limit",
  "$lookup",
  "$match",
  "$merge",
  "$out",
  "$project",
  "$redact",
  "$replaceRoot",
  "$replaceWith",
  "$sample",
  "$search",
  "$searchMeta",
  "$set",
  "$setWindowFields",
  "$skip",
  "$sort",
  "$sortByCount",
  "$unionWith",
  "$unset",
  "$unwind",
  "$vectorSearch"
])

const forbidden = (argument: string, reason: string): Refusal => new Refusal(argument, "forbidden", reason)

/**
 * A collection name a project may use: a non-empty string without NUL or `$`, not a `system.` collection, at most
 * 255 bytes. Throws a `Refusal` naming `argument` otherwise.
 *
 * @internal
 */
export const checkCollectionName = (name: unknown, argument: string): string => {
  if (typeof name !== "string") throw invalid(argument, "must be a collection name (a string)")
  if (name.length === 0 || name.length > 255) throw invalid(argument, "must be 1 to 255 characters")
  if (name.includes("\u0000") || name.includes("$")) throw invalid(argument, "must not contain NUL or '$'")
  if (name.startsWith("system.")) throw forbidden(argument, "names a system collection")
  return name
}

/** What a pipeline check found: whether it writes, and the databases it names, each with where it names it. */
interface Found {
  writes: boolean
  readonly databases: Map<string, string>
}

// A namespace value: a collection name, or `{ db, coll }`. Records the database; checks the collection name.
const namespace = (value: unknown, argument: string, found: Found, optional: boolean): void => {
  if (value === undefined && optional) return
  if (typeof value === "string") {
    checkCollectionName(value, argument)
    return
  }
  if (!isDocument(value)) throw invalid(argument, "must be a collection name or { db, coll }")
  for (const key of Object.keys(value)) {
    if (key !== "db" && key !== "coll" && key !== "timeseries") throw forbidden(`${argument}.${key}`, "is not allowed")
  }
  const db = value["db"]
  if (db !== undefined) {
    if (typeof db !== "string") throw invalid(`${argument}.db`, "must be a string")
    if (!found.databases.has(db)) found.databases.set(db, `${argument}.db`)
  }
  checkCollectionName(value["coll"], `${argument}.coll`)
}

const subPipeline = (value: unknown, argument: string, found: Found): void => {
  if (value === undefined) return
  if (!Array.isArray(value)) throw invalid(argument, "must be a pipeline (an array of stages)")
  walk(value, argument, found)
}

// The fields of each stage that names a collection: any other field is refused (deny by default), so that no
// field a server may read a database or a pipeline from passes unchecked.
const stageFields: Readonly<Record<string, ReadonlySet<string>>> = {
  $merge: new Set(["into", "on", "let", "whenMatched", "whenNotMatched"]),
  $lookup: new Set(["from", "localField", "foreignField", "as", "let", "pipeline"]),
  $graphLookup: new Set([
    "from",
    "startWith",
    "connectFromField",
    "connectToField",
    "as",
    "maxDepth",
    "depthField",
    "restrictSearchWithMatch"
  ]),
  $unionWith: new Set(["coll", "pipeline"])
}

const onlyFields = (spec: Document, name: string, argument: string): void => {
  const fields = stageFields[name]!
  for (const key of Object.keys(spec)) {
    if (!fields.has(key)) throw forbidden(`${argument}.${key}`, `is not a field of ${name}`)
  }
}

const stage = (spec: unknown, name: string, argument: string, found: Found): void => {
  if (Object.hasOwn(stageFields, name) && isDocument(spec)) onlyFields(spec, name, argument)
  switch (name) {
    case "$out":
      found.writes = true
      return namespace(spec, argument, found, false)
    case "$merge": {
      found.writes = true
      if (typeof spec === "string") return namespace(spec, argument, found, false)
      if (!isDocument(spec)) throw invalid(argument, "must be a collection name or a document")
      namespace(spec["into"], `${argument}.into`, found, false)
      const whenMatched = spec["whenMatched"]
      if (Array.isArray(whenMatched)) return subPipeline(whenMatched, `${argument}.whenMatched`, found)
      if (whenMatched !== undefined && typeof whenMatched !== "string") {
        throw invalid(`${argument}.whenMatched`, "must be a mode (a string) or a pipeline")
      }
      return
    }
    case "$lookup":
    case "$graphLookup":
      if (!isDocument(spec)) throw invalid(argument, "must be a document")
      // `$lookup` without `from` reads a pipeline that starts with `$documents`.
      namespace(spec["from"], `${argument}.from`, found, name === "$lookup")
      return subPipeline(spec["pipeline"], `${argument}.pipeline`, found)
    case "$unionWith":
      if (typeof spec === "string") return namespace(spec, argument, found, false)
      if (!isDocument(spec)) throw invalid(argument, "must be a collection name or a document")
      namespace(spec["coll"], `${argument}.coll`, found, true)
      return subPipeline(spec["pipeline"], `${argument}.pipeline`, found)
    case "$facet":
      if (!isDocument(spec)) throw invalid(argument, "must be a document")
      for (const key of Object.keys(spec)) subPipeline(spec[key], `${argument}.${key}`, found)
      return
  }
}

const walk = (pipeline: ReadonlyArray<unknown>, argument: string, found: Found): void => {
  for (let i = 0; i < pipeline.length; i++) {
    const at = `${argument}[${i}]`
    const s = pipeline[i]
    if (!isDocument(s)) throw invalid(at, "must be a stage document")
    const keys = Object.keys(s)
    if (keys.length !== 1) throw invalid(at, "must have exactly one field, the stage")
    const name = keys[0]!
    if (!allowedStages.has(name)) throw forbidden(`${at}.${name}`, "is not an allowed stage")
    stage(s[name], name, `${at}.${name}`, found)
  }
}

/**
 * Checks a pipeline (a copy, see `documents.ts`) against the stage allowlist and its namespaces; throws a `Refusal`
 * naming the stage. Returns whether it writes and the databases it names (empty for nearly every pipeline).
 *
 * @internal
 */
export const checkPipeline = (
  pipeline: ReadonlyArray<unknown>,
  argument: string
): { readonly writes: boolean; readonly databases: ReadonlyMap<string, string> } => {
  const found: Found = { writes: false, databases: new Map() }
  walk(pipeline, argument, found)
  return found
}

/**
 * The refusal of a pipeline that names a database other than the project's own, if it does.
 *
 * @internal
 */
export const otherDatabase = (databases: ReadonlyMap<string, string>, own: string): Refusal | undefined => {
  for (const [db, where] of databases) {
    if (db !== own) return forbidden(where, "names another database; a project's pipelines stay in its own")
  }
  return undefined
}

/** An update pipeline's stages are checked like an aggregation's (the server accepts fewer still). @internal */
export const isPipeline = (update: unknown): update is ReadonlyArray<Document> => Array.isArray(update)
