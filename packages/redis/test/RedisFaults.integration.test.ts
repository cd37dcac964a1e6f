/**
 * Faults on a private Redis server per test (stop, start, SIGSTOP): the breaker opens within its policy and
 * closes again, calls are bounded by the attempt timeout and then fail fast, no write reported as failed is ever
 * applied and none is applied twice (ioredis#2130 class), interruption leaves nothing held, and health checks
 * notice a hung server quickly.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as Scope from "effect/Scope"
import { CircuitOpen, Overloaded, Timeout, UnknownOutcome } from "@tenantpool/core/Errors"
import { MemoryRegistry } from "@tenantpool/core/Registry"
import * as Tenancy from "@tenantpool/core/Tenancy"
import * as Servers from "@tenantpool/testing/Servers"
import { RedisEngine } from "../src/RedisEngine.ts"
import { RedisError } from "../src/RedisError.ts"
import * as Fx from "./fixtures/Redis.ts"

type Outcome = "ok" | "fail" | "unknown" | "timeout" | "other"

/** Jepsen-style: `fail` only for what cannot have reached the server, `unknown` for what may have. */
const outcomeOf = (exit: Exit.Exit<unknown, unknown>): Outcome => {
  if (Exit.isSuccess(exit)) return "ok"
  const error = Cause.findErrorOption(exit.cause)
  if (Option.isNone(error)) return "other"
  const e = error.value
  if (e instanceof UnknownOutcome) return "unknown"
  if (e instanceof CircuitOpen || e instanceof Overloaded) return "fail"
  if (e instanceof RedisError) return e.sent ? "other" : "fail"
  if (e instanceof Timeout) return "timeout"
  return "other"
}

const setup = Effect.gen(function* () {
  const server = yield* Servers.acquirePrivate("redis")
  const rawClient = yield* Fx.raw(server.url)
  const redis = yield* RedisEngine
  const tenancy = yield* Tenancy.Tenancy
  const id = Fx.projectId("faults")
  yield* (yield* MemoryRegistry).register({ id, tier: "PRO", redis: server.url })
  return { server, rawClient, redis, tenancy, id, as: tenancy.withProject(id) }
})

