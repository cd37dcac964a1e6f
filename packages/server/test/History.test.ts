/**
 * The status page's memory without a server: the folded event list and the per-second series (operations,
 * refusals, errors, p99, in flight vs limit, breaker timelines) over a rolling window, and how a route's call is
 * recorded.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { Overloaded } from "@tenantpool/core/Errors"
import type { TenancyEvent } from "@tenantpool/core/Events"
import type { ConnectionMetadata } from "@tenantpool/core/Tenancy"
import * as EventLog from "../src/EventLog.ts"
import * as History from "../src/History.ts"
import * as StatusHistory from "../src/StatusHistory.ts"

const overloaded = (projectId: string, at: number): TenancyEvent => ({
  _tag: "Overloaded",
  at,
  engine: "redis",
  projectId,
  scope: "project"
})
const breaker = (tag: "CircuitOpen" | "CircuitClosed" | "CircuitHalfOpen", at: number): TenancyEvent => ({
  _tag: tag,
  at,
  engine: "redis",
  scope: "project",
  projectId: "a",
  target: "redis://db:6379/0",
  openForMillis: tag === "CircuitOpen" ? 5000 : undefined
})

describe("EventLog", () => {
  it("folds a repeated event into one line with a count, first and last time, while other subjects interleave", () => {
    const log = EventLog.make()
    for (let i = 0; i < 1000; i++) {
      EventLog.add(log, overloaded("a", 1000 + i))
      if (i % 100 === 0) EventLog.add(log, overloaded("b", 1000 + i))
    }
    const lines = EventLog.toJson(log, 50)
    assert.deepStrictEqual(
      lines.map((l) => [l.projectId, l.name, l.count]),
      [
        ["a", "overloaded", 1000],
        ["b", "overloaded", 10]
      ]
    )
    assert.strictEqual(lines[0]!.first, new Date(1000).toISOString())
    assert.strictEqual(lines[0]!.last, new Date(1999).toISOString())
  })

  it("keeps a breaker opening in sight under a flood, and never folds across a change of kind", () => {
    const log = EventLog.make({ maxEntries: 10 })
    EventLog.add(log, breaker("CircuitOpen", 1))
    for (let i = 0; i < 10_000; i++) EventLog.add(log, overloaded("b", 2 + i))
    EventLog.add(log, breaker("CircuitHalfOpen", 20_000))
    EventLog.add(log, breaker("CircuitClosed", 20_001))
    EventLog.add(log, breaker("CircuitOpen", 20_002))
    const lines = EventLog.toJson(log, 10).map((l) => `${l.name} ×${l.count}`)
    assert.deepStrictEqual(lines, [
      "circuit-open ×1",
      "circuit-close ×1",
      "circuit-half-open ×1",
      "overloaded ×10000",
      "circuit-open ×1"
    ])
  })

  it("starts a new line when the repeat comes more than a minute later, and keeps at most maxEntries lines", () => {
    const log = EventLog.make({ maxEntries: 3 })
    EventLog.add(log, overloaded("a", 0))
    EventLog.add(log, overloaded("a", 61_000))
    assert.deepStrictEqual(
      EventLog.toJson(log, 10).map((l) => l.count),
      [1, 1]
    )
    for (const p of ["b", "c", "d"]) EventLog.add(log, overloaded(p, 62_000))
    assert.deepStrictEqual(
      EventLog.toJson(log, 10).map((l) => l.projectId),
      ["d", "c", "b"]
    )
    assert.strictEqual(log.latest.size, 3)
  })
})

const connection = (over: Partial<ConnectionMetadata>): ConnectionMetadata => ({
  projectId: "a",
  databaseType: "redis",
  tier: "FREE",
  target: "redis://db:6379/0",
  queryCount: 0,
  errorCount: 0,
  lastUsed: new Date(0),
  createdAt: new Date(0),
  breaker: "closed",
  targetBreaker: "closed",
  active: 0,
  queued: 0,
  pool: undefined,
  ...over
})
const maxConcurrent = (tier: string) => (tier === "FREE" ? 20 : 200)

describe("History", () => {
  it("turns a second of calls into operations, refusals, errors and p99 per project and per target", () => {
    const h = History.makeState({ targetLimits: { redis: 1000, postgres: 3200 } })
    for (let i = 1; i <= 100; i++) History.record(h, "a", "redis", "ok", i)
    History.record(h, "a", "redis", "rejected", 0.1)
    History.record(h, "a", "redis", "failed", 500)
    History.record(h, "a", "postgres", "ok", 2)
    History.record(h, "b", "redis", "ok", 1)
    History.sample(
      h,
      [
        connection({ active: 3, queued: 2 }),
        connection({ databaseType: "postgres", target: "postgres://db/a", active: 1 }),
        connection({ projectId: "b", tier: "PRO", active: 5 })
      ],
      maxConcurrent,
      10_000
    )
    const json = History.toJson(h)
    assert.deepStrictEqual(json.times, [10_000])
    const a = json.projects.find((p) => p.label === "a")!
    assert.deepStrictEqual([a.ops, a.rejected, a.errors, a.inFlight, a.queued], [[102], [1], [1], [4], [2]])
    // The tier's limit is per engine: FREE's 20 on each of the two engines the project uses.
    assert.strictEqual(a.limit, 40)
    // p99 of 1..100 ms and one 500 ms failure: about 100 ms (log buckets are within 20 %).
    assert.isTrue(a.p99[0]! >= 99 && a.p99[0]! <= 120, String(a.p99[0]))
    const redis = json.targets.find((t) => t.label === "redis://db:6379/0")!
    assert.strictEqual(redis.engine, "redis")
    assert.deepStrictEqual([redis.ops, redis.inFlight, redis.limit], [[102], [8], 1000])
    assert.deepStrictEqual(
      json.targets.map((t) => t.label),
      ["redis://db:6379/0", "postgres://db/a"]
    )
  })

  it("shows a breaker that opened and closed between two samples on its timeline", () => {
    const h = History.makeState()
    History.sample(h, [connection({})], maxConcurrent, 1000)
    History.onEvent(h, breaker("CircuitOpen", 1500))
    History.onEvent(h, breaker("CircuitClosed", 1900))
    History.sample(h, [connection({})], maxConcurrent, 2000)
    History.sample(h, [connection({ breaker: "half-open" })], maxConcurrent, 3000)
    History.sample(h, [], maxConcurrent, 4000)
    const a = History.toJson(h).projects[0]!
    assert.deepStrictEqual(a.breakers, [{ name: "redis", states: "coh-" }])
    assert.deepStrictEqual(History.toJson(h).targets[0]!.breakers, [{ name: "target", states: "ccc-" }])
    // The folded list got the events too.
    assert.deepStrictEqual(
      EventLog.toJson(h.events, 5).map((e) => e.name),
      ["circuit-close", "circuit-open"]
    )
  })

  it("keeps every series as long as the window, pads late subjects, and drops subjects idle for a whole window", () => {
    const h = History.makeState({ windowSeconds: 5 })
    for (let s = 1; s <= 12; s++) {
      const live = [connection({})]
      if (s >= 4 && s <= 6) live.push(connection({ projectId: "late", target: "redis://other:6379/0" }))
      if (s <= 6) History.record(h, "a", "redis", "ok", 1)
      History.sample(h, live, maxConcurrent, s * 1000)
      const json = History.toJson(h)
      for (const t of [...json.projects, ...json.targets]) {
        for (const series of [t.ops, t.rejected, t.errors, t.p99, t.inFlight, t.queued]) {
          assert.strictEqual(series.length, json.times.length, `${t.label} at ${s}`)
        }
        for (const b of t.breakers) assert.strictEqual(b.states.length, json.times.length)
      }
    }
    const json = History.toJson(h)
    assert.deepStrictEqual(json.times, [8000, 9000, 10_000, 11_000, 12_000])
    assert.deepStrictEqual(json.projects[0]!.ops, [0, 0, 0, 0, 0])
    // "late" was live from 4 s to 6 s: gone once the window no longer reaches back to it.
    assert.deepStrictEqual(
      json.projects.map((p) => p.label),
      ["a"]
    )
    assert.strictEqual(json.targets.length, 1)
  })

  it("keeps at most maxProjects projects and maxTargets targets", () => {
    const h = History.makeState({ maxProjects: 2, maxTargets: 1 })
    const live = ["p1", "p2", "p3"].map((id) => connection({ projectId: id, target: `redis://${id}:6379/0` }))
    History.sample(h, live, maxConcurrent, 1000)
    const json = History.toJson(h)
    assert.strictEqual(json.projects.length, 2)
    assert.strictEqual(json.targets.length, 1)
  })
})

describe("recorded", () => {
  const overloadedError = new Overloaded({
    projectId: "a",
    engine: "redis",
    scope: "project",
    reason: "queue-full",
    retryAfterMillis: 10
  })
  it.effect("counts a success, a guard refusal and any other failure apart; an interrupted call not at all", () =>
    Effect.gen(function* () {
      const h = History.makeState()
      const as = StatusHistory.recorded(h, "a", "redis")
      yield* Effect.succeed(1).pipe(as)
      yield* Effect.fail(overloadedError).pipe(as, Effect.ignore)
      yield* Effect.fail(new Error("connection reset")).pipe(as, Effect.ignore)
      yield* Effect.interrupt.pipe(as, Effect.exit)
      History.sample(h, [connection({})], maxConcurrent, 1000)
      const a = History.toJson(h).projects[0]!
      assert.deepStrictEqual([a.ops, a.rejected, a.errors], [[2], [1], [1]])
      assert.isNotNull(a.p99[0])
    })
  )
  it.effect("leaves a call out of the latency when asked (a blocking pop waits by design)", () =>
    Effect.gen(function* () {
      const h = History.makeState()
      yield* Effect.succeed(1).pipe(StatusHistory.recorded(h, "a", "redis", { latency: false }))
      History.sample(h, [connection({})], maxConcurrent, 1000)
      const a = History.toJson(h).projects[0]!
      assert.deepStrictEqual([a.ops, a.p99], [[1], [null]])
    })
  )
})
