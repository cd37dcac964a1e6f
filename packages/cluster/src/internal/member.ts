/**
 * A fleet member's background work: sample this process's demand per target (`Coordination.targets`), run the
 * sync script every interval (heartbeat, report, share), apply the shares (`ConnectionShares` for pool sizes,
 * `Coordination.setCapacity` for operations in flight), and fall back to conservative shares when the coordinator
 * cannot be reached. Every fiber runs in the fleet layer's scope.
 *
 * @internal
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Latch from "effect/Latch"
import type { Redis } from "effect/persistence"
import * as Coordination from "@tenantpool/core/Coordination"
import type { Engine } from "@tenantpool/core/Engine"
import type { Tenancy } from "@tenantpool/core/Tenancy"
import type * as Breakers from "./breakers.ts"
import { parse, syncScript, type TargetSync } from "./script.ts"
import * as Shares from "./shares.ts"

/** Settings resolved from the layer's options. @internal */
export interface Settings {
  readonly id: string
  readonly prefix: string
  readonly intervalMillis: number
  readonly ttlMillis: number
  readonly hysteresis: number
  readonly operationsPerConnection: Readonly<Record<Engine, number>>
  /** The instance key's value (for operators: when it started, which process). */
  readonly description: string
}

/** The coordinator's keys. @internal */
export const keys = (prefix: string) => ({
  members: `${prefix}members`,
  instance: (id: string) => `${prefix}i:${id}`,
  target: (engine: Engine, targetId: string) => `${prefix}t:${engine}:${targetId}`,
  breaker: (engine: Engine, targetId: string) => `${prefix}b:${engine}:${targetId}`,
  channel: `${prefix}breakers`
})

/** Everything the loop works on. @internal */
export interface Member {
  readonly settings: Settings
  readonly clock: Clock.Clock
  readonly table: Shares.Table
  readonly tenancy: Tenancy["Service"]
  readonly redis: Redis.Redis["Service"]
  readonly breakers: Breakers.BreakerLink
  /** Successful syncs and failed ones (for status and tests). */
  syncs: number
  failures: number
  /** Clock time of the last successful sync (0: none yet). */
  lastSync: number
  /** A sync failed since the last success: the next success is a rejoin. */
  rejoining: boolean
  /** Clock time before which this member's shares may not grow (one heartbeat lifetime after a rejoin). */
  growAfter: number
}

/** One sample of this process's demand: the peak since the last sync, per coordinated target. @internal */
export const sample = (m: Member): Effect.Effect<void> =>
  Effect.map(Coordination.targets(m.tenancy), (targets) => {
    const seen = new Set<Shares.Entry>()
    for (const t of targets) {
      const entry = Shares.ensure(m.table, t.engine, t.targetId)
      if (entry === undefined) continue
      seen.add(entry)
      entry.live = true
      const demand = t.inFlight + t.queued
      if (demand > entry.peak) entry.peak = demand
    }
    for (const entry of m.table.entries.values()) if (!seen.has(entry)) entry.live = false
  })

// A target leaves the coordinator once no project uses it here and no engine tracks it (a tracked pool counts
// until it is closed, even when idle).
const leaving = (entry: Shares.Entry): boolean => !entry.live && entry.bound === undefined

/**
 * One run of the sync script for every coordinated target: returns whether a share shrank (the loop then checks
 * back soon, to report the engines' drained connections). On failure, every target falls back (see
 * `Shares.fallbackShare`) and the error is returned.
 *
 * @internal
 */
