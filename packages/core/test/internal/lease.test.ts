import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Stream from "effect/Stream"
import { TestClock } from "effect/testing"
import { Timeout } from "../../src/Errors.ts"
import type { TenancyState } from "../../src/internal/state.ts"
import * as Fake from "../fixtures/FakeEngine.ts"
import { isDone } from "../fixtures/Harness.ts"
import { withState } from "../fixtures/State.ts"
import { withProject } from "../../src/internal/runtimes.ts"

const held = (g: TenancyState) => {
  const pe = g.projects.get("acme")?.engines[1]
  return { active: pe?.bulkhead.active ?? 0, queued: pe?.bulkhead.queue.length ?? 0, inFlight: g.inFlight }
}

describe("lease", () => {
  it.effect("holds the project's slot and the target's budget until its scope closes", () =>
    withState(({ g, handle, project }) =>
      Effect.gen(function* () {
        yield* project("acme")
        yield* Effect.scoped(
          Effect.gen(function* () {
            const lease = yield* handle.lease(Fake.get)
            assert.strictEqual(lease.project.id, "acme")
            assert.isTrue(lease.signal.active)
            assert.deepStrictEqual(held(g), { active: 1, queued: 0, inFlight: 1 })
          })
        ).pipe(withProject(g, "acme"))
        assert.deepStrictEqual(held(g), { active: 0, queued: 0, inFlight: 0 })
      })
    )
  )

  it.effect("is released when its scope closes, and a waiting lease is admitted then", () =>
    withState(
      ({ g, handle, project }) =>
        Effect.gen(function* () {
          yield* project("acme")
          const first = yield* Effect.forkChild(
            Effect.scoped(Effect.andThen(handle.lease(Fake.get), Effect.sleep(1_000))).pipe(withProject(g, "acme"))
          )
          yield* Effect.yieldNow
          const second = yield* Effect.forkChild(Effect.scoped(handle.lease(Fake.get)).pipe(withProject(g, "acme")))
          yield* Effect.yieldNow
          assert.deepStrictEqual(held(g), { active: 1, queued: 1, inFlight: 1 })
          yield* TestClock.adjust(1_000)
          yield* Fiber.join(first)
          yield* Fiber.join(second)
          assert.deepStrictEqual(held(g), { active: 0, queued: 0, inFlight: 0 })
        }),
      { tiers: { FREE: { maxConcurrent: 1, maxQueue: 5 } } }
    )
  )

  it.effect("a caller interrupted while waiting for its lease leaves nothing behind", () =>
    withState(
      ({ g, handle, project }) =>
        Effect.gen(function* () {
          yield* project("acme")
          yield* Effect.forkChild(
            Effect.scoped(Effect.andThen(handle.lease(Fake.get), Effect.never)).pipe(withProject(g, "acme"))
          )
          yield* Effect.yieldNow
          const waiting = yield* Effect.forkChild(Effect.scoped(handle.lease(Fake.get)).pipe(withProject(g, "acme")))
          yield* Effect.yieldNow
          yield* Fiber.interrupt(waiting)
          assert.deepStrictEqual(held(g), { active: 1, queued: 0, inFlight: 1 })
        }),
      { tiers: { FREE: { maxConcurrent: 1, maxQueue: 5 } } }
    )
  )

  it.effect("a stream read under a lease stops at the tier deadline, with Timeout, its server work cancelled", () =>
    withState(
      ({ g, handle, project, server }) =>
        Effect.gen(function* () {
          yield* project("acme")
          const op = Fake.cancellable(server, true)
          const stream = Stream.unwrap(
            Effect.map(handle.lease(op), (lease) => Stream.tick("100 millis").pipe(Stream.interruptWhen(lease.expired)))
          )
          const fiber = yield* Effect.forkChild(Stream.runCount(stream).pipe(withProject(g, "acme"), Effect.flip))
          yield* TestClock.adjust(9_999)
          assert.isFalse(isDone(fiber), "a lease is bounded by the 10 s deadline, not a 1 s attempt timeout")
          yield* TestClock.adjust(1)
          const error = yield* Fiber.join(fiber)
          assert.instanceOf(error, Timeout)
          assert.strictEqual((error as Timeout).budget, "deadline")
          assert.strictEqual(server.cancels, 1)
          assert.deepStrictEqual(held(g), { active: 0, queued: 0, inFlight: 0 })
        }),
      { tiers: { FREE: { timeout: "10 seconds" } } }
    )
  )

  it.effect("an infrastructure failure of the leased work counts toward the breakers like a call's", () =>
    withState(({ g, handle, project }) =>
      Effect.gen(function* () {
        const pe = yield* project("acme")
        for (let i = 0; i < 10; i++) {
          yield* Effect.scoped(
            Effect.andThen(handle.lease(Fake.get), Effect.fail(new Fake.FakeError({ kind: "down", sent: false })))
          ).pipe(withProject(g, "acme"), Effect.ignore)
        }
        assert.strictEqual(pe.breaker.state, 2, "open")
        assert.strictEqual(pe.ts.breaker.state, 2, "open")
        assert.deepStrictEqual(held(g), { active: 0, queued: 0, inFlight: 0 })
      })
    )
  )
})
