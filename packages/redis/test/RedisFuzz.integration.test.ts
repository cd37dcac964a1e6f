/**
 * Every command of the live server's command table (subcommands included), with random arguments, through
 * `command` and through `multi`, as one project of two on the same server and user. Each call is either refused
 * with a typed error before anything is sent, or confined to the project's prefix: after each command's calls the
 * operator's raw client finds no key outside the prefix created, changed or deleted in any database, and the same
 * configuration, client connections, functions and ACL users; no message reached a channel outside the prefix.
 *
 * Seeded and reproducible: `TENANTPOOL_FUZZ_SEED=<n>` replays a run (the seed is in every failure message), and
 * `TENANTPOOL_FUZZ_CALLS=<n>` sets the calls per command and path (default 24).
 */
import { assert, describe, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import { RedisError } from "../src/RedisError.ts"
import * as Op from "./fixtures/Operator.ts"
import * as Fx from "./fixtures/Redis.ts"

const seed = Number(process.env["TENANTPOOL_FUZZ_SEED"] ?? 12)
const callsPerCommand = Number(process.env["TENANTPOOL_FUZZ_CALLS"] ?? 24)

// mulberry32: a small seeded generator, so a failing run can be replayed exactly.
const generator = (s: number) => () => {
  s = (s + 0x6d2b79f5) | 0
  let t = Math.imul(s ^ (s >>> 15), 1 | s)
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}

/** Random arguments for one command: its keywords, the victim's key names, small numbers, patterns. */
const argumentsFor = (
  random: () => number,
  c: Op.LiveCommand,
  tokens: ReadonlyArray<string>,
  victim: string
): Array<string | number> => {
  const pick = <A>(xs: ReadonlyArray<A>): A => xs[Math.floor(random() * xs.length)]!
  const pool: ReadonlyArray<string | number> = [
    `${victim}:secret`,
    `${victim}:queue`,
    `${victim}:*`,
    "secret",
    "operator:config",
    "k",
    "list",
    "*",
    "#",
    "$",
    ">",
    "0-0",
    "nosort",
    "(1",
    "+inf",
    0,
    1,
    2,
    -1,
    3
  ]
  // Arity counts the command's name (and a subcommand's, which goes first in the arguments here).
  const fixed = Math.abs(c.arity) - 1 - (c.subcommand === undefined ? 0 : 1)
  const length = Math.max(0, fixed) + (c.arity < 0 ? Math.floor(random() * 5) : random() < 0.2 ? 1 : 0)
  const args: Array<string | number> = Array.from({ length }, () =>
    tokens.length > 0 && random() < 0.35 ? pick(tokens) : pick(pool)
  )
  return c.subcommand === undefined ? args : [c.subcommand.toLowerCase(), ...args]
}

type Outcome = "refused" | "sent" | "server-error"

/**
 * An outcome the engine may give: a value, or a `RedisError` (refused before sending: `forbidden`, `argument`; or
 * the server's reply, or a key count the engine found not to fit).
 */
const outcomeOf = (exit: Exit.Exit<unknown, unknown>, what: string): Outcome => {
  if (Exit.isSuccess(exit)) return "sent"
  const error = Cause.findErrorOption(exit.cause)
  assert.isTrue(Option.isSome(error), `${what}: no defect or interruption, got ${Cause.pretty(exit.cause)}`)
  const e = Option.getOrUndefined(error)
  assert.instanceOf(e, RedisError, `${what}: a typed RedisError, got ${String((e as { _tag?: unknown })?._tag)}`)
  const kind = (e as RedisError).kind
  return kind === "forbidden" || kind === "argument" ? "refused" : "server-error"
}

describe("RedisEngine fuzzed with the server's whole command table", () => {
  it.live(
    "every command, random arguments, through command and multi: refused before sending or confined to the prefix",
    () =>
      Effect.gen(function* () {
        const { server, operator, redis, tenancy, ids } = yield* Fx.onPrivateServer([
          ["victim", "ENTERPRISE"],
          ["fuzz", "ENTERPRISE"]
        ])
        const [victim, attacker] = ids as [string, string]
        const asAttacker = tenancy.withProject(attacker)
        yield* redis.set("secret", "victim's secret").pipe(tenancy.withProject(victim))
        yield* redis.rpush("queue", "job").pipe(tenancy.withProject(victim))
        yield* Fx.call(() => operator.set("operator:config", "kept"))
        yield* Fx.call(() =>
          operator
            .select(2)
            .then(() => operator.set("db2:key", "v"))
            .then(() => operator.select(0))
        )
        const leaked = yield* Op.listenOutside(server.url, `${attacker}:`)

        const commands = yield* Op.liveCommands(operator)
        const tokens = yield* Op.liveTokens(operator)
        const random = generator(seed)
        const counts: Record<Outcome, number> = { refused: 0, sent: 0, "server-error": 0 }
        let before = yield* Op.snapshot(operator, `${attacker}:`)
        const started = performance.now()
        for (const c of commands) {
          for (let i = 0; i < callsPerCommand; i++) {
            const args = argumentsFor(random, c, tokens.get(c.command) ?? [], victim)
            // Sometimes the caller names key positions of its own (they may only add to the table's).
            const keys = args.length > 0 && random() < 0.25 ? [Math.floor(random() * args.length)] : undefined
            const what = `seed ${seed}: ${c.command} ${args.join(" ")}`
            const direct = yield* Effect.exit(
              redis.command(c.command, args, keys === undefined ? undefined : { keys }).pipe(asAttacker)
            )
            counts[outcomeOf(direct, what)]++
            const queued = yield* Effect.exit(
              redis
                .multi([
                  { command: "INCR", args: ["n"] },
                  { command: c.command, args, keys }
                ])
                .pipe(asAttacker)
            )
            counts[outcomeOf(queued, `MULTI ${what}`)]++
          }
          const after = yield* Op.snapshot(operator, `${attacker}:`)
          assert.deepStrictEqual(Op.changes(before, after), [], `seed ${seed}: after ${c.name}`)
          before = after
        }
        const elapsed = performance.now() - started
        yield* Effect.sleep("50 millis")
        assert.deepStrictEqual(leaked, [], `seed ${seed}: messages outside the prefix`)
        assert.strictEqual(yield* redis.get("secret").pipe(tenancy.withProject(victim)), "victim's secret")
        const shared = (yield* Fx.clientList(operator)).find((c) => c.name === "tenantpool")
        assert.deepStrictEqual(
          [shared?.db, shared?.fields["multi"], shared?.fields["sub"], shared?.fields["psub"], shared?.fields["flags"]],
          ["0", "-1", "0", "0", "N"]
        )
        const total = counts.refused + counts.sent + counts["server-error"]
        assert.strictEqual(total, commands.length * callsPerCommand * 2)
        assert.isAbove(counts.sent + counts["server-error"], total / 10, "a good share of the calls reached the server")
        console.log(
          `fuzz (seed ${seed}): ${commands.length} commands x ${callsPerCommand} x 2 paths = ${total} calls in ` +
            `${Math.round(elapsed)} ms: ${counts.refused} refused before sending, ${counts.sent} ran, ` +
            `${counts["server-error"]} answered with the server's error`
        )
      }).pipe(Effect.provide(Fx.layer())),
    60_000
  )
})
