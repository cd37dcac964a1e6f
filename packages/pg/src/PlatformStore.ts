/**
 * The platform store: the project registry read from the `platform` schema, the writers that put projects and
 * their (encrypted) connection strings into it, and the recorder that puts metrics, events and health into it.
 *
 * Registry (`ProjectRegistry` for `Tenancy.layer`):
 * - A lookup reads `platform.projects` joined with `platform.databases`, decrypts each connection string
 *   (AES-256-GCM; the key named by the row's `connection_key_id` comes from the key ring in the options, a
 *   `Redacted`) and parses it into a target; the plaintext only ever exists as a `Redacted` inside the target.
 *   Suspended rows are left out (the engine is then "not configured"). Rows with a `secret_ref` are resolved by
 *   `resolveSecret` when given, and left out with a warning otherwise.
 * - It is wrapped with core's `Registry.cached` (found projects for `cache.ttl`, unknown ids for
 *   `cache.negativeTtl`), so a live project costs no query.
 * - Changes take effect without a restart: every `pollInterval` the store compares a signature (tier, and each
 *   database's type, `version` and status) of every project it has served, and looks for projects created since the
 *   last poll; each changed, removed or new id is announced to subscribers (the tenancy service then applies a new
 *   tier at once and moves the project to a new target). Writes made through this store announce their id at once.
 *   Polling needs no schema change; a `NOTIFY` trigger would make other processes see writes sooner (reported).
 * - When the platform database cannot answer, a lookup serves the last configuration it read for that project; a
 *   project never read before fails with a defect (`PlatformStoreError`), which is not cached.
 *
 * Recorder (`layerRecorder`, and `recordMetric` / `logEvent` / `recordHealth` for anyone):
 * - Recording is a synchronous push into a bounded in-memory buffer: it never waits for, and never fails because
 *   of, the platform database. A full buffer drops the item and counts it (`tenantpool_platform_dropped_total`
 *   with `kind` and `reason`, and `stats`).
 * - A background fiber flushes every `flushInterval`, or as soon as `batchSize` items wait, through the batch
 *   helpers `record_database_metrics(jsonb)` and `log_database_events(jsonb)`, and `update_database_health` per
 *   health change. A batch the database refuses (validation) is dropped and counted as `rejected`; a batch that
 *   fails for want of the database goes back to the buffer (as far as it fits) for the next flush, so delivery is
 *   at least once across timeouts.
 * - `layerRecorder` subscribes to `Tenancy.events` (pool created/closed, breaker transitions, health changes,
 *   overload, throttled to one per project and second) and samples `Tenancy.connections` every
 *   `metricsInterval` into `platform.database_metrics` (the spec's metric names, per project).
 *
 * Connection strings are never logged, never part of an error and never returned in plain text: errors name the
 * project, the engine and the key id only.
 *
 * @since 0.1.0
 */
import * as PgClient from "@effect/sql-pg/PgClient"
import * as Cause from "effect/Cause"
import * as Config from "effect/Config"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Reactivity from "effect/reactivity/Reactivity"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import * as Semaphore from "effect/Semaphore"
import { isSqlError, type SqlError } from "effect/sql/SqlError"
import * as Stream from "effect/Stream"
import { type Engine, engines } from "@tenantpool/core/Engine"
import {
  InvalidConfig,
  type InvalidConnectionString,
  type InvalidProjectId,
  ProjectNotFound
} from "@tenantpool/core/Errors"
import type { TenancyEvent } from "@tenantpool/core/Events"
import * as ProjectId from "@tenantpool/core/ProjectId"
import { type CacheOptions, cached, type Change, type ProjectConfig, ProjectRegistry } from "@tenantpool/core/Registry"
import * as Target from "@tenantpool/core/Target"
import { Tenancy } from "@tenantpool/core/Tenancy"
import { TierName } from "@tenantpool/core/Tier"
import {
  decrypt,
  encrypt,
  generateKey as generateRingKey,
  type KeyRing,
  KeyRingError,
  parseKeyRing
} from "./internal/crypto.ts"
import { serverError } from "./internal/pgError.ts"
import * as PgError from "./PgError.ts"

// ---------------------------------------------------------------------------------------------------------------
// Options, models, errors
// ---------------------------------------------------------------------------------------------------------------

/**
 * Options of the platform store.
 *
 * @category models
 * @since 0.1.0
 */
