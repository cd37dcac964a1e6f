/**
 * Splits a SQL script into the statements psql would send one by one.
 *
 * `@effect/sql-pg` speaks only the extended protocol, which accepts one statement per query, so a migration file
 * has to be cut at its top-level semicolons. A semicolon inside a string, a quoted identifier, a dollar-quoted
 * body, a comment, parentheses or a SQL-standard `BEGIN ATOMIC ... END` function body does not end a statement.
 * The lexer follows psql's own (`src/fe_utils/psqlscan.l`), which is what makes "psql-runnable" and
 * "migrator-runnable" the same thing.
 *
 * @since 0.1.0
 */
import * as Result from "effect/Result"

/**
 * One statement of a script: its text without leading comments, and the 1-based line its first token is on.
 *
 * @category models
 * @since 0.1.0
 */
export interface SqlStatement {
  readonly text: string
  readonly line: number
}

/**
 * Why a script could not be split, and the 1-based line where the offending construct starts.
 *
 * @category models
 * @since 0.1.0
 */
export interface SqlSplitFailure {
  readonly line: number
  readonly reason: string
}

const isIdentStart = (c: string): boolean => /[A-Za-z_\u0080-\uffff]/.test(c)
const isIdentChar = (c: string): boolean => /[A-Za-z0-9_$\u0080-\uffff]/.test(c)
const isDigit = (c: string): boolean => c >= "0" && c <= "9"
const dollarTag = /^\$(?:[A-Za-z_\u0080-\uffff][A-Za-z0-9_\u0080-\uffff]*)?\$/

/**
 * A psql meta-command on a line of its own between statements (`\set ON_ERROR_STOP on`, `\ir file.sql`): its text
 * (the whole line, trimmed) and its 1-based line.
 *
 * @category models
 * @since 0.1.0
 */
export interface MetaCommand {
  readonly text: string
  readonly line: number
}

/**
 * A script cut the way psql reads it: the statements it sends, and the meta-commands it runs itself.
 *
 * @category models
 * @since 0.1.0
 */
export interface SqlScript {
  readonly statements: ReadonlyArray<SqlStatement>
  readonly metaCommands: ReadonlyArray<MetaCommand>
}

/**
 * Splits `source` into statements, or reports the first unterminated construct or psql meta-command.
 *
 * @category splitting
 * @since 0.1.0
 */
export const splitSql = (source: string): Result.Result<ReadonlyArray<SqlStatement>, SqlSplitFailure> =>
  Result.map(split(source, false), (script) => script.statements)

/**
 * Splits `source` into statements and the psql meta-commands between them. A meta-command must stand on a line of
 * its own, outside any statement (psql would also take one in the middle of a statement, as in `SELECT 1 \gset`).
 *
 * @category splitting
 * @since 0.1.0
 */
export const splitScript = (source: string): Result.Result<SqlScript, SqlSplitFailure> => split(source, true)