export const sync = (m: Member): Effect.Effect<boolean, Redis.RedisError> =>
  Effect.suspend(() => {
    const k = keys(m.settings.prefix)
    const entries = [...m.table.entries.values()]
    const sent: Array<TargetSync> = entries.map((e) => {
      const leave = leaving(e)
      // The demand of the interval: half the last value, half the peak of the samples since (reacts within two
      // intervals, smooths single spikes).
      e.demand = leave ? 0 : e.demand * 0.5 + e.peak * 0.5
      e.peak = 0
      return {
        hash: k.target(e.engine, e.targetId),
        breaker: k.breaker(e.engine, e.targetId),
        demand: leave ? -1 : e.demand,
        report: leave ? 0 : Shares.report(e),
        applied: leave ? 0 : e.share,
        budget: e.budget
      }
    })
    const clock = m.clock
    const started = clock.currentTimeMillisUnsafe()
    return m.redis
      .eval(syncScript)(
        k.members,
        k.instance(m.settings.id),
        m.settings.id,
        m.settings.ttlMillis,
        m.settings.hysteresis,
        m.settings.description,
        !m.rejoining && started >= m.growAfter,
        sent
      )
      .pipe(
        Effect.flatMap((reply) =>
          Effect.gen(function* () {
            const result = parse(reply, entries.length)
            const now = clock.currentTimeMillisUnsafe()
            // Back after an outage: the others' heartbeats expired too; give them a lifetime to report again.
            if (m.rejoining) {
              m.rejoining = false
              m.growAfter = now + m.settings.ttlMillis
            }
            m.table.connected = true
            m.table.live = result.live
            m.syncs++
            m.lastSync = now
            let changed = false
            let shrank = false
            for (let i = 0; i < entries.length; i++) {
              const e = entries[i]!
              const r = result.targets[i]!
              if (sent[i]!.demand < 0) {
                Shares.remove(m.table, e)
                continue
              }
              e.held = r.held
              e.fair = r.fair
              e.instances = r.instances
              const before = e.share
              if (Shares.setShare(e, r.share)) {
                changed = true
                if (r.share < before) shrank = true
              }
              if (r.breaker !== undefined && r.breakerMillis > 0) m.breakers.fromStore(r.breaker, now + r.breakerMillis)
            }
            if (changed) Shares.notify(m.table)
            yield* applyCapacities(m)
            return shrank
          })
        ),
        Effect.tapError(() => fallBack(m))
      )
  })

/** Applies the fallback share to every target (the coordinator could not be asked). @internal */
export const fallBack = (m: Member): Effect.Effect<void> =>
  Effect.suspend(() => {
    m.failures++
    m.rejoining = true
    m.table.connected = false
    let changed = false
    for (const e of m.table.entries.values()) {
      if (Shares.setShare(e, Shares.fallbackShare(m.table, e))) changed = true
    }
    if (changed) Shares.notify(m.table)
    return applyCapacities(m)
  })

// Operations in flight follow the share: `operationsPerConnection` per connection (a share of 0 admits one, which
// waits in the engine for its first connection).
const applyCapacities = (m: Member): Effect.Effect<void> =>
  Effect.forEach(
    m.table.entries.values(),
    (e) =>
      e.live
        ? Coordination.setCapacity(
            m.tenancy,
            e.engine,
            e.targetId,
            Math.max(1, e.share * m.settings.operationsPerConnection[e.engine])
          )
        : Effect.void,
    { discard: true }
  )

/**
 * The member's loops, for the life of the current scope: samples four times per interval, and syncs every
 * interval, sooner when poked (a target waiting for its first share) or after a shrink (to report the drained
 * connections).
 *
 * @internal
 */
export const run = (m: Member): Effect.Effect<void> =>
  Effect.gen(function* () {
    const wake = yield* Latch.make(false)
    m.table.poke = () => {
      wake.openUnsafe()
    }
    const interval = Duration.millis(m.settings.intervalMillis)
    const sampler = Effect.forever(Effect.andThen(sample(m), Effect.sleep(Duration.divideUnsafe(interval, 4))))
    const loop = Effect.gen(function* () {
      while (true) {
        yield* wake.close
        yield* sample(m)
        const shrank = yield* Effect.catch(sync(m), () => Effect.succeed(false))
        const pause = shrank ? Duration.millis(Math.min(100, m.settings.intervalMillis)) : interval
        yield* Effect.raceFirst(Effect.sleep(pause), wake.await)
      }
    })
    yield* Effect.all([sampler, loop], { concurrency: 2, discard: true })
  })
