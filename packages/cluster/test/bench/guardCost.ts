/**
 * What fleet mode costs per call: the guard's time per call with fleet mode off and on, measured in the same run,
 * and the Redis commands the calls caused (the hot path must not talk to Redis per call).
 *
 *   npx node packages/cluster/test/bench/guardCost.ts [calls per round, default 200000]
 *
 * Both setups are the tenancy service, a fake engine whose call does nothing (an already resolved promise: only the
 * library's own work is measured) and the API protections with their rate limits, on one PRO project of one
 * PostgreSQL target:
 * - **off**: in-process rate limits (`ApiProtections.layerWith()`), no fleet;
 * - **on**: `Fleet.layer` on a private Redis (budget 40 for the target, so it is coordinated: demand sampled, capacity
 *   capped, shares applied) with its fleet-wide rate limits (`RateLimit.layerFleet`, tokens leased 50 ms of the rate
 *   at a time), and `ApiProtections.layer`.
 *
 * The PRO rate is raised to 1,000,000/s so that every call is admitted (a refused call is cheaper and would flatter
 * the figures); the Redis commands per call then come from the 50 ms leases of that rate (50,000 calls each) and
 * from the 1-second syncs. Rounds alternate off/on/on with 50-call leases, seven each after a warm-up; the medians are printed.
 *
 * `measure` is also used by `HotPath.integration.test.ts`, which asserts the Redis commands per call.
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import type * as Duration from "effect/Duration"
import type * as Scope from "effect/Scope"
import type { EngineAdapter } from "@tenantpool/core/Engine"
import { MemoryRegistry } from "@tenantpool/core/Registry"
import * as Tenancy from "@tenantpool/core/Tenancy"
import * as ApiProtections from "@tenantpool/protections/ApiProtections"
import { RateLimit } from "@tenantpool/protections/RateLimit"
import { Redis as IORedis } from "ioredis"
import * as Fleet from "../../src/Fleet.ts"

const targetUrl = "postgres://app@db.bench.invalid:5432/app"
const rates = { tiers: { PRO: { perSecond: 1_000_000, burst: 1_000_000 } } }

const adapter: EngineAdapter<{ readonly id: string }, never> = {
  engine: "postgres",
  bind: (project) => Effect.succeed({ id: project.id }),
  classify: () => ({ infrastructure: true, errorType: "down", sent: false }),
  ping: () => Effect.void,
  targetCapacity: () => 10_000
}

/** One setup's loop: `n` guarded calls, one after the other. */
const setup = (fleet: Layer.Layer<never, unknown, Tenancy.Tenancy> | undefined) =>
  Effect.gen(function* () {
    const base = Tenancy.layerMemory({ healthCheckInterval: 0, shutdownTimeout: 0 })
    const protections =
      fleet === undefined
        ? ApiProtections.layerWith({ rateLimit: rates, sql: false, redis: false, mongo: false })
        : ApiProtections.layerWith({ rateLimit: false, sql: false, redis: false, mongo: false }).pipe(
            Layer.provideMerge(fleet)
          )
    const context = yield* Layer.build(protections.pipe(Layer.provideMerge(base)))
    const tenancy = Context.get(context, Tenancy.Tenancy)
    yield* Context.get(context, MemoryRegistry).register({ id: "acme", tier: "PRO", postgres: targetUrl })
    const handle = yield* tenancy.register(adapter)
    const resolved = Promise.resolve(1)
    const op = { name: "select", idempotent: true } as const
    // With a detail, as the engines call it: the installed protections (the rate limit) check the call first.
    const call = handle.run(
      op,
      () => resolved,
      (e) => e as never,
      undefined,
      { statement: "select 1" }
    )
    const loop = (n: number) =>
      Effect.gen(function* () {
        for (let i = 0; i < n; i++) yield* call
      }).pipe(tenancy.withProject("acme"), Effect.provideContext(context))
    return { loop, context }
  })

/** Figures of one run. */
export interface Figures {
  readonly calls: number
  readonly rounds: number
  /** Median µs per call over the measured rounds. */
  readonly offMicros: number
  readonly onMicros: number
  /** Fleet mode with leases of 50 calls (PRO's default rate), and its Redis round trips per call. */
  readonly smallLeaseMicros: number
  readonly smallLeaseCommandsPerCall: number
  /** Redis round trips during the fleet-mode rounds, per call (leases, syncs with their heartbeats). */
  readonly redisCommandsPerCall: number
  readonly redisCommands: number
  /** Rounds that failed (a refused call; should be 0). */
  readonly refused: number
  /** The rate limits' modes (off, on) and the targets the fleet coordinated with this member's share of each. */
  readonly modes: readonly [string, string]
  readonly coordinated: ReadonlyArray<string>
}

/**
 * Round trips Redis served so far: its EVAL/EVALSHA (the rate limiter's token bucket and the sync script), PUBLISH
 * (breaker reports) and connection commands. Commands run inside a script count in Redis's statistics as well, so
 * the total would overstate the round trips; the fleet sends nothing else while the calls run.
 */
