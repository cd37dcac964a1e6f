/**
 * What a protection found about one call: a rule that matched, and whether the call is refused (`reject`) or only
 * recorded (`flag`). Analyzers return findings; `ApiProtections` turns a rejection into a `QueryRejected` error and
 * records both kinds in metrics and events, so every analyzer reports the same way.
 *
 * @since 0.1.0
 */
import type * as Effect from "effect/Effect"
import type { QueryRule } from "@tenantpool/core/Errors"

/**
 * A rule that matched.
 *
 * @category models
 * @since 0.1.0
 */
export interface Finding {
  readonly action: "reject" | "flag"
  readonly rule: QueryRule
  /** Why, without the query's literals. */
  readonly detail: string
  /** The SQL fingerprint, when there is one. */
  readonly fingerprint?: string | undefined
}

/**
 * The result of an analyzer: nothing found (`undefined`, decided synchronously), a finding, or an Effect for
 * checks that need a round trip (EXPLAIN).
 *
 * @category models
 * @since 0.1.0
 */
export type Inspection = Finding | Effect.Effect<Finding | undefined> | undefined

/**
 * A rejection.
 *
 * @category constructors
 * @since 0.1.0
 */
export const reject = (rule: QueryRule, detail: string, fingerprint?: string | undefined): Finding => ({
  action: "reject",
  rule,
  detail,
  fingerprint
})

/**
 * A flag: recorded, not refused.
 *
 * @category constructors
 * @since 0.1.0
 */
export const flag = (rule: QueryRule, detail: string, fingerprint?: string | undefined): Finding => ({
  action: "flag",
  rule,
  detail,
  fingerprint
})
