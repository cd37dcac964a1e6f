/**
 * Adaptive auto-pipelining (`internal/pipelining.ts`) on a real Redis: a command on an idle connection is written at
 * once, the ones issued while others are outstanding join ioredis's batch, and replies and effects keep the order
 * the commands were issued in, however the two kinds interleave.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { Redis as IORedis } from "ioredis"
import * as TestServers from "@tenantpool/testing/TestServers"
import * as Pipelining from "../src/internal/pipelining.ts"

const connection = Effect.acquireRelease(
  Effect.promise(async () => {
    const conn = new IORedis(TestServers.url("redis"), { lazyConnect: true, enableAutoPipelining: true })
    await conn.connect()
    return conn
  }),
  (conn) => Effect.sync(() => conn.disconnect())
)

const written = (conn: IORedis) => (conn as unknown as { commandQueue: { length: number } }).commandQueue.length

describe("adaptive auto-pipelining", () => {
  it.live("the installed ioredis exposes the state it reads", () =>
    Effect.gen(function* () {
      const conn = yield* connection
      assert.isTrue(Pipelining.supported(conn))
      assert.isTrue(Pipelining.idle(conn))
    }).pipe(Effect.scoped)
  )

  it.live("idle: the command is written at once; busy: the next one joins the batch", () =>
    Effect.gen(function* () {
      const conn = yield* connection
      const first = Pipelining.issue(conn, (c) => c.ping())
      assert.strictEqual(conn.autoPipelineQueueSize, 0, "not queued for the next turn")
      assert.strictEqual(written(conn), 1, "on the wire, awaiting its reply")
      const second = Pipelining.issue(conn, (c) => c.ping())
      assert.strictEqual(conn.autoPipelineQueueSize, 1, "queued behind the first")
      assert.deepStrictEqual(yield* Effect.promise(() => Promise.all([first, second])), ["PONG", "PONG"])
      assert.isTrue(Pipelining.idle(conn))
      assert.isTrue(conn.options.enableAutoPipelining, "the connection's option is left as it was")
    }).pipe(Effect.scoped)
  )

  it.live("a call that throws before sending leaves the option as it was", () =>
    Effect.gen(function* () {
      const conn = yield* connection
      assert.throws(() =>
        Pipelining.issue(conn, () => {
          throw new Error("refused")
        })
      )
      assert.isTrue(conn.options.enableAutoPipelining)
    }).pipe(Effect.scoped)
  )

  it.live("replies and effects keep the order of issue, direct and batched commands interleaved", () =>
    Effect.gen(function* () {
      const conn = yield* connection
      const key = `pipelining:${Math.random().toString(36).slice(2)}`
      const replies: Array<Promise<number>> = []
      const issued: Array<string> = []
      // Bursts of 1 to 7 commands with a reply awaited between some of them: every burst starts on an idle
      // connection (written directly) or a busy one (batched).
      for (let burst = 0; burst < 300; burst++) {
        const size = 1 + (burst % 7)
        for (let i = 0; i < size; i++) {
          const part = `${burst}.${i};`
          issued.push(part)
          replies.push(Pipelining.issue(conn, (c) => c.append(key, part)))
        }
        if (burst % 3 === 0) yield* Effect.promise(() => replies[replies.length - 1]!)
      }
      const lengths = yield* Effect.promise(() => Promise.all(replies))
      let expected = 0
      for (let i = 0; i < issued.length; i++) {
        expected += issued[i]!.length
        assert.strictEqual(lengths[i], expected, `reply ${i} in order`)
      }
      assert.strictEqual(yield* Effect.promise(() => conn.get(key)), issued.join(""))
      yield* Effect.promise(() => conn.del(key))
    }).pipe(Effect.scoped)
  )
})