export interface Options {
  /** The platform database (the one holding the `platform` schema). */
  readonly url: Redacted.Redacted<string>
  /**
   * The key ring: `primary-id:base64key[,other-id:base64key…]`, 32-byte AES keys. The first encrypts new
   * connection strings; every one decrypts the rows that name it (so keys can rotate, see `rotateKeys`).
   */
  readonly keys: Redacted.Redacted<string>
  /** Connections to the platform database (default 4). */
  readonly maxConnections?: number | undefined
  /** Connect timeout to the platform database (default 2 seconds). */
  readonly connectTimeout?: Duration.Input | undefined
  /** `application_name` of the store's connections (default `tenantpool:platform`). */
  readonly applicationName?: string | undefined
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
  /** Items the recorder buffers at most (default 10,000); beyond it they are dropped and counted. */
  readonly bufferCapacity?: number | undefined
  /** Items per batch call, and the buffer size that triggers an early flush (default 500). */
  readonly batchSize?: number | undefined
  /** How often the buffer is flushed (default 1 second). */
  readonly flushInterval?: Duration.Input | undefined
  /** Bound of one batch write (default 5 seconds). */
  readonly flushTimeout?: Duration.Input | undefined
}

/**
 * A metric sample for `platform.database_metrics`.
 *
 * @category models
 * @since 0.1.0
 */
export interface MetricSample {
  readonly projectId: string
  readonly engine: Engine
  /** Prometheus-style name: `[a-zA-Z_:][a-zA-Z0-9_:]*`. */
  readonly name: string
  readonly value: number
  readonly labels?: Readonly<Record<string, string | number | boolean>> | undefined
  /** When it was measured (default: when it is recorded). */
  readonly time?: Date | undefined
}

/**
 * An audit event for `platform.database_connection_logs`.
 *
 * @category models
 * @since 0.1.0
 */
export interface EventRecord {
  readonly projectId: string
  readonly engine: Engine
  /** `[a-z][a-z0-9_]*`: `pool_created`, `circuit_open`, … */
  readonly type: string
  readonly message?: string | undefined
  readonly metadata?: Readonly<Record<string, unknown>> | undefined
  readonly severity?: "info" | "warning" | "error" | undefined
}

/**
 * A health-check result for `update_database_health`.
 *
 * @category models
 * @since 0.1.0
 */
export interface HealthRecord {
  readonly projectId: string
  readonly engine: Engine
  readonly status: "healthy" | "degraded" | "unhealthy" | "unknown"
  readonly details?: Readonly<Record<string, unknown>> | undefined
}

/**
 * Counters of the recorder.
 *
 * @category models
 * @since 0.1.0
 */
export interface WriterStats {
  readonly buffered: { readonly metrics: number; readonly events: number; readonly health: number }
  readonly written: { readonly metrics: number; readonly events: number; readonly health: number }
  /** Items dropped: the buffer was full, the database refused them, or they were left at shutdown. */
  readonly dropped: {
    readonly total: number
    readonly bufferFull: number
    readonly rejected: number
    readonly shutdown: number
  }
  /** Tenancy events that name no project (target-wide breaker transitions), not recorded. */
  readonly unattributed: number
  readonly flushes: number
  readonly failedFlushes: number
  /** The last flush failure, as the server or the client put it (never a secret). */
  readonly lastError: string | undefined
}

/**
 * A platform-store operation failed. The message names the operation, the project and the engine, never a
 * connection string.
 *
 * @category errors
 * @since 0.1.0
 */
export class PlatformStoreError extends Schema.TaggedError<PlatformStoreError>()("PlatformStoreError", {
  operation: Schema.String,
  reason: Schema.String,
  projectId: Schema.optional(Schema.String)
}) {
  override get message(): string {
    const project = this.projectId === undefined ? "" : ` for project "${this.projectId}"`
    return `platform store ${this.operation}${project} failed: ${this.reason}`
  }
}

/**
 * The counter of recorder items dropped, by `kind` (`metric`, `event`, `health`) and `reason` (`buffer_full`,
 * `rejected`, `shutdown`).
 *
 * @category metrics
 * @since 0.1.0
 */
export const droppedTotal = Metric.counter("tenantpool_platform_dropped_total", {
  description: "Platform metric, event and health rows dropped (kind, reason)",
  incremental: true
})

/**
 * Items waiting in the recorder's buffer.
 *
 * @category metrics
 * @since 0.1.0
 */
export const bufferedItems = Metric.gauge("tenantpool_platform_buffered", {
  description: "Platform metric, event and health rows waiting to be written"
})

/**
 * The platform store.
 *
 * @category services
 * @since 0.1.0
 */
