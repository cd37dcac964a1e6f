/**
 * The suite's vocabulary: a workload (what `npm run bench` runs, one child process each), the rows it reports
 * (figure, baseline, ratio, target, verdict), the machine a run happened on, and the table printed at the end.
 * Everything here is plain data, so rows travel from a workload's process to the runner as JSON.
 *
 * @internal
 */
import * as os from "node:os"

/** The servers a workload needs; the runner starts each once and hands the URLs to every workload. @internal */
export type ServerKind = "postgres" | "redis" | "mongodb"

/**
 * A target: `ratio >= 0.9` compares the row's ratio (figure / baseline), `figure <= 50` the figure itself.
 *
 * @internal
 */
export interface Target {
  readonly on: "ratio" | "figure"
  readonly op: ">=" | "<="
  readonly value: number
}

/** One reported figure. Latencies are in milliseconds; `unit` says what `figure` and `baseline` are. @internal */
export interface Row {
  readonly workload: string
  readonly name: string
  readonly unit: string
  readonly figure: number
  readonly baseline?: number | undefined
  /** What the baseline is ("effect-raw+ap @50"). */
  readonly baselineName?: string | undefined
  /** figure / baseline, or the median of per-round ratios where rounds were paired. */
  readonly ratio?: number | undefined
  readonly p50?: number | undefined
  readonly p99?: number | undefined
  readonly target?: Target | undefined
  /** Per-round figures or other detail, for the JSON file and BENCHMARKS.md. */
  readonly detail?: string | undefined
}

/** A row with its verdict and the 1-minute load average when its workload started. @internal */
export interface Reported extends Row {
  readonly verdict: "met" | "missed" | "-"
  readonly load: number
}

/** What a workload gets from the runner. @internal */
export interface Context {
  readonly quick: boolean
  /** Server URLs by kind (only those the workload asked for). */
  readonly urls: Readonly<Partial<Record<ServerKind, string>>>
  /** Seconds per measured round, and rounds (from --seconds / --rounds, or the mode's defaults). */
  readonly seconds: number
  readonly rounds: number
  readonly progress: (message: string) => void
}

/** A workload of the suite. @internal */
export interface Workload {
  readonly name: string
  readonly description: string
  readonly servers: ReadonlyArray<ServerKind>
  /** Extra node flags for its process (`--expose-gc`). */
  readonly execArgv?: ReadonlyArray<string> | undefined
  /** Loads the workload's module (in its own process) and returns its `run`. */
  readonly load: () => Promise<Run>
}

/** What a workload module exports. @internal */
export type Run = (ctx: Context) => Promise<ReadonlyArray<Row>>

/** The machine a run happened on. @internal */
export interface Machine {
  readonly cpu: string
  readonly cores: number
  readonly memoryGiB: number
  readonly node: string
  readonly platform: string
  /** Load averages (1, 5, 15 minutes) at the start and the end of the run. */
  readonly loadStart: ReadonlyArray<number>
  readonly loadEnd?: ReadonlyArray<number> | undefined
  readonly servers?: Readonly<Record<string, string>> | undefined
}

/** @internal */
export const machine = (): Machine => {
  const cpus = os.cpus()
  return {
    cpu: cpus[0]?.model.trim() ?? "unknown",
    cores: cpus.length,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    platform: `${os.platform()} ${os.release()}`,
    loadStart: os.loadavg().map((x) => Math.round(x * 100) / 100)
  }
}

/** @internal */
export const median = (xs: ReadonlyArray<number>): number => {
  if (xs.length === 0) return NaN
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2
}

/** The q-quantile (0..1) of a sample, nearest rank. @internal */
export const quantile = (xs: ArrayLike<number>, q: number): number => {
  if (xs.length === 0) return NaN
  const s = Float64Array.from(xs).sort()
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!
}

/** Whether a row meets its target; `-` for rows that only report. @internal */
export const verdict = (row: Row): Reported["verdict"] => {
  const t = row.target
  if (t === undefined) return "-"
  const x = t.on === "ratio" ? row.ratio : row.figure
  if (x === undefined || !Number.isFinite(x)) return "missed"
  return (t.op === ">=" ? x >= t.value : x <= t.value) ? "met" : "missed"
}

/** A target as text: `>= 0.90x`, `<= 50 µs`. @internal */
export const targetText = (row: Row): string => {
  const t = row.target
  if (t === undefined) return ""
  return t.on === "ratio" ? `${t.op} ${t.value.toFixed(2)}x` : `${t.op} ${formatNumber(t.value)} ${row.unit}`
}

/** A number with a sensible number of digits for a table. @internal */
export const formatNumber = (x: number | undefined): string => {
  if (x === undefined || Number.isNaN(x)) return ""
  const a = Math.abs(x)
  if (a >= 10_000) return Math.round(x).toLocaleString("en-US")
  if (a >= 100) return x.toFixed(0)
  if (a >= 10) return x.toFixed(1)
  if (a >= 1) return x.toFixed(2)
  return x.toFixed(3)
}

const cells = (r: Reported): ReadonlyArray<string> => [
  r.workload,
  r.name,
  `${formatNumber(r.figure)} ${r.unit}`,
  r.baseline === undefined ? "" : `${formatNumber(r.baseline)} ${r.unit}`,
  r.ratio === undefined ? "" : `${r.ratio.toFixed(2)}x`,
  r.p99 === undefined ? "" : `${formatNumber(r.p50)} / ${formatNumber(r.p99)}`,
  targetText(r),
  r.verdict
]

const headers = ["workload", "figure", "value", "baseline", "ratio", "p50 / p99 ms", "target", "verdict"]

/** The rows as an aligned text table. @internal */
export const table = (rows: ReadonlyArray<Reported>): string => {
  const body = rows.map(cells)
  const widths = headers.map((h, i) => Math.max(h.length, ...body.map((c) => c[i]!.length)))
  const line = (c: ReadonlyArray<string>) =>
    c
      .map((x, i) => (i >= 2 && i <= 5 ? x.padStart(widths[i]!) : x.padEnd(widths[i]!)))
      .join("  ")
      .trimEnd()
  return [line(headers), line(widths.map((w) => "-".repeat(w))), ...body.map(line)].join("\n")
}

/** The rows as a Markdown table (BENCHMARKS.md). @internal */
export const markdown = (rows: ReadonlyArray<Reported>): string => {
  const escape = (s: string) => s.replace(/\|/g, "\\|")
  return [
    `| ${headers.join(" | ")} |`,
    `| ${headers.map((_, i) => (i >= 2 && i <= 5 ? "---:" : "---")).join(" | ")} |`,
    ...rows.map((r) => `| ${cells(r).map(escape).join(" | ")} |`)
  ].join("\n")
}
