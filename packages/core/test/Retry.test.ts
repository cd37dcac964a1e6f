import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Result from "effect/Result"
import * as Schedule from "effect/Schedule"
import { TestClock } from "effect/testing"
import type { Timeout, UnknownOutcome } from "../src/Errors.ts"
import * as Tenancy from "../src/Tenancy.ts"
import type * as EngineContract from "../src/Engine.ts"
import * as Fake from "./fixtures/FakeEngine.ts"
import * as H from "./fixtures/Harness.ts"

const setup = Effect.gen(function* () {
  const server = Fake.makeServer()
  const tenancy = yield* Tenancy.Tenancy
  yield* H.registerAll(["acme"], "FREE")
  const engine = yield* tenancy.register(Fake.adapter(server))
  const run = (op: EngineContract.Operation<Fake.Binding>, millis: number, outcome: Fake.Outcome = "ok") =>
    engine.runEffect(op, Fake.op(server, millis, outcome)).pipe(tenancy.withProject("acme"), Effect.result)
  return { server, tenancy, engine, run }
})

const failureOf = <A, E>(r: Result.Result<A, E>): E => {
  assert.isTrue(Result.isFailure(r), "expected a failure")
  return (r as Result.Failure<A, E>).failure
}

describe("Attempt timeout and retries", () => {
  describe("attempt timeout (Redis: 1 s)", () => {
    it.effect(
      "interrupts the attempt, frees it, and reports Timeout (attempt), without a retry, for an idempotent operation",
      () =>
        Effect.gen(function* () {
          const { server, tenancy, run } = yield* setup
          const fiber = yield* Effect.forkChild(run(Fake.cancellable(server, true), 60_000))
          yield* TestClock.adjust(999)
          assert.strictEqual(server.running, 1)
          yield* TestClock.adjust(1)
          assert.strictEqual(server.running, 0, "the attempt was interrupted at 1 s")
          assert.strictEqual(server.cancels, 1, "and the server-side work cancelled")
          assert.strictEqual((yield* tenancy.stats).inFlight, 0)
          const error = failureOf(yield* Fiber.join(fiber)) as Timeout
          assert.strictEqual(error._tag, "Timeout")
          assert.strictEqual(error.budget, "attempt")
          assert.strictEqual(error.afterMillis, 1_000)
          assert.strictEqual(error.operation, "get")
          assert.strictEqual(server.calls, 1, "a statement that ran to its timeout has shown it is slow: not retried")
        }).pipe(H.provide())
    )

    it.effect("retries a timed-out attempt when the operation asks for it (retryOnTimeout)", () =>
      Effect.gen(function* () {
        const { server, run } = yield* setup
        const fiber = yield* Effect.forkChild(run({ ...Fake.cancellable(server, true), retryOnTimeout: true }, 60_000))
        yield* TestClock.adjust("5 seconds")
        const error = failureOf(yield* Fiber.join(fiber)) as Timeout
        assert.strictEqual(error._tag, "Timeout")
        assert.strictEqual(server.calls, 3, "one attempt and two retries")
        assert.strictEqual(server.running, 0)
        assert.strictEqual(server.cancels, 3)
      }).pipe(H.provide())
    )

    it.effect("reports UnknownOutcome for a non-idempotent operation, and does not retry it", () =>
      Effect.gen(function* () {
        const { server, run } = yield* setup
        const fiber = yield* Effect.forkChild(run(Fake.cancellable(server, false), 60_000))
        yield* TestClock.adjust("1 second")
        assert.strictEqual(server.running, 0)
        const error = failureOf(yield* Fiber.join(fiber)) as UnknownOutcome
        assert.strictEqual(error._tag, "UnknownOutcome")
        assert.strictEqual((error.cause as Timeout)._tag, "Timeout")
        assert.strictEqual((error.cause as Timeout).budget, "attempt")
        assert.include(error.message, "may or may not have been applied")
        assert.strictEqual(server.calls, 1)
      }).pipe(H.provide())
    )

    it.effect("a tier deadline shorter than the attempt timeout gives Timeout (deadline), not retried", () =>
      Effect.gen(function* () {
        const { server, run } = yield* setup
        const fiber = yield* Effect.forkChild(run(Fake.get, 60_000))
        yield* TestClock.adjust(500)
        const error = failureOf(yield* Fiber.join(fiber)) as Timeout
        assert.strictEqual(error.budget, "deadline")
        assert.strictEqual(error.afterMillis, 500)
        assert.strictEqual(server.calls, 1)
        assert.strictEqual(server.running, 0)
      }).pipe(H.provide({ tiers: { FREE: { timeout: "500 millis" } } }))
    )

    it.effect("a promise-based attempt that times out is abandoned and its result ignored", () =>
      Effect.gen(function* () {
        const { server, tenancy, engine } = yield* setup
        let resolve: (value: string) => void = () => {}
        const fiber = yield* engine
          .run(Fake.set, () => new Promise<string>((r) => (resolve = r)), Fake.mapError)
          .pipe(tenancy.withProject("acme"), Effect.result, Effect.forkChild)
        yield* TestClock.adjust("1 second")
        const error = failureOf(yield* Fiber.join(fiber))
        assert.strictEqual(error._tag, "UnknownOutcome")
        resolve("late")
        yield* Effect.yieldNow
        assert.strictEqual((yield* tenancy.stats).inFlight, 0)
        assert.strictEqual((yield* tenancy.connections)[0]!.active, 0)
        assert.strictEqual(server.running, 0)
      }).pipe(H.provide())
    )
  })

  describe("retries", () => {
    it.effect("idempotent operations are retried on infrastructure errors with growing delays", () =>
      Effect.gen(function* () {
        const { server, run } = yield* setup
        const fiber = yield* Effect.forkChild(run(Fake.get, 0, "reset"))
        yield* TestClock.adjust("1 second")
        const error = failureOf(yield* Fiber.join(fiber))
        assert.strictEqual(error._tag, "FakeError", "the last error, as it was")
        assert.strictEqual(server.calls, 3)
        const [t0, t1, t2] = server.startTimes
        const d1 = t1! - t0!
        const d2 = t2! - t1!
        assert.isAtLeast(d1, 40)
        assert.isAtMost(d1, 60)
        assert.isAbove(d2, d1, "the second delay is longer")
      }).pipe(H.provide())
    )

    it.effect("a retry that succeeds returns its result", () =>
      Effect.gen(function* () {
        const { server, tenancy, engine } = yield* setup
        let attempts = 0
        const fiber = yield* engine
          .runEffect(Fake.get, (b) => Fake.op(server, 0, ++attempts < 3 ? "down" : "ok")(b))
          .pipe(tenancy.withProject("acme"), Effect.forkChild)
        yield* TestClock.adjust("1 second")
        assert.strictEqual(yield* Fiber.join(fiber), "ok")
        assert.strictEqual(attempts, 3)
      }).pipe(H.provide())
    )

    it.effect("retries happen only within the deadline", () =>
      Effect.gen(function* () {
        const { server, run } = yield* setup
        // Every 3 s, forever: the 10 s deadline allows attempts at 0, 3, 6 and 9 s.
        const fiber = yield* Effect.forkChild(run(Fake.get, 0, "down"))
        yield* TestClock.adjust("9 seconds")
        assert.isTrue(H.isDone(fiber), "gave up at 9 s rather than sleep past the deadline")
        assert.strictEqual(failureOf(yield* Fiber.join(fiber))._tag, "FakeError")
        assert.deepStrictEqual(server.startTimes, [0, 3_000, 6_000, 9_000])
      }).pipe(H.provide({ retry: Schedule.spaced("3 seconds") }))
    )

    it.effect("non-idempotent operations are never retried", () =>
      Effect.gen(function* () {
        const { server, run } = yield* setup
        const fiber = yield* Effect.forkChild(run(Fake.set, 0, "down"))
        yield* TestClock.adjust("1 second")
        const error = failureOf(yield* Fiber.join(fiber))
        assert.deepInclude(error, { _tag: "FakeError", kind: "down" })
        assert.strictEqual(server.calls, 1)
      }).pipe(H.provide())
    )

    it.effect("caller errors are never retried", () =>
      Effect.gen(function* () {
        const { server, run } = yield* setup
        const fiber = yield* Effect.forkChild(run(Fake.get, 0, "syntax"))
        yield* TestClock.adjust("1 second")
        assert.deepInclude(failureOf(yield* Fiber.join(fiber)), { _tag: "FakeError", kind: "syntax" })
        assert.strictEqual(server.calls, 1)
      }).pipe(H.provide())
    )

    it.effect("retries stop when the breaker opens", () =>
      Effect.gen(function* () {
        const { server, run } = yield* setup
        // Nine failures in the window; the next one opens the breaker, and the retry after it is refused.
        for (let i = 0; i < 9; i++) yield* run(Fake.set, 0, "down")
        const fiber = yield* Effect.forkChild(run(Fake.get, 0, "down"))
        yield* TestClock.adjust("1 second")
        assert.strictEqual(failureOf(yield* Fiber.join(fiber))._tag, "CircuitOpen")
        assert.strictEqual(server.calls, 10)
      }).pipe(H.provide({ breakers: { redis: { activeProbe: false } } }))
    )
  })

  describe("writes that fail", () => {
    it.effect("after the request was sent (sent: true) are an UnknownOutcome", () =>
      Effect.gen(function* () {
        const { run } = yield* setup
        const error = failureOf(yield* run(Fake.set, 0, "reset")) as UnknownOutcome
        assert.strictEqual(error._tag, "UnknownOutcome")
        assert.deepInclude(error.cause as object, { _tag: "FakeError", kind: "reset", sent: true })
        assert.strictEqual(error.projectId, "acme")
        assert.strictEqual(error.engine, "redis")
        assert.strictEqual(error.operation, "set")
      }).pipe(H.provide())
    )

    it.effect("before it was sent (sent: false) are the original error", () =>
      Effect.gen(function* () {
        const { run } = yield* setup
        assert.deepInclude(failureOf(yield* run(Fake.set, 0, "down")), { _tag: "FakeError", kind: "down", sent: false })
      }).pipe(H.provide())
    )

    it.effect("an idempotent write that may have applied is retried, and unknown once retries run out", () =>
      Effect.gen(function* () {
        const { run, server } = yield* setup
        const put: EngineContract.Operation<Fake.Binding> = { name: "put", idempotent: true, write: true }
        const fiber = yield* Effect.forkChild(run(put, 0, "reset"))
        yield* TestClock.adjust("5 seconds")
        const error = failureOf(yield* Fiber.join(fiber)) as UnknownOutcome
        assert.strictEqual(server.calls, 3, "retried: running it again is harmless")
        assert.strictEqual(error._tag, "UnknownOutcome")
        assert.deepInclude(error.cause as object, { _tag: "FakeError", kind: "reset" })
      }).pipe(H.provide())
    )

    it.effect("an idempotent write refused before sending stays a plain failure", () =>
      Effect.gen(function* () {
        const { run } = yield* setup
        const put: EngineContract.Operation<Fake.Binding> = { name: "put", idempotent: true, write: true }
        const fiber = yield* Effect.forkChild(run(put, 0, "down"))
        yield* TestClock.adjust("5 seconds")
        assert.deepInclude(failureOf(yield* Fiber.join(fiber)), { _tag: "FakeError", kind: "down", sent: false })
      }).pipe(H.provide())
    )

    it.effect("an idempotent read that fails after sending is the original error, not unknown", () =>
      Effect.gen(function* () {
        const { run } = yield* setup
        const fiber = yield* Effect.forkChild(run(Fake.get, 0, "reset"))
        yield* TestClock.adjust("5 seconds")
        assert.deepInclude(failureOf(yield* Fiber.join(fiber)), { _tag: "FakeError", kind: "reset" })
      }).pipe(H.provide())
    )

    it.effect("with the caller's error stay the caller's error", () =>
      Effect.gen(function* () {
        const { run } = yield* setup
        assert.deepInclude(failureOf(yield* run(Fake.set, 0, "syntax")), { _tag: "FakeError", kind: "syntax" })
      }).pipe(H.provide())
    )
  })
})