export class PlatformStore extends Context.Service<
  PlatformStore,
  {
    /** The cached registry (also provided as `ProjectRegistry` by the layers). */
    readonly registry: ProjectRegistry["Service"]
    /** Creates a project or changes its tier. */
    readonly registerProject: (input: {
      readonly id: string
      readonly tier: TierName
    }) => Effect.Effect<void, PlatformStoreError | InvalidProjectId>
    /** Stores a project's connection string for an engine, encrypted under the primary key. */
    readonly putDatabase: (input: {
      readonly projectId: string
      readonly engine: Engine
      readonly connectionString: string | Redacted.Redacted<string>
      readonly status?: "active" | "suspended" | "error" | undefined
    }) => Effect.Effect<void, PlatformStoreError | InvalidProjectId | InvalidConnectionString>
    /** Removes a project's database for an engine; true when there was one. */
    readonly removeDatabase: (
      projectId: string,
      engine: Engine
    ) => Effect.Effect<boolean, PlatformStoreError | InvalidProjectId>
    /** Removes a project and its databases; true when there was one. */
    readonly removeProject: (projectId: string) => Effect.Effect<boolean, PlatformStoreError | InvalidProjectId>
    /** Re-encrypts every connection string not under the primary key; returns how many. */
    readonly rotateKeys: Effect.Effect<number, PlatformStoreError>
    /** Looks for registry changes now (what the poller does every `pollInterval`). */
    readonly refresh: Effect.Effect<void, PlatformStoreError>
    /** Buffers a metric sample (never blocks; dropped and counted when the buffer is full). */
    readonly recordMetric: (sample: MetricSample) => void
    /** Buffers an audit event (never blocks; dropped and counted when the buffer is full). */
    readonly logEvent: (event: EventRecord) => void
    /** Buffers a health result (never blocks; dropped and counted when the buffer is full). */
    readonly recordHealth: (health: HealthRecord) => void
    /** Buffers the rows a tenancy event calls for (see `layerRecorder`). */
    readonly recordEvent: (event: TenancyEvent) => void
    /** Writes what is buffered now. */
    readonly flush: Effect.Effect<void>
    /** The recorder's counters. */
    readonly stats: Effect.Effect<WriterStats>
  }
>()("@tenantpool/pg/PlatformStore") {}

/**
 * A fresh random key in the key-ring format (`<id>:<base64 of 32 bytes>`), for set-up scripts and tests.
 *
 * @category constructors
 * @since 0.1.0
 */
export const generateKey = (id: string): Redacted.Redacted<string> => generateRingKey(id)

// ---------------------------------------------------------------------------------------------------------------
// Internals
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

const signatureOf = (tier: string, rows: ReadonlyArray<DatabaseRow>): string =>
  `${tier}|${rows
    .filter((r) => r.database_type !== null)
    .map((r) => `${r.database_type}:${String(r.version)}:${r.status}`)
    .sort()
    .join(",")}`

const reasonOf = (error: unknown): string => {
  if (isSqlError(error)) return serverError(error).message.replace(/\s+/g, " ").slice(0, 300)
  if (error instanceof Error) return error.message.replace(/\s+/g, " ").slice(0, 300)
  return "failed"
}

const isTier = Schema.is(TierName)
const isEngine = (s: string | null): s is Engine => s !== null && (engines as ReadonlyArray<string>).includes(s)

type Kind = "metric" | "event" | "health"
type DropReason = "buffer_full" | "rejected" | "shutdown"

const millisOf = (input: Duration.Input) => Duration.toMillis(Duration.fromInputUnsafe(input))

/**
 * Builds the platform store (scoped: closing it flushes the buffer once more and stops the poller).
 *
 * @category constructors
 * @since 0.1.0
 */
