/**
 * The project registry read from the `platform` schema (`ProjectRegistry` for `Tenancy.layer`), and the polling
 * that makes changes written elsewhere take effect without a restart.
 *
 * - A lookup reads `platform.projects` joined with `platform.databases`, decrypts each connection string
 *   (AES-256-GCM; the key named by the row's `connection_key_id` comes from the key ring in the options, a
 *   `Redacted`) and parses it into a target; the plaintext only ever exists as a `Redacted` inside the target.
 *   Suspended rows are left out (the engine is then "not configured"). Rows with a `secret_ref` are resolved by
 *   `resolveSecret` when given, and left out with a warning otherwise.
 * - It is wrapped with core's `Registry.cached` (found projects for `cache.ttl`, unknown ids for
 *   `cache.negativeTtl`), so a live project costs no query.
 * - Every `pollInterval` a fiber of the registry's scope compares a signature (tier, and each database's type,
 *   `version` and status) of every project it has served, and looks for projects created since the last poll; each
 *   changed, removed or new id is announced to subscribers (the tenancy service then applies a new tier at once and
 *   moves the project to a new target). Writes made through `PlatformAdmin` announce their id at once (`announce`).
 *   Polling needs no schema change; a `NOTIFY` trigger would make other processes see writes sooner.
 * - When the platform database cannot answer, a lookup serves the last configuration it read for that project; a
 *   project never read before fails with a defect (`PlatformStoreError`), which is not cached.
 *
 * Errors name the operation, the project and the engine, never a connection string. See `docs/architecture.md`
 * for how the registry, `PlatformAdmin` and `PlatformRecorder` share one platform database.
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import type * as SqlClient from "effect/sql/SqlClient"
import * as Durations from "@tenantpool/core/Durations"
import { type Engine, engines } from "@tenantpool/core/Engine"
import { type InvalidConfig, ProjectNotFound } from "@tenantpool/core/Errors"
import type * as ProjectId from "@tenantpool/core/ProjectId"
import { type CacheOptions, cached, type Change, type ProjectConfig, ProjectRegistry } from "@tenantpool/core/Registry"
import * as Target from "@tenantpool/core/Target"
import { TierName } from "@tenantpool/core/Tier"
import { decrypt, type KeyRing } from "./internal/crypto.ts"
import { failure, keyRingOf, PlatformStoreError } from "./internal/platform.ts"

/**
 * Options of the registry.
 *
 * @category models
 * @since 0.1.0
 */
export interface Options {
  /**
   * The key ring: `primary-id:base64key[,other-id:base64key…]`, 32-byte AES keys. The first encrypts new
   * connection strings; every one decrypts the rows that name it (so keys can rotate, see `PlatformAdmin`).
   */
  readonly keys: Redacted.Redacted<string>
  /** Registry cache (default: found projects 30 seconds, unknown ids 10 seconds). */
  readonly cache?: CacheOptions | undefined
  /** How often registry changes are looked for (default 5 seconds; 0 turns polling off). */
  readonly pollInterval?: Duration.Input | undefined
  /** Bound of one registry lookup (default 5 seconds). */
  readonly lookupTimeout?: Duration.Input | undefined
  /** TLS policy applied to the targets read (see `Target.ParseOptions`). */
  readonly tlsPolicy?: Target.ParseOptions["tlsPolicy"] | undefined
  /** Resolves a `secret_ref` (e.g. `vault://…`) to a connection string. */
  readonly resolveSecret?:
    | ((reference: string, projectId: string, engine: Engine) => Effect.Effect<Redacted.Redacted<string>, unknown>)
    | undefined
}

// The error is shared by the registry and `PlatformAdmin`; it lives with their other shared internals.
export { PlatformStoreError } from "./internal/platform.ts"

/**
 * The registry read from the platform database.
 *
 * @category services
 * @since 0.1.0
 */
export class PlatformRegistry extends Context.Service<
  PlatformRegistry,
  {
    /** The cached registry (what the layers provide as `ProjectRegistry`). */
    readonly registry: ProjectRegistry["Service"]
    /** Looks for registry changes now (what the poller does every `pollInterval`). */
    readonly refresh: Effect.Effect<void, PlatformStoreError>
    /** Forgets what was read of a project and tells subscribers it changed (after a write to its rows). */
    readonly announce: (id: string) => Effect.Effect<void>
  }
>()("@tenantpool/pg/PlatformRegistry") {}

// ---------------------------------------------------------------------------------------------------------------
// State
// ---------------------------------------------------------------------------------------------------------------

interface DatabaseRow {
  readonly id: string
  readonly tier: string
  readonly database_type: string | null
  readonly connection_ciphertext: Uint8Array | null
  readonly connection_nonce: Uint8Array | null
  readonly connection_key_id: string | null
  readonly secret_ref: string | null
  readonly status: string | null
  readonly version: string | number | bigint | null
}

