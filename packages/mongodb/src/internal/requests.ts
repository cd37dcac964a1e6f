/**
 * The arguments of each operation, checked and copied in their sent form before anything else happens: filters,
 * updates, replacements, pipelines, bulk-write models, index specifications and options. Every function here
 * throws a `Refusal` naming the argument at fault (`filter`, `update`, `options.dbName`, `operations[3].updateOne`);
 * `refusing` turns it into a failed Effect, so a caller never sees a defect or a synchronous throw for bad input.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import type { Document } from "mongodb"
import { type MongoError, refused } from "../MongoError.ts"
import type { OptionsOf } from "../MongoOptions.ts"
import { array, describeType, document, invalid, isDocument, maxArrayLength, Refusal, sendable } from "./documents.ts"
import { type Checked, checkOptions } from "./options.ts"
import { checkCollectionName, checkPipeline } from "./pipeline.ts"

/**
 * Runs `build`; a `Refusal` it throws becomes a `MongoError` of operation `operation` (never sent). Anything else
 * thrown while the arguments are read and checked (a revoked proxy, a getter that throws) is the caller's input too:
 * a `MongoError` of kind `invalid_argument`, never a defect, and never the thrown value (it may carry the input).
 *
 * @internal
 */
export const refusing = <A, E, R>(
  operation: string,
  build: () => Effect.Effect<A, E, R>
): Effect.Effect<A, E | MongoError, R> => {
  try {
    return build()
  } catch (e) {
    return Effect.fail(fromRefusal(operation, e instanceof Refusal ? e : unreadable("arguments")))
  }
}

/** The `MongoError` of a refusal. @internal */
export const fromRefusal = (operation: string, r: Refusal): MongoError =>
  refused(operation, r.kind, r.reason, r.argument)

/** A collection name, or the refusal every operation of its view fails with. @internal */
export const collectionName = (name: unknown): Refusal | undefined => {
  try {
    checkCollectionName(name, "collection")
    return undefined
  } catch (e) {
    return e instanceof Refusal ? e : unreadable("collection")
  }
}

/** The refusal of an argument that threw while it was read (a proxy, a getter). @internal */
export const unreadable = (argument: string): Refusal =>
  invalid(argument, "could not be read (a getter or proxy threw)")

/**
 * The elements of an array argument, read once each by index into a fresh array: never through the argument's own
 * methods (`map` of a proxy or a subclass may answer anything), nor its iterator or species.
 */
const elementsOf = (value: unknown, argument: string): Array<unknown> => {
  if (!Array.isArray(value)) throw invalid(argument, `must be an array, not ${describeType(value)}`)
  const n: unknown = value.length
  if (typeof n !== "number" || !Number.isSafeInteger(n) || n < 0 || n > maxArrayLength) {
    throw invalid(argument, `must be an array of at most ${maxArrayLength} elements`)
  }
  const out = new Array<unknown>(n)
  for (let i = 0; i < n; i++) out[i] = (value as Array<unknown>)[i]
  return out
}

/** A filter (`undefined`: every document). @internal */
export const filterOf = (filter: unknown, argument = "filter"): Document => document(filter, argument, true)

// The stages an update pipeline may hold (the server accepts exactly these).
const updateStages: ReadonlySet<string> = new Set([
  "$addFields",
  "$set",
  "$project",
  "$unset",
  "$replaceRoot",
  "$replaceWith"
])

/**
 * An update: a document of update operators, or an update pipeline (its stages among the server's update stages).
 *
 * @internal
 */
export const updateOf = (update: unknown, argument = "update"): Document | Array<Document> => {
  if (Array.isArray(update)) {
    const pipeline = array(update, argument)
    checkPipeline(pipeline, argument)
    for (let i = 0; i < pipeline.length; i++) {
      const name = Object.keys(pipeline[i] as Document)[0]!
      if (!updateStages.has(name)) throw new Refusal(`${argument}[${i}].${name}`, "forbidden", "is not an update stage")
    }
    return pipeline as Array<Document>
  }
  const out = document(update, argument)
  const keys = Object.keys(out)
  if (keys.length === 0 || !keys.every((k) => k.startsWith("$"))) {
    throw invalid(argument, "must be a document of update operators ($set, $inc, …) or an update pipeline")
  }
  return out
}

/** A replacement document (no update operators). @internal */
export const replacementOf = (replacement: unknown, argument = "replacement"): Document => {
  const out = document(replacement, argument)
  for (const key of Object.keys(out)) {
    if (key.startsWith("$")) throw invalid(`${argument}.${key}`, "a replacement holds no update operators")
  }
  return out
}

/** A pipeline, checked (see `pipeline.ts`). @internal */
export const pipelineOf = (
  pipeline: unknown
): {
  readonly pipeline: Array<Document>
  readonly writes: boolean
  readonly databases: ReadonlyMap<string, string>
} => {
  const copy = array(pipeline, "pipeline") as Array<Document>
  const { databases, writes } = checkPipeline(copy, "pipeline")
  return { pipeline: copy, writes, databases }
}

/** A document to insert. @internal */
export const documentOf = (value: unknown): Document => document(value, "document")

/** No options: what operations without options check against. @internal */
export { none as noOptions } from "./options.ts"

