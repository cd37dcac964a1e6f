import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import { TestClock } from "effect/testing"
import * as Faults from "../src/Faults.ts"
import * as Tenancy from "../src/Tenancy.ts"
import * as Fake from "./fixtures/FakeEngine.ts"
import * as H from "./fixtures/Harness.ts"

// What a user's test provides: the tenancy service (here with a fake engine) and the fault injector over it.
const TestLayer = Layer.provideMerge(Faults.layer, Tenancy.layerMemory({ healthCheckInterval: 0, shutdownTimeout: 0 }))
const provide = <A, E, R>(self: Effect.Effect<A, E, R>) =>
  self.pipe(Effect.provide(TestLayer), Effect.provideService(Metric.MetricRegistry, new Map()))

const setup = Effect.gen(function* () {
  const server = Fake.makeServer()
  const tenancy = yield* Tenancy.Tenancy
  yield* H.registerAll(["acme", "other"], "FREE")
  const engine = yield* tenancy.register(Fake.adapter(server))
  const get = (project = "acme") => engine.runEffect(Fake.get, Fake.op(server, 10)).pipe(tenancy.withProject(project))
  const set = (project = "acme") => engine.runEffect(Fake.set, Fake.op(server, 10)).pipe(tenancy.withProject(project))
  return { server, tenancy, get, set }
})

describe("Faults", () => {
  it.effect("timeout: the call times out at its attempt timeout without reaching the driver", () =>
    Effect.gen(function* () {
      const { server, get, set } = yield* setup
      yield* Faults.inject("acme", Faults.timeout)
      const read = yield* Effect.forkChild(Effect.flip(get()))
      const write = yield* Effect.forkChild(Effect.flip(set()))
      yield* TestClock.adjust("1 second")
      assert.deepInclude(yield* Fiber.join(read), { _tag: "Timeout", budget: "attempt" })
      assert.strictEqual((yield* Fiber.join(write))._tag, "UnknownOutcome", "a write that timed out may have applied")
      assert.strictEqual(server.calls, 0)
      const fiber = yield* Effect.forkChild(get("other"))
      yield* TestClock.adjust(10)
      assert.strictEqual(yield* Fiber.join(fiber), "ok", "another project is not affected")
    }).pipe(provide)
  )

  it.effect("overloaded, for a number of calls: refused at once with the given retryAfter, then served", () =>
    Effect.gen(function* () {
      const { get } = yield* setup
      yield* Faults.inject("acme", Faults.overloaded(2500), { times: 2 })
      for (let i = 0; i < 2; i++) {
        assert.deepInclude(yield* Effect.flip(get()), { _tag: "Overloaded", retryAfterMillis: 2500 })
      }
      const fiber = yield* Effect.forkChild(get())
      yield* TestClock.adjust(10)
      assert.strictEqual(yield* Fiber.join(fiber), "ok")
    }).pipe(provide)
  )

  it.effect("circuitOpen: the project's breaker opens; cleared, its probe closes it within seconds", () =>
    Effect.gen(function* () {
      const { get, tenancy } = yield* setup
      yield* Faults.inject("acme", Faults.circuitOpen)
      assert.deepInclude(yield* Effect.flip(get()), { _tag: "CircuitOpen", scope: "project" })
      assert.strictEqual(yield* tenancy.breakerState("acme", "redis"), "open")
      yield* Faults.clear("acme")
      yield* TestClock.adjust("2 seconds")
      assert.strictEqual(yield* tenancy.breakerState("acme", "redis"), "closed")
    }).pipe(provide)
  )

  it.effect("unknownOutcome and latency", () =>
    Effect.gen(function* () {
      const { server, get, set } = yield* setup
      yield* Faults.inject("acme", Faults.unknownOutcome, { operations: ["set"], times: 1 })
      assert.strictEqual((yield* Effect.flip(set()))._tag, "UnknownOutcome")
      assert.strictEqual(server.calls, 0)
      yield* Faults.inject("acme", Faults.latency(500), { engine: "redis" })
      const slow = yield* Effect.forkChild(get())
      yield* TestClock.adjust(509)
      assert.isFalse(H.isDone(slow))
      yield* TestClock.adjust(1)
      assert.strictEqual(yield* Fiber.join(slow), "ok", "500 ms late, then the 10 ms call")
      yield* Faults.inject("acme", Faults.latency(5_000))
      const late = yield* Effect.forkChild(Effect.flip(get()))
      yield* TestClock.adjust("1 second")
      assert.strictEqual((yield* Fiber.join(late))._tag, "Timeout")
    }).pipe(provide)
  )

  it.effect("bad options are InvalidConfig naming the option; another engine's calls are not matched", () =>
    Effect.gen(function* () {
      const { get } = yield* setup
      assert.deepInclude(yield* Effect.flip(Faults.inject("acme", Faults.timeout, { times: 0 })), { field: "times" })
      assert.deepInclude(yield* Effect.flip(Faults.inject("acme", Faults.latency(-1))), { field: "latency" })
      assert.deepInclude(yield* Effect.flip(Faults.inject("Not An Id", Faults.timeout)), { field: "projectId" })
      yield* Faults.inject("acme", Faults.timeout, { engine: "postgres" })
      const fiber = yield* Effect.forkChild(get())
      yield* TestClock.adjust(10)
      assert.strictEqual(yield* Fiber.join(fiber), "ok")
    }).pipe(provide)
  )
})
