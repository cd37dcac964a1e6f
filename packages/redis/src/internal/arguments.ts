/**
 * Checks of the arguments the public operations take, before anything is sent or admitted. The types say what an
 * operation takes, but callers from JavaScript, JSON or `as any` can pass anything, and ioredis would coerce it
 * (`123` becomes the key "123", `undefined` throws a `TypeError` that looked like a connection failure and fed the
 * breakers). Each check returns the caller's error (`RedisError` of kind `argument`, naming the argument and what it
 * got, never its value) or `undefined`. A value the check cannot read (a revoked proxy, a getter that throws) is the
 * caller's error too, never a throw out of the operation; options are read once into a plain copy (`record`), so
 * what was checked is what is sent.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import { invalidArgument, type RedisError } from "../RedisError.ts"

/** Runs `f` unless an argument check failed (then the call fails with it: nothing is admitted or sent). */
export const checked = <A, E>(
  invalid: RedisError | undefined,
  f: () => Effect.Effect<A, E>
): Effect.Effect<A, E | RedisError> => (invalid === undefined ? f() : Effect.fail(invalid))

// Whether a value is an array; a revoked proxy, on which `Array.isArray` throws, is not.
const isArray = (u: unknown): boolean => {
  try {
    return Array.isArray(u)
  } catch {
    return false
  }
}

// Runs a check; a value that throws while it is read (a proxy, a getter) is the caller's error, naming the field.
const guarded = (command: string, field: string, check: () => RedisError | undefined): RedisError | undefined => {
  try {
    return check()
  } catch {
    return invalidArgument(command, `${field}: could not be read (a getter or proxy threw)`)
  }
}

// What a value is, for a message: never the value itself (it may be personal data or a secret).
const what = (u: unknown): string => {
  if (u === null) return "null"
  if (isArray(u)) return "an array"
  if (typeof u === "number") return Number.isNaN(u) ? "NaN" : Number.isFinite(u) ? "a number" : "an infinite number"
  return typeof u === "object" ? "an object" : typeof u === "undefined" ? "undefined" : `a ${typeof u}`
}

/** A string (a key, field, member, value, channel). */
export const string = (command: string, field: string, u: unknown): RedisError | undefined =>
  typeof u === "string" ? undefined : invalidArgument(command, `${field}: expected a string, got ${what(u)}`)

/** An array of strings, at least `min` of them. */
export const strings = (command: string, field: string, u: unknown, min = 1): RedisError | undefined =>
  guarded(command, field, () => stringsUnguarded(command, field, u, min))

const stringsUnguarded = (command: string, field: string, u: unknown, min: number): RedisError | undefined => {
  if (!Array.isArray(u)) return invalidArgument(command, `${field}: expected an array of strings, got ${what(u)}`)
  if (u.length < min) return invalidArgument(command, `${field}: expected at least ${min}, got ${u.length}`)
  for (let i = 0; i < u.length; i++) {
    if (typeof u[i] !== "string")
      return invalidArgument(command, `${field}[${i}]: expected a string, got ${what(u[i])}`)
  }
  return undefined
}

/** A safe integer (an index, a count, an increment). */
export const integer = (command: string, field: string, u: unknown): RedisError | undefined =>
  Number.isSafeInteger(u) ? undefined : invalidArgument(command, `${field}: expected an integer, got ${what(u)}`)

/** A number that is not NaN (a score: ±Infinity are Redis's `+inf` and `-inf`). */
export const score = (command: string, field: string, u: unknown): RedisError | undefined =>
  typeof u === "number" && !Number.isNaN(u)
    ? undefined
    : invalidArgument(command, `${field}: expected a number, got ${what(u)}`)

/** A score bound: a number (not NaN) or a string (`(1`, `-inf`). */
export const bound = (command: string, field: string, u: unknown): RedisError | undefined =>
  typeof u === "string" ? undefined : score(command, field, u)

/** An object of string values (MSET entries, HSET fields), at least one. */
export const entries = (command: string, field: string, u: unknown): RedisError | undefined =>
  guarded(command, field, () => entriesUnguarded(command, field, u))

