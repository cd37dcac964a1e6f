/**
 * The history checker (RELIABILITY.md, "The promises, as checked"; after Jepsen's set test): compares what the library reported for every
 * operation with what the server holds after healing, read directly with the raw driver.
 *
 * - **lost**: acknowledged (`ok`) but absent;
 * - **falsely failed**: reported `fail` (definitely not applied) but present;
 * - **unknown applied / not applied**: `unknown` writes by their fate (reported, not judged);
 * - **duplicates**: an id present more than once (a write applied twice);
 * - **unexpected**: present but never attempted;
 * - **torn**: a transaction with one of its two writes present;
 * - **bad reads**: a read that returned something other than the seeded value of the key it asked for;
 * - **defects** and **unclassified** errors: the library crashed, or answered with an error of no known type;
 * - **waits**: every operation's duration against the deadline the library promises it (plus a slack);
 * - **detect / recover**: from the fault to the first failure, from the heal to the first success of an operation
 *   started after it.
 *
 * Pure: the same history and final state give the same figures.
 *
 * @since 0.1.0
 */
import type { History, Op, Party } from "./History.ts"

/**
 * The final state of one project, as the server holds it: every id present (an id present twice appears twice).
 *
 * @category models
 * @since 0.1.0
 */
export type FinalState = ReadonlyArray<string>

/**
 * Counts of the library's verdicts.
 *
 * @category models
 * @since 0.1.0
 */
export interface Counts {
  readonly ok: number
  readonly fail: number
  readonly unknown: number
}

/**
 * What one project's history shows.
 *
 * @category models
 * @since 0.1.0
 */
export interface PartyFigures {
  /** Writes and transactions. */
  readonly writes: Counts
  readonly reads: Counts
  readonly lost: number
  readonly falseFail: number
  readonly unknownApplied: number
  readonly unknownNotApplied: number
  readonly duplicates: number
  readonly unexpected: number
  readonly torn: number
  readonly badReads: number
  readonly defects: number
  readonly unclassified: number
  /** Operations that took longer than their deadline plus the slack. */
  readonly waitsOverBound: number
  readonly maxOpMs: number
  readonly p50Ms: number
  readonly p99Ms: number
  /** Failures by tag, e.g. `{ "CircuitOpen": 812, "UnknownOutcome": 3 }`. */
  readonly tags: Readonly<Record<string, number>>
  /** A few examples per finding, for the report (ids and tags, never error texts). */
  readonly examples: Readonly<Record<string, ReadonlyArray<string>>>
}

/**
 * The checker's result for one run.
 *
 * @category models
 * @since 0.1.0
 */
export interface Figures {
  readonly a: PartyFigures
  readonly b: PartyFigures
  /** Fault start to the first failed operation of project A (null: the fault never showed). */
  readonly detectMs: number | null
  /** Heal to the first success of an A operation started after it (null: none before the run ended). */
  readonly recoverMs: number | null
}

/**
 * Options of `check`.
 *
 * @category models
 * @since 0.1.0
 */
export interface CheckOptions {
  /** Fraction of an operation's deadline it may overshoot (default 0.1: timeout + 10 %). */
  readonly slack?: number | undefined
}

const EXAMPLES = 5

const count = (ops: ReadonlyArray<Op>): Counts => ({
  ok: ops.filter((op) => op.outcome === "ok").length,
  fail: ops.filter((op) => op.outcome === "fail").length,
  unknown: ops.filter((op) => op.outcome === "unknown").length
})

const percentile = (sorted: ReadonlyArray<number>, p: number): number =>
  sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))]!

const multiset = (ids: FinalState): Map<string, number> => {
  const counts = new Map<string, number>()
  for (const id of ids) counts.set(id, (counts.get(id) ?? 0) + 1)
  return counts
}

/**
 * The figures of one project's operations against its final state.
 *
 * @category checking
 * @since 0.1.0
 */
