/**
 * The history of a chaos run: every operation as it was invoked and how it completed, Jepsen-style, plus the fault
 * timeline. Append-only and in memory; the checker (`Checker.ts`) reads it after the run.
 *
 * Outcomes are the library's own verdicts, never guesses: `ok` (a reply), `fail` (the library says it did not
 * happen: a guard refusal or the engine's definite error), `unknown` (`UnknownOutcome`, or a defect: a crash
 * says nothing about the write).
 *
 * @since 0.1.0
 */

/**
 * How an operation ended, as the library reported it.
 *
 * @category models
 * @since 0.1.0
 */
export type Outcome = "ok" | "fail" | "unknown"

/**
 * What an operation did: a write of a unique id, a transaction writing two ids (both or neither), or a read of a
 * seeded key whose value is known.
 *
 * @category models
 * @since 0.1.0
 */
export type OpKind = "write" | "tx" | "read"

/**
 * Which project ran it: `a` is the one under fault, `b` a bystander on the same server with no fault of its own.
 *
 * @category models
 * @since 0.1.0
 */
export type Party = "a" | "b"

/**
 * One completed operation.
 *
 * @category models
 * @since 0.1.0
 */
export interface Op {
  readonly party: Party
  readonly kind: OpKind
  /** The ids a write or transaction wrote, or the key a read asked for. */
  readonly ids: ReadonlyArray<string>
  /** Milliseconds since the run started. */
  readonly invokedAt: number
  readonly completedAt: number
  readonly outcome: Outcome
  /** `ok`, or the error's tag (`UnknownOutcome`, `CircuitOpen`, `SqlError:ConnectionError`, `RedisError:timeout`…). */
  readonly tag: string
  /** The failure was a defect (`Die`): the library crashed instead of answering with an error. */
  readonly defect: boolean
  /** The error was none of the library's types (an engine or guard error), so the outcome is a guess. */
  readonly unclassified: boolean
  /** Reads: the reply was not the seeded value of the key asked for (another caller's reply, or none). */
  readonly badRead: boolean
  /** The deadline the library promises for this operation (the tier's timeout). */
  readonly boundMs: number
}

/**
 * A moment of the fault timeline.
 *
 * @category models
 * @since 0.1.0
 */
export interface Mark {
  readonly at: number
  readonly what: "fault" | "heal" | "recovered" | "stop"
  readonly detail: string
}

/**
 * The recorder of one run.
 *
 * @category models
 * @since 0.1.0
 */
export interface History {
  /** Milliseconds since the run started (monotonic). */
  readonly now: () => number
  readonly ops: Array<Op>
  readonly marks: Array<Mark>
  readonly mark: (what: Mark["what"], detail?: string) => number
  /** The first mark of a kind, if any. */
  readonly markAt: (what: Mark["what"]) => number | undefined
}

/**
 * A fresh history whose clock starts now.
 *
 * @category constructors
 * @since 0.1.0
 */
export const make = (): History => {
  const started = performance.now()
  const now = () => performance.now() - started
  const marks: Array<Mark> = []
  return {
    now,
    ops: [],
    marks,
    mark: (what, detail = "") => {
      const at = now()
      marks.push({ at, what, detail })
      return at
    },
    markAt: (what) => marks.find((m) => m.what === what)?.at
  }
}
