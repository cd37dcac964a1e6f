/**
 * Aggregation pipelines seen from the guard: whether one writes (then it is not idempotent), and whether it reaches
 * a database other than the project's own. Projects that share a server also share its databases unless each has its
 * own user; `$out`/`$merge` into another database, or Atlas-style `$lookup`/`$unionWith` from one, would cross
 * that line, so the engine refuses them before sending.
 *
 * @internal
 */
import type { Document } from "mongodb"
import { type MongoError, refused } from "../MongoError.ts"

const isObject = (value: unknown): value is Document => typeof value === "object" && value !== null

const otherDb = (value: unknown, database: string): boolean =>
  isObject(value) && typeof value["db"] === "string" && value["db"] !== database

/** The stage that reaches another database, if any (sub-pipelines of `$lookup`, `$unionWith`, `$facet` included). @internal */
export const crossDatabaseStage = (pipeline: ReadonlyArray<unknown>, database: string): string | undefined => {
  for (const stage of pipeline) {
    if (!isObject(stage)) continue
    if (otherDb(stage["$out"], database)) return "$out"
    const merge = stage["$merge"]
    if (isObject(merge) && otherDb(merge["into"], database)) return "$merge"
    for (const name of ["$lookup", "$graphLookup", "$unionWith"] as const) {
      const spec = stage[name]
      if (!isObject(spec)) continue
      if (otherDb(spec["from"], database) || otherDb(spec["coll"], database)) return name
      const sub = spec["pipeline"]
      if (Array.isArray(sub)) {
        const found = crossDatabaseStage(sub, database)
        if (found !== undefined) return found
      }
    }
    const facet = stage["$facet"]
    if (isObject(facet)) {
      for (const sub of Object.values(facet)) {
        if (!Array.isArray(sub)) continue
        const found = crossDatabaseStage(sub, database)
        if (found !== undefined) return found
      }
    }
  }
  return undefined
}

/** Whether the pipeline writes its output (`$out` or `$merge`): running it twice is then not harmless. @internal */
export const writesOutput = (pipeline: ReadonlyArray<unknown>): boolean =>
  pipeline.some((stage) => isObject(stage) && ("$out" in stage || "$merge" in stage))

/** The refusal of an aggregation that reaches another database, if it does. @internal */
export const crossDatabaseRefusal = (pipeline: ReadonlyArray<unknown>, database: string): MongoError | undefined => {
  const stage = crossDatabaseStage(pipeline, database)
  return stage === undefined
    ? undefined
    : refused(
        "aggregate",
        "forbidden",
        `${stage} reaches another database; a project's pipelines stay in its own database`
      )
}
