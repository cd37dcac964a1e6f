/**
 * Verdicts the breakers can trust: a call that timed out while it still waited for the engine's own connection
 * (a dedicated one from a full pool, or a shared one that is not ready) sent nothing and is a definite `Timeout`
 * naming what it waited for, counted by no breaker.
 */
import * as net from "node:net"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import { Timeout, UnknownOutcome } from "@tenantpool/core/Errors"
import { MemoryRegistry } from "@tenantpool/core/Registry"
import * as Tenancy from "@tenantpool/core/Tenancy"
import { RedisEngine } from "../src/RedisEngine.ts"
import * as Fx from "./fixtures/Redis.ts"

/** A TCP server that accepts connections and never answers: a Redis whose handshake never completes. */
const blackhole = Effect.acquireRelease(
  Effect.promise(
    () =>
      new Promise<{ readonly port: number; readonly server: net.Server; readonly sockets: Set<net.Socket> }>(
        (resolve) => {
          const sockets = new Set<net.Socket>()
          const server = net.createServer((socket) => {
            sockets.add(socket)
            socket.on("error", () => {})
          })
          server.listen(0, "127.0.0.1", () =>
            resolve({ port: (server.address() as net.AddressInfo).port, server, sockets })
          )
        }
      )
  ),
  ({ server, sockets }) =>
    Effect.promise(() => {
      for (const s of sockets) s.destroy()
      return new Promise<void>((resolve) => server.close(() => resolve()))
    })
)

describe("RedisEngine verdicts", () => {
  it.live(
    "a flood of BLPOPs on FREE: those that time out waiting for a dedicated connection are definite timeouts",
    () =>
      Effect.gen(function* () {
        const { operator, redis, tenancy, ids } = yield* Fx.onPrivateServer([["flood", "FREE"]])
        const id = ids[0]!
        const as = tenancy.withProject(id)
        // FREE's pool is 5 dedicated connections: 5 long BLPOPs hold them all.
        const holders = yield* Effect.forEach(Array.from({ length: 5 }), () =>
          redis.blpop(["jobs"], "3 seconds").pipe(as, Effect.forkChild)
        )
        yield* Fx.eventually(
          "five BLPOPs blocked on the server",
          Effect.map(Fx.clientList(operator), (l) => l.filter((c) => c.cmd === "blpop").length === 5)
        )
        // 15 more, each with a 1.1 s attempt timeout, wait for a connection that does not come in time.
        const waiters = yield* Effect.forEach(
          Array.from({ length: 15 }),
          () => Effect.flip(redis.blpop(["jobs"], "100 millis").pipe(as)),
          { concurrency: "unbounded" }
        )
        for (const error of waiters) {
          assert.instanceOf(error, Timeout, String(error))
          assert.notInstanceOf(error, UnknownOutcome)
          assert.strictEqual((error as Timeout).waitingFor, "dedicated connection")
          assert.match((error as Timeout).message, /waiting for dedicated connection \(nothing was sent\)/)
        }
        assert.strictEqual(yield* tenancy.breakerState(id, "redis"), "closed", "no breaker counted the waits")
        for (let i = 0; i < 5; i++) yield* Fx.call(() => operator.rpush(`${id}:jobs`, `job-${i}`))
        const popped = yield* Effect.forEach(holders, Fiber.join)
        assert.isTrue(popped.every(Option.isSome), "the holders got their jobs")
      }).pipe(Effect.provide(Fx.layer()))
  )

  it.live(
    "writes that time out while the shared connection is not ready are definite timeouts, counted by no breaker",
    () =>
      Effect.gen(function* () {
        const { port } = yield* blackhole
        const registry = yield* MemoryRegistry
        const redis = yield* RedisEngine
        const tenancy = yield* Tenancy.Tenancy
        const id = Fx.projectId("hung-handshake")
        yield* registry.register({ id, tier: "FREE", redis: `redis://127.0.0.1:${port}/0` })
        const errors = yield* Effect.forEach(
          Array.from({ length: 15 }, (_, i) => i),
          (i) =>
            Effect.flip(
              (i % 2 === 0 ? (redis.incr("n") as Effect.Effect<unknown, unknown>) : redis.get("k")).pipe(
                tenancy.withProject(id)
              )
            ),
          { concurrency: "unbounded" }
        )
        for (const error of errors) {
          assert.instanceOf(error, Timeout, String(error))
          assert.strictEqual((error as Timeout).waitingFor, "shared connection")
        }
        assert.strictEqual(yield* tenancy.breakerState(id, "redis"), "closed")
        const meta = (yield* tenancy.connections).find((c) => c.projectId === id)
        assert.strictEqual(meta?.targetBreaker, "closed")
      }).pipe(Effect.provide(Fx.layer()))
  )
})
