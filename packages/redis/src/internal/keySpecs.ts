/**
 * Redis key specifications (`COMMAND INFO`, Redis 7), written compactly and evaluated as the server evaluates them
 * (`getKeysUsingKeySpecs` in Redis's db.c): where a command's keys and channels are among its arguments. The
 * command table writes each command's specs in the notation below; a test renders the live server's specs in the
 * same notation and compares.
 *
 * Notation, one token per spec, space-separated:
 *
 * - begin search: `N` (the argument at index N; the command name is index 0) or `WORD@S` (the argument after the
 *   keyword WORD, searched from index S; from the end when S is negative);
 * - find keys: nothing (one key), `..L` (a range to L: `+1` one more, `-1` up to the last argument, `-2` all but the
 *   last), with `/STEP` (every STEP-th) and `|LIMIT` (the first 1/LIMIT of the rest), or `#I+F` (the argument I
 *   after the beginning is a key count; keys start F after it);
 * - `ch:` before a spec: channels, not keys (Redis flags these `not_key`).
 *
 * @since 0.1.0
 */

/** Where a spec's keys begin. */
export type Begin =
  | { readonly _tag: "index"; readonly index: number }
  | { readonly _tag: "keyword"; readonly keyword: string; readonly startFrom: number }

/** How a spec's keys are found from its beginning. */
export type Find =
  | { readonly _tag: "range"; readonly lastKey: number; readonly keyStep: number; readonly limit: number }
  | { readonly _tag: "keynum"; readonly keyNumIndex: number; readonly firstKey: number; readonly keyStep: number }

/** One key specification. */
export interface KeySpec {
  readonly channel: boolean
  readonly begin: Begin
  readonly find: Find
}

const token =
  /^(ch:)?(?:(\d+)|([A-Z]+)@(-?\d+))(?:#(\d+)\+(\d+)(?:\/(\d+))?|(?:\.\.([+-]\d+))?(?:\/(\d+))?(?:\|(\d+))?)$/

/** Parses specs written in the notation (a bad spec is a bug in the table: it throws when the module loads). */
export const parse = (notation: string): ReadonlyArray<KeySpec> =>
  notation
    .split(" ")
    .filter((t) => t.length > 0)
    .map((t): KeySpec => {
      const m = token.exec(t)
      if (m === null) throw new Error(`bad key spec "${t}"`)
      const begin: Begin =
        m[2] !== undefined
          ? { _tag: "index", index: Number(m[2]) }
          : { _tag: "keyword", keyword: m[3]!, startFrom: Number(m[4]) }
      const find: Find =
        m[5] !== undefined
          ? { _tag: "keynum", keyNumIndex: Number(m[5]), firstKey: Number(m[6]), keyStep: Number(m[7] ?? 1) }
          : { _tag: "range", lastKey: Number(m[8] ?? 0), keyStep: Number(m[9] ?? 1), limit: Number(m[10] ?? 0) }
      return { channel: m[1] !== undefined, begin, find }
    })

/** A spec in the notation (the inverse of `parse`, so specs from a live server compare as text). */
export const render = (spec: KeySpec): string => {
  const b = spec.begin._tag === "index" ? String(spec.begin.index) : `${spec.begin.keyword}@${spec.begin.startFrom}`
  const f = spec.find
  let find: string
  if (f._tag === "keynum") find = `#${f.keyNumIndex}+${f.firstKey}${f.keyStep === 1 ? "" : `/${f.keyStep}`}`
  else {
    find = f.lastKey === 0 ? "" : f.lastKey > 0 ? `..+${f.lastKey}` : `..${f.lastKey}`
    if (f.keyStep !== 1) find += `/${f.keyStep}`
    if (f.limit !== 0) find += `|${f.limit}`
  }
  return `${spec.channel ? "ch:" : ""}${b}${find}`
}

/**
 * Whether `word` equals `upper` (an upper-case ASCII keyword) ignoring ASCII case only, as Redis's `strcasecmp`
 * does: `toUpperCase` would also match non-ASCII look-alikes ("ſtore" is "STORE" to JavaScript, not to Redis).
 */
export const isWord = (word: string, upper: string): boolean => {
  if (word.length !== upper.length) return false
  for (let i = 0; i < word.length; i++) {
    const c = word.charCodeAt(i)
    if ((c >= 97 && c <= 122 ? c - 32 : c) !== upper.charCodeAt(i)) return false
  }
  return true
}

/** A name in upper case, ASCII letters only (see `isWord`). */
export const asciiUpper = (name: string): string =>
  typeof name === "string" ? name.replace(/[a-z]+/g, (s) => s.toUpperCase()) : ""

/** Where keys and channels are, as argument indexes (0-based, after the command name). */
export interface Located {
  readonly keys: Array<number>
  readonly channels: Array<number>
}

/**
 * Why specs cannot locate the keys of a call: the key count or positions do not fit the arguments, or a keyword
 * occurs more than once (the command's own parser may then read a different occurrence than the spec finds).
 */
export type LocateFailure = "arguments" | "ambiguous"

// A strict decimal integer, as Redis's string2ll reads a key count.
const integer = /^(?:0|-?[1-9][0-9]*)$/

/**
 * The keys and channels of a call by its specs (`argv` without the command name: `argv[i]` is Redis's index
 * `i + 1`), or why they cannot be located. Unlike Redis, a spec that fails fails the call: a command whose keys
 * cannot be found is not sent.
 */
export const locate = (
  specs: ReadonlyArray<KeySpec>,
  argv: ReadonlyArray<string | number>,
  into: Located
): LocateFailure | undefined => {
  const argc = argv.length + 1
  const at = (i: number): string => String(argv[i - 1])
  for (const spec of specs) {
    let first = 0
    const begin = spec.begin
    if (begin._tag === "index") first = begin.index
    else {
      let seen = 0
      for (let i = 1; i < argc; i++) if (isWord(at(i), begin.keyword)) seen++
      if (seen > 1) return "ambiguous"
      const start = begin.startFrom > 0 ? begin.startFrom : argc + begin.startFrom
      const end = begin.startFrom > 0 ? argc - 1 : 1
      for (let i = start; i !== end; i = start <= end ? i + 1 : i - 1) {
        if (i >= argc || i < 1) break
        if (isWord(at(i), begin.keyword)) {
          first = i + 1
          break
        }
      }
      if (first === 0) continue
    }
    const find = spec.find
    let last: number
    if (find._tag === "range") {
      if (find.lastKey >= 0) last = first + find.lastKey
      else if (find.limit === 0) last = argc + find.lastKey
      else last = first + (Math.floor((argc - first) / find.limit) + find.lastKey)
    } else {
      const index = first + find.keyNumIndex
      if (index >= argc) return "arguments"
      const count = at(index)
      if (!integer.test(count)) return "arguments"
      const n = Number(count)
      if (!Number.isSafeInteger(n) || n < 0) return "arguments"
      // No keys (EVAL's `0`) is a valid call: Redis's spec would report it invalid and fall back to the command's
      // own key finder, which finds none.
      if (n === 0) continue
      first += find.firstKey
      last = first + n - 1
    }
    if (last >= argc || last < first || first >= argc) return "arguments"
    const out = spec.channel ? into.channels : into.keys
    for (let i = first; i <= last; i += find.keyStep) out.push(i - 1)
  }
  return undefined
}
