/**
 * Closing a Redis connection, with a fake connection under the TestClock: QUIT is given one second on the Clock,
 * then the socket is dropped whatever QUIT did, so shutdown is bounded by the Clock and never by the server.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import { TestClock } from "effect/testing"
import type { Redis as IORedis } from "ioredis"
import { quit } from "../src/internal/connections.ts"

/** A connection whose QUIT answers with `reply` (never, when undefined), counting its disconnects. */
const fake = (reply: Promise<string> | undefined) => {
  const counts = { quits: 0, disconnects: 0 }
  const conn = {
    quit: () => {
      counts.quits++
      return reply ?? new Promise<string>(() => {})
    },
    disconnect: () => {
      counts.disconnects++
    }
  } as unknown as IORedis
  return { conn, counts }
}

describe("Redis connections", () => {
  it.effect("QUIT answered: the socket is dropped at once, without waiting on the Clock", () =>
    Effect.gen(function* () {
      const { conn, counts } = fake(Promise.resolve("OK"))
      yield* quit(conn)
      assert.deepStrictEqual(counts, { quits: 1, disconnects: 1 })
    })
  )

  it.effect("QUIT failed (connection already closed): the socket is still dropped", () =>
    Effect.gen(function* () {
      const { conn, counts } = fake(Promise.reject(new Error("Connection is closed.")))
      yield* quit(conn)
      assert.deepStrictEqual(counts, { quits: 1, disconnects: 1 })
    })
  )

  it.effect("QUIT unanswered (a paused server): the socket is dropped after one second on the Clock", () =>
    Effect.gen(function* () {
      const { conn, counts } = fake(undefined)
      const closing = yield* Effect.forkChild(quit(conn))
      yield* TestClock.adjust("999 millis")
      assert.isUndefined(closing.pollUnsafe(), "still waiting for QUIT")
      assert.strictEqual(counts.disconnects, 0)
      yield* TestClock.adjust("1 millis")
      // Done once the Clock says a second has passed, without any real time passing.
      assert.isDefined(closing.pollUnsafe(), "QUIT given up at one second")
      yield* Fiber.join(closing)
      assert.deepStrictEqual(counts, { quits: 1, disconnects: 1 })
    })
  )

  it.effect("interrupted while waiting for QUIT: the socket is dropped all the same", () =>
    Effect.gen(function* () {
      const { conn, counts } = fake(undefined)
      const closing = yield* Effect.forkChild(quit(conn))
      yield* Effect.yieldNow
      yield* Fiber.interrupt(closing)
      assert.strictEqual(counts.disconnects, 1)
    })
  )
})
