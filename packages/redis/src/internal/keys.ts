/**
 * Key prefixing, the Redis engine's isolation: every key, key pattern, channel and script key a project sends gets
 * the project's prefix (`<project>:` by default), and every key or channel name it receives back loses it.
 *
 * @since 0.1.0
 */
import { invalidArgument } from "../RedisError.ts"

/** Anything that carries a project's prefix (a binding). */
export interface Prefixed {
  readonly prefix: string
}

/** The key as the server knows it. */
export const key = (b: Prefixed, name: string): string => b.prefix + name

/**
 * The keys as the server knows them. Read by index, never through the array's own methods: an Array subclass or a
 * Proxy (`Array.isArray` is true for both) could answer `map` with names that lack the prefix.
 */
export const keys = (b: Prefixed, names: ReadonlyArray<string>): Array<string> => {
  const out: Array<string> = []
  for (let i = 0; i < names.length; i++) {
    const name: unknown = names[i]
    // What is sent is what was checked: a getter that answers a non-string now is the caller's error, unsent.
    if (typeof name !== "string") throw invalidArgument("keys", `keys[${i}]: changed after it was checked`)
    out.push(b.prefix + name)
  }
  return out
}

/**
 * A glob pattern (SCAN MATCH, PSUBSCRIBE) within the project's keys or channels: the prefix matches only itself
 * (its glob characters escaped: a `prefix` option may contain them), the rest is the project's pattern.
 */
export const pattern = (b: Prefixed, glob: string): string => b.prefix.replace(/[*?[\]\\]/g, "\\$&") + glob

/** The key as the project knows it (a name without the prefix is returned as it is). */
export const strip = (b: Prefixed, name: string): string =>
  name.startsWith(b.prefix) ? name.slice(b.prefix.length) : name

/**
 * A command's arguments with the ones at `positions` (0-based, after the command name) prefixed; read by index
 * (see `keys`), into a plain array.
 */
export const prefixArgs = (
  b: Prefixed,
  args: ReadonlyArray<string | number>,
  positions: ReadonlyArray<number>
): Array<string | number> => {
  const out: Array<string | number> = []
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!
    out.push(Array.prototype.includes.call(positions, i) ? b.prefix + String(a) : a)
  }
  return out
}