/** Documents to insert. @internal */
export const documentsOf = (documents: unknown): Array<Document> => {
  const list = elementsOf(documents, "documents")
  const out = new Array<Document>(list.length)
  for (let i = 0; i < list.length; i++) out[i] = document(list[i], `documents[${i}]`)
  return out
}

/** The options of `op`, with the engine's own `schema` option taken out first (reads decode with it). @internal */
export const optionsOf = (op: OptionsOf, options: unknown, ownKeys?: ReadonlyArray<string>): Checked => {
  if (ownKeys === undefined || options === null || typeof options !== "object" || Array.isArray(options)) {
    return checkOptions(op, options)
  }
  const rest: Record<string, unknown> = { ...(options as Record<string, unknown>) }
  for (const key of ownKeys) delete rest[key]
  return checkOptions(op, rest)
}

/** A field name for `distinct`. @internal */
export const keyOf = (key: unknown): string => {
  if (typeof key !== "string" || key.length === 0) throw invalid("key", "must be a non-empty field name")
  return key
}

/** An index name for `dropIndex`. @internal */
export const indexNameOf = (name: unknown): string => {
  if (typeof name !== "string" || name.length === 0) throw invalid("name", "must be an index name")
  return name
}

/** An index specification for `createIndex`: a field name, `[field, direction]` pairs, or a key document. @internal */
export const indexSpecOf = (spec: unknown, argument = "index"): unknown => {
  const out = sendable(spec, argument)
  if (typeof out !== "string" && !Array.isArray(out) && !isDocument(out)) {
    throw invalid(argument, `must be a field name, a key document or an array, not ${describeType(spec)}`)
  }
  return out
}

/** Index descriptions for `createIndexes`: `key` plus the options `createIndex` takes. @internal */
export const indexDescriptionsOf = (indexes: unknown): Array<Document> => {
  const list = elementsOf(indexes, "indexes")
  return list.map((d, i) => {
    const at = `indexes[${i}]`
    if (d === null || typeof d !== "object" || Array.isArray(d)) throw invalid(at, "must be a document")
    const { key, ...rest } = d as Record<string, unknown>
    const options = checkOptions("createIndex", rest, at)
    return { ...options.driver, key: indexSpecOf(key, `${at}.key`) }
  })
}

// The fields each bulk-write model may have, and how to check them.
type BulkField = "filter" | "update" | "replacement" | "document" | "option"

const bulkUpdate: Readonly<Record<string, BulkField>> = {
  filter: "filter",
  update: "update",
  upsert: "option",
  arrayFilters: "option",
  collation: "option",
  hint: "option"
}

const bulkFields: Readonly<Record<string, Readonly<Record<string, BulkField>>>> = {
  insertOne: { document: "document" },
  updateOne: bulkUpdate,
  updateMany: bulkUpdate,
  replaceOne: { filter: "filter", replacement: "replacement", upsert: "option", collation: "option", hint: "option" },
  deleteOne: { filter: "filter", collation: "option", hint: "option" },
  deleteMany: { filter: "filter", collation: "option", hint: "option" }
}

/**
 * Bulk-write models, each checked and copied; `documents` collects the filters and updates for the protections'
 * JavaScript check.
 *
 * @internal
 */
export const bulkOf = (
  operations: unknown
): { readonly models: Array<Document>; readonly documents: Array<unknown> } => {
  const list = elementsOf(operations, "operations")
  const documents: Array<unknown> = []
  const models = list.map((model, i) => {
    const at = `operations[${i}]`
    if (model === null || typeof model !== "object" || Array.isArray(model)) throw invalid(at, "must be a document")
    const kinds = Object.keys(model)
    const kind = kinds[0]
    if (kinds.length !== 1 || kind === undefined || !Object.hasOwn(bulkFields, kind)) {
      throw invalid(at, `must have one field: ${Object.keys(bulkFields).join(", ")}`)
    }
    const spec = (model as Record<string, unknown>)[kind]
    if (spec === null || typeof spec !== "object" || Array.isArray(spec))
      throw invalid(`${at}.${kind}`, "must be a document")
    const fields = bulkFields[kind]!
    const out: Record<string, unknown> = {}
    const options: Record<string, unknown> = {}
    for (const field of Object.keys(spec)) {
      const where = `${at}.${kind}.${field}`
      const value = (spec as Record<string, unknown>)[field]
      if (value === undefined) continue
      switch (Object.hasOwn(fields, field) ? fields[field] : undefined) {
        case "filter":
          documents.push((out[field] = filterOf(value, where)))
          break
        case "update":
          documents.push((out[field] = updateOf(value, where)))
          break
        case "replacement":
          out[field] = replacementOf(value, where)
          break
        case "document":
          out[field] = document(value, where)
          break
        case "option":
          options[field] = value
          break
        default:
          throw new Refusal(where, "forbidden", `is not a field of a ${kind} model`)
      }
    }
    for (const field of Object.keys(fields)) {
      if (fields[field] !== "option" && out[field] === undefined) throw invalid(`${at}.${kind}.${field}`, "is required")
    }
    const optionsOp = kind === "replaceOne" ? "replaceOne" : kind.startsWith("delete") ? "deleteOne" : "updateOne"
    const checked = checkOptions(optionsOp, options, `${at}.${kind}`)
    if (checked.documents !== undefined) documents.push(...checked.documents)
    return { [kind]: { ...out, ...checked.driver } }
  })
  return { models, documents }
}
