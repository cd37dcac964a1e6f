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
 *   sending becomes `UnknownOutcome`), and runs it as one guarded operation: the guard resolves the current
 *   project's binding, admits, times, and inside the attempt the statement borrows a connection of the target's
 *   pool (multiplexed by default) for exactly that statement.
 * - Transactions. `withTransaction` is one guarded operation (non-idempotent): its attempt reserves one connection
 *   from the project's pool, runs BEGIN, the body and COMMIT on it, and releases it on every exit (commit, rollback,
 *   interruption, timeout). Statements inside find the transaction's connection through `effect/sql`'s transaction
 *   service and never reach the routing connection, so they take no second admission slot (a project with
 *   `maxConcurrent = 1` can run a transaction). A nested `withTransaction` is a savepoint, not a new operation.
 * - Streams and `sql.reserve`: the checkout of an exclusive connection is guarded; the rows then flow on that
 *   connection, held until the stream (or the scope) ends, outside the attempt timeout.
 * - The guard's refusals reach callers as `SqlError`s carrying the refusal as `reason.cause` (see `PgError`), so the
 *   client's types stay those of `effect/sql`; `PgError.unwrapGuardErrors` surfaces them as typed errors.
 *
 * Pools: one sql-pg pool per target (same host, port, user, database and password), created by the first binding,
 * shared by every project on the target, closed when the last one goes; sized from the tiers of its projects
 * (max of their `maxPool`, capped by `maxConnections`; a project alone on its database gets its tier's min and
 * max); connections carry `application_name` `tenantpool:<tag>` (a one-way hash of the target, never a secret).
 *
 * Cancellation: an attempt that times out or is interrupted interrupts the statement; on exclusive and pinned
 * connections sql-pg sends a `CancelRequest` and retires the session unless the backend confirms; on multiplexed
 * connections the engine does it (see `internal/pgConnection.ts`). A session in an unknown state is never reused.
 *
 * @since 0.1.0
 */
import * as PgClient from "@effect/sql-pg/PgClient"
import type * as PgConnection from "@effect/sql-pg/PgConnection"
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Reactivity from "effect/reactivity/Reactivity"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import * as SqlClient from "effect/sql/SqlClient"
import type { Connection } from "effect/sql/SqlConnection"
import { ConnectionError, SqlError, UnknownError } from "effect/sql/SqlError"
import * as Statement from "effect/sql/Statement"
import * as Stream from "effect/Stream"
import { CurrentProject, type ProjectHandle } from "@tenantpool/core/CurrentProject"
import type { InvalidConfig, InvalidProjectId, ProjectNotFound } from "@tenantpool/core/Errors"
import type { ProtectionDetail } from "@tenantpool/core/Protections"
import type { Target } from "@tenantpool/core/Target"
import * as Tenancy from "@tenantpool/core/Tenancy"
import type * as EngineContract from "@tenantpool/core/Engine"
import { Tiers } from "@tenantpool/core/Tier"
import * as PgError from "./PgError.ts"
import { cancelEpoch, makeConnection, reapAbandoned } from "./internal/pgConnection.ts"
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
  /** Pipeline single statements of many fibers on each pooled connection (default true). */
  readonly multiplex?: boolean | undefined
  /** Statements sharing one connection when multiplexing (default 32). */
  readonly multiplexConcurrency?: number | undefined
  /** Upper bound of any target's pool, whatever its projects' tiers ask for (default 100). */
  readonly maxConnections?: number | undefined
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
export interface Binding {
  readonly project: ProjectHandle
  readonly target: Target
  readonly pool: TargetPool
  readonly member: Member
}

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
}

// ---------------------------------------------------------------------------------------------------------------
// Operations
// ---------------------------------------------------------------------------------------------------------------

/** The first keyword of a statement, lower-cased (after white space, comments and opening parentheses). */
const keywordAt = (sql: string): string => {
  const n = sql.length
  let i = 0
  while (i < n) {
    const c = sql.charCodeAt(i)
    if (c === 32 || c === 9 || c === 10 || c === 13 || c === 40) {
      i++
    } else if (c === 45 && sql.charCodeAt(i + 1) === 45) {
      const end = sql.indexOf("\n", i)
      i = end < 0 ? n : end + 1
    } else if (c === 47 && sql.charCodeAt(i + 1) === 42) {
      const end = sql.indexOf("*/", i + 2)
      i = end < 0 ? n : end + 2
    } else {
      break
    }
  }
  let j = i
  while (j < n && j - i < 10) {
    const c = sql.charCodeAt(j) | 32
    if (c < 97 || c > 122) break
    j++
  }
  return sql.slice(i, j).toLowerCase()
}