export const make = Effect.fnUntraced(function* (options: Options) {
  let ring: KeyRing
  try {
    ring = parseKeyRing(options.keys)
  } catch (e) {
    return yield* new InvalidConfig({
      field: e instanceof KeyRingError ? `platform.${e.field}` : "platform.keys",
      reason: e instanceof Error ? e.message : "unreadable"
    })
  }
  const context = yield* Effect.context<never>()
  const sql = yield* PgClient.make({
    url: options.url,
    maxConnections: options.maxConnections ?? 4,
    applicationName: options.applicationName ?? "tenantpool:platform",
    connectTimeout: options.connectTimeout ?? "2 seconds"
  })
  const lookupTimeout = Duration.fromInputUnsafe(options.lookupTimeout ?? "5 seconds")
  const pollMillis = millisOf(options.pollInterval ?? "5 seconds")
  const capacity = Math.max(1, options.bufferCapacity ?? 10_000)
  const batchSize = Math.max(1, Math.min(options.batchSize ?? 500, 10_000))
  const flushInterval = Duration.fromInputUnsafe(options.flushInterval ?? "1 second")
  const flushTimeout = Duration.fromInputUnsafe(options.flushTimeout ?? "5 seconds")
  const parseOptions: Target.ParseOptions = options.tlsPolicy === undefined ? {} : { tlsPolicy: options.tlsPolicy }

  const fail = (operation: string, projectId?: string) => (error: unknown) =>
    new PlatformStoreError({
      operation,
      reason: reasonOf(error),
      ...(projectId !== undefined ? { projectId } : {})
    })

  // ---- registry ---------------------------------------------------------------------------------------------

  const listeners = new Set<Change>()
  const notify = (id: ProjectId.ProjectId) => {
    for (const listener of listeners) listener(id)
  }
  // What a lookup last read, per project: its signature (to see changes) and its configuration (served while the
  // platform database cannot answer). Bounded like the cache; the oldest go first.
  const known = new Map<string, { signature: string; config: ProjectConfig }>()
  const knownCapacity = options.cache?.capacity ?? 100_000
  const remember = (id: string, signature: string, config: ProjectConfig) => {
    known.delete(id)
    if (known.size >= knownCapacity) known.delete(known.keys().next().value!)
    known.set(id, { signature, config })
  }

  const targetOf = (id: ProjectId.ProjectId, row: DatabaseRow, engine: Engine) =>
    Effect.gen(function* () {
      let secret: Redacted.Redacted<string>
      if (row.connection_ciphertext !== null && row.connection_nonce !== null && row.connection_key_id !== null) {
        const plain = decrypt(ring, id, engine, {
          ciphertext: row.connection_ciphertext,
          nonce: row.connection_nonce,
          keyId: row.connection_key_id
        })
        if (typeof plain === "string") {
          const why =
            plain === "unknown-key"
              ? `key id "${row.connection_key_id}" is not in the key ring`
              : plain === "malformed"
                ? "the stored ciphertext is malformed"
                : `the ciphertext does not authenticate under key "${row.connection_key_id}" (wrong key or a row copied from elsewhere)`
          return yield* Effect.die(
            new PlatformStoreError({ operation: `decrypt ${engine} connection`, reason: why, projectId: id })
          )
        }
        secret = plain
      } else if (row.secret_ref !== null) {
        if (options.resolveSecret === undefined) {
          yield* Effect.logWarning(
            `platform store: project "${id}" has a ${engine} secret reference and no resolveSecret is configured; leaving it out`
          )
          return undefined
        }
        secret = yield* options
          .resolveSecret(row.secret_ref, id, engine)
          .pipe(Effect.mapError(fail(`resolve ${engine} secret reference`, id)), Effect.orDie)
      } else {
        return undefined
      }
      return yield* Target.parse(engine, secret, parseOptions).pipe(
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
    })

  const load = (id: ProjectId.ProjectId): Effect.Effect<ProjectConfig, ProjectNotFound | PlatformStoreError> =>
    Effect.gen(function* () {
      const rows = yield* sql<DatabaseRow>`
        select p.id, p.tier, d.database_type, d.connection_ciphertext, d.connection_nonce, d.connection_key_id,
               d.secret_ref, d.status, d.version
        from platform.projects p
        left join platform.databases d on d.project_id = p.id
        where p.id = ${id}`.pipe(Effect.mapError(fail("lookup", id)))
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
        const target = yield* targetOf(id, row, row.database_type)
        if (target !== undefined) targets[row.database_type] = target
      }
      const config: ProjectConfig = { id, tier: first.tier, targets }
      remember(id, signatureOf(first.tier, rows), config)
      return config
    })

  const underlying = ProjectRegistry.of({
    lookup: (id) =>
      load(id).pipe(
        Effect.timeoutOrElse({
          duration: lookupTimeout,
          orElse: () => Effect.fail(new PlatformStoreError({ operation: "lookup", reason: "timed out", projectId: id }))
        }),
        Effect.catchTag("PlatformStoreError", (error) => {
          const last = known.get(id)
          if (last === undefined) return Effect.die(error)
          return Effect.as(
            Effect.logWarning(`platform store unavailable (${error.reason}); serving the last known "${id}"`),
            last.config
          )
        })
      ),
    subscribe: (listener) => {
      listeners.add(listener)
      return () => listeners.delete(listener)
    }
  })
  const registry = yield* cached(underlying, options.cache)

  // ---- change detection ---------------------------------------------------------------------------------------

  const createdSeen = new Map<string, number>()
  const createdWindowSeconds = Math.max(30, Math.ceil((3 * pollMillis) / 1000))
  const refresh: Effect.Effect<void, PlatformStoreError> = Effect.gen(function* () {
    const ids = [...known.keys()]
    for (let i = 0; i < ids.length; i += 10_000) {
      const chunk = ids.slice(i, i + 10_000)
      const rows = yield* sql<{ readonly id: string; readonly tier: string | null; readonly sig: string }>`
        select k.id, p.tier,
               coalesce(string_agg(d.database_type || ':' || d.version || ':' || d.status, ',' order by d.database_type), '') as sig
        from unnest(${chunk}::text[]) as k(id)
        left join platform.projects p on p.id = k.id
        left join platform.databases d on d.project_id = p.id
        group by k.id, p.tier`.pipe(Effect.mapError(fail("poll")))
      for (const row of rows) {
        const entry = known.get(row.id)
        if (entry === undefined) continue
        const now = row.tier === null ? undefined : `${row.tier}|${row.sig}`
        if (now !== entry.signature) {
          known.delete(row.id)
          notify(row.id as ProjectId.ProjectId)
        }
      }
    }
    // Projects created lately: an id looked up before it existed is negatively cached; announce it.
    const created = yield* sql<{ readonly id: string; readonly at: number }>`
      select id, (extract(epoch from created_at) * 1000)::float8 as at
      from platform.projects
      where created_at > now() - make_interval(secs => ${createdWindowSeconds})`.pipe(Effect.mapError(fail("poll")))
    const horizon = Date.now() - 2 * createdWindowSeconds * 1000
    for (const [id, at] of createdSeen) if (at < horizon) createdSeen.delete(id)
    for (const row of created) {
      if (createdSeen.get(row.id) === row.at) continue
      createdSeen.set(row.id, row.at)
      if (!known.has(row.id)) notify(row.id as ProjectId.ProjectId)
    }
  })
  if (pollMillis > 0) {
    yield* Effect.forkScoped(
      Effect.repeat(
        Effect.catch(refresh, (error) => Effect.logWarning(`platform store: registry poll failed: ${error.reason}`)),
        Schedule.spaced(Duration.millis(pollMillis))
      )
    )
  }

  // ---- writers ------------------------------------------------------------------------------------------------

  const written = (id: string) =>
    Effect.sync(() => {
      known.delete(id)
      notify(id as ProjectId.ProjectId)
    })

  const registerProject = (input: { readonly id: string; readonly tier: TierName }) =>
    Effect.gen(function* () {
      const id = yield* ProjectId.decode(input.id)
      yield* sql`insert into platform.projects (id, tier) values (${id}, ${input.tier})
                 on conflict (id) do update set tier = excluded.tier`.pipe(
        Effect.mapError(fail("register project", id))
      )
      yield* written(id)
    })

  const putDatabase = (input: {
    readonly projectId: string
    readonly engine: Engine
    readonly connectionString: string | Redacted.Redacted<string>
    readonly status?: "active" | "suspended" | "error" | undefined
  }) =>
    Effect.gen(function* () {
      const id = yield* ProjectId.decode(input.projectId)
      const secret =
        typeof input.connectionString === "string" ? Redacted.make(input.connectionString) : input.connectionString
      const target = yield* Target.parse(input.engine, secret, parseOptions)
      const sealed = encrypt(ring, id, input.engine, secret)
      const host = target.hosts
        .map((h) => h.host)
        .join(",")
        .slice(0, 255)
      yield* sql`
        insert into platform.databases (project_id, database_type, connection_ciphertext, connection_nonce,
                                        connection_key_id, secret_ref, host, port, database_name, status)
        values (${id}, ${input.engine}, ${sealed.ciphertext}, ${sealed.nonce}, ${sealed.keyId}, null,
                ${host}, ${target.port}, ${target.database.slice(0, 255)}, ${input.status ?? "active"})
        on conflict (project_id, database_type) do update set
          connection_ciphertext = excluded.connection_ciphertext,
          connection_nonce = excluded.connection_nonce,
          connection_key_id = excluded.connection_key_id,
          secret_ref = null,
          host = excluded.host,
          port = excluded.port,
          database_name = excluded.database_name,
          status = excluded.status`.pipe(Effect.mapError(fail(`store ${input.engine} database`, id)))
      yield* written(id)
    })

  const removeDatabase = (projectId: string, engine: Engine) =>
    Effect.gen(function* () {
      const id = yield* ProjectId.decode(projectId)
      const rows = yield* sql`delete from platform.databases where project_id = ${id} and database_type = ${engine}
                              returning project_id`.pipe(Effect.mapError(fail(`remove ${engine} database`, id)))
      yield* written(id)
      return rows.length > 0
    })

  const removeProject = (projectId: string) =>
    Effect.gen(function* () {
      const id = yield* ProjectId.decode(projectId)
      const rows = yield* sql`delete from platform.projects where id = ${id} returning id`.pipe(
        Effect.mapError(fail("remove project", id))
      )
      yield* written(id)
      return rows.length > 0
    })

  const rotateKeys = Effect.gen(function* () {
    const rows = yield* sql<{
      readonly project_id: string
      readonly database_type: string
      readonly connection_ciphertext: Uint8Array
      readonly connection_nonce: Uint8Array
      readonly connection_key_id: string
    }>`select project_id, database_type, connection_ciphertext, connection_nonce, connection_key_id
       from platform.databases
       where connection_key_id is not null and connection_key_id <> ${ring.primary}`.pipe(
      Effect.mapError(fail("rotate keys"))
    )
    let count = 0
    for (const row of rows) {
      const plain = decrypt(ring, row.project_id, row.database_type, {
        ciphertext: row.connection_ciphertext,
        nonce: row.connection_nonce,
        keyId: row.connection_key_id
      })
      if (typeof plain === "string") {
        return yield* new PlatformStoreError({
          operation: "rotate keys",
          reason: `the ${row.database_type} connection does not decrypt under key "${row.connection_key_id}" (${plain})`,
          projectId: row.project_id
        })
      }
      const sealed = encrypt(ring, row.project_id, row.database_type, plain)
      // Only if nobody changed the row meanwhile.
      const updated = yield* sql`
        update platform.databases
        set connection_ciphertext = ${sealed.ciphertext}, connection_nonce = ${sealed.nonce},
            connection_key_id = ${sealed.keyId}
        where project_id = ${row.project_id} and database_type = ${row.database_type}
          and connection_key_id = ${row.connection_key_id} and connection_nonce = ${row.connection_nonce}
        returning project_id`.pipe(Effect.mapError(fail("rotate keys", row.project_id)))
      if (updated.length > 0) {
        count++
        yield* written(row.project_id)
      }
    }
    return count
  })

  // ---- recorder ------------------------------------------------------------------------------------------------

  const metrics: Array<Record<string, unknown>> = []
  const events: Array<Record<string, unknown>> = []
  const health: Array<HealthRecord> = []
  const counters = {
    written: { metric: 0, event: 0, health: 0 },
    dropped: { buffer_full: 0, rejected: 0, shutdown: 0 },
    unattributed: 0,
    flushes: 0,
    failedFlushes: 0,
    lastError: undefined as string | undefined
  }
  const size = () => metrics.length + events.length + health.length
  const dropCells = new Map<string, Metric.Metric<number, unknown>>()
  const drop = (kind: Kind, reason: DropReason, n: number) => {
    if (n <= 0) return
    counters.dropped[reason] += n
    const key = `${kind}/${reason}`
    let cell = dropCells.get(key)
    if (cell === undefined) {
      cell = Metric.withAttributes(droppedTotal, { kind, reason }) as Metric.Metric<number, unknown>
      dropCells.set(key, cell)
    }
    cell.updateUnsafe(n, context)
  }
  const buffered = Metric.registerUnsafe(bufferedItems, context, {
    get: () => ({ value: size() }),
    update: () => {},
    modify: () => {}
  } as Metric.Metric.Hooks<number, any>)
  yield* Effect.addFinalizer(() => Effect.sync(() => buffered.remove()))

  let wake: (() => void) | undefined
  const push = <A>(kind: Kind, queue: Array<A>, item: A) => {
    if (size() >= capacity) return drop(kind, "buffer_full", 1)
    queue.push(item)
    if (size() >= batchSize && wake !== undefined) {
      const w = wake
      wake = undefined
      w()
    }
  }

  const recordMetric = (sample: MetricSample) =>
    push("metric", metrics, {
      project_id: sample.projectId,
      database_type: sample.engine,
      metric_name: sample.name,
      value: sample.value,
      labels: sample.labels ?? {},
      time: (sample.time ?? new Date()).toISOString()
    })
  const logEvent = (event: EventRecord) =>
    push("event", events, {
      project_id: event.projectId,
      database_type: event.engine,
      event_type: event.type,
      message: event.message ?? null,
      metadata: event.metadata ?? {},
      severity: event.severity ?? "info"
    })
  const recordHealth = (h: HealthRecord) => push("health", health, h)
  const lastOverload = new Map<string, number>()
  const recordEvent = (event: TenancyEvent) => {
    if (event._tag === "Overloaded") {
      // Refusals come in bursts: one row per project and engine per second is enough for an audit log.
      const key = `${event.projectId}/${event.engine}`
      if (event.at - (lastOverload.get(key) ?? 0) < 1000) return
      if (lastOverload.size >= 10_000) lastOverload.clear()
      lastOverload.set(key, event.at)
    }
    if (!eventRows({ logEvent, recordHealth }, event)) counters.unattributed++
  }

  /** Puts a batch that could not be written back at the front, as far as the buffer has room. */
  const requeue = <A>(kind: Kind, queue: Array<A>, batch: ReadonlyArray<A>) => {
    queue.unshift(...batch)
    const excess = size() - capacity
    if (excess > 0) {
      queue.splice(queue.length - Math.min(excess, queue.length), excess)
      drop(kind, "buffer_full", excess)
    }
  }

  // A server that answered (with a SQLSTATE) refused the rows: writing them again would fail again.
  const refused = (error: unknown) =>
    isSqlError(error) && PgError.sqlState(error) !== undefined && !PgError.isInfrastructure(error)

  const writeBatches = <A>(
    kind: Kind,
    queue: Array<A>,
    write: (batch: ReadonlyArray<A>) => Effect.Effect<unknown, SqlError>,
    per: number
  ): Effect.Effect<boolean> =>
    Effect.gen(function* () {
      while (queue.length > 0) {
        const batch = queue.splice(0, per)
        const exit = yield* Effect.exit(Effect.timeout(write(batch), flushTimeout))
        if (exit._tag === "Success") {
          counters.written[kind] += batch.length
          continue
        }
        const found = Cause.findErrorOption(exit.cause)
        const cause = found._tag === "Some" ? found.value : undefined
        counters.lastError = reasonOf(cause ?? new Error("defect"))
        if (refused(cause)) {
          drop(kind, "rejected", batch.length)
          yield* Effect.logWarning(`platform store: ${batch.length} ${kind} row(s) refused: ${counters.lastError}`)
          continue
        }
        requeue(kind, queue, batch)
        return false
      }
      return true
    })

  const flushOnce: Effect.Effect<void> = Effect.gen(function* () {
    if (size() === 0) return
    counters.flushes++
    const ok =
      (yield* writeBatches(
        "metric",
        metrics,
        (batch) => sql`select platform.record_database_metrics(${JSON.stringify(batch)}::jsonb)`,
        batchSize
      )) &&
      (yield* writeBatches(
        "event",
        events,
        (batch) => sql`select platform.log_database_events(${JSON.stringify(batch)}::jsonb)`,
        batchSize
      )) &&
      (yield* writeBatches(
        "health",
        health,
        ([h]) =>
          sql`select platform.update_database_health(${h!.projectId}, ${h!.engine}, ${h!.status},
                                                     ${JSON.stringify(h!.details ?? {})}::jsonb)`,
        1
      ))
    if (!ok) counters.failedFlushes++
  })

  // Serializes flushes (the loop, `flush`, and the final one at shutdown).
  const flushLock = yield* Semaphore.make(1)
  const flush = flushLock.withPermits(1)(flushOnce)
  const nudge = Effect.callback<void>((resume) => {
    wake = () => resume(Effect.void)
    return Effect.sync(() => {
      wake = undefined
    })
  })
  yield* Effect.forkScoped(Effect.forever(Effect.andThen(Effect.raceFirst(Effect.sleep(flushInterval), nudge), flush)))
  yield* Effect.addFinalizer(() =>
    Effect.andThen(
      flush,
      Effect.sync(() => {
        drop("metric", "shutdown", metrics.splice(0).length)
        drop("event", "shutdown", events.splice(0).length)
        drop("health", "shutdown", health.splice(0).length)
      })
    )
  )

  const stats = Effect.sync((): WriterStats => ({
    buffered: { metrics: metrics.length, events: events.length, health: health.length },
    written: { metrics: counters.written.metric, events: counters.written.event, health: counters.written.health },
    dropped: {
      total: counters.dropped.buffer_full + counters.dropped.rejected + counters.dropped.shutdown,
      bufferFull: counters.dropped.buffer_full,
      rejected: counters.dropped.rejected,
      shutdown: counters.dropped.shutdown
    },
    unattributed: counters.unattributed,
    flushes: counters.flushes,
    failedFlushes: counters.failedFlushes,
    lastError: counters.lastError
  }))

  return PlatformStore.of({
    registry,
    registerProject,
    putDatabase,
    removeDatabase,
    removeProject,
    rotateKeys,
    refresh,
    recordMetric,
    logEvent,
    recordHealth,
    recordEvent,
    flush,
    stats
  })
})

