import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { TestClock } from "effect/testing"
import { CLOSED, OPEN } from "../../src/internal/breaker.ts"
import { followRegistry } from "../../src/internal/runtimes.ts"
import { forgetBreaker } from "../../src/internal/transitions.ts"
import { withState } from "../fixtures/State.ts"

describe("transitions", () => {
  it.effect(
    "counts a project's breaker in its tier's aggregate, moves it with the project's tier, forgets it on eviction",
    () =>
      withState(({ g, project, registry }) =>
        Effect.gen(function* () {
          const pe = yield* project("acme")
          const es = pe.es
          assert.strictEqual(pe.agg, es.aggregates.FREE, "no series of its own: counted in its tier's aggregate")
          pe.breaker.trip(g.now())
          assert.strictEqual(es.aggregates.FREE.open, 1)
          yield* followRegistry(g)
          yield* registry.register({ id: "acme", tier: "PRO", redis: "redis://cache.internal:6379/0" })
          yield* Effect.yieldNow
          assert.deepStrictEqual([es.aggregates.FREE.open, es.aggregates.PRO.open], [0, 1])
          forgetBreaker(pe.agg, pe.breaker)
          assert.strictEqual(es.aggregates.PRO.open, 0)
        })
      )
  )

  it.effect("a labeled project's breaker counts only in its own series, never in the aggregate", () =>
    withState(
      ({ g, project }) =>
        Effect.gen(function* () {
          const pe = yield* project("acme")
          assert.notStrictEqual(pe.agg, pe.es.aggregates.FREE)
          pe.breaker.trip(g.now())
          assert.strictEqual(pe.es.aggregates.FREE.open, 0)
          assert.strictEqual(pe.agg.open, 1)
        }),
      { settings: { projectLabel: true } }
    )
  )

  it.effect(
    "a project breaker that opens emits CircuitOpen, counts it, and a ping that answers ends the open time",
    () =>
      withState(({ g, project, server }) =>
        Effect.gen(function* () {
          const pe = yield* project("acme")
          pe.breaker.trip(g.now())
          assert.strictEqual(pe.es.aggregates.FREE.open, 1)
          assert.strictEqual(pe.handles?.openTotal?.n, 1)
          const opened = g.events.recent().find((e) => e._tag === "CircuitOpen")
          assert.deepInclude(opened, { scope: "project", projectId: "acme", openForMillis: 15_000 })
          yield* TestClock.adjust(1_999)
          assert.strictEqual(server.pings, 0)
          yield* TestClock.adjust(1)
          assert.strictEqual(server.pings, 1, "pinged one probe interval in, not at the end of the open time")
          assert.strictEqual(pe.breaker.state, CLOSED)
          assert.deepStrictEqual(
            g.events.recent().map((e) => e._tag),
            ["PoolCreated", "CircuitOpen", "CircuitHalfOpen", "CircuitClosed"]
          )
          assert.strictEqual(pe.es.aggregates.FREE.open + pe.es.aggregates.FREE.halfOpen, 0)
        })
      )
  )

  it.effect("while its target's breaker is open, a project breaker leaves the pinging to it", () =>
    withState(({ g, project, server }) =>
      Effect.gen(function* () {
        const pe = yield* project("acme")
        server.down = true
        pe.ts.breaker.trip(g.now())
        pe.breaker.trip(g.now())
        yield* TestClock.adjust(6_000)
        assert.strictEqual(server.pings, 3, "the target's pings only")
        server.down = false
        yield* TestClock.adjust(2_000)
        assert.strictEqual(pe.ts.breaker.state, CLOSED)
        yield* TestClock.adjust(2_000)
        assert.strictEqual(pe.breaker.state, CLOSED)
      })
    )
  )

  it.effect("a target breaker whose pings keep failing re-opens for longer at the end of its open time", () =>
    withState(({ g, project, server }) =>
      Effect.gen(function* () {
        const pe = yield* project("acme")
        server.down = true
        pe.ts.breaker.trip(g.now())
        yield* TestClock.adjust(15_000)
        assert.strictEqual(server.pings, 8, "every 2 s, and the half-open probe at 15 s")
        assert.strictEqual(pe.ts.breaker.state, OPEN)
        assert.strictEqual(pe.ts.breaker.lastOpenFor, 30_000)
      })
    )
  )
})