/** `select` written in any case, at `i`, followed by a non-letter: the common case, decided without allocating. */
const isSelectAt = (sql: string, i: number): boolean =>
  (sql.charCodeAt(i) | 32) === 115 &&
  (sql.charCodeAt(i + 1) | 32) === 101 &&
  (sql.charCodeAt(i + 2) | 32) === 108 &&
  (sql.charCodeAt(i + 3) | 32) === 101 &&
  (sql.charCodeAt(i + 4) | 32) === 99 &&
  (sql.charCodeAt(i + 5) | 32) === 116 &&
  !((sql.charCodeAt(i + 6) | 32) >= 97 && (sql.charCodeAt(i + 6) | 32) <= 122)

const ddl: ReadonlySet<string> = new Set([
  "create",
  "alter",
  "drop",
  "truncate",
  "comment",
  "grant",
  "revoke",
  "refresh",
  "reindex",
  "cluster",
  "vacuum",
  "analyze"
])

type Ops = ReturnType<typeof makeOps>

const makeOps = (idempotentReads: boolean) => {
  const op = (name: string, idempotent: boolean): EngineContract.Operation<Binding> => ({ name, idempotent })
  return {
    select: op("select", idempotentReads),
    insert: op("insert", false),
    update: op("update", false),
    delete: op("delete", false),
    merge: op("merge", false),
    with: op("with", false),
    copy: op("copy", false),
    call: op("call", false),
    ddl: op("ddl", false),
    other: op("other", false),
    transaction: op("transaction", false),
    stream: op("stream", true),
    reserve: op("reserve", true),
    ping: op("ping", true)
  }
}

const opFor = (ops: Ops, sql: string): EngineContract.Operation<Binding> => {
  if (isSelectAt(sql, 0)) return ops.select
  const keyword = keywordAt(sql)
  switch (keyword) {
    case "select":
    case "values":
    case "table":
    case "show":
      return ops.select
    case "insert":
    case "update":
    case "delete":
    case "merge":
    case "with":
    case "copy":
    case "call":
      return ops[keyword]
  }
  return ddl.has(keyword) ? ops.ddl : ops.other
}

// ---------------------------------------------------------------------------------------------------------------
// The service
// ---------------------------------------------------------------------------------------------------------------

/** The binding a transaction's attempt resolved; its connection is reserved from this binding's pool. */
const ActiveBinding = Context.Reference<Binding | undefined>("@tenantpool/pg/PgEngine/ActiveBinding", {
  defaultValue: () => undefined
})

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

