/**
 * The breaker rules, one test per row of the table in the core README ("Breaker rules"). Redis's policy: 70 % of at
 * least 10 calls in a 10 s window, open 15 s, doubling up to 120 s, pings every 2 s while open.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import { TestClock } from "effect/testing"
import type * as EngineContract from "../src/Engine.ts"
import type { TenancyEvent } from "../src/Events.ts"
import * as Tenancy from "../src/Tenancy.ts"
import * as Fake from "./fixtures/FakeEngine.ts"
import * as H from "./fixtures/Harness.ts"

const setup = (policy?: EngineContract.EngineAdapter<Fake.Binding, Fake.FakeError>["policy"]) =>
  Effect.gen(function* () {
    const server = Fake.makeServer()
    const tenancy = yield* Tenancy.Tenancy
    yield* H.registerAll(["acme", "other"], "FREE")
    const engine = yield* tenancy.register(Fake.adapter(server, { policy }))
    const run = (op: EngineContract.Operation<Fake.Binding>, outcome: Fake.Outcome, project = "acme", millis = 0) =>
      engine.runEffect(op, Fake.op(server, millis, outcome)).pipe(tenancy.withProject(project), Effect.result)
    const states = Effect.map(tenancy.connections, (cs) => {
      const acme = cs.find((c) => c.projectId === "acme")
      return { project: acme?.breaker, target: acme?.targetBreaker }
    })
    return { server, tenancy, engine, run, states }
  })

const repeat = (n: number, effect: Effect.Effect<unknown, unknown>) =>
  Effect.forEach(Array.from({ length: n }), () => effect, { discard: true })

const openings = (events: ReadonlyArray<TenancyEvent>, scope: "project" | "target") =>
  events.flatMap((e) => (e._tag === "CircuitOpen" && e.scope === scope ? [e.openForMillis] : []))

// An operation whose attempt waits for a resource of the engine's own and never gets it.
const starved =
  (server: Fake.FakeServer) =>
  (_binding: Fake.Binding, signal: EngineContract.AttemptSignal): Effect.Effect<"ok", Fake.FakeError> =>
    Effect.suspend(() => {
      server.calls++
      signal.waitingFor("a dedicated connection")
      return Effect.never
    })

describe("Breaker rules", () => {
  it.effect("1. counts calls, not attempts: a dead server opens it after 10 calls, retries included", () =>
    Effect.gen(function* () {
      const { run, server, states } = yield* setup({ activeProbe: false })
      server.down = true
      for (let i = 0; i < 9; i++) {
        const fiber = yield* Effect.forkChild(run(Fake.get, "ok"))
        yield* TestClock.adjust("1 second") // each call's retries run
        yield* Fiber.join(fiber)
      }
      assert.isAtLeast(server.calls, 18, "the calls were retried")
      assert.deepStrictEqual(yield* states, { project: "closed", target: "closed" })
      yield* Effect.forkChild(run(Fake.get, "ok"))
      yield* TestClock.adjust("1 second")
      assert.deepStrictEqual(yield* states, { project: "open", target: "open" })
    }).pipe(H.provide())
  )

  it.effect("2. a caller's error counts toward no breaker", () =>
    Effect.gen(function* () {
      const { run, states } = yield* setup({ activeProbe: false })
      yield* repeat(50, run(Fake.set, "syntax"))
      assert.deepStrictEqual(yield* states, { project: "closed", target: "closed" })
    }).pipe(H.provide())
  )

  it.effect("3. an error one call provokes counts toward its project's breaker only, never the shared one", () =>
    Effect.gen(function* () {
      const { run, states } = yield* setup({ activeProbe: false })
      yield* repeat(20, run(Fake.set, "protocol"))
      assert.deepStrictEqual(yield* states, { project: "open", target: "closed" })
      assert.strictEqual((yield* run(Fake.set, "ok", "other"))._tag, "Success", "the neighbour is served")
    }).pipe(H.provide())
  )

  it.effect("4. an attempt timeout counts toward the project's breaker only", () =>
    Effect.gen(function* () {
      const { run, states } = yield* setup({ activeProbe: false })
      for (let i = 0; i < 10; i++) {
        const fiber = yield* Effect.forkChild(run(Fake.get, "ok", "acme", 60_000))
        yield* TestClock.adjust("1 second")
        yield* Fiber.join(fiber)
      }
      assert.deepStrictEqual(yield* states, { project: "open", target: "closed" })
    }).pipe(H.provide())
  )

  it.effect(
    "5. a timeout while waiting for the engine's own resource is a definite Timeout naming it, counted nowhere",
    () =>
      Effect.gen(function* () {
        const { engine, tenancy, server, states } = yield* setup({ activeProbe: false })
        for (let i = 0; i < 12; i++) {
          const fiber = yield* Effect.forkChild(
            engine.runEffect(Fake.set, starved(server)).pipe(tenancy.withProject("acme"), Effect.flip)
          )
          yield* TestClock.adjust("1 second")
          const error = yield* Fiber.join(fiber)
          assert.strictEqual(error._tag, "Timeout", "a write that was never sent is not an UnknownOutcome")
          assert.strictEqual((error as { waitingFor?: string }).waitingFor, "a dedicated connection")
          assert.include(error.message, "waiting for a dedicated connection (nothing was sent)")
        }
        assert.deepStrictEqual(yield* states, { project: "closed", target: "closed" })
      }).pipe(H.provide())
  )

  it.effect(
    "6. waiting in the guard's own queues that runs out is Timeout (deadline) or Overloaded, counted nowhere",
    () =>
      Effect.gen(function* () {
        const { run, states } = yield* setup({ activeProbe: false })
        const long = yield* Effect.forkChild(run(Fake.get, "ok", "acme", 900))
        yield* Effect.yieldNow
        const results = yield* Effect.all(
          Array.from({ length: 12 }, () => run(Fake.set, "ok", "acme", 900)),
          { concurrency: "unbounded" }
        ).pipe(Effect.forkChild)
        yield* TestClock.adjust("20 seconds")
        const tags = (yield* Fiber.join(results)).map((r) => (r._tag === "Failure" ? r.failure._tag : "Success"))
        assert.include(tags, "Overloaded")
        yield* Fiber.join(long)
        assert.deepStrictEqual(yield* states, { project: "closed", target: "closed" })
      }).pipe(H.provide({ tiers: { FREE: { maxConcurrent: 1, maxQueue: 2, timeout: "2 seconds" } } }))
  )

  it.effect("7. a failed half-open probe re-opens it for twice as long, up to the cap", () =>
    Effect.gen(function* () {
      const { run, server, tenancy } = yield* setup({ activeProbe: false, maxResetTimeout: "40 seconds" })
      server.down = true
      yield* repeat(10, run(Fake.set, "ok"))
      for (const wait of [15_000, 30_000, 40_000]) {
        yield* TestClock.adjust(wait)
        yield* run(Fake.set, "ok") // the probe fails
      }
      assert.deepStrictEqual(openings(yield* tenancy.recentEvents, "project"), [15_000, 30_000, 40_000, 40_000])
    }).pipe(H.provide())
  )

  it.effect("8. tripping again before it has proved healthy continues the backoff", () =>
    Effect.gen(function* () {
      const { run, server, tenancy } = yield* setup({ activeProbe: false })
      server.down = true
      yield* repeat(10, run(Fake.set, "ok"))
      yield* TestClock.adjust("15 seconds")
      server.down = false
      yield* repeat(3, run(Fake.set, "ok")) // the probe closes it; 2 more successes
      server.down = true
      yield* repeat(10, run(Fake.set, "ok"))
      assert.deepStrictEqual(openings(yield* tenancy.recentEvents, "project"), [15_000, 30_000])
    }).pipe(H.provide())
  )

  it.effect("9. after 10 successful calls (or a closed period as long as the last open one) it starts over", () =>
    Effect.gen(function* () {
      const { run, server, tenancy } = yield* setup({ activeProbe: false })
      server.down = true
      yield* repeat(10, run(Fake.set, "ok"))
      yield* TestClock.adjust("15 seconds")
      server.down = false
      yield* repeat(45, run(Fake.set, "ok")) // as measured: closed, then 45 successes …
      yield* TestClock.adjust("11 seconds") // … and down again once they left the window, 4 s before resetAt
      server.down = true
      yield* repeat(10, run(Fake.set, "ok"))
      assert.deepStrictEqual(openings(yield* tenancy.recentEvents, "project"), [15_000, 15_000])
      yield* TestClock.adjust("15 seconds")
      server.down = false
      yield* run(Fake.set, "ok")
      yield* TestClock.adjust("15 seconds") // closed as long as it was last open
      server.down = true
      yield* repeat(10, run(Fake.set, "ok"))
      assert.deepStrictEqual(openings(yield* tenancy.recentEvents, "project"), [15_000, 15_000, 15_000])
    }).pipe(H.provide())
  )

  it.effect("10. while open it pings every 2 s: the first answer closes it, whatever the open time", () =>
    Effect.gen(function* () {
      const { run, server, states } = yield* setup()
      server.down = true
      yield* repeat(10, run(Fake.set, "ok"))
      yield* TestClock.adjust("5 seconds")
      server.down = false
      yield* TestClock.adjust("1 second")
      assert.deepStrictEqual(yield* states, { project: "open", target: "closed" })
      yield* TestClock.adjust("2 seconds")
      assert.deepStrictEqual(yield* states, { project: "closed", target: "closed" })
    }).pipe(H.provide())
  )

  it.effect("11. a rejecting breaker keeps its idle project alive; once its open time is over it may go", () =>
    Effect.gen(function* () {
      const { run, server, tenancy } = yield* setup({ activeProbe: false })
      server.down = true
      yield* repeat(10, run(Fake.set, "ok"))
      assert.strictEqual(yield* tenancy.closeIdleConnections({ idleFor: 0 }), 0)
      yield* TestClock.adjust("15 seconds")
      assert.strictEqual(yield* tenancy.closeIdleConnections({ idleFor: 0 }), 1)
    }).pipe(H.provide())
  )

  it.effect(
    "12. a driver call that throws before sending (a caller's bad argument) is a definite failure, counted nowhere, not retried",
    () =>
      Effect.gen(function* () {
        const { engine, tenancy, server, states } = yield* setup({ activeProbe: false })
        for (let i = 0; i < 12; i++) {
          const error = yield* engine
            .run(
              Fake.get,
              () => {
                server.calls++
                throw new TypeError("key must be a string")
              },
              () => new Fake.FakeError({ kind: "down", sent: false })
            )
            .pipe(tenancy.withProject("acme"), Effect.flip)
          assert.strictEqual(error._tag, "FakeError")
        }
        assert.strictEqual(server.calls, 12, "no retries")
        assert.deepStrictEqual(yield* states, { project: "closed", target: "closed" })
      }).pipe(H.provide())
  )
})
