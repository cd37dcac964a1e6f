/**
 * Documents in the form the driver will send them. The engine checks filters, updates, pipelines and option
 * documents, then hands the driver *its own copy*, made once, so that what is sent is exactly what was checked.
 *
 * Why a copy: the BSON serializer does not send a JavaScript object as it looks. It calls `toBSON()` (and may call
 * it again on what that returns), iterates a `Map`'s entries, serializes class instances by their own keys, an array
 * by its indices only, a `DBRef` as `$ref`/`$id`/`$db` plus its `fields`, and it reads getters and proxies when it
 * serializes, after the connection checkout, long after any check. A check of the caller's object would see one
 * thing and the server receive another.
 *
 * How: plain data (objects whose prototype is `Object.prototype` or `null`, arrays, primitives) is copied
 * field by field, each value read once; `ObjectId` and `Date` values are re-made (their packed fields, their time); anything
 * else (class instances, `toBSON`, `Map`, `_bsontype` values, typed arrays, regular expressions, BSON values) goes
 * through the driver's BSON itself: serialized with the options the engine sends with, and deserialized into fresh
 * values (`promoteValues: false`, so that numbers keep their BSON types and the bytes sent are the same). The copy
 * is therefore made only of fresh plain objects and arrays, primitives and genuine BSON values, none with
 * behaviour: serializing it again gives what was checked. Plain data, the common case, never touches BSON.
 *
 * @internal
 */
import { BSON, DBRef, type Document, ObjectId } from "mongodb"

/** Why an argument is refused (becomes a `MongoError` naming it). @internal */
export class Refusal {
  readonly argument: string
  readonly kind: "invalid_argument" | "forbidden"
  readonly reason: string
  constructor(argument: string, kind: "invalid_argument" | "forbidden", reason: string) {
    this.argument = argument
    this.kind = kind
    this.reason = reason
  }
}

/** Refuses `argument` as not well-formed. @internal */
export const invalid = (argument: string, reason: string): Refusal => new Refusal(argument, "invalid_argument", reason)

// Deeper than any document the server accepts (its nesting limit is 100 levels of user data).
const maxDepth = 200

/**
 * Longer than any array a 16 MiB BSON document can hold (each element takes a type byte, its index as a key and a
 * value: 3 bytes at least). A sparse array of length 2^32 - 1 costs nothing to make and would take the process
 * minutes and gigabytes to copy: refused by its length, before any element is read.
 *
 * @internal
 */
export const maxArrayLength = Math.floor((16 * 1024 * 1024) / 3)

const serializeOptions = { serializeFunctions: false, checkKeys: false, ignoreUndefined: false } as const
const deserializeOptions = { promoteValues: false, bsonRegExp: true, promoteBuffers: false } as const

const isPlainObject = (proto: unknown): boolean => proto === Object.prototype || proto === null

// A key set as data: `__proto__` as an own key (JSON.parse makes those) must not set the copy's prototype.
const put = (out: Record<string, unknown>, key: string, value: unknown): void => {
  if (key === "__proto__")
    Object.defineProperty(out, key, { value, enumerable: true, writable: true, configurable: true })
  else out[key] = value
}

const describe = (e: unknown): string => (e instanceof Error ? e.message : String(e)).split("\n")[0]!.slice(0, 200)

/** The value as the serializer sends it, via the driver's BSON (fresh values out). */
const viaBson = (value: unknown, path: string, depth: number): unknown => {
  let bytes: Uint8Array
  try {
    bytes = BSON.serialize({ v: value }, serializeOptions)
  } catch (e) {
    // BSON's own errors say what is wrong; anything else came from the value (its toBSON, a getter) and may carry it.
    throw invalid(
      path,
      `cannot be sent as BSON: ${BSON.BSONError.isBSONError(e) ? describe(e) : "a toBSON or getter threw"}`
    )
  }
  const out = BSON.deserialize(bytes, deserializeOptions) as { v?: unknown }
  return settle(out.v, path, depth)
}

/**
 * Walks a deserialized value: its objects are fresh; a `DBRef` becomes the document it is sent as, so that checks
 * see its fields (the serializer merges them into the `$ref` document).
 */
const settle = (value: unknown, path: string, depth: number): unknown => {
  if (value === null || typeof value !== "object") return value
  if (depth > maxDepth) throw invalid(path, `nests deeper than ${maxDepth} levels`)
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) value[i] = settle(value[i], path, depth + 1)
    return value
  }
  if (value instanceof DBRef) {
    const doc: Record<string, unknown> = { $ref: value.collection, $id: settle(value.oid, path, depth + 1) }
    if (value.db != null) doc["$db"] = value.db
    for (const key of Object.keys(value.fields)) put(doc, key, settle(value.fields[key], path, depth + 1))
    return doc
  }
  if (isPlainObject(Object.getPrototypeOf(value))) {
    const doc = value as Record<string, unknown>
    for (const key of Object.keys(doc)) doc[key] = settle(doc[key], path, depth + 1)
  }
  return value
}