/**
 * The platform store as a layer: provides `PlatformStore` and its cached registry as `ProjectRegistry` (for
 * `Tenancy.layer`).
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = (options: Options): Layer.Layer<PlatformStore | ProjectRegistry, InvalidConfig | SqlError> =>
  Layer.effectContext(
    Effect.map(make(options), (store) =>
      Context.make(PlatformStore, store).pipe(Context.add(ProjectRegistry, store.registry))
    )
  ).pipe(Layer.provide(Reactivity.layer))

/**
 * The platform store from configuration, e.g.
 * `layerConfig({ url: Config.Redacted("PLATFORM_DATABASE_URL"), keys: Config.Redacted("TENANTPOOL_KEYS") })`.
 *
 * @category layers
 * @since 0.1.0
 */
export const layerConfig = (
  config: Config.Wrap<Options>
): Layer.Layer<PlatformStore | ProjectRegistry, InvalidConfig | SqlError | Config.ConfigError> =>
  Layer.unwrap(Effect.map(Config.unwrap(config), layer))

// ---------------------------------------------------------------------------------------------------------------
// Recorder
// ---------------------------------------------------------------------------------------------------------------

const breakerValue = (state: "closed" | "half-open" | "open") => (state === "open" ? 2 : state === "half-open" ? 1 : 0)

