/**
 * Faults injected into a project's calls on demand (the public side is `Faults.ts`): a plan per project, read by
 * the call state machine at the start of each call through one field of the project's runtime (`fault`), so the
 * guard pays one property read when no fault is injected.
 *
 * @internal
 */
import type { Engine } from "../Vocabulary.ts"

/** What an injected fault does to a matching call. @internal */
export type FaultKind =
  | { readonly _tag: "Timeout" }
  | { readonly _tag: "Latency"; readonly millis: number }
  | { readonly _tag: "Overloaded"; readonly retryAfterMillis: number }
  | { readonly _tag: "CircuitOpen" }
  | { readonly _tag: "UnknownOutcome" }

/** A fault for one project: which calls it matches, and how many more times it applies. @internal */
export interface FaultPlan {
  readonly kind: FaultKind
  readonly engine: Engine | undefined
  readonly operations: ReadonlySet<string> | undefined
  /** Calls left (Infinity: until cleared). */
  remaining: number
}

/** The plan's kind if it matches this call, counting the call; undefined otherwise. @internal */
export const take = (plan: FaultPlan, engine: Engine, operation: string): FaultKind | undefined => {
  if (plan.remaining <= 0) return undefined
  if (plan.engine !== undefined && plan.engine !== engine) return undefined
  if (plan.operations !== undefined && !plan.operations.has(operation)) return undefined
  plan.remaining--
  return plan.kind
}
