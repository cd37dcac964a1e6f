/**
 * Scripts and functions can name any key, so they run only for projects on their own ACL user or trusted by the
 * operator; and a script abandoned at its attempt timeout does not keep the server busy for everyone: the engine
 * kills it (SCRIPT KILL, FUNCTION KILL) from a connection of its own, tested with busy-looping Lua on a private
 * server. The server takes a kill only once a script has run past `busy-reply-threshold` (5 s by default; set lower
 * here, as an operator would).
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import { Timeout, UnknownOutcome } from "@tenantpool/core/Errors"
import { RedisError } from "../src/RedisError.ts"
import * as Fx from "./fixtures/Redis.ts"

const urlAs = (url: string, user: string, password: string) => {
  const u = new URL(url)
  return `redis://${user}:${password}@${u.hostname}:${u.port}/0`
}

/** An ACL user confined to `id`'s keys and channels, as an operator would make one per project. */
const aclUser = (client: import("ioredis").Redis, user: string, id: string) =>
  Fx.call(() =>
    client.call("ACL", "SETUSER", user, "on", `>pw-${user}`, `~${id}:*`, `&${id}:*`, "+@all", "-@dangerous")
  )

const busyLoop = "local i = 0 while true do i = i + 1 end"

describe("RedisEngine scripts", () => {
  it.live("run for a project on its own ACL user or trusted by the operator, never on a shared user", () =>
    Effect.gen(function* () {
      const { server, operator, registry, redis, tenancy, ids } = yield* Fx.onPrivateServer([
        ["trusted", "PRO"],
        ["shared", "PRO"]
      ])
      const [trusted, shared] = ids as [string, string]
      const own = Fx.projectId("own")
      yield* aclUser(operator, own, own)
      yield* registry.register({ id: own, tier: "PRO", redis: urlAs(server.url, own, `pw-${own}`) })
      const script = redis.script("redis.call('SET', KEYS[1], ARGV[1]) return redis.call('GET', KEYS[1])")
      for (const id of [own, trusted]) {
        assert.strictEqual(yield* redis.evalScript(script, ["k"], [id]).pipe(tenancy.withProject(id)), id)
        assert.strictEqual(
          yield* redis.command("EVAL_RO", ["return redis.call('GET', KEYS[1])", 1, "k"]).pipe(tenancy.withProject(id)),
          id
        )
        assert.deepStrictEqual(
          yield* redis
            .multi([{ command: "EVALSHA", args: [script.sha1, 1, "k", "again"] }])
            .pipe(tenancy.withProject(id)),
          ["again"]
        )
        assert.strictEqual(yield* Fx.call(() => operator.get(`${id}:k`)), "again", "its keys are still prefixed")
      }
      const refused = yield* Effect.flip(redis.evalScript(script, ["k"], ["x"]).pipe(tenancy.withProject(shared)))
      assert.instanceOf(refused, RedisError)
      assert.strictEqual((refused as RedisError).kind, "forbidden")
      assert.isNull(yield* Fx.call(() => operator.get(`${shared}:k`)))
      // The own user's ACL is what confines its scripts: a script naming another key is refused by the server.
      const outside = yield* Effect.flip(
        redis.command("EVAL", [`return redis.call('GET', '${shared}:k')`, 0]).pipe(tenancy.withProject(own))
      )
      assert.strictEqual((outside as RedisError).kind, "script")
      assert.match(
        (outside as RedisError).detail,
        /can.t access|NOPERM|permission/i,
        "the server's ACL refused the key"
      )
    }).pipe(Effect.provide(Fx.layer({ engine: { scripts: { trusted: (id) => id.startsWith("trusted-") } } })))
  )

  it.live("a user that two projects share is no project's own: both lose scripts while both are bound", () =>
    Effect.gen(function* () {
      const { server, operator, registry, redis, tenancy } = yield* Fx.onPrivateServer([])
      const a = Fx.projectId("team-a")
      const b = Fx.projectId("team-b")
      yield* Fx.call(() => operator.call("ACL", "SETUSER", "team", "on", ">pw-team", "~*", "&*", "+@all"))
      for (const id of [a, b])
        yield* registry.register({ id, tier: "PRO", redis: urlAs(server.url, "team", "pw-team") })
      const ping = redis.command("EVAL", ["return 'pong'", 0])
      assert.strictEqual(yield* ping.pipe(tenancy.withProject(a)), "pong", "alone on the user")
      yield* redis.get("k").pipe(tenancy.withProject(b))
      for (const id of [a, b]) {
        const error = yield* Effect.flip(ping.pipe(tenancy.withProject(id)))
        assert.strictEqual((error as RedisError).kind, "forbidden", id)
      }
    }).pipe(Effect.provide(Fx.layer({ engine: { scripts: { ownUser: (_id, user) => user === "team" } } })))
  )

  it.live("a busy script abandoned at its attempt timeout is killed, and the server answers everyone again", () =>
    Effect.gen(function* () {
      const { operator, redis, tenancy, ids } = yield* Fx.onPrivateServer([
        ["trusted-busy", "PRO"],
        ["other", "PRO"]
      ])
      const [id, other] = ids as [string, string]
      yield* Fx.call(() => operator.config("SET", "busy-reply-threshold", "300"))
      yield* redis.set("k", "v").pipe(tenancy.withProject(other))
      yield* Fx.call(() =>
        operator.call(
          "FUNCTION",
          "LOAD",
          `#!lua name=spin\nredis.register_function{function_name='spin', callback=function() ${busyLoop} end, flags={'no-writes'}}`
        )
      )
      const busy = [
        ["evalScript", redis.evalScript(redis.script(busyLoop), [], [], { readOnly: true })],
        ["EVAL", redis.command("EVAL", [busyLoop, 0])],
        ["FCALL_RO", redis.command("FCALL_RO", ["spin", 0])]
      ] as const
      for (const [what, call] of busy) {
        const fiber = yield* call.pipe(tenancy.withProject(id), Effect.forkChild)
        yield* Fx.eventually(
          `${what}: the script is running and counted against the project's concurrency`,
          Effect.map(tenancy.connections, (cs) => cs.some((c) => c.projectId === id && c.active === 1))
        )
        const [failure, ms] = yield* Fx.timed(Effect.flip(Fiber.join(fiber)))
        assert.isTrue(failure instanceof Timeout || failure instanceof UnknownOutcome, `${what}: ${String(failure)}`)
        assert.isBelow(ms, 2_000, `${what}: bounded by the attempt timeout`)
        // Killed: the server answers again at once (a BUSY reply until then), not after the script ends (never).
        yield* Fx.eventually(
          `${what}: the server answers again`,
          Effect.promise(() =>
            operator.ping().then(
              (r) => r === "PONG",
              () => false
            )
          ),
          "1500 millis"
        )
        assert.strictEqual(yield* redis.get("k").pipe(tenancy.withProject(other)), "v", what)
      }
    }).pipe(Effect.provide(Fx.layer({ engine: { scripts: { trusted: (id) => id.startsWith("trusted-") } } })))
  )
})
