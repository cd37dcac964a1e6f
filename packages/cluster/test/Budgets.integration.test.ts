import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Metric from "effect/Metric"
import * as Coordination from "@tenantpool/core/Coordination"
import { freshRedisPrefix } from "@tenantpool/testing/Isolation"
import {
  baseOptions,
  heldIn,
  load,
  makeServer,
  member,
  redisUrl,
  sum,
  targetId,
  waitFor,
  withRedis
} from "./fixtures/Members.ts"

describe("Fleet budgets", () => {
  it.live(
    "splits a target's budget between members by demand, never granting more than it",
    () =>
      Effect.gen(function* () {
        const prefix = yield* freshRedisPrefix(redisUrl(), "fleet")
        const server = makeServer()
        const options = baseOptions(redisUrl(), prefix)
        const a = yield* member(server, { ...options, instanceId: "a" })
        const b = yield* member(server, { ...options, instanceId: "b" })
        const c = yield* member(server, { ...options, instanceId: "c" })
        const members = [a, b, c]
        // Sampled throughout: the coordinator's record of what members may hold never sums above the budget.
        let worst = 0
        const watcher = yield* Effect.forkChild(
          Effect.forever(
            Effect.flatMap(heldIn(prefix), (held) => Effect.sync(() => void (worst = Math.max(worst, sum(held))))).pipe(
              Effect.andThen(Effect.sleep("10 millis"))
            )
          )
        )
        const loads = [yield* load(a, 40), yield* load(b, 40), yield* load(c, 40)]
        yield* waitFor(
          "an even split",
          Effect.sync(() => members.every((m) => m.share() === 4))
        )
        // Demand moves to one member: it gets most of the budget, the others keep at least one.
        yield* Fiber.interrupt(loads[1]!)
        yield* Fiber.interrupt(loads[2]!)
        yield* waitFor(
          "the busy member to grow",
          Effect.sync(() => a.share() >= 8 && b.share() >= 1 && c.share() >= 1)
        )
        const held = yield* heldIn(prefix)
        assert.isAtMost(sum(held), 12)
        yield* Fiber.interrupt(watcher)
        assert.isAtMost(worst, 12, "the recorded holdings never exceeded the budget")
        assert.isAtLeast(worst, 10)
        yield* Fiber.interrupt(loads[0]!)
      }).pipe(Effect.provideService(Metric.MetricRegistry, new Map())),
    30_000
  )

  it.live(
    "a crashed member's share returns to the others once its heartbeat expires, not before",
    () =>
      Effect.gen(function* () {
        const prefix = yield* freshRedisPrefix(redisUrl(), "fleet")
        const server = makeServer()
        const options = baseOptions(redisUrl(), prefix)
        // A member that crashed: it holds 8 of the 12 and its heartbeat (1 s) has just been written.
        yield* withRedis(async (client) => {
          const now = await client.time()
          const ms = Number(now[0]) * 1000 + Math.floor(Number(now[1]) / 1000)
          await client.zadd(`${prefix}members`, ms + 1000, "ghost")
          await client.hset(`${prefix}t:postgres:${targetId}`, "h:ghost", 8, "d:ghost", 0, "b:ghost", 12)
        })
        const started = Date.now()
        const a = yield* member(server, { ...options, instanceId: "a" })
        const busy = yield* load(a, 40)
        yield* waitFor(
          "a's first share",
          Effect.sync(() => a.share() > 0)
        )
        assert.isAtMost(a.share(), 4, "only what the crashed member does not hold")
        const grown = yield* waitFor(
          "the crashed member's share",
          Effect.sync(() => a.share() === 12)
        )
        const after = Date.now() - started
        assert.isAtLeast(after, 900, "not before the heartbeat expired")
        assert.isAtMost(after, 1_000 + 3 * 200 + 500, `within its lifetime and a few intervals (took ${grown} ms)`)
        assert.deepStrictEqual(yield* heldIn(prefix), { a: 12 })
        yield* Fiber.interrupt(busy)
      }).pipe(Effect.provideService(Metric.MetricRegistry, new Map())),
    30_000
  )

  it.live(
    "a shrunk share is given to others only once the shrinking member reports its engine under it",
    () =>
      Effect.gen(function* () {
        const prefix = yield* freshRedisPrefix(redisUrl(), "fleet")
        const server = makeServer()
        const options = { ...baseOptions(redisUrl(), prefix), hysteresis: 0 }
        const a = yield* member(server, { ...options, instanceId: "a" })
        // a's engine says what it may still hold: its share, or more while a shrink drains.
        let draining = 0
        const untrack = a.shares.track("postgres", targetId, () => Math.max(a.share(), draining))
        const loadA = yield* load(a, 40)
        yield* waitFor(
          "a alone holds the budget",
          Effect.sync(() => a.share() === 12)
        )
        draining = 12
        const b = yield* member(server, { ...options, instanceId: "b" })
        const loadB = yield* load(b, 40)
        yield* waitFor(
          "a to shrink",
          Effect.sync(() => a.share() === 6)
        )
        yield* Effect.sleep("600 millis")
        assert.strictEqual(b.share(), 0, "nothing granted while a's engine still holds 12")
        assert.deepStrictEqual(yield* heldIn(prefix), { a: 12, b: 0 })
        const demand = (yield* Coordination.targets(b.tenancy))[0]!
        assert.strictEqual(demand.capacity, 1, "b admits one operation, which waits for its first connection")
        draining = 0
        yield* waitFor(
          "b's share",
          Effect.sync(() => b.share() === 6)
        )
        assert.deepStrictEqual(yield* heldIn(prefix), { a: 6, b: 6 })
        assert.strictEqual((yield* Coordination.targets(b.tenancy))[0]!.capacity, 6 * 32)
        yield* Fiber.interrupt(loadA)
        yield* Fiber.interrupt(loadB)
        // A member that stops leaves at once: its share is the other's at the next sync.
        untrack()
        yield* a.stop
        assert.deepStrictEqual(yield* heldIn(prefix), { b: 6 })
      }).pipe(Effect.provideService(Metric.MetricRegistry, new Map())),
    30_000
  )
})
