/**
 * Lifecycle and fault events (the spec's `circuit-open` and friends), published by the tenancy service and
 * consumed as an Effect `Stream` (`Tenancy.events`) or as the last few for a status page (`Tenancy.recentEvents`).
 * Events carry ids, engine names and safe target labels only, never a secret.
 *
 * @since 0.1.0
 */
import type { Engine } from "./Vocabulary.ts"

/**
 * An event.
 *
 * @category models
 * @since 0.1.0
 */
export type TenancyEvent =
  | {
      readonly _tag: "PoolCreated"
      readonly at: number
      readonly engine: Engine
      readonly projectId: string
      readonly target: string
    }
  | {
      readonly _tag: "PoolClosed"
      readonly at: number
      readonly engine: Engine
      readonly projectId: string
      readonly target: string
      readonly reason: "idle" | "closeIdleConnections" | "shutdown" | "config-changed" | "error"
    }
  | {
      readonly _tag: "CircuitOpen" | "CircuitHalfOpen" | "CircuitClosed"
      readonly at: number
      readonly engine: Engine
      readonly scope: "project" | "target"
      readonly projectId: string | undefined
      readonly target: string
      readonly openForMillis: number | undefined
    }
  | {
      readonly _tag: "HealthChanged"
      readonly at: number
      readonly engine: Engine
      readonly target: string
      readonly projectId: string | undefined
      readonly healthy: boolean
      readonly latencyMillis: number | undefined
      readonly error: string | undefined
    }
  | {
      readonly _tag: "Overloaded"
      readonly at: number
      readonly engine: Engine
      readonly projectId: string
      readonly scope: "project" | "target"
    }
  | {
      readonly _tag: "ProjectEvicted"
      readonly at: number
      readonly projectId: string
      readonly reason: "idle" | "closeIdleConnections" | "shutdown" | "config-changed"
    }
  | {
      readonly _tag: "TierChanged"
      readonly at: number
      readonly tier: string
    }

/**
 * The spec's event names, for users porting `connectionManager.on('circuit-open', …)`.
 *
 * @category constants
 * @since 0.1.0
 */
export const specName = (event: TenancyEvent): string => {
  switch (event._tag) {
    case "CircuitOpen":
      return "circuit-open"
    case "CircuitHalfOpen":
      return "circuit-half-open"
    case "CircuitClosed":
      return "circuit-close"
    case "PoolCreated":
      return "pool-created"
    case "PoolClosed":
      return "pool-closed"
    case "HealthChanged":
      return "health-changed"
    case "Overloaded":
      return "overloaded"
    case "ProjectEvicted":
      return "project-evicted"
    case "TierChanged":
      return "tier-changed"
  }
}
