/**
 * Target breakers shared across the fleet. A transition of this process's target breaker to open or closed is
 * published on the fleet's channel and, for an open one, stored under the target's breaker key until its open time
 * ends; other members apply it through `Coordination.applyBreaker` as the message arrives (milliseconds), and a
 * member that missed it (subscriber reconnecting, started later, target not live yet) finds the key in its next
 * sync. Core does the rest: a breaker opened on a report stays open until the reporter's time, the reporter probes
 * (one process, not all) and reports the close; a member whose close never comes probes itself a probe interval
 * after the open time.
 *
 * Open times travel as durations, not clock readings, so machines whose clocks disagree still agree on when a
 * breaker closes (within the message's transit).
 *
 * Only target breakers are shared: a project's breaker is fed by that project's own calls in this process, and
 * sharing 100,000 of them would cost the coordinator a message per project transition for state that is mostly
 * local (see the README).
 *
 * @internal
 */
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type { Redis as IORedis } from "ioredis"
import * as Coordination from "@tenantpool/core/Coordination"
import { type Engine, engines } from "@tenantpool/core/Engine"
import type { Tenancy } from "@tenantpool/core/Tenancy"

/** What members exchange. @internal */
interface Report {
  readonly from: string
  readonly engine: Engine
  readonly targetId: string
  readonly state: "open" | "closed"
  /** How long it stays open from when it was sent (open only). */
  readonly forMillis: number
}

/** The link between this process's breakers and the fleet's. @internal */
export interface BreakerLink {
  /** Applies a report found in the store (open until `untilMillis`, this process's clock). */
  readonly fromStore: (json: string, untilMillis: number) => void
  /** Reports published and applied so far. */
  readonly counts: { published: number; applied: number }
}

const parse = (json: string): Report | undefined => {
  try {
    const r = JSON.parse(json) as Partial<Report>
    if (typeof r.from !== "string" || typeof r.targetId !== "string") return undefined
    if (!engines.includes(r.engine as Engine) || (r.state !== "open" && r.state !== "closed")) return undefined
    return {
      from: r.from,
      engine: r.engine as Engine,
      targetId: r.targetId,
      state: r.state,
      forMillis: Number(r.forMillis) || 0
    }
  } catch {
    return undefined
  }
}

/**
 * Links this process's target breakers to the fleet's for the life of the scope (`enabled` false: store reads
 * are ignored and nothing is published).
 *
 * @internal
 */
export const link = (options: {
  readonly id: string
  readonly tenancy: Tenancy["Service"]
  readonly client: IORedis
  readonly subscriber: IORedis
  readonly channel: string
  readonly breakerKey: (engine: Engine, targetId: string) => string
  readonly enabled: boolean
}): Effect.Effect<BreakerLink, never, Scope.Scope> =>
  Effect.gen(function* () {
    const clock = yield* Clock.Clock
    const { id, tenancy, client, subscriber, channel } = options
    const counts = { published: 0, applied: 0 }
    const apply = (report: Report, untilMillis: number) => {
      if (report.from === id) return
      const change: Coordination.BreakerChange = {
        engine: report.engine,
        targetId: report.targetId,
        label: "",
        state: report.state,
        untilMillis: report.state === "open" ? untilMillis : undefined
      }
      if (Effect.runSync(Coordination.applyBreaker(tenancy, change))) counts.applied++
    }
    if (!options.enabled) return { fromStore: () => {}, counts }

    yield* Coordination.onBreakerChange(tenancy, (change) => {
      if (change.state === "half-open") return
      const now = clock.currentTimeMillisUnsafe()
      const forMillis = change.state === "open" ? Math.max(0, (change.untilMillis ?? now) - now) : 0
      const report: Report = {
        from: id,
        engine: change.engine,
        targetId: change.targetId,
        state: change.state,
        forMillis
      }
      const json = JSON.stringify(report)
      const key = options.breakerKey(change.engine, change.targetId)
      counts.published++
      // Fire and forget: a breaker transition must not wait for the coordinator, and when it is down the others
      // find out by failing their own calls, as without a fleet.
      const stored =
        change.state === "open" && forMillis > 0 ? client.set(key, json, "PX", Math.ceil(forMillis)) : client.del(key)
      stored.catch(() => {})
      client.publish(channel, json).catch(() => {})
    })

    const onMessage = (_channel: string, message: string) => {
      const report = parse(message)
      if (report === undefined) return
      apply(report, clock.currentTimeMillisUnsafe() + report.forMillis)
    }
    // Subscribed on every (re)connection: the first attempt may find the coordinator down.
    const subscribe = () => {
      subscriber.subscribe(channel).catch(() => {})
    }
    yield* Effect.acquireRelease(
      Effect.sync(() => {
        subscriber.on("message", onMessage)
        subscriber.on("ready", subscribe)
        if (subscriber.status === "ready") subscribe()
      }),
      () =>
        Effect.sync(() => {
          subscriber.off("message", onMessage)
          subscriber.off("ready", subscribe)
        })
    )

    return {
      fromStore: (json, untilMillis) => {
        const report = parse(json)
        if (report !== undefined && report.state === "open") apply(report, untilMillis)
      },
      counts
    }
  })
