/**
 * PostgreSQL per project on `@effect/sql-pg`, through the tenantpool guard.
 *
 * The engine provides the standard `SqlClient` of `effect/sql`: `` sql`select …` ``, `sql.insert`, `sql.in`,
 * `sql.withTransaction`, `.stream`, `.values`, `.unprepared` all work as usual, and every statement runs for the
 * *current project* (set by `tenancy.withProject(id)` or `Tenancy.layerProject(id)`), on that project's pool,
 * through its admission limits, breakers, attempt timeout and metrics.
 *
 * How the guarded client is built (`SqlClient.make` with acquirers of our own, no wrapper around a finished client):
 * - Single statements. The client's borrower and acquirer hand every statement a *routing* connection. Each of its
 *   methods (`execute`, `executeValues`, …) receives the compiled SQL, picks the operation from the first keyword
 *   (`select` … → idempotent, retried on infrastructure errors; writes → not, and an infrastructure failure after
 *   sending becomes `UnknownOutcome`), and runs it as one guarded operation with its text and parameters as the
 *   protections' detail. Inside the attempt it runs on one of two lanes (`internal/pgSessions.ts`): pipelined on a
 *   shared connection when its text ran short lately, else on a connection of its own, one of the project's
 *   `maxPool` slots.
 * - Transactions, streams and `sql.reserve` hold a *lease* (`EngineHandle.lease`): admitted like a call (the
 *   project's slot, the target's budget, breakers, protections), held until they end, bounded by the tier deadline.
 *   Their connection is reserved under the lease; when the deadline passes, the work stops on the server (cancel,
 *   then the session is closed) and the holder hears the guard's verdict. Statements inside them take no second
 *   admission slot but pass the protections one by one. A nested `withTransaction` is a savepoint.
 * - The guard's refusals reach callers as `SqlError`s carrying the refusal as `reason.cause` (see `PgError`), so the
 *   client's types stay those of `effect/sql`; `PgError.unwrapGuardErrors` surfaces them as typed errors.
 *
 * Pools: one sql-pg pool per target (same host, port, user, database and password), created by the first binding,
 * shared by every project on the target, closed when the last one goes; sized from the tiers of its projects
 * (max of their `maxPool`, capped by `maxConnections`); no project holds more than its own tier's `maxPool`
 * connections at once; connections carry `application_name` `tenantpool:<tag>` (a one-way hash of the target,
 * never a secret). The role a target's connections log in as is checked once (`TargetInfo.roleWarnings`). In a fleet
 * (`Coordination.ConnectionShares` provided, e.g. by `@tenantpool/cluster`) a pool holds at most this process's
 * share of the target's connections, generations included, and is resized when the share changes.
 *
 * Cancellation: an attempt that times out or is interrupted interrupts the statement; on exclusive and pinned
 * connections sql-pg sends a `CancelRequest` and retires the session unless the backend confirms; on multiplexed
 * connections the engine does it (see `internal/pgConnection.ts`). A session in an unknown state is never reused.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as FiberSet from "effect/FiberSet"
import * as Layer from "effect/Layer"
import * as Reactivity from "effect/reactivity/Reactivity"
import * as Schedule from "effect/Schedule"
import * as SqlClient from "effect/sql/SqlClient"
import { SqlError } from "effect/sql/SqlError"
import * as Coordination from "@tenantpool/core/Coordination"
import * as Durations from "@tenantpool/core/Durations"
import type * as EngineContract from "@tenantpool/core/Engine"
import { InvalidConfig, type InvalidProjectId, type ProjectNotFound } from "@tenantpool/core/Errors"
import * as Target from "@tenantpool/core/Target"
import * as Tenancy from "@tenantpool/core/Tenancy"
import { Tiers } from "@tenantpool/core/Tier"
import * as PgError from "./PgError.ts"
import { makeGuardedClient } from "./internal/pgClient.ts"
import { makeOps } from "./internal/pgOperations.ts"
import { Gate } from "./internal/gate.ts"
import { type Binding as SessionBinding, runStatement, type Sessions } from "./internal/pgSessions.ts"
import { checkRole } from "./internal/roleCheck.ts"
import { type Member, type PoolSettings, TargetPool, type TargetStats, targetTag } from "./internal/targetPool.ts"

// ---------------------------------------------------------------------------------------------------------------
// Options and models
// ---------------------------------------------------------------------------------------------------------------

/**
 * Options of the PostgreSQL engine.
 *
 * @category models
 * @since 0.1.0
 */
