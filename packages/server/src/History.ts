/**
 * The status page's memory: the last few minutes, one point a second, per live project and per target — operations
 * and refusals, errors, p99 latency, in-flight vs limit, and breaker states — plus the folded event list
 * (`EventLog.ts`). The server keeps it (not the browser) so a page opened during an incident shows how it began.
 *
 * Where each number comes from:
 * - operations, refusals, errors and latency: the routes time each guarded database call (`recorded`), inside
 *   `withProject`, so only registered projects are ever recorded (no key from an unknown id);
 * - in flight and queued, breaker states, targets: `Tenancy.connections`, sampled once a second;
 * - breaker transitions between two samples: `Tenancy.events` (a breaker that opened and closed within the second
 *   still shows on the timeline).
 *
 * The state is a plain record and the functions below take it; `StatusHistory.ts` feeds it from the running server. Memory is bounded:
 * `windowSeconds` points per series, at most `maxProjects` projects and `maxTargets` targets (a platform with more
 * wants Prometheus and Grafana, not this page), series dropped once idle for the whole window.
 *
 * @since 0.1.0
 */
import type { Engine } from "@tenantpool/core/Engine"
import type { TenancyEvent } from "@tenantpool/core/Events"
import type { ConnectionMetadata } from "@tenantpool/core/Tenancy"
import * as EventLog from "./EventLog.ts"

/**
 * How a recorded call ended: `ok`, `rejected` (refused by the guard before reaching the database: overloaded, rate
 * limited, breaker open, query refused) or `failed` (everything else that went wrong).
 *
 * @category models
 * @since 0.1.0
 */
export type Outcome = "ok" | "rejected" | "failed"

/**
 * A breaker's state in one second: `c` closed, `h` half-open, `o` open (the worst seen in the second), `-` not live.
 *
 * @category models
 * @since 0.1.0
 */
export type BreakerChar = "c" | "h" | "o" | "-"

/**
 * Options of the history.
 *
 * @category models
 * @since 0.1.0
 */
export interface HistoryOptions {
  /** Points kept per series, one a second (default 180: three minutes). */
  readonly windowSeconds?: number | undefined
  /** Each engine's shared budget per target (operations in flight at once), drawn as the targets' limit. */
  readonly targetLimits?: Partial<Record<Engine, number>> | undefined
  readonly maxProjects?: number | undefined
  readonly maxTargets?: number | undefined
}

// Latency in log-spaced buckets: bucket i holds durations up to 0.05 ms × 1.2^i (80 buckets reach 90 s), so a
// second's p99 costs a fixed array, whatever the traffic; it is exact to within 20 %.
const bucketBase = 0.05
const bucketGrowth = 1.2
const bucketCount = 80
const bucketOf = (millis: number): number =>
  millis <= bucketBase
    ? 0
    : Math.min(bucketCount - 1, Math.ceil(Math.log(millis / bucketBase) / Math.log(bucketGrowth)))
const bucketUpper = (i: number): number => bucketBase * bucketGrowth ** i

interface Counts {
  ok: number
  rejected: number
  failed: number
  latency: Array<number> | undefined
}

const emptyCounts = (): Counts => ({ ok: 0, rejected: 0, failed: 0, latency: undefined })

const addCounts = (into: Counts, from: Counts): void => {
  into.ok += from.ok
  into.rejected += from.rejected
  into.failed += from.failed
  if (from.latency === undefined) return
  into.latency ??= new Array<number>(bucketCount).fill(0)
  for (let i = 0; i < bucketCount; i++) into.latency[i]! += from.latency[i]!
}

const p99 = (latency: Array<number> | undefined): number | null => {
  if (latency === undefined) return null
  const n = latency.reduce((a, b) => a + b, 0)
  let seen = 0
  for (let i = 0; i < bucketCount; i++) {
    seen += latency[i]!
    if (seen >= n * 0.99) return Math.round(bucketUpper(i) * 100) / 100
  }
  return null
}

/** One plotted subject (a project or a target): its series, all as long as `HistoryState.times`. */
interface Track {
  readonly label: string
  readonly engine: string | undefined
  tier: string | undefined
  limit: number | null
  readonly ops: Array<number>
  readonly rejected: Array<number>
  readonly errors: Array<number>
  readonly p99: Array<number | null>
  readonly inFlight: Array<number>
  readonly queued: Array<number>
  readonly breakers: Map<string, Array<BreakerChar>>
  lastLive: number
}

