/**
 * Reading caller input at the public boundary. Callers from JavaScript, JSON or `as any` can pass anything where an
 * options object goes: `null`, a number, a proxy whose traps throw, an object whose getters throw. Each field is
 * read once into a plain copy (what was checked is what is used); a value that is not an object, or that throws
 * while it is read, is an `InvalidConfig` naming the field — never a throw, never the thrown value (which may carry
 * the input) in the error.
 *
 * @since 0.1.0
 */
import { InvalidConfig } from "../Errors.ts"

/** Whether a value is a non-null object that is not an array (a revoked proxy, which throws, is not). */
export const isRecord = (u: unknown): u is object => {
  try {
    return typeof u === "object" && u !== null && !Array.isArray(u)
  } catch {
    return false
  }
}

/**
 * The named fields of an options object, read once into a plain copy; `undefined` is an empty copy when
 * `optional`. A value that is not an object, or whose reading throws, is an `InvalidConfig` naming `field` (or
 * `field.name` for the field that threw).
 */
export const readFields = <K extends string>(
  field: string,
  u: unknown,
  names: ReadonlyArray<K>,
  options?: { readonly optional?: boolean | undefined }
): { readonly [P in K]?: unknown } | InvalidConfig => {
  if (u === undefined && options?.optional === true) return {}
  if (!isRecord(u)) return new InvalidConfig({ field, reason: "must be an object" })
  const copy: Partial<Record<K, unknown>> = {}
  for (const name of names) {
    try {
      const value: unknown = (u as Record<string, unknown>)[name]
      if (value !== undefined) copy[name] = value
    } catch {
      return new InvalidConfig({ field: `${field}.${name}`, reason: "could not be read (a getter or proxy threw)" })
    }
  }
  return copy
}

/** Runs `f`; anything it throws is an `InvalidConfig` naming `field` (the thrown value is not repeated). */
export const guard = <A>(field: string, f: () => A): A | InvalidConfig => {
  try {
    return f()
  } catch (e) {
    return e instanceof InvalidConfig ? e : new InvalidConfig({ field, reason: "could not be read" })
  }
}
