import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { TestClock } from "effect/testing"
import { CLOSED, HALF_OPEN, OPEN } from "../../src/internal/breaker.ts"
import { countTransition, forgetBreaker, moveBreaker } from "../../src/internal/transitions.ts"
import { zeroPerTier } from "../../src/internal/state.ts"
import { withState } from "../fixtures/State.ts"

describe("transitions", () => {
  it("keeps per-tier open and half-open counts in step with transitions, tier moves and evictions", () => {
    const es = { open: zeroPerTier(), halfOpen: zeroPerTier() } as never as Parameters<typeof countTransition>[0]
    countTransition(es, "FREE", CLOSED, OPEN)
    countTransition(es, "FREE", OPEN, HALF_OPEN)
    assert.deepStrictEqual([es.open.FREE, es.halfOpen.FREE], [0, 1])
    const breaker = { state: HALF_OPEN } as never as Parameters<typeof moveBreaker>[1]
    moveBreaker(es, breaker, "FREE", "PRO")
    assert.deepStrictEqual([es.halfOpen.FREE, es.halfOpen.PRO], [0, 1])
    forgetBreaker(es, "PRO", breaker)
    assert.deepStrictEqual([es.open, es.halfOpen], [zeroPerTier(), zeroPerTier()])
  })

  it.effect(
    "a project breaker that opens emits CircuitOpen, counts it, and a ping that answers ends the open time",
    () =>
      withState(({ g, project, server }) =>
        Effect.gen(function* () {
          const pe = yield* project("acme")
          pe.breaker.trip(g.now())
          assert.strictEqual(pe.es.open.FREE, 1)
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
          assert.strictEqual(pe.es.open.FREE + pe.es.halfOpen.FREE, 0)
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
