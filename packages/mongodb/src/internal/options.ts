/**
 * The options of one call, as the engine hands them to the driver: only the keys `MongoOptions.allowedOptions`
 * lists for the operation, each value checked by its kind and documents copied in their sent form
 * (`documents.ts`). Built once per call, in a fresh object: nothing the caller keeps a reference to reaches the
 * driver.
 *
 * @internal
 */
import type { Document } from "mongodb"
import { allowedOptions, type OptionKind, type OptionsOf } from "../MongoOptions.ts"
import { array, describeType, document, invalid, isDocument, Refusal, sendable } from "./documents.ts"

/** Checked options: the driver's part (`driver`), the caller's `maxTimeMS`, whether the caller declared it idempotent. */
export interface Checked {
  readonly driver: Document | undefined
  readonly maxTimeMS: number | undefined
  readonly idempotent: boolean
  /** Documents among the options that the protections check for server-side JavaScript (projection, let, …). */
  readonly documents: Array<unknown> | undefined
}

/** No options at all: the common case, allocated once. */
export const none: Checked = { driver: undefined, maxTimeMS: undefined, idempotent: false, documents: undefined }

const isInteger = (v: unknown): v is number => typeof v === "number" && Number.isSafeInteger(v)

const writeConcernKeys: ReadonlySet<string> = new Set(["w", "j", "journal", "wtimeout", "wtimeoutMS"])

const value = (kind: OptionKind, v: unknown, at: string): unknown => {
  switch (kind) {
    case "int":
      if (!isInteger(v)) throw invalid(at, "must be an integer")
      return v
    case "count":
      if (!isInteger(v) || v < 0) throw invalid(at, "must be an integer, 0 or more")
      return v
    case "millis":
      // 0 would mean "no limit" to the server: the engine's own limit must stay.
      if (!isInteger(v) || v < 1) throw invalid(at, "must be an integer number of milliseconds, 1 or more")
      return v
    case "number":
      if (typeof v !== "number" || !Number.isFinite(v)) throw invalid(at, "must be a finite number")
      return v
    case "boolean":
      if (typeof v !== "boolean") throw invalid(at, "must be a boolean")
      return v
    case "string":
      if (typeof v !== "string") throw invalid(at, "must be a string")
      return v
    case "returnDocument":
      if (v !== "before" && v !== "after") throw invalid(at, 'must be "before" or "after"')
      return v
    case "document":
      return document(v, at)
    case "bson":
      return sendable(v, at)
    case "sortOrHint": {
      const out = sendable(v, at)
      if (typeof out !== "string" && typeof out !== "number" && !Array.isArray(out) && !isDocument(out)) {
        throw invalid(at, `must be a name, a document or an array, not ${describeType(v)}`)
      }
      return out
    }
    case "readConcern": {
      if (typeof v === "string") return { level: v }
      const out = document(v, at)
      for (const key of Object.keys(out))
        if (key !== "level") throw new Refusal(`${at}.${key}`, "forbidden", "is not allowed")
      if (typeof out["level"] !== "string") throw invalid(`${at}.level`, "must be a string")
      return out
    }
    case "writeConcern": {
      const out = document(v, at)
      for (const key of Object.keys(out)) {
        if (!writeConcernKeys.has(key)) throw new Refusal(`${at}.${key}`, "forbidden", "is not allowed")
      }
      const w = out["w"]
      // An unacknowledged write reports success whatever happened: its errors would never reach the guard.
      if (w === 0) throw new Refusal(`${at}.w`, "forbidden", "must acknowledge the write (w: 0 hides its outcome)")
      if (w !== undefined && typeof w !== "string" && !(isInteger(w) && w > 0)) {
        throw invalid(`${at}.w`, 'must be a positive integer or a tag such as "majority"')
      }
      return out
    }
    case "arrayFilters": {
      const out = array(v, at)
      for (let i = 0; i < out.length; i++) if (!isDocument(out[i])) throw invalid(`${at}[${i}]`, "must be a document")
      return out
    }
  }
}

// Option kinds whose documents may carry expressions (and so server-side JavaScript).
const expressionKinds: ReadonlySet<OptionKind> = new Set(["document", "arrayFilters"])

/**
 * The checked options of a call of `op` (see the module comment); throws a `Refusal` naming the first option not
 * allowed or not well-formed.
 *
 * @internal
 */
export const checkOptions = (op: OptionsOf, options: unknown, argument = "options"): Checked => {
  if (options === undefined || options === null) return none
  if (typeof options !== "object" || Array.isArray(options)) {
    throw invalid(argument, `must be an object, not ${describeType(options)}`)
  }
  const allowed = allowedOptions[op] as Readonly<Record<string, OptionKind>>
  let driver: Document | undefined
  let documents: Array<unknown> | undefined
  let idempotent = false
  const o = options as Record<string, unknown>
  for (const key of Object.keys(o)) {
    const v = o[key]
    // An option set to undefined is an option not given (spreads of partial objects make those).
    if (v === undefined) continue
    const kind = Object.hasOwn(allowed, key) ? allowed[key] : undefined
    if (kind === undefined) throw new Refusal(`${argument}.${key}`, "forbidden", `is not an option ${op} takes`)
    const checked = value(kind, v, `${argument}.${key}`)
    if (key === "idempotent") {
      idempotent = checked === true
      continue
    }
    ;(driver ??= {})[key] = checked
    if (expressionKinds.has(kind)) (documents ??= []).push(checked)
  }
  if (driver === undefined && !idempotent) return none
  return {
    driver,
    maxTimeMS: driver?.["maxTimeMS"] as number | undefined,
    idempotent,
    documents
  }
}
