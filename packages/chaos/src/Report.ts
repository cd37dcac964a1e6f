/**
 * What a chaos run reports: the properties every scenario is held to (`violations`), a progress line per scenario,
 * the table of a run, and one JSON line per scenario × engine in the shape RELIABILITY.md's "The last full run" describes. Nothing here prints
 * a secret: leaks are counted, never shown.
 *
 * @since 0.1.0
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import type { Result } from "./Runner.ts"

/**
 * The tier minimum of the FREE tier, which the PostgreSQL pool must be back to after recovering.
 *
 * @category constants
 * @since 0.1.0
 */
export const FREE_MIN_POOL = 2

/**
 * How soon after the server's return project A must succeed again.
 *
 * @category constants
 * @since 0.1.0
 */
export const RECOVERY_BOUND_MS = 5_000

/**
 * A property a result is held to, and whether it holds.
 *
 * @category models
 * @since 0.1.0
 */
export interface Check {
  readonly name: string
  readonly holds: boolean
  readonly detail: string
}

/**
 * Every property of a result: no acknowledged write lost, none falsely failed, no duplicate, unexpected or torn
 * write, no wrong reply, no defect or foreign error, every wait within its deadline + 10 %, recovery within 5 s of
 * the server's return, nothing left on the server, no cross-project effect of A's own fault, no secret anywhere,
 * and (PostgreSQL) the pool back to its tier minimum.
 *
 * @category checking
 * @since 0.1.0
 */
export const checks = (result: Result): ReadonlyArray<Check> => {
  const a = result.figures.a
  const b = result.figures.b
  const ex = (key: string) => [...(a.examples[key] ?? []), ...(b.examples[key] ?? [])].join(", ")
  const recover = result.figures.recoverMs
  const leaks = result.secretLeaks.errors + result.secretLeaks.logs + result.secretLeaks.events
  const list: Array<Check> = [
    { name: "lost", holds: a.lost + b.lost === 0, detail: `${a.lost + b.lost} ${ex("lost")}` },
    {
      name: "falseFail",
      holds: a.falseFail + b.falseFail === 0,
      detail: `${a.falseFail + b.falseFail} ${ex("falseFail")}`
    },
    {
      name: "duplicates",
      holds: a.duplicates + b.duplicates + a.unexpected + b.unexpected === 0,
      detail: `${a.duplicates + b.duplicates} duplicated, ${a.unexpected + b.unexpected} unexpected ${ex("duplicates")}`
    },
    { name: "torn", holds: a.torn + b.torn === 0, detail: `${a.torn + b.torn} ${ex("torn")}` },
    { name: "badReads", holds: a.badReads + b.badReads === 0, detail: `${a.badReads + b.badReads}` },
    {
      name: "defects",
      holds: a.defects + b.defects + a.unclassified + b.unclassified === 0,
      detail: `${a.defects + b.defects} defects, ${a.unclassified + b.unclassified} unclassified ${ex("defects")} ${ex("unclassified")}`
    },
    {
      name: "waits",
      holds: a.waitsOverBound + b.waitsOverBound === 0,
      detail: `${a.waitsOverBound + b.waitsOverBound} over ${result.boundMs} ms + 10 %, max ${Math.round(Math.max(a.maxOpMs, b.maxOpMs))} ms ${ex("waitsOverBound")}`
    },
    {
      name: "recovery",
      holds: recover !== null && recover <= RECOVERY_BOUND_MS,
      detail: recover === null ? "no success after the heal" : `${Math.round(recover)} ms`
    },
    { name: "leaked", holds: result.leakedServerConns === 0, detail: `${result.leakedServerConns} server connections` },
    { name: "secrets", holds: leaks === 0, detail: JSON.stringify(result.secretLeaks) }
  ]
  if (result.crossProject !== null) {
    list.push({
      name: "crossProject",
      holds: result.crossProject === 0,
      detail: `${result.crossProject} of B's operations disturbed ${JSON.stringify(b.tags)}`
    })
  }
  if (result.engine === "postgres") {
    list.push({
      name: "poolRefilled",
      holds: result.poolAfterRecovery >= FREE_MIN_POOL,
      detail: `${result.poolAfterRecovery} connections after recovery (tier minimum ${FREE_MIN_POOL})`
    })
  }
  return list
}

/**
 * The properties a result breaks.
 *
 * @category checking
 * @since 0.1.0
 */
export const violations = (result: Result): ReadonlyArray<Check> => checks(result).filter((check) => !check.holds)

/**
 * `text` with every form of `secret` (plain, percent-encoded, base64) replaced by `<secret>`, for printing errors.
 *
 * @category formatting
 * @since 0.1.0
 */
export const redact = (text: string, secret: string | undefined): string => {
  if (secret === undefined) return text
  const forms = [secret, encodeURIComponent(secret), Buffer.from(secret).toString("base64")]
  return forms.reduce((out, form) => out.split(form).join("<secret>"), text)
}

const ms = (value: number | null) => (value === null ? "never" : `${Math.round(value)}`)

/**
 * One line per finished scenario, for the progress output.
 *
 * @category formatting
 * @since 0.1.0
 */
