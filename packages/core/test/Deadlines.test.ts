import { assert, describe, it } from "@effect/vitest"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import { TestClock } from "effect/testing"
import { Deadlines } from "../src/internal/deadlines.ts"

// One shared watcher fiber on the (Test)Clock, forked into the test's context.
const make = Effect.gen(function* () {
  const clock = yield* Clock.Clock
  const context = yield* Effect.context<never>()
  const fork = Effect.runForkWith(context)
  return new Deadlines(clock, (effect) => fork(effect))
})

describe("Deadlines", () => {
  it.effect("has no watcher while empty", () =>
    Effect.gen(function* () {
      const deadlines = yield* make
      assert.isFalse(deadlines.armed)
      assert.strictEqual(deadlines.size, 0)
    })
  )

  it.effect("fires entries in deadline order, each at its time, then stops the watcher", () =>
    Effect.gen(function* () {
      const deadlines = yield* make
      const fired: Array<string> = []
      const at = (label: string) => () => fired.push(`${label}@${deadlines.clock.currentTimeMillisUnsafe()}`)
      deadlines.add(300, at("c"))
      deadlines.add(100, at("a"))
      deadlines.add(200, at("b"))
      deadlines.add(200, at("b2"))
      assert.isTrue(deadlines.armed)
      assert.strictEqual(deadlines.size, 4)
      yield* TestClock.adjust(99)
      assert.deepStrictEqual(fired, [])
      yield* TestClock.adjust(1)
      assert.deepStrictEqual(fired, ["a@100"])
      yield* TestClock.adjust(150)
      assert.deepStrictEqual(fired, ["a@100", "b@200", "b2@200"], "equal deadlines fire in the order added")
      yield* TestClock.adjust(1_000)
      assert.deepStrictEqual(fired, ["a@100", "b@200", "b2@200", "c@300"])
      assert.strictEqual(deadlines.size, 0)
      assert.isFalse(deadlines.armed)
    })
  )

  it.effect("a cancelled entry never fires; cancelling twice or after firing is harmless", () =>
    Effect.gen(function* () {
      const deadlines = yield* make
      const fired: Array<string> = []
      const a = deadlines.add(100, () => fired.push("a"))
      const b = deadlines.add(200, () => fired.push("b"))
      deadlines.cancel(a)
      deadlines.cancel(a)
      assert.strictEqual(deadlines.size, 1)
      yield* TestClock.adjust(500)
      assert.deepStrictEqual(fired, ["b"])
      deadlines.cancel(b)
      assert.strictEqual(deadlines.size, 0)
      assert.isFalse(deadlines.armed, "the watcher found nothing left and stopped")
    })
  )

  it.effect("the watcher of a cancelled head wakes once, finds nothing due, and re-arms for the next", () =>
    Effect.gen(function* () {
      const deadlines = yield* make
      const fired: Array<number> = []
      const a = deadlines.add(100, () => fired.push(100))
      deadlines.add(1_000, () => fired.push(1_000))
      deadlines.cancel(a)
      yield* TestClock.adjust(100)
      assert.deepStrictEqual(fired, [])
      assert.isTrue(deadlines.armed)
      yield* TestClock.adjust(900)
      assert.deepStrictEqual(fired, [1_000])
      assert.isFalse(deadlines.armed)
    })
  )

  it.effect("an earlier deadline added later re-arms the watcher", () =>
    Effect.gen(function* () {
      const deadlines = yield* make
      const fired: Array<string> = []
      deadlines.add(10_000, () => fired.push("late"))
      yield* TestClock.adjust(1_000)
      deadlines.add(1_500, () => fired.push("early"))
      yield* TestClock.adjust(500)
      assert.deepStrictEqual(fired, ["early"], "the watcher woke for the new, earlier head")
      yield* TestClock.adjust(8_500)
      assert.deepStrictEqual(fired, ["early", "late"])
    })
  )

  it.effect("an entry added by a callback (or already due) fires too", () =>
    Effect.gen(function* () {
      const deadlines = yield* make
      const fired: Array<string> = []
      deadlines.add(100, () => {
        fired.push("first")
        deadlines.add(150, () => fired.push("chained"))
      })
      yield* TestClock.adjust(100)
      assert.deepStrictEqual(fired, ["first"])
      yield* TestClock.adjust(50)
      assert.deepStrictEqual(fired, ["first", "chained"])
      deadlines.add(0, () => fired.push("past"))
      yield* TestClock.adjust(0)
      assert.deepStrictEqual(fired, ["first", "chained", "past"])
    })
  )

  it.effect("drain hands back every pending entry unfired, in order, and stops the watcher", () =>
    Effect.gen(function* () {
      const deadlines = yield* make
      let fired = 0
      const b = deadlines.add(200, () => fired++)
      const a = deadlines.add(100, () => fired++)
      const c = deadlines.add(300, () => fired++)
      deadlines.cancel(c)
      assert.deepStrictEqual(deadlines.drain(), [a, b])
      assert.deepStrictEqual([deadlines.size, deadlines.armed], [0, false])
      yield* TestClock.adjust(1_000)
      assert.strictEqual(fired, 0)
    })
  )

  it.effect("stop: pending entries never fire and the watcher is gone", () =>
    Effect.gen(function* () {
      const deadlines = yield* make
      let fired = 0
      deadlines.add(100, () => fired++)
      deadlines.stop()
      assert.isFalse(deadlines.armed)
      yield* TestClock.adjust(1_000)
      assert.strictEqual(fired, 0)
    })
  )

  // Entries of the guard: waiters' deadlines (10 s lane) and running attempts (1 s lane), interleaved.
  const entry = (label: string, fired: Array<string>, deadlines: Deadlines) => ({
    at: 0,
    lane: undefined,
    node: undefined,
    prev: undefined,
    next: undefined,
    onDeadline: () => fired.push(`${label}@${deadlines.clock.currentTimeMillisUnsafe()}`)
  })

  it.effect("fires entries of different lanes each at its time, whatever order they were scheduled in", () =>
    Effect.gen(function* () {
      const deadlines = yield* make
      const fired: Array<string> = []
      deadlines.schedule(entry("wait-a", fired, deadlines), 10_000, 10_000)
      deadlines.schedule(entry("attempt-a", fired, deadlines), 1_000, 1_000)
      yield* TestClock.adjust(500)
      deadlines.schedule(entry("wait-b", fired, deadlines), 10_500, 10_000)
      deadlines.schedule(entry("attempt-b", fired, deadlines), 1_500, 1_000)
      yield* TestClock.adjust(20_000)
      assert.deepStrictEqual(fired, ["attempt-a@1000", "attempt-b@1500", "wait-a@10000", "wait-b@10500"])
      assert.deepStrictEqual([deadlines.size, deadlines.armed], [0, false])
    })
  )

  it.effect("an entry behind its lane's tail (a retry under its original deadline) still fires on time", () =>
    Effect.gen(function* () {
      const deadlines = yield* make
      const fired: Array<string> = []
      yield* TestClock.adjust(1_000)
      deadlines.schedule(entry("newer", fired, deadlines), 11_000, 10_000)
      deadlines.schedule(entry("retry", fired, deadlines), 10_200, 10_000)
      const cancelled = entry("cancelled", fired, deadlines)
      deadlines.schedule(cancelled, 10_100, 10_000)
      deadlines.cancel(cancelled)
      assert.strictEqual(deadlines.size, 2)
      yield* TestClock.adjust(9_200)
      assert.deepStrictEqual(fired, ["retry@10200"])
      yield* TestClock.adjust(800)
      assert.deepStrictEqual(fired, ["retry@10200", "newer@11000"])
    })
  )

  it.effect("inserting in front of 10,000 waiting entries costs what inserting in front of none does", () =>
    Effect.gen(function* () {
      const deadlines = yield* make
      const fired: Array<string> = []
      for (let i = 0; i < 10_000; i++) deadlines.schedule(entry(`w${i}`, fired, deadlines), 60_000 + i, 60_000)
      // Attempts scheduled before every waiter: each is an append to its own lane (no walk past the waiters).
      const attempts = Array.from({ length: 1000 }, (_, i) => entry(`a${i}`, fired, deadlines))
      const t0 = performance.now()
      for (const a of attempts) {
        deadlines.schedule(a, 1_000, 1_000)
        deadlines.cancel(a)
      }
      const perPair = (performance.now() - t0) / attempts.length
      assert.isBelow(perPair, 0.01, `schedule+cancel took ${perPair.toFixed(4)} ms`)
      assert.strictEqual(deadlines.size, 10_000)
      yield* TestClock.adjust(70_000)
      assert.strictEqual(fired.length, 10_000)
      assert.strictEqual(fired[0], "w0@60000")
    })
  )
})