interface State {
  readonly sql: SqlClient.SqlClient
  readonly ring: KeyRing
  readonly resolveSecret: Options["resolveSecret"]
  readonly parseOptions: Target.ParseOptions
  readonly listeners: Set<Change>
  /**
   * What a lookup last read, per project: its signature (to see changes) and its configuration (served while the
   * platform database cannot answer). Bounded like the cache; the oldest go first.
   */
  readonly known: Map<string, { readonly signature: string; readonly config: ProjectConfig }>
  readonly knownCapacity: number
  /** Projects created lately that a poll has seen, with their creation time (to announce each once). */
  readonly createdSeen: Map<string, number>
  readonly createdWindowSeconds: number
}

const signatureOf = (tier: string, rows: ReadonlyArray<DatabaseRow>): string =>
  `${tier}|${rows
    .filter((r) => r.database_type !== null)
    .map((r) => `${r.database_type}:${String(r.version)}:${r.status}`)
    .sort()
    .join(",")}`

const isTier = Schema.is(TierName)
const isEngine = (s: string | null): s is Engine => s !== null && (engines as ReadonlyArray<string>).includes(s)

const notify = (state: State, id: string) => {
  for (const listener of state.listeners) listener(id as ProjectId.ProjectId)
}

const remember = (state: State, id: string, signature: string, config: ProjectConfig) => {
  state.known.delete(id)
  if (state.known.size >= state.knownCapacity) state.known.delete(state.known.keys().next().value!)
  state.known.set(id, { signature, config })
}

const decryptFailure = (keyId: string, failure: "unknown-key" | "malformed" | "authentication") =>
  failure === "unknown-key"
    ? `key id "${keyId}" is not in the key ring`
    : failure === "malformed"
      ? "the stored ciphertext is malformed"
      : `the ciphertext does not authenticate under key "${keyId}" (wrong key or a row copied from elsewhere)`

/** The connection string of a row: decrypted, resolved from its secret reference, or none. */
const secretOf = (state: State, id: ProjectId.ProjectId, row: DatabaseRow, engine: Engine) =>
  Effect.gen(function* () {
    if (row.connection_ciphertext !== null && row.connection_nonce !== null && row.connection_key_id !== null) {
      const plain = decrypt(state.ring, id, engine, {
        ciphertext: row.connection_ciphertext,
        nonce: row.connection_nonce,
        keyId: row.connection_key_id
      })
      if (typeof plain !== "string") return plain
      return yield* Effect.die(
        new PlatformStoreError({
          operation: `decrypt ${engine} connection`,
          reason: decryptFailure(row.connection_key_id, plain),
          projectId: id
        })
      )
    }
    if (row.secret_ref === null) return undefined
    if (state.resolveSecret === undefined) {
      yield* Effect.logWarning(
        `platform store: project "${id}" has a ${engine} secret reference and no resolveSecret is configured; leaving it out`
      )
      return undefined
    }
    return yield* state
      .resolveSecret(row.secret_ref, id, engine)
      .pipe(Effect.mapError(failure(`resolve ${engine} secret reference`, id)), Effect.orDie)
  })

/** The target of a row, or none (no connection string, or a reference nobody resolves). */
const targetOf = (state: State, id: ProjectId.ProjectId, row: DatabaseRow, engine: Engine) =>
  Effect.flatMap(secretOf(state, id, row, engine), (secret) =>
    secret === undefined
      ? Effect.undefined
      : Target.parse(engine, secret, state.parseOptions).pipe(
          Effect.mapError(
            (e) =>
              new PlatformStoreError({
                operation: `parse ${engine} connection`,
                reason: `${e.field}: ${e.reason}`,
                projectId: id
              })
          ),
          Effect.orDie
        )
  )

const load = (
  state: State,
  id: ProjectId.ProjectId
): Effect.Effect<ProjectConfig, ProjectNotFound | PlatformStoreError> =>
  Effect.gen(function* () {
    const rows = yield* state.sql<DatabaseRow>`
      select p.id, p.tier, d.database_type, d.connection_ciphertext, d.connection_nonce, d.connection_key_id,
             d.secret_ref, d.status, d.version
      from platform.projects p
      left join platform.databases d on d.project_id = p.id
      where p.id = ${id}`.pipe(Effect.mapError(failure("lookup", id)))
    const first = rows[0]
    if (first === undefined) return yield* new ProjectNotFound({ projectId: id })
    if (!isTier(first.tier)) {
      return yield* Effect.die(
        new PlatformStoreError({ operation: "lookup", reason: `unknown tier "${first.tier}"`, projectId: id })
      )
    }
    const targets: Partial<Record<Engine, Target.Target>> = {}
    for (const row of rows) {
      if (!isEngine(row.database_type) || row.status === "suspended") continue
      const target = yield* targetOf(state, id, row, row.database_type)
      if (target !== undefined) targets[row.database_type] = target
    }
    const config: ProjectConfig = { id, tier: first.tier, targets }
    remember(state, id, signatureOf(first.tier, rows), config)
    return config
  })