export const progressLine = (result: Result): string => {
  const a = result.figures.a
  const broken = violations(result).map((check) => check.name)
  return (
    `${result.scenario.padEnd(4)} ${result.engine.padEnd(8)} ${result.title.padEnd(40)} ` +
    `ok/fail/unknown ${a.writes.ok}/${a.writes.fail}/${a.writes.unknown}, lost ${a.lost}, falseFail ${a.falseFail}, ` +
    `recover ${ms(result.figures.recoverMs)} ms ` +
    (broken.length === 0 ? "✓" : `✗ ${broken.join(" ")}`)
  )
}

const COLUMNS = [
  "scenario",
  "engine",
  "ok/fail/unk",
  "lost",
  "false fail",
  "unk applied",
  "dup",
  "torn",
  "bad reads",
  "defects",
  "max op ms",
  "over bound",
  "detect ms",
  "open ms",
  "recover ms",
  "leaked",
  "pool after",
  "x-project",
  "secrets",
  "verdict"
] as const

const row = (result: Result): ReadonlyArray<string> => {
  const a = result.figures.a
  const b = result.figures.b
  const broken = violations(result).map((check) => check.name)
  return [
    `${result.scenario} ${result.title}`,
    result.engine,
    `${a.writes.ok}/${a.writes.fail}/${a.writes.unknown}`,
    String(a.lost + b.lost),
    String(a.falseFail + b.falseFail),
    String(a.unknownApplied),
    String(a.duplicates + b.duplicates),
    String(a.torn + b.torn),
    String(a.badReads + b.badReads),
    String(a.defects + b.defects + a.unclassified + b.unclassified),
    String(Math.round(Math.max(a.maxOpMs, b.maxOpMs))),
    String(a.waitsOverBound + b.waitsOverBound),
    ms(result.figures.detectMs),
    result.breakerOpenMs === null ? "—" : String(result.breakerOpenMs),
    ms(result.figures.recoverMs),
    String(result.leakedServerConns),
    result.engine === "postgres" ? String(result.poolAfterRecovery) : "—",
    result.crossProject === null ? "n/a" : String(result.crossProject),
    String(result.secretLeaks.errors + result.secretLeaks.logs + result.secretLeaks.events),
    broken.length === 0 ? "pass" : broken.join(", ")
  ]
}

/**
 * The results as a Markdown table (it reads as plain text too).
 *
 * @category formatting
 * @since 0.1.0
 */
export const table = (results: ReadonlyArray<Result>): string => {
  const rows = [COLUMNS as ReadonlyArray<string>, ...results.map(row)]
  const widths = COLUMNS.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)))
  const line = (cells: ReadonlyArray<string>) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(" | ")} |`
  return [line(rows[0]!), `|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`, ...rows.slice(1).map(line)].join("\n")
}

/**
 * Versions of what a run used, for the JSON lines.
 *
 * @category models
 * @since 0.1.0
 */
export type Env = Readonly<Record<string, string>>

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..")

const packageVersion = (name: string): string => {
  try {
    const file = path.join(repoRoot, "node_modules", name, "package.json")
    return String((JSON.parse(fs.readFileSync(file, "utf8")) as { version?: unknown }).version ?? "?")
  } catch {
    return "?"
  }
}

/**
 * Node's and the libraries' versions.
 *
 * @category formatting
 * @since 0.1.0
 */
export const libraryEnv = (): Env => ({
  node: process.versions.node,
  effect: packageVersion("effect"),
  "@effect/sql-pg": packageVersion("@effect/sql-pg"),
  ioredis: packageVersion("ioredis"),
  mongodb: packageVersion("mongodb")
})

/**
 * One JSON line (see RELIABILITY.md, "The last full run"), with the checker's other findings and the properties broken.
 *
 * @category formatting
 * @since 0.1.0
 */
export const jsonLine = (result: Result, env: Env): string => {
  const a = result.figures.a
  const b = result.figures.b
  return JSON.stringify({
    scenario: result.scenario,
    title: result.title,
    db: result.engine,
    fault: result.fault,
    ops: {
      ok: a.writes.ok,
      fail: a.writes.fail,
      unknown: a.writes.unknown,
      lost: a.lost + b.lost,
      falseFail: a.falseFail + b.falseFail,
      dup: a.duplicates + b.duplicates
    },
    reads: a.reads,
    unknownApplied: a.unknownApplied,
    unknownNotApplied: a.unknownNotApplied,
    unexpected: a.unexpected + b.unexpected,
    torn: a.torn + b.torn,
    badReads: a.badReads + b.badReads,
    defects: a.defects + b.defects,
    unclassified: a.unclassified + b.unclassified,
    detectMs: result.figures.detectMs === null ? null : Math.round(result.figures.detectMs),
    recoverMs: result.figures.recoverMs === null ? null : Math.round(result.figures.recoverMs),
    maxOpLatencyMs: Math.round(Math.max(a.maxOpMs, b.maxOpMs)),
    p99Ms: Math.round(a.p99Ms),
    boundMs: result.boundMs,
    waitsOverBound: a.waitsOverBound + b.waitsOverBound,
    leakedServerConns: result.leakedServerConns,
    poolAfterRecovery: result.poolAfterRecovery,
    breaker: result.breaker,
    breakerOpenMs: result.breakerOpenMs,
    serverConns: result.serverConns,
    crossProject: result.crossProject,
    secretLeaks: result.secretLeaks,
    errors: a.tags,
    examples: a.examples,
    violations: violations(result).map((check) => check.name),
    rssDeltaMB: result.rssDeltaMB,
    durationMs: Math.round(result.durationMs),
    env
  })
}
