/**
 * Verdicts the breakers can trust: a call that timed out while it still waited for the engine's own connection
 * (a dedicated one from a full pool, or a shared one that is not ready) sent nothing and is a definite `Timeout`
 * naming what it waited for, counted by no breaker; a caller's bad argument is the caller's typed error, refused
 * before anything is admitted or sent, never a connection failure and never a defect or a thrown exception.
 */
import * as net from "node:net"
import { assert, describe, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import { Timeout, UnknownOutcome } from "@tenantpool/core/Errors"
import { MemoryRegistry } from "@tenantpool/core/Registry"
import * as Tenancy from "@tenantpool/core/Tenancy"
import { RedisEngine } from "../src/RedisEngine.ts"
import { RedisError } from "../src/RedisError.ts"
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

const commandCalls = (client: import("ioredis").Redis) =>
  Fx.call(() => client.info("commandstats")).pipe(
    Effect.map((text) => [...text.matchAll(/calls=(\d+)/g)].reduce((n, m) => n + Number(m[1]), 0))
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

  it.live("bad arguments to every public function fail as the caller's typed error, nothing sent, no breaker", () =>
    Effect.gen(function* () {
      const { operator, redis, tenancy, ids } = yield* Fx.onPrivateServer([
        ["bad-input", "FREE"],
        ["bystander", "FREE"]
      ])
      const [id, other] = ids as [string, string]
      yield* redis.set("k", "v").pipe(tenancy.withProject(other))
      const r = redis as any
      const badKeys: ReadonlyArray<unknown> = [123, undefined, null, {}, [], true, Symbol.iterator]
      const calls: Array<readonly [string, () => Effect.Effect<unknown, unknown>]> = [
        ["mget(undefined)", () => r.mget(undefined)],
        ["mget([k, 1])", () => r.mget(["k", 1])],
        ["mset(null)", () => r.mset(null)],
        ["mset({ k: 1 })", () => r.mset({ k: 1 })],
        ["set ttl nonsense", () => r.set("k", "v", { ttl: "nonsense" })],
        ["set ttl null", () => r.set("k", "v", { ttl: null })],
        ["set value 1", () => r.set("k", 1)],
        ["set options 'NX'", () => r.set("k", "v", "NX")],
        ["expire ttl soon", () => r.expire("k", "soon")],
        ["incrby 1.5", () => r.incrby("k", 1.5)],
        ["incrby '1'", () => r.incrby("k", "1")],
        ["hset {a: 1}", () => r.hset("h", { a: 1 })],
        ["hset field no value", () => r.hset("h", "f")],
        ["hmget fields 'f'", () => r.hmget("h", "f")],
        ["hincrby NaN", () => r.hincrby("h", "f", NaN)],
        ["lrange '0'", () => r.lrange("l", "0", 1)],
        ["lpush no values", () => r.lpush("l")],
        ["blpop [123]", () => r.blpop([123], "1 second")],
        ["blpop timeout -1", () => r.blpop(["q"], -1)],
        ["zadd score 'x'", () => r.zadd("z", { member: "m", score: "x" })],
        ["zadd member 1", () => r.zadd("z", { member: 1, score: 1 })],
        ["zadd null", () => r.zadd("z", null)],
        ["zrangebyscore limit", () => r.zrangebyscore("z", 0, 1, { limit: { offset: "0", count: 1 } })],
        ["zincrby NaN", () => r.zincrby("z", NaN, "m")],
        ["publish null", () => r.publish(null, "m")],
        ["del()", () => r.del()],
        ["exists(1)", () => r.exists(1)],
        ["command(123)", () => r.command(123, [])],
        ["command args {}", () => r.command("GET", {})],
        ["command options 1", () => r.command("GET", ["k"], 1)],
        ["multi(undefined)", () => r.multi(undefined)],
        ["watch(null)", () => r.watch(null, () => Effect.succeed([]))],
        ["watch body 1", () => r.watch(["k"], 1)],
        ["evalScript(null)", () => r.evalScript(null, [], [])],
        ["evalScript script(undefined)", () => r.evalScript(r.script(undefined), [], [])],
        ["scan(123)", () => Stream.runDrain(r.scan(123))],
        ["scan count 'x'", () => Stream.runDrain(r.scan("*", { count: "x" }))],
        ["subscribe(undefined)", () => Stream.runDrain(r.subscribe(undefined))],
        ["psubscribe()", () => Stream.runDrain(r.psubscribe())],
        ...badKeys.flatMap((k) =>
          (["get", "ttl", "incr", "hgetall", "smembers", "zcard", "llen"] as const).map(
            (op) => [`${op}(${String(typeof k)})`, () => r[op](k)] as const
          )
        )
      ]
      const sentBefore = yield* commandCalls(operator)
      for (let round = 0; round < 3; round++) {
        for (const [what, make] of calls) {
          let effect: Effect.Effect<unknown, unknown>
          try {
            effect = make()
          } catch (e) {
            return assert.fail(`${what} threw synchronously: ${String(e)}`)
          }
          const exit = yield* Effect.exit(effect.pipe(tenancy.withProject(id)))
          assert.isTrue(Exit.isFailure(exit), what)
          if (Exit.isSuccess(exit)) continue
          const error = Cause.findErrorOption(exit.cause)
          assert.isTrue(Option.isSome(error), `${what}: a typed error, not ${Cause.pretty(exit.cause)}`)
          const e = Option.getOrThrow(error)
          assert.instanceOf(e, RedisError, what)
          assert.strictEqual((e as RedisError).kind, "argument", `${what}: ${(e as RedisError).message}`)
          assert.isFalse((e as RedisError).sent, what)
          assert.isFalse((e as RedisError).isInfrastructure, what)
          assert.notInclude((e as RedisError).message, "[object", `${what}: names the argument, not its value`)
        }
      }
      // Only the commands this test itself sends (COMMANDSTATS, through INFO) reached the server.
      assert.strictEqual(yield* commandCalls(operator), sentBefore + 1, "nothing was sent")
      assert.strictEqual(yield* tenancy.breakerState(id, "redis"), "closed")
      const meta = (yield* tenancy.connections).find((c) => c.projectId === other)
      assert.strictEqual(meta?.targetBreaker, "closed", "every project's shared breaker stays closed")
      assert.strictEqual(yield* redis.get("k").pipe(tenancy.withProject(other)), "v")
    }).pipe(Effect.provide(Fx.layer()))
  )
})