describe("RedisEngine under faults", () => {
  it.live(
    "stopping Redis under load opens the breaker within its policy; calls then fail fast; a restart closes it",
    () =>
      Effect.gen(function* () {
        const { server, redis, tenancy, id, as } = yield* setup
        yield* redis.set("k", "kept").pipe(as)
        for (let i = 0; i < 10; i++) assert.strictEqual(yield* redis.get("k").pipe(as), "kept")

        yield* Servers.stop(server)
        const stoppedAt = performance.now()
        yield* Fx.eventually(
          "the client noticed the stop",
          Effect.map(redis.poolStats.pipe(as), (s) => s.shared.status !== "ready")
        )
        const log: Array<{ readonly outcome: Outcome; readonly tag: string; readonly ms: number }> = []
        let running = true
        const worker = Effect.gen(function* () {
          while (running) {
            const [exit, ms] = yield* Fx.timed(Effect.exit(redis.get("k")))
            const error = Exit.isFailure(exit) ? Cause.findErrorOption(exit.cause) : Option.none()
            log.push({ outcome: outcomeOf(exit), tag: Option.isSome(error) ? String(error.value._tag) : "ok", ms })
            if (Exit.isFailure(exit)) yield* Effect.sleep("10 millis")
          }
        }).pipe(as)
        const workers = yield* Effect.forEach(Array.from({ length: 20 }), () => Effect.forkChild(worker))
        yield* Fx.eventually(
          "the project's breaker opens",
          Effect.map(tenancy.breakerState(id, "redis"), (s) => s === "open"),
          "5 seconds"
        )
        const openedAfter = performance.now() - stoppedAt
        yield* Effect.sleep("200 millis")
        running = false
        yield* Effect.forEach(workers, Fiber.join)

        // 11 successes are in the 10 s window: 70 % needs 26 failed attempts. A GET is retried twice (3 attempts), so
        // at least 9 calls failed first; at most 19 more were already running.
        const failures = log.filter((e) => e.tag !== "CircuitOpen").length
        assert.isTrue(failures >= 9 && failures <= 45, `failures recorded before and while opening: ${failures}`)
        assert.isTrue(openedAfter < 3_000, `opened ${Math.round(openedAfter)} ms after the stop`)
        // Refused connections fail at once (RedisError); a call that found the connection still reconnecting
        // waited for it (Timeout); then the breaker answers.
        const tags = new Set(log.map((e) => e.tag))
        assert.isTrue(tags.has("CircuitOpen"))
        for (const tag of tags) assert.include(["CircuitOpen", "Timeout", "RedisError"], tag)
        const slowest = Math.max(...log.map((e) => e.ms))
        assert.isTrue(
          slowest < 1_200,
          `every call bounded by the 1 s attempt timeout (slowest ${Math.round(slowest)} ms)`
        )

        const fastFails: Array<number> = []
        for (let i = 0; i < 50; i++) {
          const [error, ms] = yield* Fx.timed(Effect.flip(redis.get("k").pipe(as)))
          assert.instanceOf(error, CircuitOpen)
          fastFails.push(ms)
        }
        // The median, so that one GC pause or a busy CI core cannot fail the test; the slowest stays far from any wait.
        const median = [...fastFails].sort((x, y) => x - y)[25]!
        assert.isTrue(median < 5, `CircuitOpen within 5 ms (median ${median.toFixed(2)} ms)`)
        assert.isTrue(Math.max(...fastFails) < 100, `slowest ${Math.max(...fastFails).toFixed(2)} ms`)
        assert.isFalse(yield* redis.healthCheck.pipe(as), "an open circuit is unhealthy, not a failed health check")

        yield* Servers.start(server)
        yield* Fx.eventually(
          "the breaker closes after the restart",
          Effect.map(tenancy.breakerState(id, "redis"), (s) => s === "closed"),
          "8 seconds"
        )
        assert.strictEqual(yield* redis.get("k").pipe(as), "kept", "traffic recovers (and the data survived)")
        const transitions = (yield* tenancy.recentEvents)
          .filter((e) => "scope" in e && e.scope === "project" && "projectId" in e && e.projectId === id)
          .map((e) => e._tag)
        assert.strictEqual(transitions[0], "CircuitOpen")
        assert.strictEqual(transitions.at(-1), "CircuitClosed")
      }).pipe(
        Effect.provide(
          Fx.layer({
            tenancy: {
              breakers: { redis: { resetTimeout: "1 second", maxResetTimeout: "2 seconds" } },
              retry: Schedule.recurs(0)
            }
          })
        )
      )
  )

  it.live("no write reported as failed is applied and none is applied twice, across a SIGSTOP and a restart", () =>
    Effect.gen(function* () {
      const { server, rawClient, redis, id, as } = yield* setup
      const pushes: Array<{ readonly id: string; readonly outcome: Outcome; readonly tag: string }> = []
      const incrs: Array<Outcome> = []
      let running = true
      let seq = 0
      const tagOf = (exit: Exit.Exit<unknown, unknown>) => {
        const error = Exit.isFailure(exit) ? Cause.findErrorOption(exit.cause) : Option.none()
        return Option.isSome(error) ? String((error.value as { _tag?: unknown })._tag) : "ok"
      }
      const worker = Effect.gen(function* () {
        while (running) {
          const opId = `op-${seq++}`
          const pushed = yield* Effect.exit(redis.rpush("log", opId))
          pushes.push({ id: opId, outcome: outcomeOf(pushed), tag: tagOf(pushed) })
          const incremented = yield* Effect.exit(redis.incr("ctr"))
          incrs.push(outcomeOf(incremented))
          yield* Effect.sleep(Exit.isFailure(pushed) || Exit.isFailure(incremented) ? "20 millis" : "2 millis")
        }
      }).pipe(as)
      const workers = yield* Effect.forEach(Array.from({ length: 10 }), () => Effect.forkChild(worker))
      yield* Effect.sleep("300 millis")
      yield* Servers.withPaused(server, Effect.sleep("1 second"))
      yield* Effect.sleep("500 millis")
      yield* Servers.stop(server)
      yield* Effect.sleep("300 millis")
      yield* Servers.start(server)
      yield* Fx.eventually(
        "writes succeed again",
        Effect.sync(() => pushes.slice(-20).filter((p) => p.outcome === "ok").length >= 10),
        "8 seconds"
      )
      running = false
      yield* Effect.forEach(workers, Fiber.join)
      // Anything replayed late would arrive now.
      yield* Effect.sleep("500 millis")

      const stored = yield* Fx.call(() => rawClient.lrange(`${id}:log`, 0, -1))
      const counter = Number(yield* Fx.call(() => rawClient.get(`${id}:ctr`)))
      const count = (o: Outcome, xs: ReadonlyArray<Outcome>) => xs.filter((x) => x === o).length
      const outcomes = pushes.map((p) => p.outcome)
      const summary = {
        ok: count("ok", outcomes),
        fail: count("fail", outcomes),
        unknown: count("unknown", outcomes),
        other: pushes.filter((p) => p.outcome === "other" || p.outcome === "timeout").map((p) => p.tag)
      }
      const attempted = new Set(pushes.map((p) => p.id))
      const inList = new Set(stored)
      const lost = pushes.filter((p) => p.outcome === "ok" && !inList.has(p.id)).map((p) => p.id)
      const falseFail = pushes.filter((p) => p.outcome === "fail" && inList.has(p.id)).map((p) => p.id)
      const duplicates = stored.length - inList.size
      const unexpected = stored.filter((x) => !attempted.has(x))
      const detail = JSON.stringify({ ...summary, lost, falseFail, duplicates, unexpected })
      assert.deepStrictEqual(summary.other, [], `every outcome is ok, fail or unknown: ${detail}`)
      assert.isTrue(summary.unknown > 0, `the faults produced unknown outcomes: ${detail}`)
      assert.isTrue(summary.fail > 0, `the open breaker refused some writes: ${detail}`)
      assert.deepStrictEqual(lost, [], detail)
      assert.deepStrictEqual(falseFail, [], detail)
      assert.strictEqual(duplicates, 0, detail)
      assert.deepStrictEqual(unexpected, [], detail)

      const incrOk = count("ok", incrs)
      const incrUnknown = count("unknown", incrs)
      assert.isTrue(
        counter >= incrOk && counter - incrOk <= incrUnknown,
        `counter ${counter}, ok ${incrOk}, unknown ${incrUnknown}: nothing lost, nothing applied twice`
      )
    }).pipe(
      Effect.provide(
        Fx.layer({
          tenancy: {
            // A short window so that the fault, not the thousands of earlier successes, decides: the breaker opens
            // and some writes fail fast (the outcomes that must never be applied).
            breakers: {
              redis: {
                attemptTimeout: "200 millis",
                window: "500 millis",
                buckets: 5,
                resetTimeout: "300 millis",
                maxResetTimeout: "600 millis"
              }
            }
          }
        })
      )
    )
  )

  it.live("commands in flight when the server dies fail at once and never wedge the shared connection", () =>
    Effect.gen(function* () {
      const { server, redis, tenancy, id, as } = yield* setup
      yield* redis.set("k", "v").pipe(as)
      yield* Servers.pause(server)
      // Written to the socket, never answered: the server is stopped, then killed.
      const inFlight = yield* Effect.forEach(Array.from({ length: 5 }), () =>
        Effect.forkChild(Effect.exit(redis.incr("n").pipe(as)))
      )
      yield* Fx.eventually(
        "the INCRs are written and awaiting replies",
        Effect.map(redis.poolStats.pipe(as), (s) => s.shared.pendingReplies === 5)
      )
      yield* Servers.kill(server)
      const [exits, ms] = yield* Fx.timed(Effect.forEach(inFlight, Fiber.join))
      for (const exit of exits) assert.strictEqual(outcomeOf(exit), "unknown", "sent, then the connection died")
      assert.isTrue(ms < 500, `rejected when the connection closed, not at the attempt timeout (${Math.round(ms)} ms)`)
      yield* Servers.start(server)
      yield* Fx.eventually(
        "the shared connection serves commands again",
        Effect.map(Effect.exit(redis.set("k", "after").pipe(as)), Exit.isSuccess),
        "5 seconds"
      )
      assert.strictEqual(yield* redis.get("k").pipe(as), "after")
      assert.strictEqual(yield* tenancy.breakerState(id, "redis"), "closed")
    }).pipe(Effect.provide(Fx.layer()))
  )

  it.live("a BLPOP that cannot get a connection fails as not sent, not as an unknown outcome", () =>
    Effect.gen(function* () {
      const { server, redis, as } = yield* setup
      yield* Servers.stop(server)
      const [error, ms] = yield* Fx.timed(Effect.flip(redis.blpop(["q"], "1 second").pipe(as)))
      assert.instanceOf(error, RedisError, `a definite failure: ${String(error)}`)
      assert.strictEqual((error as RedisError).kind, "connection")
      assert.isFalse((error as RedisError).sent, "nothing was written: no connection was made")
      assert.isTrue(ms < 1_000, `failed when the connection was refused (${Math.round(ms)} ms)`)
    }).pipe(Effect.provide(Fx.layer()))
  )

  it.live("writes that gave up while the connection was reconnecting are never sent once it is back", () =>
    Effect.gen(function* () {
      const { server, rawClient, redis, id, as } = yield* setup
      yield* redis.set("n", "0").pipe(as)
      yield* Servers.stop(server)
      yield* Fx.eventually(
        "the client noticed the stop",
        Effect.map(redis.poolStats.pipe(as), (s) => s.shared.status !== "ready")
      )
      // One fails while the connection is down: it timed out waiting for it (unknown), or failed at once because
      // the reconnect was refused (never sent); the others are interrupted while waiting, or fail at once.
      const failed = yield* Effect.flip(redis.incr("n").pipe(as))
      assert.isTrue(
        failed instanceof UnknownOutcome || (failed instanceof RedisError && !failed.sent),
        `unexpected ${String(failed)}`
      )
      const waiting = yield* Effect.forEach(Array.from({ length: 5 }), () => Effect.forkChild(redis.incr("n").pipe(as)))
      yield* Effect.sleep("100 millis")
      yield* Effect.forEach(waiting, Fiber.interrupt)
      yield* Servers.start(server)
      yield* Fx.eventually(
        "the connection is back",
        Effect.map(Effect.exit(redis.get("n").pipe(as)), Exit.isSuccess),
        "5 seconds"
      )
      yield* Effect.sleep("200 millis")
      assert.strictEqual(yield* Fx.call(() => rawClient.get(`${id}:n`)), "0", "no abandoned INCR reached the server")
    }).pipe(Effect.provide(Fx.layer({ tenancy: { breakers: { redis: { resetTimeout: "500 millis" } } } })))
  )

  it.live("a wrong password is reported at once as an auth error, not as a timeout", () =>
    Effect.gen(function* () {
      const { server, rawClient } = yield* setup
      yield* Fx.call(() => rawClient.config("SET", "requirepass", "right-password"))
      const url = new URL(server.url)
      url.password = "wrong-password"
      const id = Fx.projectId("wrongpass")
      yield* (yield* MemoryRegistry).register({ id, tier: "PRO", redis: url.toString() })
      const redis = yield* RedisEngine
      const tenancy = yield* Tenancy.Tenancy
      const [error, ms] = yield* Fx.timed(Effect.flip(redis.get("k").pipe(tenancy.withProject(id))))
      assert.instanceOf(error, RedisError)
      assert.strictEqual((error as RedisError).kind, "auth")
      assert.isFalse((error as RedisError).sent)
      assert.isTrue(ms < 900, `answered in ${Math.round(ms)} ms, before the 1 s attempt timeout`)
      assert.notInclude(String(error), "wrong-password")
    }).pipe(Effect.provide(Fx.layer()))
  )

  it.live("interrupting GETs that hang on a paused server, running or queued, leaves nothing held", () =>
    Effect.gen(function* () {
      const { server, redis, tenancy, id, as } = yield* setup
      yield* redis.set("k", "v").pipe(as)
      const held = Effect.gen(function* () {
        const stats = yield* tenancy.stats
        const meta = (yield* tenancy.connections).find((c) => c.projectId === id)
        const pool = yield* redis.poolStats.pipe(as)
        return { inFlight: stats.inFlight, active: meta?.active, queued: meta?.queued, pending: pool.pending }
      })
      yield* Servers.withPaused(
        server,
        Effect.gen(function* () {
          // PRO runs 200 at once and queues 200 more: 250 GETs leave 50 waiting for a slot.
          const fibers = yield* Effect.forEach(Array.from({ length: 250 }), () =>
            Effect.forkChild(redis.get("k").pipe(as))
          )
          yield* Fx.eventually(
            "200 running and 50 queued",
            Effect.map(held, (h) => h.inFlight === 200 && h.queued === 50)
          )
          const [, ms] = yield* Fx.timed(Effect.forEach(fibers, Fiber.interrupt, { concurrency: "unbounded" }))
          assert.isTrue(ms < 200, `interruption is prompt (${Math.round(ms)} ms)`)
          assert.deepStrictEqual(yield* held, { inFlight: 0, active: 0, queued: 0, pending: 0 })
          assert.strictEqual((yield* tenancy.stats).pendingDeadlines, 0, "no timer left for the abandoned calls")
        })
      )
      assert.strictEqual(yield* redis.get("k").pipe(as), "v", "the next call works")
      assert.deepStrictEqual(yield* held, { inFlight: 0, active: 0, queued: 0, pending: 0 })
    }).pipe(Effect.provide(Fx.layer()))
  )

  it.live(
    "interrupting a BLPOP frees its dedicated connection at once, so it cannot pop an element nobody receives",
    () =>
      Effect.gen(function* () {
        const { rawClient, redis, tenancy, id, as } = yield* setup
        const blpop = yield* redis.blpop(["jobs"], "10 seconds").pipe(as, Effect.forkChild)
        yield* Fx.eventually(
          "the BLPOP is blocked on the server",
          Effect.map(Fx.clientList(rawClient), (l) => l.some((c) => c.cmd === "blpop"))
        )
        assert.strictEqual(yield* Fx.countNamed(rawClient, "tenantpool:dedicated"), 1)
        const [, ms] = yield* Fx.timed(Fiber.interrupt(blpop))
        assert.isTrue(ms < 100, `interruption is prompt (${Math.round(ms)} ms)`)
        assert.strictEqual((yield* tenancy.stats).inFlight, 0)
        yield* Fx.eventually(
          "the blocked connection is closed, not left blocking on the server",
          Effect.map(Fx.clientList(rawClient), (l) => !l.some((c) => c.cmd === "blpop")),
          "300 millis"
        )
        yield* Fx.call(() => rawClient.rpush(`${id}:jobs`, "job-1"))
        yield* Effect.sleep("200 millis")
        assert.deepStrictEqual(yield* Fx.call(() => rawClient.lrange(`${id}:jobs`, 0, -1)), ["job-1"], "not popped")
        assert.deepStrictEqual(
          yield* redis.blpop(["jobs"], "1 second").pipe(as),
          Option.some(["jobs", "job-1"] as const)
        )
        const stats = yield* redis.poolStats.pipe(as)
        assert.strictEqual(stats.dedicated.inUse, 0)
        assert.strictEqual(stats.pending, 0)
        // The pool may open a replacement when a borrowed connection is invalidated; it goes once idle.
        yield* Fx.eventually(
          "no dedicated connection left once idle",
          Effect.map(Fx.countNamed(rawClient, "tenantpool:dedicated"), (n) => n === 0)
        )
      }).pipe(Effect.provide(Fx.layer({ engine: { dedicatedIdleTimeout: "300 millis" } })))
  )

  it.live("healthCheck is false within about a second on a paused server and true again after it resumes", () =>
    Effect.gen(function* () {
      const { server, redis, tenancy, id, as } = yield* setup
      assert.isTrue(yield* redis.healthCheck.pipe(as))
      yield* Servers.withPaused(
        server,
        Effect.gen(function* () {
          const [healthy, ms] = yield* Fx.timed(redis.healthCheck.pipe(as))
          assert.isFalse(healthy)
          assert.isTrue(ms >= 900 && ms < 1_500, `answered after ${Math.round(ms)} ms`)
          const result = yield* tenancy.checkHealth(id, "redis")
          assert.isFalse(result.healthy)
          assert.isTrue(
            result.latencyMillis < 2_500,
            `tenancy health check bounded (${Math.round(result.latencyMillis)} ms)`
          )
        })
      )
      yield* Fx.eventually("healthy again", redis.healthCheck.pipe(as))
      const stats = yield* redis.poolStats.pipe(as)
      assert.deepStrictEqual([stats.size, stats.available, stats.pending], [1, 1, 0])
    }).pipe(Effect.provide(Fx.layer()))
  )

  it.live("a dedicated connection that completes after its caller gave up is kept by the pool, never orphaned", () =>
    Effect.gen(function* () {
      const { server, rawClient, redis, as } = yield* setup
      yield* Servers.withPaused(
        server,
        Effect.gen(function* () {
          // The connection's handshake cannot finish while the server is stopped; the attempt gives up while it
          // still waits for its dedicated connection: nothing was sent, a definite timeout.
          const error = yield* Effect.flip(redis.blpop(["q"], "100 millis").pipe(as))
          assert.instanceOf(error, Timeout)
          assert.strictEqual((error as Timeout).waitingFor, "dedicated connection")
        })
      )
      yield* Fx.eventually(
        "the connection finishes its handshake once the server resumes",
        Effect.map(Fx.countNamed(rawClient, "tenantpool:dedicated"), (n) => n === 1)
      )
      yield* Fx.eventually(
        "the late connection was adopted and closed once idle",
        Effect.map(Fx.countNamed(rawClient, "tenantpool:dedicated"), (n) => n === 0),
        "3 seconds"
      )
      assert.deepStrictEqual(yield* redis.blpop(["q"], "50 millis").pipe(as), Option.none())
    }).pipe(Effect.provide(Fx.layer({ engine: { dedicatedIdleTimeout: "300 millis" } })))
  )

  it.live(
    "releasing the engine while its server is paused takes QUIT's one-second bound, and closes every socket",
    () =>
      Effect.gen(function* () {
        const server = yield* Servers.acquirePrivate("redis")
        const rawClient = yield* Fx.raw(server.url)
        const name = Fx.clientName("close")
        const scope = yield* Scope.make()
        const context = yield* Layer.buildWithScope(Fx.layer({ engine: { clientName: name } }), scope)
        const redis = Context.get(context, RedisEngine)
        const id = Fx.projectId("close")
        yield* Context.get(context, MemoryRegistry).register({ id, tier: "PRO", redis: server.url })
        const as = Context.get(context, Tenancy.Tenancy).withProject(id)
        yield* redis.set("k", "v").pipe(as)
        assert.deepStrictEqual(yield* redis.blpop(["q"], "10 millis").pipe(as), Option.none())
        assert.strictEqual(yield* Fx.countNamed(rawClient, name), 1)
        assert.strictEqual(yield* Fx.countNamed(rawClient, `${name}:dedicated`), 1)
        yield* Servers.withPaused(
          server,
          Effect.gen(function* () {
            const [, ms] = yield* Fx.timed(Scope.close(scope, Exit.void))
            assert.isTrue(ms >= 900 && ms < 3_500, `released in ${Math.round(ms)} ms`)
          })
        )
        yield* Fx.eventually(
          "the server sees none of the engine's connections once it resumes",
          Effect.map(Fx.clientList(rawClient), (l) => !l.some((c) => c.name === name || c.name === `${name}:dedicated`))
        )
      })
  )
})