/** A lookup, bounded, that serves the last configuration read while the platform database cannot answer. */
const lookup = (state: State, id: ProjectId.ProjectId, timeoutMillis: number) =>
  load(state, id).pipe(
    Effect.timeoutOrElse({
      duration: Duration.millis(timeoutMillis),
      orElse: () => Effect.fail(new PlatformStoreError({ operation: "lookup", reason: "timed out", projectId: id }))
    }),
    Effect.catchTag("PlatformStoreError", (error) => {
      const last = state.known.get(id)
      if (last === undefined) return Effect.die(error)
      return Effect.as(
        Effect.logWarning(`platform store unavailable (${error.reason}); serving the last known "${id}"`),
        last.config
      )
    })
  )

// ---------------------------------------------------------------------------------------------------------------
// Change detection
// ---------------------------------------------------------------------------------------------------------------

/** Announces the projects served so far whose signature changed (or that are gone). */
const pollKnown = (state: State) =>
  Effect.gen(function* () {
    const ids = [...state.known.keys()]
    for (let i = 0; i < ids.length; i += 10_000) {
      const chunk = ids.slice(i, i + 10_000)
      const rows = yield* state.sql<{ readonly id: string; readonly tier: string | null; readonly sig: string }>`
        select k.id, p.tier,
               coalesce(string_agg(d.database_type || ':' || d.version || ':' || d.status, ',' order by d.database_type), '') as sig
        from unnest(${chunk}::text[]) as k(id)
        left join platform.projects p on p.id = k.id
        left join platform.databases d on d.project_id = p.id
        group by k.id, p.tier`.pipe(Effect.mapError(failure("poll")))
      for (const row of rows) {
        const entry = state.known.get(row.id)
        if (entry === undefined) continue
        const now = row.tier === null ? undefined : `${row.tier}|${row.sig}`
        if (now !== entry.signature) {
          state.known.delete(row.id)
          notify(state, row.id)
        }
      }
    }
  })

/** Announces projects created lately: an id looked up before it existed is negatively cached. */
const pollCreated = (state: State) =>
  Effect.gen(function* () {
    const window = state.createdWindowSeconds
    const created = yield* state.sql<{ readonly id: string; readonly at: number }>`
      select id, (extract(epoch from created_at) * 1000)::float8 as at
      from platform.projects
      where created_at > now() - make_interval(secs => ${window})`.pipe(Effect.mapError(failure("poll")))
    const horizon = (yield* Clock.currentTimeMillis) - 2 * window * 1000
    for (const [id, at] of state.createdSeen) if (at < horizon) state.createdSeen.delete(id)
    for (const row of created) {
      if (state.createdSeen.get(row.id) === row.at) continue
      state.createdSeen.set(row.id, row.at)
      if (!state.known.has(row.id)) notify(state, row.id)
    }
  })

// ---------------------------------------------------------------------------------------------------------------
// Constructors
// ---------------------------------------------------------------------------------------------------------------

/**
 * Builds the registry on the platform database's SQL handle (scoped: the poller stops when the scope closes). A
 * key ring or a duration that is not one is an `InvalidConfig` naming the option.
 *
 * @category constructors
 * @since 0.1.0
 */
export const make = Effect.fnUntraced(function* (
  sql: SqlClient.SqlClient,
  options: Options
): Effect.fn.Return<PlatformRegistry["Service"], InvalidConfig, Scope.Scope> {
  const ring = yield* keyRingOf(options.keys)
  const lookupTimeout = yield* Durations.millis("platform.lookupTimeout", options.lookupTimeout, "5 seconds")
  const pollMillis = yield* Durations.millis("platform.pollInterval", options.pollInterval, "5 seconds", {
    allowZero: true
  })
  // `Registry.cached` reads these without checking them; checked here so that a bad one is a typed error too.
  yield* Durations.millis("platform.cache.ttl", options.cache?.ttl, "30 seconds")
  yield* Durations.millis("platform.cache.negativeTtl", options.cache?.negativeTtl, "10 seconds", { allowZero: true })
  const state: State = {
    sql,
    ring,
    resolveSecret: options.resolveSecret,
    parseOptions: options.tlsPolicy === undefined ? {} : { tlsPolicy: options.tlsPolicy },
    listeners: new Set(),
    known: new Map(),
    knownCapacity: options.cache?.capacity ?? 100_000,
    createdSeen: new Map(),
    createdWindowSeconds: Math.max(30, Math.ceil((3 * pollMillis) / 1000))
  }
  const registry = yield* cached(
    ProjectRegistry.of({
      lookup: (id) => lookup(state, id, lookupTimeout),
      subscribe: (listener) => {
        state.listeners.add(listener)
        return () => state.listeners.delete(listener)
      }
    }),
    options.cache
  )
  const refresh = Effect.andThen(pollKnown(state), pollCreated(state))
  if (pollMillis > 0) {
    yield* Effect.forkScoped(
      Effect.repeat(
        Effect.catch(refresh, (error) => Effect.logWarning(`platform store: registry poll failed: ${error.reason}`)),
        Schedule.spaced(Duration.millis(pollMillis))
      )
    )
  }
  return PlatformRegistry.of({
    registry,
    refresh,
    announce: (id) =>
      Effect.sync(() => {
        state.known.delete(id)
        notify(state, id)
      })
  })
})
