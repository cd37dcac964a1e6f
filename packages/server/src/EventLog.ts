/**
 * The status page's event list, with repeats folded: an event like the one its subject (engine, project, target,
 * scope) had last, within a minute, adds to that line's count instead of taking a line of its own. Under load a
 * FREE project is refused thousands of times a second; unfolded, its `overloaded` events fill any list (the
 * tenancy service keeps the last 100) and push a breaker opening out of sight within milliseconds.
 *
 * A change of kind for the same subject starts a new line (open, closed, open again is three lines, in order), so
 * folding never hides a transition. The list keeps the `maxEntries` most recently touched lines.
 *
 * @since 0.1.0
 */
import { specName, type TenancyEvent } from "@tenantpool/core/Events"

/**
 * One line of the list: an event and how many times it happened in a row, from `first` to `last`.
 *
 * @category models
 * @since 0.1.0
 */
export interface FoldedEvent {
  readonly name: string
  readonly engine: string | undefined
  readonly projectId: string | undefined
  readonly detail: string
  count: number
  readonly first: number
  last: number
}

interface Entry extends FoldedEvent {
  readonly subject: string
  readonly kind: string
}

/**
 * The list's state.
 *
 * @category models
 * @since 0.1.0
 */
export interface EventLog {
  /** Most recently touched first. */
  readonly entries: Array<Entry>
  /** The latest line of each subject. */
  readonly latest: Map<string, Entry>
  readonly maxEntries: number
  readonly foldMillis: number
}

/**
 * An empty list.
 *
 * @category constructors
 * @since 0.1.0
 */
export const make = (options?: { readonly maxEntries?: number; readonly foldMillis?: number }): EventLog => ({
  entries: [],
  latest: new Map(),
  maxEntries: options?.maxEntries ?? 200,
  foldMillis: options?.foldMillis ?? 60_000
})

/**
 * What the page shows after the event's name: scope, target, reason, health, open time.
 *
 * @category utils
 * @since 0.1.0
 */
export const detailOf = (e: TenancyEvent): string => {
  const parts: Array<string> = []
  if ("scope" in e) parts.push(e.scope)
  if ("target" in e) parts.push(e.target)
  if ("reason" in e) parts.push(e.reason)
  if (e._tag === "HealthChanged") parts.push(e.healthy ? "healthy" : `unhealthy${e.error ? `: ${e.error}` : ""}`)
  if (e._tag === "TierChanged") parts.push(e.tier)
  if ("openForMillis" in e && e.openForMillis !== undefined) parts.push(`open ${e.openForMillis / 1000} s`)
  return parts.join(" · ")
}

const subjectOf = (e: TenancyEvent): string =>
  [
    "engine" in e ? e.engine : "",
    ("projectId" in e ? e.projectId : undefined) ?? "",
    "target" in e ? e.target : "",
    "scope" in e ? e.scope : "",
    e._tag === "TierChanged" ? e.tier : ""
  ].join("|")

/**
 * Adds an event: folded into its subject's latest line when that line is the same kind of event and recent, a new
 * line otherwise.
 *
 * @category combinators
 * @since 0.1.0
 */
export const add = (log: EventLog, e: TenancyEvent): void => {
  const name = specName(e)
  const detail = detailOf(e)
  const subject = subjectOf(e)
  const kind = `${name}|${detail}`
  const latest = log.latest.get(subject)
  if (latest !== undefined && latest.kind === kind && e.at - latest.last <= log.foldMillis) {
    latest.count++
    latest.last = Math.max(latest.last, e.at)
    // Most recently touched first; the common case (the same line again) is already there.
    if (log.entries[0] !== latest) {
      log.entries.splice(log.entries.indexOf(latest), 1)
      log.entries.unshift(latest)
    }
    return
  }
  const entry: Entry = {
    name,
    engine: "engine" in e ? e.engine : undefined,
    projectId: "projectId" in e ? e.projectId : undefined,
    detail,
    count: 1,
    first: e.at,
    last: e.at,
    subject,
    kind
  }
  log.entries.unshift(entry)
  log.latest.set(subject, entry)
  while (log.entries.length > log.maxEntries) {
    const dropped = log.entries.pop()!
    if (log.latest.get(dropped.subject) === dropped) log.latest.delete(dropped.subject)
  }
}

/**
 * The `n` most recently touched lines, as JSON.
 *
 * @category accessors
 * @since 0.1.0
 */
export const toJson = (log: EventLog, n: number) =>
  log.entries.slice(0, n).map((e) => ({
    name: e.name,
    engine: e.engine,
    projectId: "projectId" in e ? e.projectId : undefined,
    detail: e.detail,
    count: e.count,
    first: new Date(e.first).toISOString(),
    last: new Date(e.last).toISOString()
  }))