/** What one sample adds to a track. */
interface Point extends Counts {
  tier: string | undefined
  limit: number | null
  inFlight: number
  queued: number
  readonly breakers: Map<string, BreakerChar>
}

/**
 * The history's state.
 *
 * @category models
 * @since 0.1.0
 */
export interface HistoryState {
  readonly windowSeconds: number
  readonly maxProjects: number
  readonly maxTargets: number
  readonly targetLimits: Partial<Record<Engine, number>>
  /** Sample times (epoch milliseconds), oldest first. */
  readonly times: Array<number>
  /** Calls recorded since the last sample, by `project|engine`. */
  readonly pending: Map<string, Counts>
  /** The worst breaker state events reported since the last sample, by `p|project|engine` or `t|engine|target`. */
  readonly marks: Map<string, BreakerChar>
  readonly projects: Map<string, Track>
  readonly targets: Map<string, Track>
  readonly events: EventLog.EventLog
}

/**
 * An empty history.
 *
 * @category constructors
 * @since 0.1.0
 */
export const makeState = (options?: HistoryOptions | undefined): HistoryState => ({
  windowSeconds: options?.windowSeconds ?? 180,
  maxProjects: options?.maxProjects ?? 50,
  maxTargets: options?.maxTargets ?? 20,
  targetLimits: options?.targetLimits ?? {},
  times: [],
  pending: new Map(),
  marks: new Map(),
  projects: new Map(),
  targets: new Map(),
  events: EventLog.make()
})

/**
 * Records one guarded call of a project on an engine; `millis` undefined leaves it out of the latency (a blocking
 * pop waits by design).
 *
 * @category combinators
 * @since 0.1.0
 */
export const record = (
  h: HistoryState,
  projectId: string,
  engine: Engine,
  outcome: Outcome,
  millis: number | undefined
): void => {
  const key = `${projectId}|${engine}`
  let counts = h.pending.get(key)
  if (counts === undefined) h.pending.set(key, (counts = emptyCounts()))
  counts[outcome]++
  if (millis === undefined || outcome === "rejected") return
  counts.latency ??= new Array<number>(bucketCount).fill(0)
  counts.latency[bucketOf(millis)]!++
}

const severity: Record<BreakerChar, number> = { "-": 0, c: 1, h: 2, o: 3 }
const worst = (a: BreakerChar | undefined, b: BreakerChar): BreakerChar =>
  a !== undefined && severity[a] > severity[b] ? a : b
const charOf = (state: "closed" | "half-open" | "open"): BreakerChar =>
  state === "open" ? "o" : state === "half-open" ? "h" : "c"

/**
 * Takes in an event: breaker transitions mark the second's timeline, and every event goes to the folded list.
 *
 * @category combinators
 * @since 0.1.0
 */
export const onEvent = (h: HistoryState, e: TenancyEvent): void => {
  EventLog.add(h.events, e)
  if (e._tag !== "CircuitOpen" && e._tag !== "CircuitHalfOpen") return
  const key = e.scope === "project" ? `p|${e.projectId}|${e.engine}` : `t|${e.engine}|${e.target}`
  h.marks.set(key, worst(h.marks.get(key), e._tag === "CircuitOpen" ? "o" : "h"))
}

const pointFor = (points: Map<string, Point>, key: string): Point => {
  let p = points.get(key)
  if (p === undefined) {
    p = { ...emptyCounts(), tier: undefined, limit: null, inFlight: 0, queued: 0, breakers: new Map() }
    points.set(key, p)
  }
  return p
}

// A track that starts now: its series padded to the points taken before it (`n`).
const newTrack = (n: number, label: string, engine: string | undefined): Track => {
  return {
    label,
    engine,
    tier: undefined,
    limit: null,
    ops: new Array<number>(n).fill(0),
    rejected: new Array<number>(n).fill(0),
    errors: new Array<number>(n).fill(0),
    p99: new Array<number | null>(n).fill(null),
    inFlight: new Array<number>(n).fill(0),
    queued: new Array<number>(n).fill(0),
    breakers: new Map(),
    lastLive: 0
  }
}