// Turns a tenancy event into audit rows and health updates; false for events that name no project.
const eventRows = (
  store: { readonly logEvent: (event: EventRecord) => void; readonly recordHealth: (health: HealthRecord) => void },
  event: TenancyEvent
): boolean => {
  switch (event._tag) {
    case "PoolCreated":
      store.logEvent({
        projectId: event.projectId,
        engine: event.engine,
        type: "pool_created",
        message: `connections to ${event.target}`,
        metadata: { target: event.target }
      })
      return true
    case "PoolClosed":
      store.logEvent({
        projectId: event.projectId,
        engine: event.engine,
        type: "pool_closed",
        message: `closed (${event.reason})`,
        metadata: { target: event.target, reason: event.reason }
      })
      return true
    case "CircuitOpen":
    case "CircuitHalfOpen":
    case "CircuitClosed": {
      if (event.projectId === undefined) return false
      const type =
        event._tag === "CircuitOpen"
          ? "circuit_open"
          : event._tag === "CircuitHalfOpen"
            ? "circuit_half_open"
            : "circuit_closed"
      store.logEvent({
        projectId: event.projectId,
        engine: event.engine,
        type,
        severity: event._tag === "CircuitOpen" ? "warning" : "info",
        message:
          event._tag === "CircuitOpen"
            ? `circuit open for ${Math.round(event.openForMillis ?? 0)} ms`
            : event._tag === "CircuitHalfOpen"
              ? "circuit half-open: probing"
              : "circuit closed",
        metadata: {
          scope: event.scope,
          target: event.target,
          ...(event.openForMillis !== undefined ? { open_for_ms: event.openForMillis } : {})
        }
      })
      return true
    }
    case "HealthChanged":
      if (event.projectId === undefined) return false
      store.recordHealth({
        projectId: event.projectId,
        engine: event.engine,
        status: event.healthy ? "healthy" : "unhealthy",
        details: {
          target: event.target,
          ...(event.latencyMillis !== undefined ? { latency_ms: Math.round(event.latencyMillis * 100) / 100 } : {}),
          ...(event.error !== undefined ? { error: event.error.slice(0, 500) } : {})
        }
      })
      return true
    case "Overloaded":
      store.logEvent({
        projectId: event.projectId,
        engine: event.engine,
        type: "overloaded",
        severity: "warning",
        message: `refused by the ${event.scope === "project" ? "project's concurrency limit" : "database's shared budget"}`,
        metadata: { scope: event.scope }
      })
      return true
    case "ProjectEvicted":
    case "TierChanged":
      return true
  }
}