const split = (source: string, allowMeta: boolean): Result.Result<SqlScript, SqlSplitFailure> => {
  const statements: Array<SqlStatement> = []
  const metaCommands: Array<MetaCommand> = []
  const n = source.length
  let i = 0
  let line = 1
  // Start of the current statement's first token (-1: none seen yet) and its line.
  let start = -1
  let startLine = 0
  let parenDepth = 0
  let beginDepth = 0
  // psql's heuristic: the first words of the statement decide whether BEGIN/CASE/END nest.
  let words: Array<string> = []

  const advance = (to: number): void => {
    for (let k = i; k < to && k < n; k++) if (source[k] === "\n") line++
    i = Math.min(to, n)
  }
  const markCode = (): void => {
    if (start === -1) {
      start = i
      startLine = line
    }
  }
  const finish = (end: number): void => {
    if (start !== -1) statements.push({ text: source.slice(start, end).trimEnd(), line: startLine })
    start = -1
    parenDepth = 0
    beginDepth = 0
    words = []
  }
  const isFunctionDefinition = (): boolean => {
    const [w0, w1, w2, w3] = words
    return (
      w0 === "create" &&
      (w1 === "function" ||
        w1 === "procedure" ||
        (w1 === "or" && w2 === "replace" && (w3 === "function" || w3 === "procedure")))
    )
  }
  const fail = (at: number, reason: string): Result.Result<never, SqlSplitFailure> => Result.fail({ line: at, reason })

  while (i < n) {
    const c = source[i]!
    const next = source[i + 1]
    if (c === "-" && next === "-") {
      const eol = source.indexOf("\n", i)
      advance(eol === -1 ? n : eol)
      continue
    }
    if (c === "/" && next === "*") {
      // Block comments nest in PostgreSQL.
      const opened = line
      let depth = 0
      let k = i
      while (k < n) {
        if (source[k] === "/" && source[k + 1] === "*") {
          depth++
          k += 2
        } else if (source[k] === "*" && source[k + 1] === "/") {
          depth--
          k += 2
          if (depth === 0) break
        } else k++
      }
      if (depth !== 0) return fail(opened, "unterminated /* comment")
      advance(k)
      continue
    }
    if (/\s/.test(c)) {
      advance(i + 1)
      continue
    }
    if (c === ";" && parenDepth === 0 && beginDepth === 0) {
      finish(i)
      advance(i + 1)
      continue
    }
    markCode()
    if (c === "'") {
      const end = scanQuoted(source, i, "'", false)
      if (end === -1) return fail(line, "unterminated string literal")
      advance(end)
      continue
    }
    if (c === '"') {
      const end = scanQuoted(source, i, '"', false)
      if (end === -1) return fail(line, "unterminated quoted identifier")
      advance(end)
      continue
    }
    if (c === "$") {
      const tag = dollarTag.exec(source.slice(i, i + 256))
      if (tag !== null) {
        const close = source.indexOf(tag[0], i + tag[0].length)
        if (close === -1) return fail(line, `unterminated dollar-quoted string ${tag[0]}`)
        advance(close + tag[0].length)
        continue
      }
      // `$1`, a positional parameter.
      advance(i + 1)
      continue
    }
    if (isIdentStart(c)) {
      let k = i + 1
      while (k < n && isIdentChar(source[k]!)) k++
      const word = source.slice(i, k)
      const lower = word.toLowerCase()
      if (source[k] === "'" && (lower === "e" || lower === "x" || lower === "b" || lower === "n")) {
        // E'...' takes backslash escapes; B'', X'' and N'' are ordinary literals.
        const end = scanQuoted(source, k, "'", lower === "e")
        if (end === -1) return fail(line, "unterminated string literal")
        advance(end)
        continue
      }
      if (lower === "u" && source[k] === "&" && (source[k + 1] === "'" || source[k + 1] === '"')) {
        const end = scanQuoted(source, k + 1, source[k + 1]!, false)
        if (end === -1) return fail(line, "unterminated Unicode string literal")
        advance(end)
        continue
      }
      words.push(lower)
      if (parenDepth === 0 && isFunctionDefinition()) {
        if (lower === "begin") beginDepth++
        else if (lower === "case" && beginDepth > 0) beginDepth++
        else if (lower === "end" && beginDepth > 0) beginDepth--
      }
      advance(k)
      continue
    }
    if (isDigit(c)) {
      // A number, including forms like 1e-5, 0x1F and 1_000, so "e" in it is not taken for a word.
      let k = i + 1
      while (k < n && (isIdentChar(source[k]!) || source[k] === ".")) k++
      advance(k)
      continue
    }
    if (c === "\\") {
      const lineStart = source.lastIndexOf("\n", i - 1) + 1
      const eol = source.indexOf("\n", i)
      const end = eol === -1 ? n : eol
      if (!allowMeta) {
        return fail(line, "psql meta-command (a backslash outside quotes); the migrator runs plain SQL only")
      }
      if (start !== i || source.slice(lineStart, i).trim() !== "") {
        return fail(line, "psql meta-command inside a statement; put it on a line of its own between statements")
      }
      metaCommands.push({ text: source.slice(i, end).trim(), line })
      start = -1
      advance(end)
      continue
    }
    if (c === "(") parenDepth++
    else if (c === ")") parenDepth = Math.max(0, parenDepth - 1)
    advance(i + 1)
  }
  finish(n)
  return Result.succeed({ statements, metaCommands })
}

// Returns the index just past the closing quote, or -1. A doubled quote is an escaped quote; with `backslash`,
// a backslash escapes the next character (E'' strings).
const scanQuoted = (source: string, open: number, quote: string, backslash: boolean): number => {
  let k = open + 1
  while (k < source.length) {
    const ch = source[k]
    if (backslash && ch === "\\") {
      k += 2
      continue
    }
    if (ch === quote) {
      if (source[k + 1] === quote) {
        k += 2
        continue
      }
      return k + 1
    }
    k++
  }
  return -1
}
