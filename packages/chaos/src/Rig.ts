/**
 * A rig: everything one engine's chaos runs need, set up once and reused by every scenario — a private, durable
 * server; a Toxiproxy proxy in front of it; project A, which reaches the server through the proxy (with its own
 * user and a canary password where the engine has users), and project B, a bystander that connects directly;
 * seeded data; raw-driver access to the server's truth (final contents, connection counts); and the library
 * itself, opened afresh for each run through its public API only.
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import type { TenancyEvent } from "@tenantpool/core/Events"
import type * as Servers from "@tenantpool/testing/Servers"
import type * as Toxiproxy from "@tenantpool/testing/Toxiproxy"
import type { Party } from "./History.ts"

/**
 * The engines a rig exists for.
 *
 * @category models
 * @since 0.1.0
 */
export type EngineName = "postgres" | "redis" | "mongodb"

/**
 * All engines, in report order.
 *
 * @category constants
 * @since 0.1.0
 */
export const engines: ReadonlyArray<EngineName> = ["postgres", "redis", "mongodb"]

/**
 * The library's configuration in chaos runs: the spec's defaults except shorter deadlines, so that a run takes
 * seconds and every wait has a bound to be held to.
 *
 * @category models
 * @since 0.1.0
 */
export interface Profile {
  /** The tier deadline of both projects (FREE tier): the bound of every operation. */
  readonly deadlineMs: number
  /** The attempt timeout of every engine. */
  readonly attemptTimeoutMs: number
}

/**
 * The default profile: a 2 s deadline, 1 s attempts (Redis's default; PostgreSQL's is 5 s, MongoDB's 10 s).
 *
 * @category constants
 * @since 0.1.0
 */
export const defaultProfile: Profile = { deadlineMs: 2_000, attemptTimeoutMs: 1_000 }

/**
 * The library, opened for one run: operations as project A or B, through the engine's public API.
 *
 * @category models
 * @since 0.1.0
 */
export interface Library {
  /** Writes one unique id (a non-idempotent insert / push). */
  readonly write: (party: Party, id: string) => Effect.Effect<unknown, unknown>
  /** Writes two ids in one transaction, where the engine has transactions on this server. */
  readonly tx: ((party: Party, ids: readonly [string, string]) => Effect.Effect<unknown, unknown>) | undefined
  /** Reads a seeded key; its value must be `valueOf(key)`. */
  readonly read: (party: Party, key: string) => Effect.Effect<string | null, unknown>
  /** The library's recent events (breaker transitions, pools). */
  readonly events: Effect.Effect<ReadonlyArray<TenancyEvent>>
}

/**
 * What the server says, read with the raw driver (never through the library).
 *
 * @category models
 * @since 0.1.0
 */
export interface Truth {
  /** The ids of a run present in a project's data (an id written twice appears twice). */
  readonly finalIds: (party: Party, runId: string) => Effect.Effect<ReadonlyArray<string>, unknown>
  /** Connections the library holds on the server, by the server's own account: a project's, or all. */
  readonly connections: (who: Party | "all") => Effect.Effect<number, unknown>
}

/**
 * A rig.
 *
 * @category models
 * @since 0.1.0
 */
export interface Rig {
  readonly engine: EngineName
  readonly server: Servers.ServerHandle
  readonly toxiproxy: Toxiproxy.ToxiproxyInfo
  /** In front of the server; project A connects through it. */
  readonly proxy: Toxiproxy.Proxy
  readonly projects: Readonly<Record<Party, string>>
  /** Project A's own database (PostgreSQL, MongoDB) or logical database (Redis). */
  readonly databaseA: string
  /** Project A's user and password where the engine has users (PostgreSQL, Redis): rotation and leak scans. */
  readonly userA: { readonly name: string; readonly password: string } | undefined
  /** The canary in project A's connection string, if any; never printed. */
  readonly secret: string | undefined
  readonly truth: Truth
  /** Opens the library for one run (closed with the scope); every fault scenario opens a fresh one. */
  readonly open: (profile: Profile, captureLogs: Layer.Layer<never>) => Effect.Effect<Library, unknown, Scope.Scope>
  /** The seeded keys of every project, and the value each must read as. */
  readonly keys: ReadonlyArray<string>
}

/**
 * The value every seeded key holds.
 *
 * @category constants
 * @since 0.1.0
 */
export const valueOf = (key: string): string => `v-${key}`

/**
 * The seeded keys (the same for every engine and project).
 *
 * @category constants
 * @since 0.1.0
 */
export const seededKeys: ReadonlyArray<string> = Array.from({ length: 32 }, (_, i) => `k${i}`)

/**
 * The FREE tier's overrides and the breaker overrides a profile asks for.
 *
 * @category constructors
 * @since 0.1.0
 */
export const tenancyOptions = (profile: Profile) => {
  const attempt = { attemptTimeout: Duration.millis(profile.attemptTimeoutMs) }
  return {
    tiers: { FREE: { timeout: Duration.millis(profile.deadlineMs) } },
    breakers: { postgres: attempt, redis: attempt, mongodb: attempt },
    shutdownTimeout: Duration.seconds(1),
    recentEvents: 1_000
  }
}

/**
 * A URL with a user and password, percent-encoded.
 *
 * @category constructors
 * @since 0.1.0
 */
export const withCredentials = (url: string, user: string, password: string): string => {
  const parsed = new URL(url)
  parsed.username = encodeURIComponent(user)
  parsed.password = encodeURIComponent(password)
  return parsed.toString()
}

/**
 * A URL with another path (database name, Redis database number).
 *
 * @category constructors
 * @since 0.1.0
 */
export const withPath = (url: string, path: string): string => {
  const parsed = new URL(url)
  parsed.pathname = `/${path}`
  return parsed.toString()
}