// Appends a sample's point to a track (zeros and "not live" when the subject had none), then trims the window.
const push = (track: Track, point: Point | undefined, now: number, trim: boolean): void => {
  track.ops.push(point === undefined ? 0 : point.ok + point.failed)
  track.rejected.push(point?.rejected ?? 0)
  track.errors.push(point?.failed ?? 0)
  track.p99.push(p99(point?.latency))
  track.inFlight.push(point?.inFlight ?? 0)
  track.queued.push(point?.queued ?? 0)
  if (point !== undefined) {
    track.lastLive = now
    track.tier = point.tier
    track.limit = point.limit
    for (const name of point.breakers.keys()) {
      if (!track.breakers.has(name)) track.breakers.set(name, new Array<BreakerChar>(track.ops.length - 1).fill("-"))
    }
  }
  for (const [name, states] of track.breakers) states.push(point?.breakers.get(name) ?? "-")
  if (!trim) return
  for (const series of [track.ops, track.rejected, track.errors, track.p99, track.inFlight, track.queued]) {
    series.shift()
  }
  for (const states of track.breakers.values()) states.shift()
}

/**
 * Takes one sample: the calls recorded and breaker marks since the last one, and the live connections now.
 *
 * @category combinators
 * @since 0.1.0
 */
export const sample = (
  h: HistoryState,
  connections: ReadonlyArray<ConnectionMetadata>,
  maxConcurrent: (tier: string) => number,
  now: number
): void => {
  const projects = new Map<string, Point>()
  const targets = new Map<string, Point>()
  for (const c of connections) {
    const counts = h.pending.get(`${c.projectId}|${c.databaseType}`)
    const p = pointFor(projects, c.projectId)
    const t = pointFor(targets, `${c.databaseType}|${c.target}`)
    for (const point of [p, t]) {
      if (counts !== undefined) addCounts(point, counts)
      point.inFlight += c.active
      point.queued += c.queued
    }
    // The bulkhead is per project and engine: a project's limit is its tier's across the engines it uses.
    p.tier = c.tier
    p.limit = (p.limit ?? 0) + maxConcurrent(c.tier)
    p.breakers.set(c.databaseType, worst(h.marks.get(`p|${c.projectId}|${c.databaseType}`), charOf(c.breaker)))
    t.limit = h.targetLimits[c.databaseType] ?? null
    t.breakers.set("target", worst(h.marks.get(`t|${c.databaseType}|${c.target}`), charOf(c.targetBreaker)))
  }
  h.pending.clear()
  h.marks.clear()
  const before = h.times.length
  h.times.push(now)
  const trim = h.times.length > h.windowSeconds
  if (trim) h.times.shift()
  const horizon = now - h.windowSeconds * 1000
  const advance = (tracks: Map<string, Track>, points: Map<string, Point>, max: number, make: (k: string) => Track) => {
    for (const key of points.keys()) {
      if (!tracks.has(key) && tracks.size < max) tracks.set(key, make(key))
    }
    for (const [key, track] of tracks) {
      push(track, points.get(key), now, trim)
      if (track.lastLive < horizon) tracks.delete(key)
    }
  }
  advance(h.projects, projects, h.maxProjects, (k) => newTrack(before, k, undefined))
  advance(h.targets, targets, h.maxTargets, (k) => {
    const [engine, ...rest] = k.split("|")
    return newTrack(before, rest.join("|"), engine)
  })
}

const trackJson = (t: Track) => ({
  label: t.label,
  engine: t.engine,
  tier: t.tier,
  limit: t.limit,
  ops: t.ops,
  rejected: t.rejected,
  errors: t.errors,
  p99: t.p99,
  inFlight: t.inFlight,
  queued: t.queued,
  breakers: [...t.breakers].map(([name, states]) => ({ name, states: states.join("") }))
})

/**
 * The history as the page reads it: sample times, then per project and per target every series (all as long as
 * `times`) and breaker states as one character a second.
 *
 * @category accessors
 * @since 0.1.0
 */
export const toJson = (h: HistoryState) => ({
  intervalMillis: 1000,
  windowSeconds: h.windowSeconds,
  times: h.times,
  projects: [...h.projects.values()].map(trackJson),
  targets: [...h.targets.values()].map(trackJson)
})
