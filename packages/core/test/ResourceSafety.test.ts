import { assert, describe, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Result from "effect/Result"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import { TestClock } from "effect/testing"
import * as Tenancy from "../src/Tenancy.ts"
import type * as EngineContract from "../src/Engine.ts"
import * as Fake from "./fixtures/FakeEngine.ts"
import * as H from "./fixtures/Harness.ts"

type Handle = EngineContract.EngineHandle<Fake.Binding, Fake.FakeError>

/** The counting probe: nothing running on the server, nothing in flight, every bulkhead empty, no deadline. */
const assertQuiet = (servers: ReadonlyArray<Fake.FakeServer>, context = "") =>
  Effect.gen(function* () {
    const tenancy = yield* Tenancy.Tenancy
    const stats = yield* tenancy.stats
    assert.strictEqual(stats.inFlight, 0, `inFlight ${context}`)
    assert.strictEqual(stats.pendingDeadlines, 0, `pendingDeadlines ${context}`)
    for (const server of servers) {
      assert.strictEqual(server.running, 0, `server running ${context}`)
      assert.strictEqual(server.usedClosed, 0, `used a closed binding ${context}`)
    }
    for (const meta of yield* tenancy.connections) {
      assert.strictEqual(meta.active, 0, `${meta.projectId} bulkhead active ${context}`)
      assert.strictEqual(meta.queued, 0, `${meta.projectId} bulkhead queue ${context}`)
    }
  })

const setup = (capacity = 1000) =>
  Effect.gen(function* () {
    const server = Fake.makeServer()
    const tenancy = yield* Tenancy.Tenancy
    const engine = yield* tenancy.register(Fake.adapter(server, { capacity }))
    const run = (
      project: string,
      op: EngineContract.Operation<Fake.Binding>,
      millis: number,
      outcome: Fake.Outcome = "ok"
    ) => engine.runEffect(op, Fake.op(server, millis, outcome)).pipe(tenancy.withProject(project), Effect.result)
    return { server, tenancy, engine, run }
  })

describe("Resource safety", () => {
  describe("the counting probe returns to zero", () => {
    it.effect("after success", () =>
      Effect.gen(function* () {
        const { server, run } = yield* setup()
        yield* H.registerAll(["acme"], "FREE")
        const f = yield* Effect.forkChild(run("acme", Fake.get, 10))
        yield* Effect.yieldNow
        assert.strictEqual(server.running, 1)
        assert.strictEqual((yield* (yield* Tenancy.Tenancy).stats).inFlight, 1)
        yield* TestClock.adjust(10)
        assert.isTrue(Result.isSuccess(yield* Fiber.join(f)))
        yield* assertQuiet([server])
      }).pipe(H.provide())
    )

    it.effect("after failures (the engine's, the caller's, and a defect)", () =>
      Effect.gen(function* () {
        const { server, tenancy, engine, run } = yield* setup()
        yield* H.registerAll(["acme"], "FREE")
        assert.isTrue(Result.isFailure(yield* run("acme", Fake.set, 0, "down")))
        assert.isTrue(Result.isFailure(yield* run("acme", Fake.set, 0, "syntax")))
        assert.isTrue(Result.isFailure(yield* run("acme", Fake.set, 0, "reset")))
        const defect = yield* engine
          .runEffect(Fake.get, () => Effect.die(new Error("driver bug")))
          .pipe(tenancy.withProject("acme"), Effect.exit)
        assert.isTrue(Exit.isFailure(defect) && Cause.hasDies(defect.cause))
        const thrown = yield* engine
          .run(
            Fake.set,
            () => {
              throw new Error("sync throw")
            },
            Fake.mapError
          )
          .pipe(tenancy.withProject("acme"), Effect.result)
        assert.isTrue(Result.isFailure(thrown))
        yield* assertQuiet([server])
      }).pipe(H.provide())
    )

    it.effect("after a timeout", () =>
      Effect.gen(function* () {
        const { server, run } = yield* setup()
        yield* H.registerAll(["acme"], "FREE")
        const f = yield* Effect.forkChild(run("acme", Fake.set, 60_000))
        yield* TestClock.adjust("1 second")
        assert.strictEqual((Result.isFailure(yield* Fiber.join(f)) && "failed") || "", "failed")
        yield* assertQuiet([server])
      }).pipe(H.provide())
    )

    it.effect("after interruption while running (effect and promise operations)", () =>
      Effect.gen(function* () {
        const { server, tenancy, engine, run } = yield* setup()
        yield* H.registerAll(["acme"], "FREE")
        const f = yield* Effect.forkChild(run("acme", Fake.cancellable(server, true), 5_000))
        yield* Effect.yieldNow
        assert.strictEqual(server.running, 1)
        yield* Fiber.interrupt(f)
        assert.strictEqual(server.cancels, 1, "the server-side work was cancelled")
        yield* assertQuiet([server])

        let settle: () => void = () => {}
        const p = yield* engine
          .run(
            Fake.get,
            () =>
              new Promise<string>((resolve) => {
                server.running++
                settle = () => {
                  server.running--
                  resolve("late")
                }
              }),
            Fake.mapError
          )
          .pipe(tenancy.withProject("acme"), Effect.forkChild)
        yield* Effect.yieldNow
        yield* Fiber.interrupt(p)
        assert.strictEqual((yield* tenancy.stats).inFlight, 0, "freed at once, whatever the promise does")
        assert.strictEqual((yield* tenancy.connections)[0]!.active, 0)
        settle()
        yield* Effect.yieldNow
        yield* assertQuiet([server])
      }).pipe(H.provide())
    )

    it.effect("after interruption while waiting in the project queue", () =>
      Effect.gen(function* () {
        const { server, tenancy, run } = yield* setup()
        yield* H.registerAll(["acme"], "FREE")
        const running = yield* Effect.forkChild(run("acme", Fake.get, 100))
        const waiters = yield* Effect.forEach(Array.from({ length: 5 }), () =>
          Effect.forkChild(run("acme", Fake.get, 100))
        )
        yield* Effect.yieldNow
        assert.strictEqual((yield* tenancy.connections)[0]!.queued, 5)
        yield* Fiber.interruptAll(waiters.slice(0, 4))
        assert.strictEqual((yield* tenancy.connections)[0]!.queued, 1)
        yield* TestClock.adjust(200)
        assert.isTrue(Result.isSuccess(yield* Fiber.join(running)))
        assert.isTrue(Result.isSuccess(yield* Fiber.join(waiters[4]!)), "the one left was served")
        assert.strictEqual(server.calls, 2)
        yield* assertQuiet([server])
      }).pipe(H.provide({ tiers: { FREE: { maxConcurrent: 1, maxQueue: 10 } } }))
    )

    it.effect("after interruption while waiting for the target budget", () =>
      Effect.gen(function* () {
        const { server, tenancy, run } = yield* setup(2)
        yield* H.registerAll(["a", "b", "c"], "FREE")
        const holders = [
          yield* Effect.forkChild(run("a", Fake.get, 100)),
          yield* Effect.forkChild(run("b", Fake.get, 100))
        ]
        const waiters = yield* Effect.forEach(Array.from({ length: 10 }), () =>
          Effect.forkChild(run("c", Fake.get, 100))
        )
        yield* Effect.yieldNow
        const c = (yield* tenancy.connections).find((m) => m.projectId === "c")!
        assert.deepStrictEqual([c.active, c.queued], [10, 0], "past its bulkhead, waiting for the target")
        yield* Fiber.interruptAll(waiters)
        yield* TestClock.adjust(100)
        yield* Fiber.joinAll(holders)
        yield* assertQuiet([server])
        // The target's two slots are both usable again.
        server.peak = 0
        const again = yield* Effect.forEach(["a", "b", "c"], (id) => Effect.forkChild(run(id, Fake.get, 10)))
        yield* Effect.yieldNow
        assert.strictEqual(server.running, 2)
        yield* TestClock.adjust(20)
        yield* Fiber.joinAll(again)
        assert.strictEqual(server.peak, 2)
        yield* assertQuiet([server])
      }).pipe(H.provide())
    )

    it.effect("after the layer is closed (shutdown frees every binding)", () =>
      Effect.gen(function* () {
        const server = Fake.makeServer()
        yield* Effect.gen(function* () {
          const tenancy = yield* Tenancy.Tenancy
          const engine = yield* tenancy.register(Fake.adapter(server))
          yield* H.registerAll(H.ids("p", 20), "FREE")
          for (const id of H.ids("p", 20))
            yield* engine.runEffect(Fake.get, Fake.op(server, 0)).pipe(tenancy.withProject(id))
          assert.strictEqual(server.bindings, 20)
        }).pipe(H.provide())
        assert.strictEqual(server.bindings, 0)
      })
    )
  })

  it.live(
    "randomized interruption in real time (25,600 calls) leaves nothing held",
    () =>
      Effect.gen(function* () {
        const tenancy = yield* Tenancy.Tenancy
        const fast = Fake.makeServer()
        const slow = Fake.makeServer()
        // Redis-like engine: promise operations that settle after setImmediate or a 0–1 ms timer; its breakers
        // recover within milliseconds (see the options below).
        const redis: Handle = yield* tenancy.register(Fake.adapter(fast, { capacity: 4 }))
        // Mongo-like engine whose 2 ms attempt timeout cuts some operations short.
        const mongo: Handle = yield* tenancy.register(
          Fake.adapter(slow, {
            engine: "mongodb",
            capacity: 3,
            policy: { attemptTimeout: "2 millis", volumeThreshold: 1_000_000_000 }
          })
        )
        const projects = H.ids("r", 8)
        for (const [i, id] of projects.entries()) {
          const tier = i < 4 ? "FREE" : "STARTER"
          const cache = i % 2 === 0 ? "redis://cache-a/0" : "redis://cache-b/0"
          yield* H.registerAll([id], tier, cache)
          yield* H.registerAll([`${id}-m`], tier, "mongodb://mongo/db", "mongodb")
        }
        const transitions = { open: 0, halfOpen: 0 }
        yield* tenancy.events.pipe(
          Stream.runForEach((e) =>
            Effect.sync(() => {
              if (e._tag === "CircuitOpen") transitions.open++
              if (e._tag === "CircuitHalfOpen") transitions.halfOpen++
            })
          ),
          Effect.forkChild
        )
        const random = (n: number) => Math.floor(Math.random() * n)
        const outcomes: ReadonlyArray<Fake.Outcome> = ["ok", "ok", "ok", "syntax", "down", "reset"]
        const delays: ReadonlyArray<"immediate" | number> = ["immediate", "immediate", 0, 1]

        const oneCall = () => {
          const id = projects[random(projects.length)]!
          const op = random(2) === 0 ? Fake.get : Fake.set
          // Two projects fail mostly: their breakers open, half-open and close again and again during the storm.
          const outcome =
            id === "r-0" || id === "r-1" ? (random(4) === 0 ? "ok" : "down") : outcomes[random(outcomes.length)]!
          const onMongo = random(4) === 0
          return onMongo
            ? mongo
                .run(op, Fake.promiseOp(slow, random(5), outcome), Fake.mapError)
                .pipe(tenancy.withProject(`${id}-m`))
            : redis
                .run(op, Fake.promiseOp(fast, delays[random(delays.length)]!, outcome), Fake.mapError)
                .pipe(tenancy.withProject(id))
        }
        // When to interrupt: never, at once, after a few yields, after setImmediate, or after a 0–2 ms timer.
        const interruptAfter = (): Effect.Effect<void> | undefined => {
          switch (random(6)) {
            case 0:
              return undefined
            case 1:
              return Effect.void
            case 2:
              return Effect.repeat(Effect.yieldNow, { times: random(8) })
            case 3:
              return Effect.callback<void>((resume) => {
                setImmediate(() => resume(Effect.void))
              })
            default:
              return Effect.sleep(`${random(2_000)} micros`)
          }
        }

        const rounds = 400
        const perRound = 64
        let peakQueued = 0
        let defects = 0
        let interrupted = 0
        let completed = 0
        for (let round = 0; round < rounds; round++) {
          const fibers = yield* Effect.forEach(Array.from({ length: perRound }), () =>
            Effect.gen(function* () {
              const fiber = yield* Effect.forkChild(oneCall(), { startImmediately: random(2) === 0 })
              const delay = interruptAfter()
              if (delay !== undefined) yield* Effect.forkChild(Effect.andThen(delay, Fiber.interrupt(fiber)))
              return fiber
            })
          )
          for (const meta of yield* tenancy.connections) peakQueued = Math.max(peakQueued, meta.queued)
          for (const fiber of fibers) {
            const exit = yield* Fiber.await(fiber)
            if (Exit.isSuccess(exit)) completed++
            else if (Cause.hasDies(exit.cause)) defects++
            else if (Cause.hasInterruptsOnly(exit.cause)) interrupted++
            else completed++
          }
        }
        // Promises the guard abandoned still settle on their own.
        for (let i = 0; i < 200 && fast.running + slow.running > 0; i++) yield* Effect.sleep("1 millis")

        assert.strictEqual(defects, 0)
        assert.isAbove(interrupted, 1_000, "many calls were interrupted")
        assert.isAbove(completed, 1_000, "many ran to the end")
        assert.strictEqual(interrupted + completed, rounds * perRound)
        assert.isAbove(peakQueued, 0, "calls waited in project queues")
        assert.isAbove(transitions.halfOpen, 0, `breakers opened and half-opened (${JSON.stringify(transitions)})`)

        yield* assertQuiet([fast, slow], "after the storm")
        const stats = yield* tenancy.stats
        assert.isAbove(stats.liveProjects, 0)

        // No half-open probe slot leaked: once the (short) open time is over, one good call closes every breaker.
        yield* Effect.sleep("25 millis")
        for (const id of projects) {
          yield* redis.run(Fake.get, Fake.promiseOp(fast, "immediate"), Fake.mapError).pipe(tenancy.withProject(id))
        }
        for (const meta of yield* tenancy.connections) {
          if (meta.databaseType !== "redis") continue
          assert.deepStrictEqual([meta.breaker, meta.targetBreaker], ["closed", "closed"], meta.projectId)
        }

        // No permit leaked: each target still runs exactly its capacity at once.
        fast.peak = 0
        const probe = yield* Effect.forEach(projects, (id) =>
          Effect.forkChild(redis.run(Fake.get, Fake.promiseOp(fast, 20), Fake.mapError).pipe(tenancy.withProject(id)))
        )
        yield* Fiber.joinAll(probe)
        assert.strictEqual(fast.peak, 8, "two targets of capacity 4")
        slow.peak = 0
        const probeMongo = yield* Effect.forEach(projects, (id) =>
          Effect.forkChild(
            // 1 s more than the attempt timeout: no attempt is abandoned (and left running) here.
            mongo
              .run(Fake.set, Fake.promiseOp(slow, 10), Fake.mapError, 1_000)
              .pipe(tenancy.withProject(`${id}-m`), Effect.result)
          )
        )
        yield* Fiber.joinAll(probeMongo)
        assert.strictEqual(slow.peak, 3)
        for (let i = 0; i < 200 && fast.running + slow.running > 0; i++) yield* Effect.sleep("1 millis")
        yield* assertQuiet([fast, slow], "after the probe")
      }).pipe(
        H.provide({
          tiers: { FREE: { maxConcurrent: 3, maxQueue: 50 }, STARTER: { maxConcurrent: 5, maxQueue: 50 } },
          retry: Schedule.recurs(1) as Schedule.Schedule<unknown, unknown>,
          // Breakers open and half-open many times during the storm; caller probes only (no probe timers).
          breakers: { redis: { activeProbe: false, resetTimeout: "5 millis", maxResetTimeout: "20 millis" } }
        })
      ),
    30_000
  )
})