export const checkParty = (ops: ReadonlyArray<Op>, final: FinalState, options?: CheckOptions): PartyFigures => {
  const slack = options?.slack ?? 0.1
  const present = multiset(final)
  const examples: Record<string, Array<string>> = {}
  const note = (finding: string, example: string) => {
    const list = (examples[finding] ??= [])
    if (list.length < EXAMPLES) list.push(example)
  }
  const writes = ops.filter((op) => op.kind !== "read")
  const reads = ops.filter((op) => op.kind === "read")
  const attempted = new Set(writes.flatMap((op) => op.ids))
  let lost = 0
  let falseFail = 0
  let unknownApplied = 0
  let unknownNotApplied = 0
  let torn = 0
  for (const op of writes) {
    const applied = op.ids.filter((id) => present.has(id)).length
    if (applied > 0 && applied < op.ids.length) {
      torn++
      note("torn", op.ids.join("+"))
    }
    if (op.outcome === "ok" && applied < op.ids.length) {
      lost++
      note("lost", op.ids.join("+"))
    } else if (op.outcome === "fail" && applied > 0) {
      falseFail++
      note("falseFail", `${op.ids.join("+")} (${op.tag})`)
    } else if (op.outcome === "unknown") {
      if (applied > 0) unknownApplied++
      else unknownNotApplied++
    }
  }
  let duplicates = 0
  let unexpected = 0
  for (const [id, n] of present) {
    if (n > 1) {
      duplicates += n - 1
      note("duplicates", `${id} ×${n}`)
    }
    if (!attempted.has(id)) {
      unexpected++
      note("unexpected", id)
    }
  }
  const tags: Record<string, number> = {}
  for (const op of ops) if (op.outcome !== "ok") tags[op.tag] = (tags[op.tag] ?? 0) + 1
  const durations = ops.map((op) => op.completedAt - op.invokedAt).sort((x, y) => x - y)
  const over = ops.filter((op) => op.completedAt - op.invokedAt > op.boundMs * (1 + slack))
  for (const op of over.slice(0, EXAMPLES)) {
    note("waitsOverBound", `${op.kind} ${Math.round(op.completedAt - op.invokedAt)} ms > ${op.boundMs} ms (${op.tag})`)
  }
  for (const op of ops.filter((o) => o.defect).slice(0, EXAMPLES)) note("defects", `${op.kind} ${op.tag}`)
  for (const op of ops.filter((o) => o.unclassified).slice(0, EXAMPLES)) note("unclassified", op.tag)
  for (const op of reads.filter((o) => o.badRead).slice(0, EXAMPLES)) note("badReads", op.ids.join(""))
  return {
    writes: count(writes),
    reads: count(reads),
    lost,
    falseFail,
    unknownApplied,
    unknownNotApplied,
    duplicates,
    unexpected,
    torn,
    badReads: reads.filter((op) => op.badRead).length,
    defects: ops.filter((op) => op.defect).length,
    unclassified: ops.filter((op) => op.unclassified).length,
    waitsOverBound: over.length,
    maxOpMs: durations.at(-1) ?? 0,
    p50Ms: percentile(durations, 50),
    p99Ms: percentile(durations, 99),
    tags,
    examples
  }
}

const of = (ops: ReadonlyArray<Op>, party: Party) => ops.filter((op) => op.party === party)

/**
 * Checks a run: both projects' figures, and project A's detection and recovery times from the fault timeline.
 *
 * @category checking
 * @since 0.1.0
 */
export const check = (
  history: Pick<History, "ops" | "marks">,
  final: { readonly a: FinalState; readonly b: FinalState },
  options?: CheckOptions
): Figures => {
  const a = of(history.ops, "a")
  const faultAt = history.marks.find((m) => m.what === "fault")?.at
  const healAt = history.marks.find((m) => m.what === "heal")?.at
  const firstFailure =
    faultAt === undefined
      ? undefined
      : a
          .filter((op) => op.outcome !== "ok" && op.completedAt >= faultAt)
          .reduce<number | undefined>(
            (min, op) => (min === undefined || op.completedAt < min ? op.completedAt : min),
            undefined
          )
  const firstSuccess =
    healAt === undefined
      ? undefined
      : a
          .filter((op) => op.outcome === "ok" && op.invokedAt >= healAt)
          .reduce<number | undefined>(
            (min, op) => (min === undefined || op.completedAt < min ? op.completedAt : min),
            undefined
          )
  return {
    a: checkParty(a, final.a, options),
    b: checkParty(of(history.ops, "b"), final.b, options),
    detectMs: faultAt === undefined || firstFailure === undefined ? null : firstFailure - faultAt,
    recoverMs: healAt === undefined || firstSuccess === undefined ? null : firstSuccess - healAt
  }
}

/**
 * Whether a project saw anything go wrong at all: a failed or unknown operation, or any finding. For the bystander
 * (project B) of a fault that is not its own, this is the cross-project effect count.
 *
 * @category checking
 * @since 0.1.0
 */
export const disturbed = (figures: PartyFigures): number =>
  figures.writes.fail +
  figures.writes.unknown +
  figures.reads.fail +
  figures.reads.unknown +
  figures.lost +
  figures.falseFail +
  figures.duplicates +
  figures.unexpected +
  figures.torn +
  figures.badReads +
  figures.defects +
  figures.waitsOverBound
