import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Metric from "effect/Metric"
import { PrometheusMetrics } from "effect/observability"
import { TestClock } from "effect/testing"
import type { TenancyEvent } from "../src/Events.ts"
import * as Tenancy from "../src/Tenancy.ts"
import type * as EngineContract from "../src/Engine.ts"
import * as Fake from "./fixtures/FakeEngine.ts"
import * as H from "./fixtures/Harness.ts"

type Handle = EngineContract.EngineHandle<Fake.Binding, Fake.FakeError>

// Writes are not retried, and a `down` failure (not sent) comes back as itself: one call, one recorded outcome.
const call = (engine: Handle, server: Fake.FakeServer, project: string, outcome: Fake.Outcome, millis = 0) =>
  Effect.flatMap(Tenancy.Tenancy, (t) =>
    engine.runEffect(Fake.set, Fake.op(server, millis, outcome)).pipe(t.withProject(project), Effect.result)
  )

const repeat = (n: number, effect: Effect.Effect<unknown, unknown, Tenancy.Tenancy>) =>
  Effect.forEach(Array.from({ length: n }), () => effect, { discard: true })

const setup = (policy?: EngineContract.EngineAdapter<Fake.Binding, Fake.FakeError>["policy"], projects = ["acme"]) =>
  Effect.gen(function* () {
    const server = Fake.makeServer()
    const tenancy = yield* Tenancy.Tenancy
    yield* H.registerAll(projects, "FREE")
    const engine = yield* tenancy.register(Fake.adapter(server, { policy }))
    return { server, tenancy, engine }
  })

const transitions = (events: ReadonlyArray<TenancyEvent>) =>
  events.flatMap((e) =>
    e._tag === "CircuitOpen" || e._tag === "CircuitHalfOpen" || e._tag === "CircuitClosed"
      ? [`${e._tag}:${e.scope}`]
      : []
  )

