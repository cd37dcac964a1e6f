import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import { TestClock } from "effect/testing"
import { ShuttingDown, UnknownOutcome } from "../../src/Errors.ts"
import type { ProjectId } from "../../src/ProjectId.ts"
import { attempt } from "../../src/internal/attempt.ts"
import type { Call, Runner } from "../../src/internal/call.ts"
import {
  acquireRuntime,
  ensureEngine,
  followRegistry,
  releaseRuntime,
  shutdown,
  sweep
} from "../../src/internal/runtimes.ts"
import type { ProjectEngine, TenancyState } from "../../src/internal/state.ts"
import * as Fake from "../fixtures/FakeEngine.ts"
import { withState } from "../fixtures/State.ts"

const id = (s: string) => s as ProjectId

const hold = (g: TenancyState, pe: ProjectEngine<Fake.Binding, Fake.FakeError>, op = Fake.get) => {
  const calls: Array<Call<string, Fake.FakeError>> = []
  const runner: Runner<string, Fake.Binding, Fake.FakeError> = (_pe, call) => void calls.push(call)
  const t = g.now()
  return Effect.map(Effect.forkChild(attempt(g, pe, op, t, t + 10_000, 10_000, 0, runner, false)), (fiber) => ({
    fiber,
    calls
  }))
}

describe("runtimes", () => {
  it.effect("concurrent first calls of a project share one runtime and one binding", () =>
    withState(({ g, registry, server }) =>
      Effect.gen(function* () {
        yield* registry.register({ id: "acme", tier: "FREE", redis: "redis://cache.internal:6379/0" })
        const es = g.engines[1]!
        const engines = yield* Effect.all(
          Array.from({ length: 20 }, () =>
            Effect.flatMap(acquireRuntime(g, id("acme")), (rt) => ensureEngine(g, rt, es))
          ),
          { concurrency: "unbounded" }
        )
        assert.strictEqual(new Set(engines).size, 1)
        assert.strictEqual(server.bindingsCreated, 1)
        assert.strictEqual(g.projects.get("acme")!.refs, 20)
      })
    )
  )

  it.effect("sweep frees idle, unheld runtimes only, and closes their bindings", () =>
    withState(({ g, project, server }) =>
      Effect.gen(function* () {
        const idle = yield* project("idle")
        const held = yield* project("held")
        const busy = yield* project("busy")
        held.rt.refs++
        const { calls } = yield* hold(g, busy)
        yield* TestClock.adjust("500 millis")
        assert.strictEqual(yield* sweep(g, undefined, "idle"), 0, "nothing has been idle for its tier's 5 minutes")
        assert.strictEqual(yield* sweep(g, 0, "closeIdleConnections"), 1)
        assert.isTrue(idle.rt.closed && idle.closed)
        assert.isFalse(held.rt.closed || busy.rt.closed)
        assert.strictEqual(server.bindings, 2)
        calls[0]!.complete(Exit.succeed("ok"))
        yield* releaseRuntime(g, held.rt)
        assert.strictEqual(yield* sweep(g, 0, "closeIdleConnections"), 2)
        assert.strictEqual(server.bindings, 0)
        assert.strictEqual(g.projects.size, 0)
      })
    )
  )

  it.effect("keeps the runtime of a project whose breaker rejects calls, and frees it once the open time is over", () =>
    withState(({ g, project }) =>
      Effect.gen(function* () {
        const pe = yield* project("acme")
        pe.breaker.trip(g.now())
        assert.strictEqual(yield* sweep(g, 0, "closeIdleConnections"), 0)
        yield* TestClock.adjust(pe.breaker.openUntil - g.now())
        assert.strictEqual(yield* sweep(g, 0, "closeIdleConnections"), 1)
      })
    )
  )

  it.effect("a changed target retires the old binding until its work drains; a removed project goes when idle", () =>
    withState(({ g, project, registry, server }) =>
      Effect.gen(function* () {
        yield* followRegistry(g)
        const old = yield* project("acme")
        const { calls } = yield* hold(g, old)
        yield* registry.register({ id: "acme", tier: "PRO", redis: "redis://other.internal:6379/0" })
        yield* Effect.yieldNow
        const rt = old.rt
        assert.strictEqual(rt.tier.name, "PRO", "the new tier applies at once")
        assert.deepStrictEqual([rt.engines[1], rt.retired], [undefined, [old]])
        const fresh = yield* ensureEngine(g, rt, g.engines[1]!)
        assert.strictEqual(fresh.target.host, "other.internal")
        yield* sweep(g, undefined, "idle")
        assert.isFalse(old.closed, "the retired binding still has work in progress")
        calls[0]!.complete(Exit.succeed("ok"))
        yield* sweep(g, undefined, "idle")
        assert.isTrue(old.closed)
        yield* registry.remove(id("acme"))
        yield* Effect.yieldNow
        assert.isTrue(rt.closed)
        assert.strictEqual(server.bindings, 0)
      })
    )
  )

  it.effect(
    "shutdown abandons what still runs after the grace period: a read hears ShuttingDown, a write UnknownOutcome",
    () =>
      withState(
        ({ g, project, server }) =>
          Effect.gen(function* () {
            const pe = yield* project("acme")
            const read = yield* hold(g, pe)
            const write = yield* hold(g, pe, Fake.set)
            const closing = yield* Effect.forkChild(shutdown(g))
            yield* TestClock.adjust(100)
            yield* Fiber.join(closing)
            assert.instanceOf(yield* Effect.flip(Fiber.join(read.fiber)), ShuttingDown)
            assert.instanceOf(yield* Effect.flip(Fiber.join(write.fiber)), UnknownOutcome)
            assert.deepStrictEqual([g.inFlight, server.bindings, g.projects.size], [0, 0, 0])
          }),
        { settings: { shutdownTimeoutMillis: 100 } }
      )
  )
})