const copy = (value: unknown, path: string, depth: number): unknown => {
  const type = typeof value
  if (value === null || type !== "object") {
    // The serializer silently drops functions and symbols (a field that disappears is not what the caller meant).
    if (type === "function" || type === "symbol") throw invalid(path, `holds a ${type}, which BSON cannot send`)
    return value
  }
  if (depth > maxDepth) throw invalid(path, `nests deeper than ${maxDepth} levels (or is circular)`)
  const v = value as Record<string, unknown>
  // Read once: whatever a getter or proxy answers here decides the path, and the copy holds what it answered.
  const proto = Object.getPrototypeOf(v)
  if (Array.isArray(v)) {
    if (proto !== Array.prototype) return viaBson(v, path, depth)
    const n = v.length
    if (!Number.isSafeInteger(n) || n < 0 || n > maxArrayLength) {
      throw invalid(path, `holds an array longer than ${maxArrayLength} elements (more than BSON can send)`)
    }
    const out = new Array<unknown>(n)
    for (let i = 0; i < n; i++) out[i] = copy(v[i], path, depth + 1)
    return out
  }
  if (isPlainObject(proto)) {
    if (typeof v["toBSON"] === "function" || v["_bsontype"] !== undefined) return viaBson(v, path, depth)
    const out: Record<string, unknown> = {}
    for (const key of Object.keys(v)) put(out, key, copy(v[key], path, depth + 1))
    return out
  }
  if (typeof v["toBSON"] === "function") return viaBson(v, path, depth)
  // The two BSON values filters hold most: re-made directly (a tampered instance yields bytes or a time, never
  // structure).
  if (proto === ObjectId.prototype) {
    try {
      return new ObjectId(v as unknown as ObjectId)
    } catch (e) {
      throw invalid(path, `is not a valid ObjectId: ${describe(e)}`)
    }
  }
  if (v instanceof Date) {
    try {
      return new Date(Date.prototype.getTime.call(v))
    } catch (e) {
      throw invalid(path, `is not a valid Date: ${describe(e)}`)
    }
  }
  return viaBson(v, path, depth)
}

/**
 * A copy of any BSON value in the form it will be sent (see the module comment); throws a `Refusal` naming
 * `path` when it cannot be sent.
 *
 * @internal
 */
export const sendable = (value: unknown, path: string): unknown => guarded(value, path)

// A proxy's trap or a getter may throw anything: that is the argument's fault, reported as such.
const guarded = (value: unknown, path: string): unknown => {
  try {
    return copy(value, path, 0)
  } catch (e) {
    if (e instanceof Refusal) throw e
    // What was thrown may carry the value (a getter's or a proxy's error): not repeated.
    throw invalid(path, "could not be read (a getter or proxy threw)")
  }
}

/** Whether a value (already a copy) is a document: a plain object, not an array nor a BSON value. @internal */
export const isDocument = (value: unknown): value is Document =>
  value !== null && typeof value === "object" && !Array.isArray(value) && isPlainObject(Object.getPrototypeOf(value))

/**
 * A document argument (a filter, an update document, a stage), copied; `undefined` is `{}` when `optional`.
 *
 * @internal
 */
export const document = (value: unknown, argument: string, optional = false): Document => {
  if (value === undefined && optional) return {}
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw invalid(argument, `must be a document, not ${describeType(value)}`)
  }
  const out = guarded(value, argument)
  if (!isDocument(out)) throw invalid(argument, `must be a document, not ${describeType(value)}`)
  return out
}

/** An array argument (a pipeline, documents to insert), copied. @internal */
export const array = (value: unknown, argument: string): Array<unknown> => {
  if (!Array.isArray(value)) throw invalid(argument, `must be an array, not ${describeType(value)}`)
  const out = guarded(value, argument)
  if (!Array.isArray(out)) throw invalid(argument, `must be an array, not ${describeType(value)}`)
  return out
}

/** A short description of a value's type for error details (never the value: it may be anything). @internal */
export const describeType = (value: unknown): string => {
  if (value === null) return "null"
  if (Array.isArray(value)) return "an array"
  const type = typeof value
  if (type !== "object") return `a ${type}`
  try {
    const name = (Object.getPrototypeOf(value) as { constructor?: { name?: unknown } } | null)?.constructor?.name
    return typeof name === "string" && name !== "Object" ? `a ${name.slice(0, 40)}` : "an object"
  } catch {
    return "an object"
  }
}