export interface Options {
  /**
   * Pipeline short statements of many fibers on shared connections (default true); slow statements and
   * statements not seen yet run on a connection of their own either way. `false`: every statement does.
   */
  readonly multiplex?: boolean | undefined
  /** Statements sharing one connection when multiplexing (default 32). */
  readonly multiplexConcurrency?: number | undefined
  /**
   * A statement text that took this long lately (a moving average per target) leaves the shared, pipelined
   * connections and runs on a connection of its own (default 10 milliseconds).
   */
  readonly slowStatement?: Duration.Input | undefined
  /** Upper bound of any target's pool, whatever its projects' tiers ask for (default 100). */
  readonly maxConnections?: number | undefined
  /**
   * The share of the server's connections for non-superusers (`max_connections` − `superuser_reserved_connections`)
   * one target's pool may take (default 0.8), read when the target is first used: room stays for other targets,
   * the operator and maintenance.
   */
  readonly serverShare?: number | undefined
  /** How long a connection above the pool's minimum may stay unused (default 60 seconds). */
  readonly idleTimeout?: Duration.Input | undefined
  /** Connect timeout of one connection, TLS and authentication included (default 5 seconds). */
  readonly connectTimeout?: Duration.Input | undefined
  /** Recycle connections older than this (default: never). */
  readonly connectionTTL?: Duration.Input | undefined
  /** TCP keep-alive idle time (default: off). */
  readonly keepAlive?: Duration.Input | undefined
  /** `application_name` of every connection (default `tenantpool`). */
  readonly applicationName?: string | undefined
  /** Append `:<target tag>` to the application name, so connections can be counted per target (default true). */
  readonly tagTargets?: boolean | undefined
  /** Named prepared statements (default true; turn off behind a transaction-mode pooler). */
  readonly prepare?: boolean | undefined
  /** Session settings sent when connecting (`statement_timeout`, `search_path`, …). */
  readonly startupParameters?: Readonly<Record<string, string>> | undefined
  /** Operations in flight per target from this process, across its projects (default: pool cap × multiplexing). */
  readonly targetCapacity?: number | undefined
  /** Treat `SELECT`/`VALUES`/`TABLE`/`SHOW` statements as idempotent: retried, never an unknown outcome (default true). */
  readonly idempotentReads?: boolean | undefined
  /** How often pool sizes are checked against their projects' tiers (default 1 second). */
  readonly resizeInterval?: Duration.Input | undefined
  /** Column names of result rows, e.g. snake_case to camelCase. */
  readonly transformResultNames?: ((name: string) => string) | undefined
  /** Identifiers in statements, e.g. camelCase to snake_case. */
  readonly transformQueryNames?: ((name: string) => string) | undefined
  /** Apply the name transforms inside JSON values too (default true). */
  readonly transformJson?: boolean | undefined
}

/**
 * A project's binding to its target's pool.
 *
 * @category models
 * @since 0.1.0
 */
export interface Binding extends SessionBinding {}

/**
 * Pool statistics of a project's PostgreSQL target: the spec's `size`/`available`/`pending`, and the counts behind
 * them. sql-pg has no statistics API; these are counted by the engine (sockets opened and closed, statements in
 * flight, exclusive reservations, checkouts waiting).
 *
 * @category models
 * @since 0.1.0
 */