const connectionError = (message: string, operation: string) =>
  new SqlError({ reason: new ConnectionError({ cause: new Error(message), message, operation }) })

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
  const context = yield* Effect.context<never>()
  const runSync = Effect.runSyncWith(context)
  const runFork = Effect.runForkWith(context)
  const fork = (effect: Effect.Effect<void>) => {
    runFork(effect)
  }

  const multiplex = options?.multiplex ?? true
  const multiplexConcurrency = Math.max(1, options?.multiplexConcurrency ?? 32)
  const maxConnections = Math.max(1, options?.maxConnections ?? 100)
  const settings: PoolSettings = {
    multiplex,
    multiplexConcurrency,
    maxConnections,
    idleTimeout: options?.idleTimeout ?? "60 seconds",
    connectTimeout: options?.connectTimeout ?? "5 seconds",
    connectionTTL: options?.connectionTTL,
    keepAlive: options?.keepAlive,
    applicationName: options?.applicationName ?? "tenantpool",
    tagTargets: options?.tagTargets ?? true,
    prepare: options?.prepare,
    startupParameters: options?.startupParameters
  }
  const capacity = options?.targetCapacity ?? maxConnections * (multiplex ? multiplexConcurrency : 1)
  const ops = makeOps(options?.idempotentReads ?? true)
  const pools = new Map<string, TargetPool>()
  const abandonError = connectionError("PgConnection: abandoned statement did not stop after cancel", "cancel")

  // ---- statements on a binding (inside a guarded attempt) ----------------------------------------------------

  const isCollateralCancel = (conn: PgConnection.PgConnection | undefined, epoch: number, error: SqlError) =>
    conn !== undefined && cancelEpoch(conn) !== epoch && PgError.sqlState(error) === "57014"

  /**
   * Runs one statement on a connection borrowed for it. A statement canceled by a cancel meant for an abandoned
   * statement ahead of it on a multiplexed connection runs once more (it was not applied).
   */
  const runOn = <A>(
    b: Binding,
    exec: (conn: PgConnection.PgConnection) => Effect.Effect<A, SqlError>,
    retried = false
  ): Effect.Effect<A, SqlError> =>
    Effect.suspend(() => {
      const tp = b.pool
      const gen = tp.use()
      if (gen === undefined) return Effect.fail(connectionError("PgEngine: the target's pool is closed", "query"))
      const started = performance.now()
      let conn: PgConnection.PgConnection | undefined
      let epoch = 0
      tp.pending++
      const once = gen.pool.use((c) => {
        conn = c
        tp.pending--
        tp.inFlight++
        handle.recordAcquire(b.project, (performance.now() - started) / 1000)
        if (multiplex) epoch = cancelEpoch(c)
        return exec(c)
      })
      // A finalizer, not a continuation: it must also run when the attempt is interrupted (timeout, caller gone).
      const settled = Effect.onExit(once, (exit) => {
        if (conn === undefined) tp.pending--
        else tp.inFlight--
        tp.release(gen)
        // An interrupted statement on a multiplexed connection is only marked abandoned by sql-pg: stop it.
        if (multiplex && conn !== undefined && exit._tag === "Failure" && Cause.hasInterrupts(exit.cause)) {
          const c = conn
          fork(reapAbandoned(c, () => gen.pool.invalidate(c), abandonError))
        }
        return Effect.void
      })
      if (!multiplex || retried) return settled
      // Canceled by a cancel meant for an abandoned statement ahead of it: it was not applied, run it again.
      return Effect.catchIf(
        settled,
        (error) => isCollateralCancel(conn, epoch, error),
        () => runOn(b, exec, true)
      )
    })

  /** A statement of another project on a transaction's connection is refused. */
  const belongsTo = (project: ProjectHandle): Effect.Effect<void, SqlError> =>
    Effect.withFiber((fiber) => {
      const current = fiber.getRef(CurrentProject)
      if (current === undefined || current.id === project.id) return Effect.void
      const message = `PgEngine: a statement of project "${current.id}" ran on a connection reserved by project "${project.id}"`
      return Effect.fail(new SqlError({ reason: new UnknownError({ cause: new Error(message), message }) }))
    })

  /** Reserves an exclusive connection of the binding's pool until the current scope closes. */
  const reserveOn = (b: Binding): Effect.Effect<Connection, SqlError, Scope.Scope> =>
    Effect.suspend(() => {
      const tp = b.pool
      const gen = tp.use()
      if (gen === undefined) return Effect.fail(connectionError("PgEngine: the target's pool is closed", "reserve"))
      const started = performance.now()
      // 0 waiting for a connection, 1 holding one, 2 settled.
      let state = 0
      const settle = Effect.sync(() => {
        if (state === 0) tp.pending--
        else if (state === 1) tp.reserved--
        else return
        state = 2
        tp.release(gen)
      })
      tp.pending++
      return Effect.acquireRelease(Effect.void, () => settle).pipe(
        Effect.andThen(gen.pool.reserve),
        Effect.map((pinned) => {
          tp.pending--
          tp.reserved++
          state = 1
          handle.recordAcquire(b.project, (performance.now() - started) / 1000)
          return makeConnection(pinned, belongsTo(b.project))
        }),
        Effect.onError(() => settle)
      )
    })

  // ---- registration --------------------------------------------------------------------------------------------

  const handle = yield* tenancy.register<Binding, SqlError>({
    engine: "postgres",
    classify: PgError.classify,
    targetCapacity: () => capacity,
    bind: (project, target) =>
      Effect.acquireRelease(
        Effect.sync((): Binding => {
          let pool = pools.get(target.key)
          if (pool === undefined) {
            pool = new TargetPool(target, settings, scope, runSync, fork)
            pools.set(target.key, pool)
          }
          const member: Member = { limits: () => tiers.get(project.tierName).limits }
          pool.members.add(member)
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
            return b.pool.close()
          })
      ),
    ping: (b) => Effect.asVoid(runOn(b, (conn) => conn.query("select 1"))),
    stats: (b) => b.pool.stats()
  })

  // ---- the guarded client --------------------------------------------------------------------------------------

  // `detail` (the statement and its parameters) goes to the installed protections: rate limits, the SQL analyzer,
  // the cost estimator (`@tenantpool/protections`); with none installed it costs one reference read.
  const guarded = <A, R>(
    op: EngineContract.Operation<Binding>,
    f: (b: Binding) => Effect.Effect<A, SqlError, R>,
    detail?: ProtectionDetail
  ): Effect.Effect<A, SqlError, R> =>
    Effect.mapError(
      detail === undefined ? handle.runEffect(op, f) : handle.runEffect(op, f, undefined, detail),
      (error) => PgError.toSqlError(error, op.name) as SqlError
    )

  const statement = <A>(
    sql: string,
    params: ReadonlyArray<unknown>,
    exec: (conn: PgConnection.PgConnection) => Effect.Effect<A, SqlError>
  ) => guarded(opFor(ops, sql), (b) => runOn(b, exec), { statement: sql, params })

  type TransformRows = (<A extends object>(row: ReadonlyArray<A>) => ReadonlyArray<A>) | undefined
  const rows = (conn: PgConnection.PgConnection, sql: string, params: ReadonlyArray<unknown>, prepare: boolean) =>
    Effect.map(conn.query(sql, params, prepare), (result) => result.rows)
  const transformed = (
    effect: Effect.Effect<ReadonlyArray<any>, SqlError>,
    transform: TransformRows
  ): Effect.Effect<ReadonlyArray<any>, SqlError> => (transform === undefined ? effect : Effect.map(effect, transform))

  // The connection every statement outside a transaction is handed: each call is one guarded operation.
  const routing: Connection = {
    execute: (sql, params, transform) =>
      statement(sql, params, (c) => transformed(rows(c, sql, params, true), transform)),
    executeUnprepared: (sql, params, transform) =>
      statement(sql, params, (c) => transformed(rows(c, sql, params, false), transform)),
    executeRaw: (sql, params) => statement(sql, params, (c) => c.query(sql, params)),
    executeValues: (sql, params) => statement(sql, params, (c) => c.queryValues(sql, params)),
    executeValuesUnprepared: (sql, params) => statement(sql, params, (c) => c.queryValues(sql, params, false)),
    executeStream: (sql, params, transform) =>
      Stream.unwrap(Effect.map(guarded(ops.stream, reserveOn), (conn) => conn.executeStream(sql, params, transform)))
  }

  const transactionAcquirer: Effect.Effect<Connection, SqlError, Scope.Scope> = Effect.withFiber((fiber) => {
    const b = fiber.getRef(ActiveBinding)
    return b !== undefined ? reserveOn(b) : guarded(ops.reserve, reserveOn)
  })

  const commit = (conn: Connection): Effect.Effect<void, SqlError> =>
    Effect.flatMap(conn.executeRaw("COMMIT", []) as Effect.Effect<PgConnection.Result, SqlError>, (result) =>
      result.command === "ROLLBACK"
        ? Effect.fail(
            new SqlError({
              reason: new UnknownError({
                cause: new Error("COMMIT rolled back an aborted transaction"),
                message: "PgEngine: COMMIT rolled back an aborted transaction",
                operation: "commit"
              })
            })
          )
        : Effect.void
    )

  const client = yield* SqlClient.make({
    acquirer: Effect.succeed(routing),
    borrower: (f) => f(routing),
    transactionAcquirer,
    compiler: PgClient.makeCompiler(options?.transformQueryNames, options?.transformJson),
    driver: "pg",
    spanAttributes: [
      ["db.system.name", "postgresql"],
      ["tenantpool.engine", "postgres"]
    ],
    prepareTransactionControls: true,
    commit,
    releaseSavepoint: (name) => `RELEASE SAVEPOINT ${name}`,
    transformRows: options?.transformResultNames
      ? Statement.defaultTransforms(options.transformResultNames, options.transformJson).array
      : undefined
  })

  // A top-level transaction is one guarded operation; a nested one is a savepoint on the same connection.
  const inner = client.withTransaction
  const withTransaction = <R, E, A>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | SqlError, R> =>
    Effect.withFiber((fiber) => {
      if (Context.getOrUndefined(fiber.context, client.transactionService) !== undefined) return inner(effect)
      return Effect.mapError(
        handle.runEffect(
          ops.transaction,
          (b) => Effect.provideService(inner(effect), ActiveBinding, b) as unknown as Effect.Effect<A, SqlError, R>
        ),
        (error) => PgError.toSqlError(error, "transaction")
      ) as Effect.Effect<A, E | SqlError, R>
    })
  Object.assign(client, { withTransaction })

  // ---- sizing --------------------------------------------------------------------------------------------------

  const resizeAll = () => {
    for (const pool of pools.values()) pool.resize()
  }
  const unlisten = tiers.onChange(resizeAll)
  yield* Effect.addFinalizer(() => Effect.sync(unlisten))
  // A project that moves to another tier (registry change) is seen here: its runtime's tier is live.
  yield* Effect.forkIn(
    Effect.repeat(
      Effect.sync(resizeAll),
      Schedule.spaced(Duration.fromInputUnsafe(options?.resizeInterval ?? "1 second"))
    ),
    scope
  )
  yield* Effect.addFinalizer(() =>
    Effect.suspend(() => {
      const all = [...pools.values()]
      pools.clear()
      return Effect.forEach(all, (pool) => pool.close(), { discard: true, concurrency: "unbounded" })
    })
  )

  // ---- the rest of the service -------------------------------------------------------------------------------

  const ping = handle.runEffect(ops.ping, (b) => runOn(b, (conn) => conn.query("select 1")))

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
        stats: pool.stats()
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