const roundTrips = (client: IORedis) =>
  Effect.promise(async () => {
    const info = await client.info("commandstats")
    const topLevel = ["eval", "evalsha", "publish", "script|load", "ping", "hello", "client|setname", "subscribe"]
    let n = 0
    for (const [, name, calls] of info.matchAll(/^cmdstat_([a-z|]+):calls=(\d+)/gm)) {
      if (topLevel.includes(name!)) n += Number(calls)
    }
    return n
  })

/** Measures both setups in alternating rounds against the Redis at `redisUrl` (keys under a private prefix). */
export const measure = (
  redisUrl: string,
  options?: { readonly calls?: number; readonly rounds?: number; readonly log?: (line: string) => void }
): Effect.Effect<Figures, unknown, Scope.Scope> =>
  Effect.gen(function* () {
    const calls = options?.calls ?? 200_000
    const rounds = options?.rounds ?? 7
    const log = options?.log ?? (() => {})
    const client = yield* Effect.acquireRelease(
      Effect.sync(() => new IORedis(redisUrl)),
      (c) => Effect.sync(() => c.disconnect())
    )
    const fleet = (lease: Duration.Input, prefix: string) =>
      Fleet.layer({
        redis: Redacted.make(redisUrl),
        prefix: `bench:{${Date.now()}}:${prefix}:`,
        budgets: { postgres: 40 },
        rateLimits: { ...rates, lease }
      }) as Layer.Layer<never, unknown, Tenancy.Tenancy>
    const { loop: off } = yield* setup(undefined)
    const { loop: on, context: onContext } = yield* setup(fleet("50 millis", "a"))
    // Leases of 50 calls: what PRO's default rate (1,000/s) leases at once; a renewal waits for its round trip.
    const { loop: onSmall } = yield* setup(fleet("50 micros", "b"))
    const time = (loop: (n: number) => Effect.Effect<void, unknown>) =>
      Effect.gen(function* () {
        const t0 = process.hrtime.bigint()
        yield* loop(calls)
        return Number(process.hrtime.bigint() - t0) / calls / 1000
      })
    let refused = 0
    const counted = (loop: (n: number) => Effect.Effect<void, unknown>) =>
      Effect.catch(time(loop), () => Effect.sync(() => (refused++, Number.NaN)))
    // Warm-up: both paths compiled, leases and shares in place.
    yield* counted(off)
    yield* counted(on)
    yield* counted(onSmall)
    const offs: Array<number> = []
    const ons: Array<number> = []
    const smalls: Array<number> = []
    let redisCommands = 0
    let smallCommands = 0
    for (let r = 0; r < rounds; r++) {
      offs.push(yield* counted(off))
      const before = yield* roundTrips(client)
      ons.push(yield* counted(on))
      const between = yield* roundTrips(client)
      redisCommands += between - before
      smalls.push(yield* counted(onSmall))
      smallCommands += (yield* roundTrips(client)) - between
      log(
        `round ${r + 1}: off ${offs[r]!.toFixed(3)} µs/call, on ${ons[r]!.toFixed(3)}, on with 50-call leases ${smalls[r]!.toFixed(3)}`
      )
    }
    const median = (xs: Array<number>) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
    const status = yield* Context.get(onContext as unknown as Context.Context<Fleet.Fleet>, Fleet.Fleet).status
    return {
      rounds,
      // Off: `layerWith`'s in-process limits (internal to the layer, so not read back here).
      modes: ["memory", Context.get(onContext as unknown as Context.Context<RateLimit>, RateLimit).mode],
      coordinated: status.targets.map((t) => `${t.engine}:${t.targetId} share ${t.share} of ${t.budget}`),
      calls,
      offMicros: median(offs),
      onMicros: median(ons),
      smallLeaseMicros: median(smalls),
      smallLeaseCommandsPerCall: smallCommands / (calls * rounds),
      redisCommands,
      redisCommandsPerCall: redisCommands / (calls * rounds),
      refused
    }
  })

const main = async () => {
  const Servers = await import("@tenantpool/testing/Servers")
  const calls = Number(process.argv[2] ?? 200_000)
  const figures = await Effect.runPromise(
    Effect.scoped(
      Effect.gen(function* () {
        const redis = yield* Servers.acquirePrivate("redis")
        return yield* measure(redis.url, { calls, log: console.log })
      })
    )
  )
  const overhead = figures.onMicros - figures.offMicros
  console.log(
    [
      `guard call, fleet mode off: ${figures.offMicros.toFixed(3)} µs (median of ${figures.rounds} rounds of ${calls})`,
      `guard call, fleet mode on:  ${figures.onMicros.toFixed(3)} µs (${overhead >= 0 ? "+" : ""}${overhead.toFixed(3)} µs)`,
      `guard call, fleet mode on, 50-call leases: ${figures.smallLeaseMicros.toFixed(3)} µs (${figures.smallLeaseCommandsPerCall.toExponential(2)} Redis round trips per call)`,
      `Redis round trips during the fleet rounds: ${figures.redisCommands} (${figures.redisCommandsPerCall.toExponential(1)} per call)`,
      `refused rounds: ${figures.refused}; rate limits ${figures.modes.join(" / ")}; coordinated: ${figures.coordinated.join(", ")}`
    ].join("\n")
  )
}

if (import.meta.url === `file://${process.argv[1]}`) void main()