/**
 * Options of the recorder.
 *
 * @category models
 * @since 0.1.0
 */
export interface RecorderOptions {
  /** How often live projects' counters are sampled into `platform.database_metrics` (default 10 seconds; 0 off). */
  readonly metricsInterval?: Duration.Input | undefined
}

/**
 * Records the tenancy service's events (pool created/closed, breaker transitions, health, overload) and samples
 * its per-project counters into the platform schema, off the hot path (see the module comment).
 *
 * @category layers
 * @since 0.1.0
 */
export const layerRecorder = (
  options?: RecorderOptions | undefined
): Layer.Layer<never, never, PlatformStore | Tenancy> =>
  Layer.effectDiscard(
    Effect.gen(function* () {
      const store = yield* PlatformStore
      const tenancy = yield* Tenancy
      yield* Effect.forkScoped(
        Stream.runForEach(tenancy.events, (event) => Effect.sync(() => store.recordEvent(event))),
        { startImmediately: true }
      )
      const interval = millisOf(options?.metricsInterval ?? "10 seconds")
      if (interval <= 0) return
      const sample = Effect.map(tenancy.connections, (connections) => {
        const time = new Date()
        for (const c of connections) {
          const base = { projectId: c.projectId, engine: c.databaseType, time, labels: { tier: c.tier } }
          store.recordMetric({ ...base, name: "db_queries_total", value: c.queryCount })
          store.recordMetric({ ...base, name: "db_errors_total", value: c.errorCount })
          store.recordMetric({ ...base, name: "db_active_connections", value: c.active })
          store.recordMetric({ ...base, name: "db_queued_operations", value: c.queued })
          store.recordMetric({ ...base, name: "circuit_breaker_state", value: breakerValue(c.breaker) })
          if (c.pool !== undefined) {
            for (const status of ["total", "available", "pending"] as const) {
              const value =
                status === "total" ? c.pool.size : status === "available" ? c.pool.available : c.pool.pending
              store.recordMetric({ ...base, name: "db_pool_size", value, labels: { tier: c.tier, status } })
            }
          }
        }
      })
      yield* Effect.forkScoped(Effect.repeat(sample, Schedule.spaced(Duration.millis(interval))))
    })
  )
