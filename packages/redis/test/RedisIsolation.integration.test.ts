/**
 * Isolation between projects that share a Redis server, and the connection shape the engine promises: one shared
 * connection per target whatever the number of projects, dedicated connections only for blocking commands and
 * transactions, and a blocking command never holding up another project's plain commands. Connection counts are
 * read from the server (CLIENT LIST), on a private server so other test files' connections do not count.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import { MemoryRegistry } from "@tenantpool/core/Registry"
import * as Tenancy from "@tenantpool/core/Tenancy"
import * as Servers from "@tenantpool/testing/Servers"
import * as TestServers from "@tenantpool/testing/TestServers"
import { RedisEngine } from "../src/RedisEngine.ts"
import { RedisError } from "../src/RedisError.ts"
import * as Fx from "./fixtures/Redis.ts"

const withDb = (url: string, db: number) => `${url.replace(/\/\d*$/, "")}/${db}`

describe("RedisEngine isolation", () => {
  it.live("two projects on one server cannot see each other's keys", () =>
    Effect.gen(function* () {
      const url = TestServers.url("redis")
      const rawClient = yield* Fx.raw(url)
      const { a, b, redis, tenancy } = yield* Fx.twoProjects(url, ["iso-a", "FREE"], ["iso-b", "PRO"])

      yield* redis.set("profile", "A").pipe(tenancy.withProject(a))
      yield* redis.set("profile", "B").pipe(tenancy.withProject(b))
      yield* redis.sadd("members", "only-a").pipe(tenancy.withProject(a))
      assert.strictEqual(yield* redis.get("profile").pipe(tenancy.withProject(a)), "A")
      assert.strictEqual(yield* redis.get("profile").pipe(tenancy.withProject(b)), "B")
      assert.strictEqual(yield* redis.scard("members").pipe(tenancy.withProject(b)), 0)
      assert.strictEqual(yield* Fx.call(() => rawClient.get(`${a}:profile`)), "A")
      assert.strictEqual(yield* Fx.call(() => rawClient.get(`${b}:profile`)), "B")
      assert.isNull(yield* Fx.call(() => rawClient.get("profile")))

      assert.strictEqual(yield* redis.del("profile").pipe(tenancy.withProject(a)), 1)
      assert.strictEqual(yield* redis.get("profile").pipe(tenancy.withProject(b)), "B", "a's DEL left b's key")

      const seenByA = yield* redis.scan().pipe(Stream.runCollect, tenancy.withProject(a))
      assert.deepStrictEqual([...seenByA], ["members"])
      const seenByB = yield* redis.scan().pipe(Stream.runCollect, tenancy.withProject(b))
      assert.deepStrictEqual([...seenByB], ["profile"])
      const keys = yield* Fx.call(() => rawClient.keys(`${a}:*`))
      assert.deepStrictEqual(keys, [`${a}:members`], "the server holds the prefixed key")
    }).pipe(Effect.provide(Fx.layer()))
  )

  it.live("the raw command escape hatch prefixes key arguments by Redis's command table", () =>
    Effect.gen(function* () {
      const url = TestServers.url("redis")
      const { a, b, redis, tenancy } = yield* Fx.twoProjects(url, ["cmd-a", "PRO"], ["cmd-b", "PRO"])
      yield* redis.set("k", "mine").pipe(tenancy.withProject(a))
      yield* redis.set("k2", "also mine").pipe(tenancy.withProject(a))
      assert.strictEqual(yield* redis.command("GET", ["k"]).pipe(tenancy.withProject(a)), "mine")
      assert.deepStrictEqual(yield* redis.command("MGET", ["k", "k2"]).pipe(tenancy.withProject(a)), [
        "mine",
        "also mine"
      ])
      assert.strictEqual(yield* redis.command("GET", ["k"]).pipe(tenancy.withProject(b)), null)
      // Naming another project's key spells out its prefix, which gets this project's prefix in front.
      assert.strictEqual(yield* redis.command("GET", [`${a}:k`]).pipe(tenancy.withProject(b)), null)
      assert.strictEqual(yield* redis.command("GETRANGE", ["k", 0, 1]).pipe(tenancy.withProject(a)), "mi")
      const unknown = yield* Effect.flip(redis.command("NOSUCHCMD", ["k"]).pipe(tenancy.withProject(a)))
      assert.instanceOf(unknown, RedisError)
      assert.strictEqual((unknown as RedisError).kind, "forbidden")
    }).pipe(Effect.provide(Fx.layer()))
  )

  it.live("50 projects on one target share one connection named tenantpool; another db is another target", () =>
    Effect.gen(function* () {
      const server = yield* Servers.acquirePrivate("redis")
      const rawClient = yield* Fx.raw(server.url)
      const registry = yield* MemoryRegistry
      const redis = yield* RedisEngine
      const tenancy = yield* Tenancy.Tenancy
      const ids = Array.from({ length: 50 }, (_, i) => Fx.projectId(`many-${i}`))
      for (const id of ids) yield* registry.register({ id, tier: "FREE", redis: withDb(server.url, 0) })
      yield* Effect.forEach(
        ids,
        (id) =>
          Effect.gen(function* () {
            yield* redis.set("k", id)
            for (let i = 0; i < 5; i++) assert.strictEqual(yield* redis.get("k"), id)
          }).pipe(tenancy.withProject(id)),
        { concurrency: "unbounded" }
      )
      const list = yield* Fx.clientList(rawClient)
      assert.strictEqual(list.filter((c) => c.name === "tenantpool").length, 1, "one shared connection")
      assert.strictEqual(list.filter((c) => c.name === "tenantpool:dedicated").length, 0, "no dedicated ones")

      const other = Fx.projectId("other-db")
      yield* registry.register({ id: other, tier: "FREE", redis: withDb(server.url, 3) })
      yield* redis.set("k", "in db 3").pipe(tenancy.withProject(other))
      const after = (yield* Fx.clientList(rawClient)).filter((c) => c.name === "tenantpool")
      assert.deepStrictEqual(after.map((c) => c.db).sort(), ["0", "3"], "one shared connection per target")
      yield* Fx.call(() => rawClient.select(3))
      assert.strictEqual(yield* Fx.call(() => rawClient.get(`${other}:k`)), "in db 3")
    }).pipe(Effect.provide(Fx.layer()))
  )

  it.live("dedicated connections exist only while in use and for the idle timeout after", () =>
    Effect.gen(function* () {
      const server = yield* Servers.acquirePrivate("redis")
      const rawClient = yield* Fx.raw(server.url)
      const registry = yield* MemoryRegistry
      const redis = yield* RedisEngine
      const tenancy = yield* Tenancy.Tenancy
      const ids = [Fx.projectId("ded-a"), Fx.projectId("ded-b"), Fx.projectId("ded-c")]
      for (const id of ids) yield* registry.register({ id, tier: "FREE", redis: server.url })
      const dedicated = Fx.countNamed(rawClient, "tenantpool:dedicated")

      const waiting = yield* Effect.forEach(ids, (id) =>
        redis.blpop(["jobs"], "5 seconds").pipe(tenancy.withProject(id), Effect.forkChild)
      )
      yield* Fx.eventually(
        "three BLPOPs blocked on the server",
        Effect.map(Fx.clientList(rawClient), (l) => l.filter((c) => c.cmd === "blpop").length === 3)
      )
      assert.strictEqual(yield* dedicated, 3, "one dedicated connection per blocking command")
      assert.strictEqual(yield* Fx.countNamed(rawClient, "tenantpool"), 1)

      for (const id of ids) yield* Fx.call(() => rawClient.rpush(`${id}:jobs`, `job-for-${id}`))
      const results = yield* Effect.forEach(waiting, Fiber.join)
      assert.deepStrictEqual(
        results,
        ids.map((id) => Option.some(["jobs", `job-for-${id}`] as const)),
        "each project popped its own list"
      )
      yield* Fx.eventually(
        "idle dedicated connections closed",
        Effect.map(dedicated, (n) => n === 0)
      )
      assert.strictEqual(yield* Fx.countNamed(rawClient, "tenantpool"), 1, "the shared connection stays")
    }).pipe(Effect.provide(Fx.layer({ engine: { dedicatedIdleTimeout: "300 millis" } })))
  )

  it.live("a 2 s BLPOP does not delay other commands: 100 GETs finish in well under 100 ms meanwhile", () =>
    Effect.gen(function* () {
      const url = TestServers.url("redis")
      const registry = yield* MemoryRegistry
      const redis = yield* RedisEngine
      const tenancy = yield* Tenancy.Tenancy
      const rawClient = yield* Fx.raw(url)
      const blocker = Fx.projectId("blocker")
      const reader = Fx.projectId("reader")
      yield* registry.register({ id: blocker, tier: "FREE", redis: url })
      yield* registry.register({ id: reader, tier: "FREE", redis: url })
      yield* redis.set("k", "v").pipe(tenancy.withProject(reader))
      yield* redis.set("k", "v").pipe(tenancy.withProject(blocker))

      const hundredGets = Effect.gen(function* () {
        for (let i = 0; i < 50; i++) assert.strictEqual(yield* redis.get("k").pipe(tenancy.withProject(reader)), "v")
        for (let i = 0; i < 50; i++) assert.strictEqual(yield* redis.get("k").pipe(tenancy.withProject(blocker)), "v")
      })
      const [, baselineMs] = yield* Fx.timed(hundredGets)

      const blpop = yield* redis.blpop(["empty"], "2 seconds").pipe(tenancy.withProject(blocker), Effect.forkChild)
      yield* Fx.eventually(
        "the BLPOP is blocked on the server",
        Effect.map(Fx.clientList(rawClient), (l) => l.some((c) => c.cmd === "blpop"))
      )
      const [, duringMs] = yield* Fx.timed(hundredGets)
      // 100 ms normally; on a CPU-starved run, within a few times the same GETs without the BLPOP (one GET held
      // behind it would take the whole 1 s attempt timeout).
      assert.isTrue(
        duringMs < Math.max(100, 5 * baselineMs),
        `100 GETs took ${Math.round(duringMs)} ms during the BLPOP, ${Math.round(baselineMs)} ms before it`
      )
      assert.isUndefined(blpop.pollUnsafe(), "the BLPOP is still waiting")
      yield* Fx.call(() => rawClient.rpush(`${blocker}:empty`, "done"))
      assert.deepStrictEqual(yield* Fiber.join(blpop), Option.some(["empty", "done"] as const))
    }).pipe(Effect.provide(Fx.layer()))
  )

  it.live("command refuses blocking commands, which would stall the connection every project shares", () =>
    Effect.gen(function* () {
      const url = TestServers.url("redis")
      const registry = yield* MemoryRegistry
      const redis = yield* RedisEngine
      const tenancy = yield* Tenancy.Tenancy
      const id = Fx.projectId("raw-block")
      yield* registry.register({ id, tier: "FREE", redis: url })
      const attempts: ReadonlyArray<readonly [string, ReadonlyArray<string | number>, ReadonlyArray<number>]> = [
        ["BLPOP", ["q", 1], [0]],
        ["brpop", ["q", 1], [0]],
        ["BRPOPLPUSH", ["q", "r", 1], [0, 1]],
        ["BLMOVE", ["q", "r", "LEFT", "RIGHT", 1], [0, 1]],
        ["BLMPOP", [1, 1, "q", "LEFT"], [2]],
        ["BZPOPMIN", ["z", 1], [0]],
        ["BZPOPMAX", ["z", 1], [0]],
        ["BZMPOP", [1, 1, "z", "MIN"], [2]],
        ["XREAD", ["BLOCK", 1000, "STREAMS", "s", "$"], [3]],
        ["XREADGROUP", ["GROUP", "g", "c", "BLOCK", 1000, "STREAMS", "s", ">"], [6]]
      ]
      for (const [name, args, keys] of attempts) {
        const [error, ms] = yield* Fx.timed(
          Effect.flip(redis.command(name, args, { keys }).pipe(tenancy.withProject(id)))
        )
        assert.instanceOf(error, RedisError, name)
        assert.strictEqual((error as RedisError).kind, "forbidden", name)
        assert.isTrue(ms < 50, `${name} refused at once`)
      }
      assert.strictEqual(
        yield* redis.command("XREAD", ["COUNT", 1, "STREAMS", "s", "0"], { keys: [3] }).pipe(tenancy.withProject(id)),
        null,
        "XREAD without BLOCK is not blocking and stays allowed"
      )
      assert.strictEqual(
        yield* redis.command("XREAD", ["STREAMS", "block", "0"], { keys: [1] }).pipe(tenancy.withProject(id)),
        null,
        "a stream named block is not a BLOCK option"
      )
    }).pipe(Effect.provide(Fx.layer()))
  )

  it.live("command refuses what would read another project's data or change the shared connection's state", () =>
    Effect.gen(function* () {
      const url = TestServers.url("redis")
      const rawClient = yield* Fx.raw(url)
      const { a, b, redis, tenancy } = yield* Fx.twoProjects(url, ["reach-a", "FREE"], ["reach-b", "FREE"])
      yield* redis.set("secret", "b's secret").pipe(tenancy.withProject(b))
      yield* redis.rpush("ids", "secret").pipe(tenancy.withProject(a))
      const script = `return redis.call('GET', '${b}:secret')`
      const sha = (yield* Fx.call(() => rawClient.script("LOAD", script))) as string
      const attempts: ReadonlyArray<readonly [string, ReadonlyArray<string | number>, ReadonlyArray<number>]> = [
        // Reach past the prefix.
        ["EVAL_RO", [script, 0], []],
        ["EVALSHA_RO", [sha, 0], []],
        ["FCALL_RO", ["f", 0], []],
        ["PUBSUB", ["CHANNELS", "*"], []],
        ["SORT", ["ids", "BY", "nosort", "GET", `${b}:*`], [0]],
        ["SORT_RO", ["ids", "GET", `${b}:*`], [0]],
        ["SORT", ["ids", "BY", `${b}:*`], [0]],
        // Change the state of the connection every project on the target shares.
        ["SELECT", [3], []],
        ["CLIENT", ["SETNAME", "x"], []],
        ["HELLO", [2], []],
        ["AUTH", ["default", "x"], []],
        ["RESET", [], []],
        ["SUBSCRIBE", ["c"], []],
        ["MULTI", [], []]
      ]
      for (const [name, args, keys] of attempts) {
        const error = yield* Effect.flip(redis.command(name, args, { keys }).pipe(tenancy.withProject(a)))
        assert.instanceOf(error, RedisError, `${name} ${args.join(" ")}`)
        assert.strictEqual((error as RedisError).kind, "forbidden", `${name} ${args.join(" ")}`)
      }
      assert.deepStrictEqual(
        yield* redis.command("SORT", ["ids", "ALPHA"], { keys: [0] }).pipe(tenancy.withProject(a)),
        ["secret"],
        "SORT without BY/GET patterns reads only its own key"
      )
      assert.deepStrictEqual(
        yield* redis.command("sort", ["ids", "BY", "NOSORT"], { keys: [0] }).pipe(tenancy.withProject(a)),
        ["secret"]
      )
      assert.strictEqual(yield* redis.get("k").pipe(tenancy.withProject(a)), null, "the shared connection still works")
    }).pipe(Effect.provide(Fx.layer()))
  )

  it.live("projects with their own ACL users never run a command on the other's connection", () =>
    Effect.gen(function* () {
      const server = yield* Servers.acquirePrivate("redis")
      const rawClient = yield* Fx.raw(server.url)
      const registry = yield* MemoryRegistry
      const redis = yield* RedisEngine
      const tenancy = yield* Tenancy.Tenancy
      const a = Fx.projectId("acl-a")
      const b = Fx.projectId("acl-b")
      for (const id of [a, b]) {
        yield* Fx.call(() =>
          rawClient.call("ACL", "SETUSER", id, "on", `>pw-${id}`, `~${id}:*`, "+@all", "-@dangerous", "+info")
        )
        const port = new URL(server.url).port
        yield* registry.register({ id, tier: "PRO", redis: `redis://${id}:pw-${id}@127.0.0.1:${port}/0` })
      }
      const ops = Array.from({ length: 2_000 }, (_, i) => ({ id: i % 2 === 0 ? a : b, n: i }))
      const outcomes = yield* Effect.forEach(
        ops,
        ({ id, n }) =>
          Effect.gen(function* () {
            yield* redis.set(`k${n % 20}`, id)
            yield* redis.incr("count")
            return yield* redis.get(`k${n % 20}`)
          }).pipe(tenancy.withProject(id), Effect.result),
        { concurrency: 100 }
      )
      const failures = outcomes.filter((o) => o._tag === "Failure")
      assert.strictEqual(failures.length, 0, `no NOPERM or other failure: ${JSON.stringify(failures.slice(0, 3))}`)
      assert.isTrue(
        outcomes.every((o, i) => o._tag === "Success" && o.success === ops[i]!.id),
        "every read saw its own project's value"
      )
      assert.strictEqual(yield* Fx.call(() => rawClient.get(`${a}:count`)), "1000")
      assert.strictEqual(yield* Fx.call(() => rawClient.get(`${b}:count`)), "1000")
      const shared = (yield* Fx.clientList(rawClient)).filter((c) => c.name === "tenantpool")
      assert.deepStrictEqual(shared.map((c) => c.fields["user"]).sort(), [a, b].sort(), "one connection per user")
    }).pipe(Effect.provide(Fx.layer()))
  )

  it.live("a WATCH transaction that failed leaves no watch state for the next borrower", () =>
    Effect.gen(function* () {
      const server = yield* Servers.acquirePrivate("redis")
      const rawClient = yield* Fx.raw(server.url)
      const registry = yield* MemoryRegistry
      const redis = yield* RedisEngine
      const tenancy = yield* Tenancy.Tenancy
      const id = Fx.projectId("watch-state")
      yield* registry.register({ id, tier: "FREE", redis: server.url })
      yield* Effect.gen(function* () {
        yield* redis.set("w", "1")
        // The body fails after WATCH: the connection must not go back to the pool still watching `w`.
        const failed = yield* Effect.flip(
          redis.watch(["w"], () =>
            Effect.fail(new RedisError({ kind: "other", command: "body", detail: "x", sent: false }))
          )
        )
        assert.strictEqual((failed as RedisError).command, "body")
        yield* Fx.call(() => rawClient.set(`${id}:w`, "changed elsewhere"))
        const ok = yield* redis.watch(["other"], () => Effect.succeed([{ command: "SET", args: ["w", "mine"] }]))
        assert.deepStrictEqual(ok, ["OK"], "not a spurious conflict from the earlier WATCH")
        assert.strictEqual(yield* redis.get("w"), "mine")
      }).pipe(tenancy.withProject(id))
      yield* Fx.eventually(
        "the failed transaction's connection was closed",
        Effect.map(Fx.countNamed(rawClient, "tenantpool:dedicated"), (n) => n <= 1)
      )
    }).pipe(Effect.provide(Fx.layer()))
  )

  it.live("closeIdleConnections closes a target's connections once no project uses it; the next call reconnects", () =>
    Effect.gen(function* () {
      const server = yield* Servers.acquirePrivate("redis")
      const rawClient = yield* Fx.raw(server.url)
      const registry = yield* MemoryRegistry
      const redis = yield* RedisEngine
      const tenancy = yield* Tenancy.Tenancy
      const ids = [Fx.projectId("idle-a"), Fx.projectId("idle-b")]
      for (const id of ids) {
        yield* registry.register({ id, tier: "FREE", redis: server.url })
        yield* redis.set("k", id).pipe(tenancy.withProject(id))
        yield* redis.blpop(["q"], "10 millis").pipe(tenancy.withProject(id))
      }
      const ours = Effect.map(Fx.clientList(rawClient), (l) => l.filter((c) => c.name.startsWith("tenantpool")).length)
      assert.strictEqual(yield* ours, 3, "one shared and one idle dedicated connection per project")
      assert.strictEqual(yield* tenancy.closeIdleConnections({ idleFor: 0 }), 2)
      yield* Fx.eventually(
        "every connection closed",
        Effect.map(ours, (n) => n === 0)
      )
      assert.strictEqual(yield* redis.get("k").pipe(tenancy.withProject(ids[0]!)), ids[0])
      assert.strictEqual(yield* Fx.countNamed(rawClient, "tenantpool"), 1)
    }).pipe(Effect.provide(Fx.layer()))
  )

  it.live("releasing the layer closes the shared and dedicated connections it opened", () =>
    Effect.gen(function* () {
      const server = yield* Servers.acquirePrivate("redis")
      const rawClient = yield* Fx.raw(server.url)
      yield* Effect.gen(function* () {
        const registry = yield* MemoryRegistry
        const redis = yield* RedisEngine
        const tenancy = yield* Tenancy.Tenancy
        const id = Fx.projectId("shutdown")
        yield* registry.register({ id, tier: "FREE", redis: server.url })
        yield* redis.set("k", "v").pipe(tenancy.withProject(id))
        yield* redis.blpop(["q"], "10 millis").pipe(tenancy.withProject(id))
        const open = yield* Fx.clientList(rawClient)
        assert.strictEqual(open.filter((c) => c.name.startsWith("tenantpool")).length, 2)
      }).pipe(Effect.provide(Fx.layer()))
      yield* Fx.eventually(
        "no connection left after the layer is released",
        Effect.map(Fx.clientList(rawClient), (l) => !l.some((c) => c.name.startsWith("tenantpool")))
      )
    })
  )
})