export interface PgPoolStats extends TargetStats {}

/**
 * A live target pool, as `targets` lists it.
 *
 * @category models
 * @since 0.1.0
 */
export interface TargetInfo {
  /** Safe display form of the target: `postgres://user@host:port/db`. */
  readonly label: string
  /** The one-way tag in its `application_name`. */
  readonly tag: string
  /** Projects bound to it. */
  readonly projects: number
  readonly stats: PgPoolStats
  /**
   * What is wrong with the role its connections log in as, for a tenant (superuser, `CREATEROLE`, `BYPASSRLS`,
   * `CONNECT` granted to `PUBLIC`, …; see the README's operator model). Empty when nothing is, or before the check.
   */
  readonly roleWarnings: ReadonlyArray<string>
}

// ---------------------------------------------------------------------------------------------------------------
// The service
// ---------------------------------------------------------------------------------------------------------------

/**
 * The PostgreSQL engine.
 *
 * @category services
 * @since 0.1.0
 */
export class PgEngine extends Context.Service<
  PgEngine,
  {
    readonly handle: EngineContract.EngineHandle<Binding, SqlError>
    /** The guarded client (the same one the layer provides as `SqlClient`). */
    readonly sql: SqlClient.SqlClient
    /** `select 1` for the current project through the guard; false when it fails or times out. */
    readonly healthCheck: Effect.Effect<boolean, PgError.Refusal>
    /** The current project's pool statistics in the spec's shape, with the counts behind them. */
    readonly poolStats: Effect.Effect<PgPoolStats, SqlError>
    /** Every live target pool. */
    readonly targets: Effect.Effect<ReadonlyArray<TargetInfo>>
  }
>()("@tenantpool/pg/PgEngine") {}

/**
 * What a fleet coordinator may add to core's `Shares`: a way to read how many connections a target's pool may still
 * hold (`TargetPool.bound`), so that it gives a shrunk share's difference to other processes only once this
 * process is under it (`@tenantpool/cluster` provides it).
 */
interface TrackedShares extends Coordination.Shares {
  readonly track?: ((engine: "postgres", targetId: string, bound: () => number) => () => void) | undefined
}

/** A count option that is not a positive integer is an `InvalidConfig` naming it. */
const positiveInt = (field: keyof Options, value: number | undefined): Effect.Effect<void, InvalidConfig> =>
  value === undefined || (Number.isSafeInteger(value) && value > 0)
    ? Effect.void
    : Effect.fail(new InvalidConfig({ field: `postgres.${field}`, reason: "must be a positive integer" }))

/** The pool settings the options call for; a duration that is not one is an `InvalidConfig` naming the option. */
const settingsOf = Effect.fnUntraced(function* (options: Options | undefined) {
  const multiplex = options?.multiplex ?? true
  yield* positiveInt("multiplexConcurrency", options?.multiplexConcurrency)
  yield* positiveInt("maxConnections", options?.maxConnections)
  yield* positiveInt("targetCapacity", options?.targetCapacity)
  const optional = (field: keyof Options, input: Duration.Input | undefined, allowZero = false) =>
    input === undefined ? Effect.undefined : Durations.millis(`postgres.${field}`, input, input, { allowZero })
  const settings: PoolSettings = {
    multiplex,
    multiplexConcurrency: Math.max(1, options?.multiplexConcurrency ?? 32),
    maxConnections: Math.max(1, options?.maxConnections ?? 100),
    idleTimeout: yield* Durations.millis("postgres.idleTimeout", options?.idleTimeout, "60 seconds"),
    connectTimeout: yield* Durations.millis("postgres.connectTimeout", options?.connectTimeout, "5 seconds"),
    connectionTTL: yield* optional("connectionTTL", options?.connectionTTL),
    // Zero is Node's "the system's default delay".
    keepAlive: yield* optional("keepAlive", options?.keepAlive, true),
    applicationName: options?.applicationName ?? "tenantpool",
    tagTargets: options?.tagTargets ?? true,
    prepare: options?.prepare,
    startupParameters: options?.startupParameters
  }
  return settings
})

