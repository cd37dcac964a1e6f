import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import { TestClock } from "effect/testing"
import { Timeout, UnknownOutcome } from "../../src/Errors.ts"
import { attempt } from "../../src/internal/attempt.ts"
import type { Call, Runner } from "../../src/internal/call.ts"
import type { ProjectEngine, TenancyState } from "../../src/internal/state.ts"
import * as Fake from "../fixtures/FakeEngine.ts"
import { isDone } from "../fixtures/Harness.ts"
import { withState } from "../fixtures/State.ts"

// A runner that keeps each started call, so the test decides when (and how) its attempt ends.
const held = () => {
  const calls: Array<Call<string, Fake.FakeError>> = []
  const runner: Runner<string, Fake.Binding, Fake.FakeError> = (_pe, call) => {
    calls.push(call)
  }
  return { calls, runner }
}

const start = (
  g: TenancyState,
  pe: ProjectEngine<Fake.Binding, Fake.FakeError>,
  runner: Runner<string, Fake.Binding, Fake.FakeError>,
  op = Fake.get
) => {
  const t = g.now()
  const span = pe.rt.tier.limits.timeoutMillis
  return Effect.forkChild(attempt(g, pe, op, t, t + span, span, 0, runner, false))
}

// What a (project, engine) and the service hold: every path must bring these back to zero.
const holdings = (g: TenancyState, pe: ProjectEngine<any, any>) => ({
  active: pe.bulkhead.active,
  queued: pe.bulkhead.queue.length,
  budget: pe.ts.budget.inUse,
  running: pe.running,
  inFlight: g.inFlight,
  deadlines: g.deadlines.size
})
const nothing = { active: 0, queued: 0, budget: 0, running: 0, inFlight: 0, deadlines: 0 }

describe("call", () => {
  it.effect("runs at once when a slot is free, holding one slot of each kind and its attempt deadline", () =>
    withState(({ g, project }) =>
      Effect.gen(function* () {
        const pe = yield* project("acme")
        const { calls, runner } = held()
        const fiber = yield* start(g, pe, runner)
        yield* Effect.yieldNow
        assert.strictEqual(calls.length, 1)
        assert.isTrue(calls[0]!.active)
        assert.deepStrictEqual(holdings(g, pe), {
          ...nothing,
          active: 1,
          budget: 1,
          running: 1,
          inFlight: 1,
          deadlines: 1
        })
        calls[0]!.complete(Exit.succeed("ok"))
        assert.strictEqual(yield* Fiber.join(fiber), "ok")
        assert.isFalse(calls[0]!.active, "the attempt signal turns off once the attempt is over")
        assert.deepStrictEqual(holdings(g, pe), nothing)
      })
    )
  )

  it.effect("a waiting call holds one deadline entry through both queues, then its attempt entry", () =>
    withState(
      ({ g, project }) =>
        Effect.gen(function* () {
          const pe = yield* project("acme")
          const { calls, runner } = held()
          yield* start(g, pe, runner)
          const waiter = yield* start(g, pe, runner)
          yield* Effect.yieldNow
          assert.deepStrictEqual(holdings(g, pe), {
            ...nothing,
            active: 1,
            queued: 1,
            budget: 1,
            running: 1,
            inFlight: 1,
            deadlines: 2
          })
          calls[0]!.complete(Exit.succeed("ok"))
          assert.strictEqual(calls.length, 2, "the waiter got the slot and started")
          assert.strictEqual(g.deadlines.size, 1, "the waiter's deadline entry became its attempt entry")
          calls[1]!.complete(Exit.succeed("ok"))
          assert.strictEqual(yield* Fiber.join(waiter), "ok")
          assert.deepStrictEqual(holdings(g, pe), nothing)
        }),
      { tiers: { FREE: { maxConcurrent: 1, maxQueue: 5 } } }
    )
  )

  it.effect("an attempt that cannot finish before the deadline is timed by the deadline it waited with", () =>
    withState(
      ({ g, project }) =>
        Effect.gen(function* () {
          const pe = yield* project("acme")
          const { calls, runner } = held()
          yield* start(g, pe, runner)
          const waiter = yield* start(g, pe, runner)
          yield* Effect.yieldNow
          yield* TestClock.adjust(800)
          calls[0]!.complete(Exit.succeed("ok"))
          // Started at 800 with a 1 s attempt timeout: the 1.5 s deadline comes first.
          yield* TestClock.adjust(699)
          assert.isFalse(isDone(waiter))
          yield* TestClock.adjust(1)
          const error = yield* Effect.flip(Fiber.join(waiter))
          assert.instanceOf(error, Timeout)
          assert.strictEqual((error as Timeout).budget, "deadline")
          assert.deepStrictEqual(holdings(g, pe), nothing)
        }),
      { tiers: { FREE: { maxConcurrent: 1, maxQueue: 5, timeout: "1500 millis" } } }
    )
  )

  it.effect("a caller interrupted while waiting leaves no queue position and no deadline entry", () =>
    withState(
      ({ g, project }) =>
        Effect.gen(function* () {
          const pe = yield* project("acme")
          const { calls, runner } = held()
          yield* start(g, pe, runner)
          const waiter = yield* start(g, pe, runner)
          yield* Effect.yieldNow
          yield* Fiber.interrupt(waiter)
          assert.deepStrictEqual(holdings(g, pe), {
            ...nothing,
            active: 1,
            budget: 1,
            running: 1,
            inFlight: 1,
            deadlines: 1
          })
          calls[0]!.complete(Exit.succeed("ok"))
          assert.strictEqual(calls.length, 1, "the interrupted waiter never started")
          assert.deepStrictEqual(holdings(g, pe), nothing)
        }),
      { tiers: { FREE: { maxConcurrent: 1, maxQueue: 5 } } }
    )
  )

  it.effect("a caller interrupted while its attempt runs frees everything and stops the server-side work", () =>
    withState(({ g, project, server }) =>
      Effect.gen(function* () {
        const pe = yield* project("acme")
        const { runner } = held()
        const fiber = yield* start(g, pe, runner, Fake.cancellable(server, true))
        yield* Effect.yieldNow
        yield* Fiber.interrupt(fiber)
        assert.strictEqual(server.cancels, 1)
        assert.deepStrictEqual(holdings(g, pe), nothing)
      })
    )
  )

  it.effect("a write whose attempt times out is an UnknownOutcome; its slots are freed at the timeout", () =>
    withState(({ g, project, server }) =>
      Effect.gen(function* () {
        const pe = yield* project("acme")
        const { calls, runner } = held()
        const fiber = yield* start(g, pe, runner, Fake.cancellable(server, false))
        yield* TestClock.adjust(1000)
        const error = yield* Effect.flip(Fiber.join(fiber))
        assert.instanceOf(error, UnknownOutcome)
        assert.instanceOf((error as UnknownOutcome).cause, Timeout)
        assert.strictEqual(server.cancels, 1)
        assert.deepStrictEqual(holdings(g, pe), nothing)
        calls[0]!.complete(Exit.succeed("late"))
        assert.deepStrictEqual(holdings(g, pe), nothing, "a late reply changes nothing")
      })
    )
  )
})