const entriesUnguarded = (command: string, field: string, u: unknown): RedisError | undefined => {
  if (typeof u !== "object" || u === null || Array.isArray(u)) {
    return invalidArgument(command, `${field}: expected an object of strings, got ${what(u)}`)
  }
  const values = Object.values(u)
  if (values.length === 0) return invalidArgument(command, `${field}: expected at least one entry`)
  for (const [k, v] of Object.entries(u)) {
    if (typeof v !== "string") return invalidArgument(command, `${field}.${k}: expected a string, got ${what(v)}`)
  }
  return undefined
}

/**
 * The most elements an array argument may have: far more than any command needs, and few enough that copying a
 * sparse array (length 2^32 - 1 costs nothing to make) cannot stall the process.
 */
export const maxElements = 1_048_576

/**
 * A plain copy of an array, read once by index (not through its own methods or iterator), or the caller's error;
 * `undefined` for a value that is not an array (left to the checks to name: it may be a Proxy that throws).
 */
export const copy = (command: string, field: string, u: unknown): Array<unknown> | RedisError | undefined => {
  try {
    if (!Array.isArray(u)) return undefined
    const length: unknown = u.length
    if (typeof length !== "number" || !Number.isSafeInteger(length) || length < 0) {
      return invalidArgument(command, `${field}: expected an array`)
    }
    if (length > maxElements) {
      return invalidArgument(command, `${field}: ${length} elements, more than the ${maxElements} allowed`)
    }
    const out: Array<unknown> = []
    for (let i = 0; i < length; i++) out.push((u as Array<unknown>)[i])
    return out
  } catch {
    return invalidArgument(command, `${field}: could not be read (a getter or proxy threw)`)
  }
}

/** Raw command arguments: strings, or finite numbers (sent as their decimal text). */
export const commandArgs = (command: string, field: string, u: unknown): RedisError | undefined =>
  guarded(command, field, () => commandArgsUnguarded(command, field, u))

const commandArgsUnguarded = (command: string, field: string, u: unknown): RedisError | undefined => {
  if (!Array.isArray(u)) return invalidArgument(command, `${field}: expected an array, got ${what(u)}`)
  for (let i = 0; i < u.length; i++) {
    const a: unknown = u[i]
    if (typeof a !== "string" && !(typeof a === "number" && Number.isFinite(a))) {
      return invalidArgument(command, `${field}[${i}]: expected a string or a finite number, got ${what(a)}`)
    }
  }
  return undefined
}

/** Argument positions (0-based) within `length` arguments. */
export const positions = (command: string, field: string, u: unknown, length: number): RedisError | undefined =>
  guarded(command, field, () => positionsUnguarded(command, field, u, length))

const positionsUnguarded = (command: string, field: string, u: unknown, length: number): RedisError | undefined => {
  if (!Array.isArray(u)) return invalidArgument(command, `${field}: expected an array of positions, got ${what(u)}`)
  for (let i = 0; i < u.length; i++) {
    const p: unknown = u[i]
    if (!Number.isSafeInteger(p) || (p as number) < 0 || (p as number) >= length) {
      return invalidArgument(command, `${field}[${i}]: expected an argument position from 0 to ${length - 1}`)
    }
  }
  return undefined
}

/** An optional object of options (`undefined` is fine). */
export const options = (command: string, field: string, u: unknown): RedisError | undefined =>
  u === undefined || (typeof u === "object" && u !== null && !isArray(u))
    ? undefined
    : invalidArgument(command, `${field}: expected an object, got ${what(u)}`)

/**
 * An optional object of options, read once: a plain copy of its `names` fields (an empty object for `undefined`), or
 * the caller's error. Later reads use the copy, so a getter can neither throw there nor change what was checked.
 */
export const record = <K extends string>(
  command: string,
  field: string,
  u: unknown,
  names: ReadonlyArray<K>
): Partial<Record<K, unknown>> | RedisError => {
  const invalid = options(command, field, u)
  if (invalid !== undefined) return invalid
  const copy: Partial<Record<K, unknown>> = {}
  if (u === undefined) return copy
  for (const name of names) {
    try {
      const value: unknown = (u as Record<string, unknown>)[name]
      if (value !== undefined) copy[name] = value
    } catch {
      return invalidArgument(command, `${field}.${name}: could not be read (a getter or proxy threw)`)
    }
  }
  return copy
}