describe("Breaker", () => {
  describe("opening (Redis: 70 % of at least 10 calls in the window)", () => {
    it.effect("9 infrastructure failures leave it closed; the 10th opens it", () =>
      Effect.gen(function* () {
        const { server, tenancy, engine } = yield* setup({ activeProbe: false })
        yield* repeat(9, call(engine, server, "acme", "down"))
        assert.strictEqual(yield* tenancy.breakerState("acme", "redis"), "closed")
        assert.strictEqual((yield* call(engine, server, "acme", "ok"))._tag, "Success")
        yield* repeat(1, call(engine, server, "acme", "down"))
        assert.strictEqual(yield* tenancy.breakerState("acme", "redis"), "open")
      }).pipe(H.provide())
    )

    it.effect("3 successes and 7 failures open it", () =>
      Effect.gen(function* () {
        const { server, tenancy, engine } = yield* setup({ activeProbe: false })
        yield* repeat(3, call(engine, server, "acme", "ok"))
        yield* repeat(6, call(engine, server, "acme", "down"))
        assert.strictEqual(yield* tenancy.breakerState("acme", "redis"), "closed")
        yield* repeat(1, call(engine, server, "acme", "down"))
        assert.strictEqual(yield* tenancy.breakerState("acme", "redis"), "open")
      }).pipe(H.provide())
    )

    it.effect("4 successes and 6 failures do not", () =>
      Effect.gen(function* () {
        const { server, tenancy, engine } = yield* setup({ activeProbe: false })
        yield* repeat(4, call(engine, server, "acme", "ok"))
        yield* repeat(6, call(engine, server, "acme", "down"))
        assert.strictEqual(yield* tenancy.breakerState("acme", "redis"), "closed")
        assert.strictEqual((yield* tenancy.connections)[0]!.targetBreaker, "closed")
      }).pipe(H.provide())
    )

    it.effect("failures older than the window do not count", () =>
      Effect.gen(function* () {
        const { server, tenancy, engine } = yield* setup({ activeProbe: false })
        yield* repeat(9, call(engine, server, "acme", "down"))
        yield* TestClock.adjust("10 seconds")
        yield* repeat(1, call(engine, server, "acme", "down"))
        assert.strictEqual(yield* tenancy.breakerState("acme", "redis"), "closed")
      }).pipe(H.provide())
    )

    it.effect("Postgres opens at 50 %, MongoDB at 60 %", () =>
      Effect.gen(function* () {
        const tenancy = yield* Tenancy.Tenancy
        const pg = Fake.makeServer()
        const mongo = Fake.makeServer()
        yield* H.registerAll(["pg-a"], "FREE", "postgres://db/a", "postgres")
        yield* H.registerAll(["pg-b"], "FREE", "postgres://db/b", "postgres")
        yield* H.registerAll(["mongo-a"], "FREE", "mongodb://m-a/a", "mongodb")
        yield* H.registerAll(["mongo-b"], "FREE", "mongodb://m-b/b", "mongodb")
        const pgEngine = yield* tenancy.register(Fake.adapter(pg, { engine: "postgres" }))
        const mongoEngine = yield* tenancy.register(Fake.adapter(mongo, { engine: "mongodb" }))
        const state = (id: string, engine: "postgres" | "mongodb") => tenancy.breakerState(id, engine)

        yield* repeat(5, call(pgEngine, pg, "pg-a", "ok"))
        yield* repeat(5, call(pgEngine, pg, "pg-a", "down"))
        assert.strictEqual(yield* state("pg-a", "postgres"), "open")
        yield* repeat(6, call(pgEngine, pg, "pg-b", "ok"))
        yield* repeat(4, call(pgEngine, pg, "pg-b", "down"))
        assert.strictEqual(yield* state("pg-b", "postgres"), "closed")

        yield* repeat(4, call(mongoEngine, mongo, "mongo-a", "ok"))
        yield* repeat(6, call(mongoEngine, mongo, "mongo-a", "down"))
        assert.strictEqual(yield* state("mongo-a", "mongodb"), "open")
        yield* repeat(5, call(mongoEngine, mongo, "mongo-b", "ok"))
        yield* repeat(5, call(mongoEngine, mongo, "mongo-b", "down"))
        assert.strictEqual(yield* state("mongo-b", "mongodb"), "closed")
      }).pipe(H.provide())
    )
  })

  it.effect("caller errors never trip it, even 1,000 of them", () =>
    Effect.gen(function* () {
      const { server, tenancy, engine } = yield* setup({ activeProbe: false }, ["acme", "other"])
      yield* repeat(1_000, call(engine, server, "acme", "syntax"))
      assert.strictEqual(yield* tenancy.breakerState("acme", "redis"), "closed")
      assert.strictEqual((yield* tenancy.connections)[0]!.targetBreaker, "closed")
      assert.deepStrictEqual(transitions(yield* tenancy.recentEvents), [])
      assert.strictEqual(server.calls, 1_000, "every one reached the server")
      // The caller's errors are counted, just not against the breaker.
      assert.strictEqual((yield* tenancy.connections)[0]!.errorCount, 1_000)
      // And they dilute nothing: a real outage still opens it.
      yield* repeat(10, call(engine, server, "other", "down"))
      assert.strictEqual(yield* tenancy.breakerState("other", "redis"), "open")
    }).pipe(H.provide())
  )

  it.effect("an open breaker rejects at once with CircuitOpen (engine, project, scope, retryAfter)", () =>
    Effect.gen(function* () {
      const { server, engine } = yield* setup({ activeProbe: false })
      yield* repeat(10, call(engine, server, "acme", "down"))
      const calls = server.calls
      yield* TestClock.adjust("5 seconds")
      const result = yield* call(engine, server, "acme", "ok", 1_000)
      assert.strictEqual(result._tag, "Failure")
      const error = result._tag === "Failure" ? result.failure : undefined
      assert.strictEqual(error?._tag, "CircuitOpen")
      if (error?._tag !== "CircuitOpen") return
      assert.strictEqual(error.engine, "redis")
      assert.strictEqual(error.projectId, "acme")
      // Both breakers opened (one project on its target): the target's is reported, it is checked first.
      assert.strictEqual(error.scope, "target")
      assert.strictEqual(error.retryAfterMillis, 10_000, "opened for 15 s, 5 s ago")
      assert.strictEqual(error.untilMillis, 15_000)
      assert.include(error.message, 'redis circuit open for project "acme"')
      assert.strictEqual(server.calls, calls, "the server was not touched")
    }).pipe(H.provide())
  )

  describe("half-open", () => {
    it.effect("admits exactly halfOpenProbes concurrent probes; the others are rejected fast", () =>
      Effect.gen(function* () {
        const { server, tenancy, engine } = yield* setup({ activeProbe: false, halfOpenProbes: 3 })
        yield* repeat(10, call(engine, server, "acme", "down"))
        yield* TestClock.adjust("15 seconds")
        const calls = server.calls
        const fibers = yield* Effect.forEach(Array.from({ length: 100 }), () =>
          Effect.forkChild(call(engine, server, "acme", "ok", 100))
        )
        yield* Effect.yieldNow
        assert.strictEqual(server.calls - calls, 3, "exactly 3 probes reached the server")
        const rejected = fibers.filter(H.isDone)
        assert.strictEqual(rejected.length, 97, "the others finished without the clock moving")
        for (const f of rejected) {
          const r = yield* Fiber.join(f)
          assert.isTrue(r._tag === "Failure" && r.failure._tag === "CircuitOpen")
        }
        assert.strictEqual(yield* tenancy.breakerState("acme", "redis"), "half-open")
        yield* TestClock.adjust(100)
        for (const f of fibers) yield* Fiber.join(f)
        assert.strictEqual(yield* tenancy.breakerState("acme", "redis"), "closed", "all 3 probes succeeded")
        assert.strictEqual((yield* call(engine, server, "acme", "ok"))._tag, "Success")
      }).pipe(H.provide())
    )

    it.effect("a failed probe reopens it for longer (backoff, capped); a successful one closes it", () =>
      Effect.gen(function* () {
        const { server, tenancy, engine } = yield* setup({
          activeProbe: false,
          resetTimeout: "15 seconds",
          backoffFactor: 2,
          maxResetTimeout: "40 seconds"
        })
        yield* repeat(10, call(engine, server, "acme", "down"))
        const openFor: Array<number> = []
        const retryAfter = Effect.map(call(engine, server, "acme", "ok"), (r) =>
          r._tag === "Failure" && r.failure._tag === "CircuitOpen" ? r.failure.retryAfterMillis : -1
        )
        openFor.push(yield* retryAfter)
        for (let i = 0; i < 3; i++) {
          yield* TestClock.adjust(openFor[openFor.length - 1]!)
          const probe = yield* call(engine, server, "acme", "down") // the probe fails
          assert.isTrue(probe._tag === "Failure" && probe.failure._tag === "FakeError")
          openFor.push(yield* retryAfter)
        }
        assert.deepStrictEqual(openFor, [15_000, 30_000, 40_000, 40_000])
        const opened = (yield* tenancy.recentEvents).flatMap((e) =>
          e._tag === "CircuitOpen" && e.scope === "project" ? [e.openForMillis] : []
        )
        assert.deepStrictEqual(opened, [15_000, 30_000, 40_000, 40_000])

        yield* TestClock.adjust("40 seconds")
        assert.strictEqual((yield* call(engine, server, "acme", "ok"))._tag, "Success")
        assert.strictEqual(yield* tenancy.breakerState("acme", "redis"), "closed")
        // Tripped again soon after: the backoff continues ...
        yield* repeat(10, call(engine, server, "acme", "down"))
        assert.strictEqual(yield* retryAfter, 40_000)
        // ... but once closed for as long as it was last open, it starts over.
        yield* TestClock.adjust("40 seconds")
        yield* call(engine, server, "acme", "ok")
        yield* TestClock.adjust("40 seconds")
        yield* repeat(10, call(engine, server, "acme", "down"))
        assert.strictEqual(yield* retryAfter, 15_000)
      }).pipe(H.provide())
    )

    it.effect("a probe that hangs is bounded by the attempt timeout and reopens the breaker", () =>
      Effect.gen(function* () {
        const { server, tenancy, engine } = yield* setup({ activeProbe: false })
        yield* repeat(10, call(engine, server, "acme", "down"))
        yield* TestClock.adjust("15 seconds")
        const probe = yield* Effect.forkChild(call(engine, server, "acme", "ok", 60_000))
        yield* Effect.yieldNow
        assert.strictEqual(yield* tenancy.breakerState("acme", "redis"), "half-open")
        yield* TestClock.adjust("1 second")
        const r = yield* Fiber.join(probe)
        assert.isTrue(r._tag === "Failure" && r.failure._tag === "UnknownOutcome")
        assert.strictEqual(yield* tenancy.breakerState("acme", "redis"), "open")
        assert.strictEqual(server.running, 0)
      }).pipe(H.provide())
    )

    it.effect("an interrupted probe gives its slot back", () =>
      Effect.gen(function* () {
        const { server, tenancy, engine } = yield* setup({ activeProbe: false })
        yield* repeat(10, call(engine, server, "acme", "down"))
        yield* TestClock.adjust("15 seconds")
        const probe = yield* Effect.forkChild(call(engine, server, "acme", "ok", 500))
        yield* Effect.yieldNow
        yield* Fiber.interrupt(probe)
        assert.strictEqual(yield* tenancy.breakerState("acme", "redis"), "half-open")
        const next = yield* Effect.forkChild(call(engine, server, "acme", "ok", 500))
        yield* TestClock.adjust(500)
        assert.strictEqual((yield* Fiber.join(next))._tag, "Success")
        assert.strictEqual(yield* tenancy.breakerState("acme", "redis"), "closed")
      }).pipe(H.provide())
    )
  })

  describe("active probe", () => {
    it.effect(
      "pings every 2 s while open and closes within one interval of the server's return, no caller needed",
      () =>
        Effect.gen(function* () {
          const { server, tenancy, engine } = yield* setup() // activeProbe is on by default
          server.down = true
          yield* repeat(10, call(engine, server, "acme", "ok"))
          assert.strictEqual(yield* tenancy.breakerState("acme", "redis"), "open")
          const calls = server.calls
          yield* TestClock.adjust("1999 millis")
          assert.strictEqual(server.pings, 0)
          yield* TestClock.adjust("1 millis")
          assert.strictEqual(
            server.pings,
            1,
            "one ping for the target (the project's breaker leaves it to the target's)"
          )
          yield* TestClock.adjust("4 seconds")
          assert.strictEqual(server.pings, 3)
          assert.strictEqual(yield* tenancy.breakerState("acme", "redis"), "open")
          server.down = false
          yield* TestClock.adjust("2 seconds")
          assert.strictEqual((yield* tenancy.connections)[0]!.targetBreaker, "closed", "8 s into a 15 s open time")
          yield* TestClock.adjust("2 seconds")
          assert.strictEqual(yield* tenancy.breakerState("acme", "redis"), "closed")
          assert.strictEqual(server.calls, calls, "no caller's call was used as a probe")
        }).pipe(H.provide())
    )

    it.effect(
      "after a long outage, recovery is noticed within seconds: backoff spaces callers, never the recovery",
      () =>
        Effect.gen(function* () {
          const { server, tenancy, engine } = yield* setup({ maxResetTimeout: "2 minutes" })
          server.down = true
          yield* repeat(10, call(engine, server, "acme", "ok"))
          // Down for 3 minutes: the half-open pings at the end of each open time fail, each open time longer.
          yield* TestClock.adjust("3 minutes")
          const opened = (yield* tenancy.recentEvents).flatMap((e) =>
            e._tag === "CircuitOpen" && e.scope === "target" ? [e.openForMillis] : []
          )
          assert.deepStrictEqual(opened, [15_000, 30_000, 60_000, 120_000])
          server.down = false
          yield* TestClock.adjust("2 seconds")
          assert.strictEqual((yield* tenancy.connections)[0]!.targetBreaker, "closed")
          yield* TestClock.adjust("2 seconds")
          assert.strictEqual(yield* tenancy.breakerState("acme", "redis"), "closed")
          assert.strictEqual((yield* call(engine, server, "acme", "ok"))._tag, "Success")
        }).pipe(H.provide())
    )

    it.effect("a ping that fails at the end of the open time re-opens it for longer", () =>
      Effect.gen(function* () {
        const { server, tenancy, engine } = yield* setup({ probeInterval: "1 minute" })
        server.down = true
        yield* repeat(10, call(engine, server, "acme", "ok"))
        yield* TestClock.adjust("15 seconds")
        assert.strictEqual(server.pings, 1)
        const reopened = (yield* tenancy.recentEvents).flatMap((e) =>
          e._tag === "CircuitOpen" && e.scope === "target" ? [e.openForMillis] : []
        )
        assert.deepStrictEqual(reopened, [15_000, 30_000])
      }).pipe(H.provide())
    )
  })

  describe("the per-target breaker", () => {
    it.effect("infrastructure errors from two projects on one target open it for both (and their neighbours)", () =>
      Effect.gen(function* () {
        const { server, tenancy, engine } = yield* setup({ activeProbe: false }, ["a", "b", "c"])
        yield* H.registerAll(["elsewhere"], "FREE", "redis://other-cache/0")
        yield* repeat(5, call(engine, server, "a", "down"))
        yield* repeat(5, call(engine, server, "b", "down"))
        assert.strictEqual(yield* tenancy.breakerState("a", "redis"), "closed")
        assert.strictEqual(yield* tenancy.breakerState("b", "redis"), "closed")
        for (const id of ["a", "b", "c"]) {
          const r = yield* call(engine, server, id, "ok")
          assert.isTrue(r._tag === "Failure" && r.failure._tag === "CircuitOpen" && r.failure.scope === "target", id)
        }
        assert.strictEqual((yield* call(engine, server, "elsewhere", "ok"))._tag, "Success")
        assert.deepStrictEqual(transitions(yield* tenancy.recentEvents), ["CircuitOpen:target"])
      }).pipe(H.provide())
    )

    it.effect("caller errors from one project never open it", () =>
      Effect.gen(function* () {
        const { server, tenancy, engine } = yield* setup({ activeProbe: false }, ["noisy", "victim"])
        yield* repeat(1_000, call(engine, server, "noisy", "syntax"))
        assert.strictEqual((yield* call(engine, server, "victim", "ok"))._tag, "Success")
        for (const meta of yield* tenancy.connections) assert.strictEqual(meta.targetBreaker, "closed")
      }).pipe(H.provide())
    )

    it.effect("one project's slow queries (attempt timeouts) open its own breaker, never the target's", () =>
      Effect.gen(function* () {
        const { server, tenancy, engine } = yield* setup({ activeProbe: false, attemptTimeout: "100 millis" }, [
          "slow",
          "victim"
        ])
        const slow = yield* Effect.forkChild(repeat(12, call(engine, server, "slow", "ok", 5_000)))
        for (let i = 0; i < 12; i++) yield* TestClock.adjust(100)
        yield* Fiber.join(slow)
        assert.strictEqual(yield* tenancy.breakerState("slow", "redis"), "open")
        assert.strictEqual(server.running, 0, "every timed-out attempt was abandoned on the server")
        assert.strictEqual((yield* call(engine, server, "victim", "ok"))._tag, "Success")
        for (const meta of yield* tenancy.connections) assert.strictEqual(meta.targetBreaker, "closed")
      }).pipe(H.provide())
    )
  })

  it.effect("transitions produce events and metric updates", () =>
    Effect.gen(function* () {
      const { server, tenancy, engine } = yield* setup({ activeProbe: false })
      const metric = (line: RegExp) =>
        Effect.map(PrometheusMetrics.format(), (text) => {
          const found = text.split("\n").find((l) => line.test(l))
          return found === undefined ? undefined : Number(found.split(" ").pop())
        })
      const state = metric(/^circuit_breaker_state\{database_type="redis",tier="FREE",scope="project"\}/)
      const targetState = metric(/^circuit_breaker_state\{database_type="redis",tier="FREE",scope="target"\}/)
      assert.strictEqual(yield* state, 0)
      yield* repeat(10, call(engine, server, "acme", "down"))
      assert.strictEqual(yield* state, 2)
      assert.strictEqual(yield* targetState, 2, "the target's breaker in a series of its own")
      assert.strictEqual(yield* metric(/^circuit_breaker_open_total\{.*scope="project"/), 1)
      assert.strictEqual(yield* metric(/^circuit_breaker_open_total\{.*scope="target"/), 1)
      yield* TestClock.adjust("15 seconds")
      const probe = yield* Effect.forkChild(call(engine, server, "acme", "ok", 10))
      yield* Effect.yieldNow
      assert.strictEqual(yield* state, 1)
      yield* TestClock.adjust(10)
      yield* Fiber.join(probe)
      assert.strictEqual(yield* state, 0)
      assert.deepStrictEqual(transitions(yield* tenancy.recentEvents), [
        "CircuitOpen:project",
        "CircuitOpen:target",
        "CircuitHalfOpen:target",
        "CircuitHalfOpen:project",
        "CircuitClosed:project",
        "CircuitClosed:target"
      ])
      const open = (yield* tenancy.recentEvents).find((e) => e._tag === "CircuitOpen")
      assert.deepInclude(open, { engine: "redis", projectId: "acme", target: "redis://cache.internal:6379/0" })
    }).pipe(
      Effect.provide(Tenancy.layerMemory({ healthCheckInterval: 0, shutdownTimeout: 0 })),
      Effect.provideService(Metric.MetricRegistry, new Map())
    )
  )
})
