/**
 * One value per Redis command name, made on first use and kept. Error mappers and protection details are looked up
 * on every call, so each is made once per name; the cache is bounded all the same (names come from callers, through
 * the table only today), and past the bound a value is made per call instead.
 *
 * @since 0.1.0
 */

/** Command names kept at the most (Redis 7 has about 240 commands). */
const bound = 512

/** `make` memoized by command name, up to `bound` names. */
export const byCommand = <A>(make: (name: string) => A): ((name: string) => A) => {
  const cache = new Map<string, A>()
  return (name) => {
    let value = cache.get(name)
    if (value === undefined) {
      value = make(name)
      if (cache.size < bound) cache.set(name, value)
    }
    return value
  }
}