/**
 * Registers the PostgreSQL engine with the tenancy service and builds the guarded `SqlClient`.
 *
 * @category constructors
 * @since 0.1.0
 */
export const make = Effect.fnUntraced(function* (options?: Options | undefined) {
  const tenancy = yield* Tenancy.Tenancy
  const tiers = yield* Tiers
  const scope = yield* Effect.scope
  // Kept synchronous: a generation's pool is made by the first statement after a size change, inside that
  // statement's path; what it opens belongs to the generation's scope, a child of the engine's.
  const runSync = Effect.runSyncWith(yield* Effect.context<never>())
  const settings = yield* settingsOf(options)
  const resizeMillis = yield* Durations.millis("postgres.resizeInterval", options?.resizeInterval, "1 second")
  const slowMillis = yield* Durations.millis("postgres.slowStatement", options?.slowStatement, "10 millis")
  const serverShare = options?.serverShare ?? 0.8
  if (!(serverShare > 0 && serverShare <= 1)) {
    return yield* new InvalidConfig({ field: "postgres.serverShare", reason: "must be a number in (0, 1]" })
  }
  // Background work started from synchronous code (closing a retired pool generation, stopping an abandoned
  // statement) runs in fibers of this set: they belong to the engine's scope and are interrupted when it closes,
  // after the pools (the set's finalizer is registered first, so it runs last).
  const runFork = yield* FiberSet.makeRuntime<never, void, never>()
  const fork = (effect: Effect.Effect<void>): void => {
    runFork(effect)
  }
  const { multiplex, multiplexConcurrency, maxConnections } = settings
  const capacity = options?.targetCapacity ?? maxConnections * (multiplex ? multiplexConcurrency : 1)
  const ops = makeOps<Binding>(options?.idempotentReads ?? true)
  const pools = new Map<string, TargetPool>()
  const shares: TrackedShares | undefined = yield* Coordination.ConnectionShares
  const untrack = new Map<TargetPool, () => void>()
  const newPool = (target: Target.Target): TargetPool => {
    if (shares === undefined) return new TargetPool(target, settings, scope, runSync, fork)
    const id = Target.id(target)
    const pool = new TargetPool(target, settings, scope, runSync, fork, () => shares.get("postgres", id))
    const stop = shares.track?.("postgres", id, () => pool.bound())
    if (stop !== undefined) untrack.set(pool, stop)
    return pool
  }
  // Untracked once its connections are closed: until then the coordinator counts them.
  const closePool = (pool: TargetPool): Effect.Effect<void> =>
    Effect.ensuring(
      pool.close(),
      Effect.sync(() => {
        untrack.get(pool)?.()
        untrack.delete(pool)
      })
    )
  const sessions: Sessions = {
    multiplex,
    slowMillis,
    recordAcquire: (project, seconds) => handle.recordAcquire(project, seconds),
    fork
  }

  const handle = yield* tenancy.register<Binding, SqlError>({
    engine: "postgres",
    classify: PgError.classify,
    targetCapacity: () => capacity,
    bind: (project, target) =>
      Effect.acquireRelease(
        Effect.sync((): Binding => {
          let pool = pools.get(target.key)
          if (pool === undefined) {
            pool = newPool(target)
            pools.set(target.key, pool)
          }
          const limits = () => tiers.get(project.tierName).limits
          const member: Member = { limits, gate: new Gate(limits().maxPool) }
          if (!pool.roleChecked) {
            pool.roleChecked = true
            fork(checkRole(sessions, { project, target, pool, member }, serverShare))
          }
          pool.members.add(member)
          if (pool.members.size === 2) pool.renew()
          pool.resize()
          return { project, target, pool, member }
        }),
        (b) =>
          Effect.suspend(() => {
            b.pool.members.delete(b.member)
            if (b.pool.members.size > 0) {
              b.pool.resize()
              return Effect.void
            }
            if (pools.get(b.target.key) === b.pool) pools.delete(b.target.key)
            return closePool(b.pool)
          })
      ),
    ping: (b) => Effect.asVoid(runStatement(sessions, b, "select 1", (conn) => conn.query("select 1"))),
    stats: (b) => b.pool.stats()
  })

  const client = yield* makeGuardedClient({
    handle,
    ops,
    sessions,
    transformResultNames: options?.transformResultNames,
    transformQueryNames: options?.transformQueryNames,
    transformJson: options?.transformJson
  })

  // ---- sizing --------------------------------------------------------------------------------------------------

  const resizeAll = () => {
    for (const pool of pools.values()) pool.resize()
  }
  const unlisten = tiers.onChange(resizeAll)
  yield* Effect.addFinalizer(() => Effect.sync(unlisten))
  if (shares !== undefined) {
    const unsubscribe = shares.subscribe(resizeAll)
    yield* Effect.addFinalizer(() => Effect.sync(unsubscribe))
  }
  // A project that moves to another tier (registry change) is seen here: its runtime's tier is live.
  yield* Effect.forkIn(Effect.repeat(Effect.sync(resizeAll), Schedule.spaced(Duration.millis(resizeMillis))), scope)
  yield* Effect.addFinalizer(() =>
    Effect.suspend(() => {
      const all = [...pools.values()]
      pools.clear()
      return Effect.forEach(all, closePool, { discard: true, concurrency: "unbounded" })
    })
  )

  const ping = handle.runEffect(ops.ping, (b, signal) =>
    runStatement(sessions, b, "select 1", (conn) => conn.query("select 1"), signal)
  )

  return PgEngine.of({
    handle,
    sql: client,
    healthCheck: Effect.catch(Effect.as(ping, true), (error): Effect.Effect<boolean, PgError.Refusal> =>
      error instanceof SqlError || error._tag === "Timeout" ? Effect.succeed(false) : Effect.fail(error)
    ),
    poolStats: Effect.mapError(
      Effect.map(handle.binding, ({ binding }) => binding.pool.stats()),
      (error) => PgError.toSqlError(error, "stats") as SqlError
    ),
    targets: Effect.sync(() =>
      [...pools.values()].map((pool) => ({
        label: pool.target.label,
        tag: targetTag(pool.target),
        projects: pool.members.size,
        stats: pool.stats(),
        roleWarnings: pool.roleWarnings
      }))
    )
  })
})

/**
 * The PostgreSQL engine as a layer: provides `PgEngine` and the guarded `SqlClient` (statements run for the current
 * project). Needs the tenancy service and the tier table.
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = (
  options?: Options | undefined
): Layer.Layer<PgEngine | SqlClient.SqlClient, InvalidConfig, Tenancy.Tenancy | Tiers> =>
  Layer.effectContext(
    Effect.map(make(options), (engine) =>
      Context.make(PgEngine, engine).pipe(Context.add(SqlClient.SqlClient, engine.sql))
    )
  ).pipe(Layer.provide(Reactivity.layer))

/**
 * A project's layer: makes `id` the current project and provides the guarded `SqlClient`, so a request handler
 * can `yield* SqlClient.SqlClient` and query that project's database.
 *
 * @category layers
 * @since 0.1.0
 */
export const layerProject = (
  id: string
): Layer.Layer<SqlClient.SqlClient, ProjectNotFound | InvalidProjectId, PgEngine | Tenancy.Tenancy> =>
  Layer.merge(
    Layer.effect(
      SqlClient.SqlClient,
      PgEngine.useSync((engine) => engine.sql)
    ),
    Tenancy.layerProject(id)
  )
